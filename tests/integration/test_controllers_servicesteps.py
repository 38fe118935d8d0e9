"""The ServiceStep controller against the real control plane, the operator running as a process:
each step becomes a Deployment, a Service and an HPA; drift is put back; the HPA keeps the
replica count; deletion collects everything; restarts duplicate nothing; bad input is reported
and does not stop the rest; an external step is Ready while its URL answers.
"""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.integration.localcluster import LocalCluster, wait_until
from tests.integration.operatorprocess import OperatorProcess
from tests.integration.stepobjects import (
    STEP_LABEL,
    condition,
    events_about,
    get,
    items,
    merge_patch,
    owned_objects,
    service_step,
    wait_condition,
    wait_event,
    wait_ready,
    workflow,
)

pytestmark = pytest.mark.integration

IMAGE = "registry.example/validate:1.0.0"
BEHAVIOR = {
    "scaleUp": {"policies": [{"type": "Pods", "value": 2, "periodSeconds": 30}]},
    "scaleDown": {"stabilizationWindowSeconds": 120, "selectPolicy": "Min"},
}
# The external check runs when the step is reconciled and then every 30 s (servicesteps.py).
EXTERNAL_CHECK_TIMEOUT = 30 + 20
# A refused apply is tried again after 30 s (servicesteps/reconciler.py).
REFUSED_RETRY_TIMEOUT = 30 + 20


def container_of(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def is_alive(process: OperatorProcess) -> bool:
    return process.process is not None and process.process.poll() is None


def uids(found: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    return {kind: [obj["metadata"]["uid"] for obj in objs] for kind, objs in found.items()}


def running_pods(cluster: LocalCluster, namespace: str, step: str) -> list[dict[str, Any]]:
    pods = items(cluster, "pods", namespace, f"-l={STEP_LABEL}={step}")
    return [p for p in pods if p.get("status", {}).get("phase") == "Running"]


def test_a_service_step_becomes_a_deployment_service_and_autoscaler_and_turns_ready(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess
) -> None:
    cluster.apply(
        service_step(
            "validate", namespace, image=IMAGE, port=9000, path="/v1/validate",
            resources={"requests": {"cpu": "200m"}},
            scaling={"minReplicas": 2, "maxReplicas": 4, "targetCPUUtilizationPercentage": 70,
                     "behavior": BEHAVIOR},
        )
    )  # fmt: skip

    wait_ready(cluster, "servicestep", "validate", namespace)
    step = wait_until(
        lambda: (
            (s := get(cluster, "servicestep", "validate", namespace))
            and s["status"].get("readyReplicas") == 2
            and s
        ),
        what="both replicas ready",
    )
    status = step["status"]
    assert status["observedGeneration"] == step["metadata"]["generation"] == 1
    assert (status["replicas"], status["readyReplicas"], status["desiredReplicas"]) == (2, 2, 2)
    assert status["endpoint"] == f"http://validate.{namespace}.svc:9000/v1/validate"
    assert condition(step, "Ready")["reason"] == "Available"
    assert condition(step, "Progressing")["status"] == "False"
    assert condition(step, "Degraded")["status"] == "False", condition(step, "Degraded")
    assert len(running_pods(cluster, namespace, "validate")) == 2

    owned = owned_objects(cluster, namespace, "validate")
    assert [len(objs) for objs in owned.values()] == [1, 1, 1]
    owner = {
        "apiVersion": "stepline.io/v1alpha1", "kind": "ServiceStep", "name": "validate",
        "uid": step["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True,
    }  # fmt: skip
    for (obj,) in owned.values():
        assert obj["metadata"]["name"] == "validate"
        assert obj["metadata"]["ownerReferences"] == [owner]
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "stepline"

    (deployment,) = owned["deployment"]
    assert deployment["spec"]["selector"] == {"matchLabels": {STEP_LABEL: "validate"}}
    container = container_of(deployment)
    assert container["image"] == IMAGE
    assert container["ports"] == [{"name": "http", "containerPort": 9000, "protocol": "TCP"}]
    assert container["resources"]["requests"] == {"cpu": "200m", "memory": "64Mi"}
    probe = container["readinessProbe"]["httpGet"]
    assert (probe["path"], probe["port"]) == ("/healthz", "http")
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    pod_spec = deployment["spec"]["template"]["spec"]
    assert pod_spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}

    (service,) = owned["service"]
    assert service["spec"]["selector"] == {STEP_LABEL: "validate"}
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(9000, "http")]

    (hpa,) = owned["horizontalpodautoscaler"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "validate"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 4)
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    assert hpa["spec"]["behavior"]["scaleUp"]["policies"] == BEHAVIOR["scaleUp"]["policies"]
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 120
    assert hpa["spec"]["behavior"]["scaleDown"]["selectPolicy"] == "Min"

    applied = wait_event(cluster, namespace, "ServiceStep", "validate", reason="Applied")
    assert applied["type"] == "Normal"
    assert "Deployment, Service and HorizontalPodAutoscaler" in applied["message"]


def test_a_new_image_rolls_the_deployment_and_new_bounds_update_the_autoscaler(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess
) -> None:
    cluster.apply(service_step("order", namespace, image=IMAGE))
    first = wait_ready(cluster, "servicestep", "order", namespace)
    ready_since = condition(first, "Ready")["lastTransitionTime"]

    merge_patch(cluster, "servicestep", "order", namespace, {"spec": {"image": "order:2"}})
    wait_until(
        lambda: (
            container_of(get(cluster, "deployment", "order", namespace) or {})["image"] == "order:2"
        ),
        what="the Deployment running order:2",
    )
    second = wait_ready(cluster, "servicestep", "order", namespace)
    assert second["status"]["observedGeneration"] == 2

    scaling = {"minReplicas": 2, "maxReplicas": 6, "targetCPUUtilizationPercentage": 50}
    merge_patch(cluster, "servicestep", "order", namespace, {"spec": {"scaling": scaling}})

    def bounds() -> tuple[int, int, int] | None:
        spec = (get(cluster, "hpa", "order", namespace) or {}).get("spec", {})
        found = (
            spec.get("minReplicas"),
            spec.get("maxReplicas"),
            spec["metrics"][0]["resource"]["target"]["averageUtilization"],
        )
        return found if found == (2, 6, 50) else None

    wait_until(bounds, what="the HPA with bounds 2..6 at 50% CPU")
    third = wait_until(
        lambda: (
            (s := get(cluster, "servicestep", "order", namespace))
            and (s["status"].get("observedGeneration"), s["status"].get("readyReplicas")) == (3, 2)
            and s
        ),
        what="generation 3 reconciled with 2 ready replicas",
    )
    # The step never stopped serving, so its Ready condition never flipped.
    assert condition(third, "Ready")["lastTransitionTime"] == ready_since


def test_a_deployment_deleted_or_edited_by_hand_is_put_back(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess
) -> None:
    cluster.apply(service_step("fraud", namespace, image=IMAGE))
    wait_ready(cluster, "servicestep", "fraud", namespace)
    original = get(cluster, "deployment", "fraud", namespace)
    assert original is not None

    cluster.kubectl("delete", "deployment", "fraud", "-n", namespace)
    recreated = wait_until(
        lambda: (
            (d := get(cluster, "deployment", "fraud", namespace))
            and d["metadata"]["uid"] != original["metadata"]["uid"]
            and d
        ),
        what="a new Deployment fraud",
    )
    assert container_of(recreated)["image"] == IMAGE
    wait_ready(cluster, "servicestep", "fraud", namespace)

    cluster.kubectl("set", "image", "deployment/fraud", "step=attacker/miner:1", "-n", namespace)
    wait_until(
        lambda: (
            (d := get(cluster, "deployment", "fraud", namespace))
            and container_of(d)["image"] == IMAGE
            and d["metadata"]["generation"] > recreated["metadata"]["generation"] + 1
        ),
        what="the Deployment's image put back",
    )
    corrected = wait_event(cluster, namespace, "ServiceStep", "fraud", reason="Corrected")
    assert "Deployment fraud" in corrected["message"]
    wait_ready(cluster, "servicestep", "fraud", namespace)

    # A Service has no generation: an edit of it is noticed all the same.
    selector = {"spec": {"selector": {STEP_LABEL: "someone-else"}}}
    merge_patch(cluster, "service", "fraud", namespace, selector)
    wait_until(
        lambda: (
            (get(cluster, "service", "fraud", namespace) or {}).get("spec", {}).get("selector")
            == {STEP_LABEL: "fraud"}
        ),
        what="the Service's selector put back",
    )


def test_an_hpa_whose_step_label_is_removed_by_hand_gets_it_back(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess
) -> None:
    # Without the label the object leaves the operator's watch (a deletion, to the watch).
    cluster.apply(service_step("ledger", namespace, image=IMAGE))
    wait_ready(cluster, "servicestep", "ledger", namespace)

    cluster.kubectl("label", "hpa", "ledger", f"{STEP_LABEL}-", "-n", namespace)
    wait_until(
        lambda: (
            (get(cluster, "hpa", "ledger", namespace) or {})
            .get("metadata", {})
            .get("labels", {})
            .get(STEP_LABEL)
            == "ledger"
        ),
        what="the HPA's step label put back",
    )
    corrected = wait_event(cluster, namespace, "ServiceStep", "ledger", reason="Corrected")
    assert "HorizontalPodAutoscaler ledger" in corrected["message"]
    wait_ready(cluster, "servicestep", "ledger", namespace)


def test_the_replica_count_the_autoscaler_sets_is_not_fought_over(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess
) -> None:
    cluster.apply(service_step("quote", namespace, image=IMAGE))
    wait_ready(cluster, "servicestep", "quote", namespace)

    # The HPA controller raises the Deployment to the new minimum through the scale subresource.
    merge_patch(
        cluster, "servicestep", "quote", namespace, {"spec": {"scaling": {"minReplicas": 3}}}
    )

    def three_ready() -> dict[str, Any] | None:
        step = get(cluster, "servicestep", "quote", namespace) or {}
        status = step.get("status", {})
        return (
            step if (status.get("readyReplicas"), status.get("desiredReplicas")) == (3, 3) else None
        )

    wait_until(three_ready, what="3 ready replicas reported on the step")
    # A reconcile after the HPA's change (a new image) keeps the HPA's count.
    merge_patch(cluster, "servicestep", "quote", namespace, {"spec": {"image": "quote:2"}})
    wait_until(
        lambda: (
            (s := get(cluster, "servicestep", "quote", namespace))
            and s["status"].get("observedGeneration") == 3
        ),
        what="generation 3 reconciled",
    )
    deployment = cluster.get_json("deployment", "quote", "-n", namespace, "--show-managed-fields")
    assert container_of(deployment)["image"] == "quote:2"
    assert deployment["spec"]["replicas"] == 3
    managers = deployment["metadata"]["managedFields"]
    ours = [m for m in managers if m["manager"] == "stepline"]
    assert [m["operation"] for m in ours] == ["Apply"]
    # Nobody's apply owns it; the HPA controller writes it through the scale subresource (which
    # this Kubernetes does not record in managedFields), and our applies leave it alone.
    assert "f:replicas" not in ours[0]["fieldsV1"]["f:spec"]
    wait_until(three_ready, what="the step settled at 3 ready replicas after the rollout")
    # Scaling is the HPA's job, not a drift to report or correct.
    reasons = [e["reason"] for e in events_about(cluster, namespace, "ServiceStep", "quote")]
    assert "Applied" in reasons
    assert "Corrected" not in reasons


def test_deleting_a_service_step_garbage_collects_everything_it_owned(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess
) -> None:
    cluster.apply(service_step("ledger", namespace, image=IMAGE))
    wait_ready(cluster, "servicestep", "ledger", namespace)

    cluster.kubectl("delete", "servicestep", "ledger", "-n", namespace, "--wait=true")

    def all_gone() -> bool:
        owned = owned_objects(cluster, namespace, "ledger")
        replicasets = items(cluster, "replicasets", namespace, f"-l={STEP_LABEL}=ledger")
        return not any(owned.values()) and not replicasets

    wait_until(all_gone, what="the Deployment, Service, HPA and ReplicaSet collected")
    assert is_alive(operator)


def test_a_restarted_operator_duplicates_nothing_and_keeps_the_status(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess, tmp_path: Path
) -> None:
    cluster.apply(service_step("validate", namespace, image=IMAGE))
    cluster.apply(
        workflow("trade", namespace, [{"name": "validate", "stepRef": "validate"},
                                      {"name": "order", "stepRef": "order"},
                                      {"name": "settle", "stepRef": "settle"}])
    )  # fmt: skip
    settled = wait_ready(cluster, "servicestep", "validate", namespace)
    before = uids(owned_objects(cluster, namespace, "validate"))
    deployment = get(cluster, "deployment", "validate", namespace)
    assert deployment is not None

    # Mid-way: two more steps arrive and the operator is killed while it deploys them.
    cluster.apply([service_step("order", namespace, image=IMAGE),
                   service_step("settle", namespace, image=IMAGE)])  # fmt: skip
    wait_until(lambda: get(cluster, "deployment", "order", namespace), what="order's Deployment")
    operator.kill()
    restarted = OperatorProcess(cluster, (namespace,), tmp_path / "restarted.log").start()
    try:
        for name in ("validate", "order", "settle"):
            wait_ready(cluster, "servicestep", name, namespace)
        flow = wait_ready(cluster, "workflow", "trade", namespace)
        assert flow["status"]["stepsReady"] == "3/3"

        for name in ("validate", "order", "settle"):
            found = owned_objects(cluster, namespace, name)
            assert [len(objs) for objs in found.values()] == [1, 1, 1], (name, uids(found))
            replicasets = items(cluster, "replicasets", namespace, f"-l={STEP_LABEL}={name}")
            assert len(replicasets) == 1, f"{name}: the pod template changed on restart"
        assert uids(owned_objects(cluster, namespace, "validate")) == before
        after = get(cluster, "deployment", "validate", namespace)
        assert after is not None
        assert after["metadata"]["generation"] == deployment["metadata"]["generation"]
        survivor = get(cluster, "servicestep", "validate", namespace)
        assert condition(survivor, "Ready") == condition(settled, "Ready")
        assert is_alive(restarted)
    finally:
        restarted.stop()


def test_a_new_operator_applies_nothing_unchanged_but_puts_back_an_edit_made_while_it_was_away(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess, tmp_path: Path
) -> None:
    for name in ("kept", "edited"):
        cluster.apply(service_step(name, namespace, image=IMAGE))
    for name in ("kept", "edited"):
        wait_ready(cluster, "servicestep", name, namespace)
    operator.stop()
    cluster.kubectl("set", "image", "deployment/edited", "step=attacker/miner:1", "-n", namespace)
    restarted = OperatorProcess(cluster, (namespace,), tmp_path / "restarted.log").start()
    try:
        wait_until(
            lambda: (
                container_of(get(cluster, "deployment", "edited", namespace) or {})["image"]
                == IMAGE
            ),
            what="the edit made while the operator was away put back",
        )
        wait_until(
            lambda: counted(restarted, "stepline_reconciliations_total", 'kind="ServiceStep"') >= 2,
            what="both steps reconciled by the new operator",
        )
        # Of the six objects, only the edited Deployment was applied again: the others carry
        # the annotation of the manifest they were given, and no one else set their spec.
        applies = {
            resource: counted(
                restarted, "stepline_api_requests_total", f'resource="{resource}",verb="PATCH"'
            )
            for resource in ("deployments", "services", "horizontalpodautoscalers")
        }
        assert applies == {"deployments": 1, "services": 0, "horizontalpodautoscalers": 0}
        wait_ready(cluster, "servicestep", "edited", namespace)
        assert is_alive(restarted)
    finally:
        restarted.stop()


def counted(operator: OperatorProcess, metric: str, labels: str) -> float:
    """The sum of the operator's samples of `metric` whose labels include `labels` (as the
    exposition writes them, in its label order)."""
    url = f"{operator.metrics_url}/metrics"
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 (http:// on loopback)
        text = answer.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(metric + "{") and labels in line
    )


def test_an_operator_started_on_more_steps_than_its_worker_limit_deploys_them_all(
    cluster: LocalCluster, crds: None, namespace: str, tmp_path: Path
) -> None:
    # kopf waits, in each object's worker, for every object to be indexed; with fewer workers
    # than objects at start-up that never happens (kopf#1243). The operator must not hang.
    names = [f"step-{index}" for index in range(5)]
    cluster.apply([service_step(name, namespace, image=IMAGE) for name in names])
    started = OperatorProcess(
        cluster, (namespace,), tmp_path / "operator.log", extra_env={"STEPLINE_WORKER_LIMIT": "2"}
    ).start()
    try:
        for name in names:
            wait_ready(cluster, "servicestep", name, namespace)
    finally:
        started.stop()


def test_a_step_the_api_refuses_is_degraded_with_its_message_and_the_others_still_deploy(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess
) -> None:
    quota = {
        "apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": {"name": "one-deployment", "namespace": namespace},
        "spec": {"hard": {"count/deployments.apps": "1"}},
    }  # fmt: skip
    cluster.apply(quota)
    wait_until(
        lambda: (
            (get(cluster, "resourcequota", "one-deployment", namespace) or {})
            .get("status", {})
            .get("hard")
        ),
        what="the quota counted",
    )
    cluster.apply(service_step("validate", namespace, image=IMAGE))
    wait_ready(cluster, "servicestep", "validate", namespace)

    cluster.apply(service_step("order", namespace, image=IMAGE))
    degraded = wait_condition(
        cluster, "servicestep", "order", namespace,
        condition_type="Degraded", status="True", reason="ReconcileFailed",
    )  # fmt: skip
    assert "exceeded quota: one-deployment" in degraded["message"]
    assert "deployments.apps" in degraded["message"]
    refused = get(cluster, "servicestep", "order", namespace)
    assert condition(refused, "Ready")["status"] == "False"
    assert condition(refused, "Ready")["reason"] == "ReconcileFailed"
    event = wait_event(cluster, namespace, "ServiceStep", "order", reason="ApplyFailed")
    assert event["type"] == "Warning"
    assert "exceeded quota" in event["message"]

    # The operator keeps serving the other step: a new image is rolled out.
    merge_patch(cluster, "servicestep", "validate", namespace, {"spec": {"image": "v:2"}})
    wait_until(
        lambda: (
            container_of(get(cluster, "deployment", "validate", namespace) or {})["image"] == "v:2"
        ),
        what="validate's new image rolled out",
    )
    assert (
        wait_ready(cluster, "servicestep", "validate", namespace)["status"]["observedGeneration"]
        == 2
    )
    assert is_alive(operator)

    # Once the quota is lifted the refused step is deployed without being touched.
    cluster.kubectl("delete", "resourcequota", "one-deployment", "-n", namespace)
    healed = wait_ready(cluster, "servicestep", "order", namespace, timeout=REFUSED_RETRY_TIMEOUT)
    assert condition(healed, "Degraded")["status"] == "False"


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_an_external_step_is_ready_while_its_url_answers_and_not_after_it_stops(
    cluster: LocalCluster,
    namespace: str,
    operator: OperatorProcess,
    health_server: ThreadingHTTPServer,
) -> None:
    url = f"http://127.0.0.1:{health_server.server_address[1]}/score"
    cluster.apply(service_step("risk", namespace, url=url))

    step = wait_ready(cluster, "servicestep", "risk", namespace)
    assert condition(step, "Ready")["reason"] == "ExternalService"
    assert condition(step, "Ready")["message"] == f"GET {url} answered 200"
    assert step["status"]["endpoint"] == url
    assert not any(owned_objects(cluster, namespace, "risk").values())

    health_server.shutdown()
    health_server.server_close()
    down = wait_condition(
        cluster, "servicestep", "risk", namespace,
        status="False", reason="ExternalService", timeout=EXTERNAL_CHECK_TIMEOUT,
    )  # fmt: skip
    assert down["message"].startswith(f"the health check failed: GET {url}")
    assert "Connect" in down["message"], down["message"]
    stopped = get(cluster, "servicestep", "risk", namespace)
    assert condition(stopped, "Degraded")["status"] == "True"

    # Nothing of the operator's blocks deleting the step while the operator is down.
    assert not (stopped or {})["metadata"].get("finalizers")
    operator.stop()
    cluster.kubectl("delete", "servicestep", "risk", "-n", namespace, "--timeout=30s")
