"""The user's path on real pods, in order: `helm install` with default values but for HA (two
operator replicas, one leader on a Lease, both serving invoke) into a namespace enforcing the
Pod Security `restricted` profile; the finance, manufacturing and city examples applied
and their steps running as real pods; a WorkflowRun made with `kubectl create -f` and an invoke
through the operator's Service, with the token of a ServiceAccount bound to the chart's invoker
ClusterRole (401 without one, 403 unbound), answering what the example services' own code says
they must;
the HPAs reading real CPU and one scaling a CPU-heavy step 1 → 3+ → 1 under load, its calls
spread over the new replicas; with Prometheus and the chart's prometheus-adapter, a step that
waits (no CPU) scaling 1 → 3 → 1 on the calls the operator has in flight; `helm upgrade`
and `helm uninstall` leaving no Stepline workload behind.

The tests share one release and run in file order; each one's failure message says what broke.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e import expected, metricsstack, scaling
from tests.e2e.realpods import (
    CHART,
    EXAMPLES,
    OPERATOR_SELECTOR,
    SYSTEM,
    Manifest,
    apply_file,
    exec_python,
    pod_ready,
    pods,
    port_forward,
    restricted_namespace,
    step_selector,
    wait_pods_ready,
    wait_run_finished,
    wait_step_ready,
)
from tests.integration.localcluster import LocalCluster, wait_until
from tests.integration.stepobjects import wait_ready
from tests.integration.stepservices import post_invoke

RELEASE = "stepline"
OPERATOR_IMAGE = "stepline/operator:0.1.0"
SERVICE_ACCOUNT = "stepline"
HELM_WAIT = ("--wait", "--timeout", "240s")
# Two replicas: the same path as one, with a leader writing and both serving invoke.
HA = ("--set", "ha.enabled=true", "--set", "ha.replicas=2")
REPLICAS = 2
EXAMPLE_ORACLES = {
    "finance": expected.trade,
    "manufacturing": expected.production_shift,
    "city": expected.city_report,
}
ELASTIC = "elastic"
NAMESPACES = (SYSTEM, *EXAMPLE_ORACLES, ELASTIC, metricsstack.MONITORING)


@pytest.fixture(scope="module")
def release(kind: LocalCluster) -> Iterator[LocalCluster]:
    for namespace in NAMESPACES:
        restricted_namespace(kind, namespace)
    try:
        # Not --wait: the first test waits for the operator and says at once if it crashes.
        kind.helm("install", RELEASE, str(CHART), "--namespace", SYSTEM, *HA)
        yield kind
    finally:
        kind.helm("uninstall", RELEASE, "--namespace", SYSTEM, "--wait", check=False)
        for namespace in NAMESPACES:  # waited for: plain manifests reuse stepline-system
            kind.kubectl("delete", "namespace", namespace, "--ignore-not-found", timeout=180)


def example_steps(example: str) -> list[Manifest]:
    documents = yaml.safe_load_all((EXAMPLES / example / "servicesteps.yaml").read_text())
    return [doc for doc in documents if doc]


def example_input(example: str) -> Any:
    (run,) = yaml.safe_load_all((EXAMPLES / example / "workflowrun.yaml").read_text())
    return run["spec"]["input"]


def assert_restricted(pod: Manifest) -> None:
    """Every container runs as the restricted profile and Stepline promise: non-root, read-only
    root filesystem, no privilege escalation, no capabilities, the runtime's seccomp profile."""
    pod_context = pod["spec"].get("securityContext") or {}
    for container in pod["spec"]["containers"]:
        context = {**pod_context, **(container.get("securityContext") or {})}
        name = f"{pod['metadata']['name']}/{container['name']}"
        assert context.get("runAsNonRoot") is True, name
        assert context.get("readOnlyRootFilesystem") is True, name
        assert context.get("allowPrivilegeEscalation") is False, name
        assert context.get("capabilities", {}).get("drop") == ["ALL"], name
        assert context.get("seccompProfile", {}).get("type") == "RuntimeDefault", name


def assert_really_running(cluster: LocalCluster, pod: Manifest) -> None:
    """The pod is a real container (containerd made it; kwok's simulated pods have no container
    id), has not restarted, runs as a non-root user and cannot write its root filesystem."""
    name, namespace = pod["metadata"]["name"], pod["metadata"]["namespace"]
    (status,) = pod["status"]["containerStatuses"]
    assert status["containerID"].startswith("containerd://"), status
    assert status["ready"] is True, status
    assert status["restartCount"] == 0, status
    probe = exec_python(
        cluster, namespace, name,
        "import os\nprint(os.getuid())\ntry:\n open('/probe', 'w')\n"
        "except OSError as e:\n print(e.strerror)",
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    uid, write = probe.stdout.strip().splitlines()
    assert uid != "0", f"{name} runs as root"
    assert write == "Read-only file system", f"{name} could write /: {write}"


def test_the_operators_run_ready_under_the_charts_service_account_one_leading(
    release: LocalCluster,
) -> None:
    found = wait_pods_ready(release, SYSTEM, OPERATOR_SELECTOR, count=REPLICAS)
    for pod in found:
        assert pod["spec"]["serviceAccountName"] == SERVICE_ACCOUNT
        assert [c["image"] for c in pod["spec"]["containers"]] == [OPERATOR_IMAGE]
        assert_restricted(pod)
        assert_really_running(release, pod)

    def holder() -> str | None:
        lease = release.get_json("lease", RELEASE, "-n", SYSTEM)
        return (lease.get("spec") or {}).get("holderIdentity")

    leader = wait_until(holder, timeout=60, what="a replica to hold the Lease")
    assert leader.rsplit("_", 1)[0] in {pod["metadata"]["name"] for pod in found}


def test_the_example_steps_run_as_real_pods_ready_through_their_probes(
    release: LocalCluster,
) -> None:
    for example in EXAMPLE_ORACLES:
        apply_file(release, f"{example}/servicesteps.yaml", example)
        apply_file(release, f"{example}/workflow.yaml", example)
    for example in EXAMPLE_ORACLES:
        for step in example_steps(example):
            name, spec = step["metadata"]["name"], step["spec"]
            wait_step_ready(release, name, example)
            replicas = spec.get("scaling", {}).get("minReplicas", 1)
            found = wait_pods_ready(release, example, step_selector(name), count=replicas)
            for pod in found:
                (container,) = pod["spec"]["containers"]
                assert container["image"] == spec["image"]
                assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
                assert_restricted(pod)
            assert_really_running(release, found[0])
        (workflow,) = yaml.safe_load_all((EXAMPLES / example / "workflow.yaml").read_text())
        wait_ready(release, "workflow", workflow["metadata"]["name"], example)


def test_a_workflowrun_created_with_kubectl_succeeds_with_the_right_output(
    release: LocalCluster,
) -> None:
    for example in EXAMPLE_ORACLES:
        release.kubectl("create", "-n", example, "-f", str(EXAMPLES / example / "workflowrun.yaml"))
    for example, oracle in EXAMPLE_ORACLES.items():
        (name,) = (
            doc["metadata"]["name"]
            for doc in yaml.safe_load_all((EXAMPLES / example / "workflowrun.yaml").read_text())
        )
        run = wait_run_finished(release, name, example)
        status = run["status"]
        assert status["phase"] == "Succeeded", json.dumps(status, indent=1)
        output = status["output"]
        if example == "finance":
            output = expected.without_run_ids(output)
        assert output == oracle(example_input(example))


def invoker_token(cluster: LocalCluster, namespace: str, account: str = "caller") -> str:
    """A token of ServiceAccount `account`, bound in `namespace` to the chart's ClusterRole
    <release>-invoker: the README's steps."""
    cluster.kubectl("create", "serviceaccount", account, "-n", namespace)
    cluster.kubectl(
        "create", "rolebinding", f"{account}-invokes", "-n", namespace,
        f"--clusterrole={RELEASE}-invoker", f"--serviceaccount={namespace}:{account}",
    )  # fmt: skip
    return cluster.kubectl("create", "token", account, "-n", namespace).stdout.strip()


def test_an_invoke_through_the_operators_service_answers_with_the_output(
    release: LocalCluster,
) -> None:
    run_input = example_input("finance")
    token = invoker_token(release, "finance")
    release.kubectl("create", "serviceaccount", "stranger", "-n", "finance")
    stranger = release.kubectl("create", "token", "stranger", "-n", "finance").stdout.strip()
    body = json.dumps(run_input).encode()
    with port_forward(release, SYSTEM, f"svc/{RELEASE}", 8080) as base_url:
        status, answer = post_invoke(base_url, "finance", "trade", body, token=token)
        refused_status, refused = post_invoke(
            base_url, "finance", "trade", b'{"user": {}, "order": {}}', token=token
        )
        anonymous, _ = post_invoke(base_url, "finance", "trade", body, token=None)
        unbound, _ = post_invoke(base_url, "finance", "trade", body, token=stranger)
    assert (anonymous, unbound) == (401, 403)
    assert status == 200, answer
    assert expected.without_run_ids(answer["output"]) == expected.trade(run_input)
    # The user-validation pod itself refused the input (its code answers 400 without user.id),
    # called at its own address (the operator balances over the step's ready replicas).
    assert refused_status == 502, refused
    error = refused["error"]
    assert (error["step"], error["httpStatus"]) == ("validation", 400), error
    pod_addresses = {
        f"http://{pod['status']['podIP']}:8080/validate"
        for pod in pods(release, "finance", step_selector("user-validation"))
    }
    called = error["message"].split("POST ", 1)[1].split(" ", 1)[0]
    assert called in pod_addresses, (error, pod_addresses)


def test_the_hpas_read_a_real_cpu_value(release: LocalCluster) -> None:
    def cpu_known(example: str) -> list[int] | None:
        hpas = release.get_json("hpa", "-n", example)["items"]
        values = [
            metric["resource"]["current"].get("averageUtilization")
            for hpa in hpas
            for metric in (hpa.get("status") or {}).get("currentMetrics") or []
            if metric.get("type") == "Resource"
        ]
        steps = len(example_steps(example))
        known = [v for v in values if isinstance(v, int)]
        return known if len(hpas) == steps and len(known) == steps else None

    for example in EXAMPLE_ORACLES:
        wait_until(
            lambda example=example: cpu_known(example),  # type: ignore[misc]
            timeout=180, interval=5, what=f"every HPA in {example} reading CPU",
        )  # fmt: skip


@pytest.mark.timeout(720)
def test_a_cpu_heavy_step_scales_to_three_replicas_under_load_and_back_to_one(
    release: LocalCluster,
) -> None:
    timeline = scale_under_load(release, scaling.CPU_HEAVY, "elastic-timeline.md")
    report = assert_scaled_up_and_back(timeline)
    # The operator sends calls to the replicas, not to the Service's kept-alive connections:
    # every replica serves its part while the load is held.
    assert len(timeline.calls_in_hold) >= 3, report
    assert all(share >= 0.1 for share in timeline.shares_in_hold().values()), report


def assert_scaled_up_and_back(timeline: scaling.Timeline) -> str:
    """The step reached its replicas under load and went back to one, with ≥ 95 % of the
    invokes answered 200; returns the timeline's report."""
    report = timeline.markdown()
    assert timeline.reached is not None, report
    assert timeline.back_to_one is not None, report
    total = sum(timeline.answers.values())
    assert timeline.answers.get("200", 0) >= 0.95 * total, report
    return report


def scale_under_load(
    cluster: LocalCluster, scenario: scaling.Scenario, report_name: str
) -> scaling.Timeline:
    """Deploys the scenario's step, waits for its HPA's first figure, then loads it until 3
    replicas are Ready and watches it back to 1; the timeline goes to the suite's reports."""
    cluster.apply(scaling.manifests(ELASTIC, scenario))
    wait_step_ready(cluster, scenario.step, ELASTIC)
    wait_ready(cluster, "workflow", scenario.workflow, ELASTIC)
    wait_pods_ready(cluster, ELASTIC, step_selector(scenario.step), count=1)
    wait_until(  # a first figure, so that the HPA starts from a known value
        lambda: scaling.sample(cluster, ELASTIC, 0, scenario).metric is not None,
        timeout=120, interval=5, what=f"the {scenario.step} HPA reading its metric",
    )  # fmt: skip
    token = invoker_token(cluster, ELASTIC, account=f"load-{scenario.step}")
    with port_forward(cluster, SYSTEM, f"svc/{RELEASE}", 8080) as base_url:
        timeline = scaling.watch_scaling(
            cluster, ELASTIC, base_url, scenario=scenario, token=token, wanted=3
        )
    report = timeline.markdown()
    reports = Path(os.environ.get("STEPLINE_E2E_REPORTS") or tempfile.gettempdir())
    (reports / report_name).write_text(report + "\n")  # for bench/elastic/RESULTS.md
    print(report)
    return timeline


@pytest.mark.timeout(720)
def test_a_waiting_step_scales_on_its_calls_in_flight_through_prometheus_adapter(
    release: LocalCluster,
) -> None:
    metricsstack.install_prometheus(release, RELEASE)
    release.helm(
        "upgrade", RELEASE, str(CHART), "--namespace", SYSTEM, "--reuse-values",
        *metricsstack.adapter_values(), *HELM_WAIT,
    )  # fmt: skip
    metricsstack.wait_external_metrics_served(release)
    timeline = scale_under_load(release, scaling.IN_FLIGHT, "elastic-inflight-timeline.md")
    assert_scaled_up_and_back(timeline)
    # Scaled on calls in flight, not CPU: the step waits, so its CPU stays low throughout.
    hpa = release.get_json("hpa", scaling.IN_FLIGHT.step, "-n", ELASTIC)
    assert [m["type"] for m in hpa["spec"]["metrics"]] == ["External"], hpa["spec"]
    step = release.get_json("servicestep", scaling.IN_FLIGHT.step, "-n", ELASTIC)
    assert step["status"]["scaling"]["reason"] == "NotPredictive", step["status"]


def test_helm_upgrade_rolls_the_operator_with_the_changed_value(release: LocalCluster) -> None:
    before = {pod["metadata"]["name"] for pod in pods(release, SYSTEM, OPERATOR_SELECTOR)}
    release.helm(
        "upgrade", RELEASE, str(CHART), "--namespace", SYSTEM, "--reuse-values",
        "--set", "operator.workerLimit=8", *HELM_WAIT,
    )  # fmt: skip
    after = wait_pods_ready(release, SYSTEM, OPERATOR_SELECTOR, count=REPLICAS)
    assert not before & {pod["metadata"]["name"] for pod in after}
    for pod in after:
        (container,) = pod["spec"]["containers"]
        assert {"name": "STEPLINE_WORKER_LIMIT", "value": "8"} in container["env"]
    # The new operator runs workflows as the old one did.
    (run,) = yaml.safe_load_all((EXAMPLES / "finance" / "workflowrun.yaml").read_text())
    run["metadata"] = {"name": "trade-after-upgrade", "namespace": "finance"}
    release.kubectl("create", "-f", "-", stdin=json.dumps(run))
    finished = wait_run_finished(release, "trade-after-upgrade", "finance")
    assert finished["status"]["phase"] == "Succeeded", finished["status"]


def stepline_workload(cluster: LocalCluster, selector: str) -> list[str]:
    kinds = "deployments,replicasets,pods,services,horizontalpodautoscalers"
    found = cluster.get_json(kinds, "-A", "-l", selector)["items"]
    return [f"{o['kind']} {o['metadata']['namespace']}/{o['metadata']['name']}" for o in found]


def test_helm_uninstall_leaves_no_stepline_workload(release: LocalCluster) -> None:
    for example in EXAMPLE_ORACLES:
        release.kubectl("delete", "-n", example, "-f", str(EXAMPLES / example), "--wait",
                        "--ignore-not-found", timeout=120)  # fmt: skip
    release.kubectl("delete", "servicestep,workflow", "--all", "-n", ELASTIC, "--wait",
                    timeout=120)  # fmt: skip
    release.kubectl("delete", "-n", metricsstack.MONITORING, "deployment,service,configmap",
                    "-l", f"app.kubernetes.io/name={metricsstack.PROMETHEUS}", "--wait",
                    timeout=120)  # fmt: skip
    wait_until(
        lambda: not stepline_workload(release, "app.kubernetes.io/managed-by=stepline"),
        timeout=120, interval=2, what="the steps' workloads garbage-collected",
    )  # fmt: skip
    release.helm("uninstall", RELEASE, "--namespace", SYSTEM, "--wait")
    chart_objects = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/managed-by=Helm"
    wait_until(
        lambda: not stepline_workload(release, chart_objects)
        and not [p for p in pods(release, SYSTEM, OPERATOR_SELECTOR) if pod_ready(p)],
        timeout=120, interval=2, what="the operator's workload gone",
    )  # fmt: skip
    rbac = release.get_json("clusterroles,clusterrolebindings", "-l", chart_objects)["items"]
    assert rbac == []
    for crd in ("servicesteps", "workflows", "workflowruns"):  # kept, as the chart documents
        release.kubectl("get", "crd", f"{crd}.stepline.io")
