"""The Helm chart against the real control plane: it installs into a namespace that enforces the
Pod Security `restricted` profile and the operator Deployment becomes Available (kwok runs the
pod); the operator, run as a process under the chart's ServiceAccount token (TokenRequest API),
reconciles a ServiceStep, runs a Workflow, and reviews invoke callers' tokens (an account bound
to the chart's invoker ClusterRole may invoke, another may not) with no request denied; what it
does not need (reading Secrets) is denied; upgrade works and uninstall leaves the CRDs. A second
release in cluster-wide mode proves the ClusterRole the same way.

One release (namespaced mode, watching one namespace) serves most of the module; its tests run in
file order and the upgrade test uninstalls it. While the operator process runs under the chart's
token, the chart's own Deployment is scaled to zero, so on kind (where that pod is a real
operator) only one operator reconciles.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.localcluster import REPO, LocalCluster, wait_until
from tests.integration.operatorprocess import OperatorProcess
from tests.integration.stepobjects import get, owned_objects, service_step, wait_ready
from tests.integration.stepservices import (
    StepBed,
    ThreadedStepServer,
    apply_workflow,
    post_invoke,
    start_run,
    wait_finished,
    wait_ready_step,
)

pytestmark = pytest.mark.integration

CHART = REPO / "charts" / "stepline"
RELEASE = "stepline"
SERVICE_ACCOUNT = "stepline"  # the chart's full name for a release named "stepline"
AVAILABLE_TIMEOUT = 90.0


@dataclass(frozen=True)
class Release:
    cluster: LocalCluster
    namespace: str  # where the operator runs (restricted Pod Security)
    watched: str  # the namespace it watches (namespaced mode: a Role there)


@pytest.fixture(scope="module")
def release(cluster: LocalCluster) -> Iterator[Release]:
    suffix = uuid.uuid4().hex[:6]
    installed = Release(cluster, f"t-chart-system-{suffix}", f"t-chart-work-{suffix}")
    for name in (installed.namespace, installed.watched):
        cluster.kubectl("create", "namespace", name)
    cluster.kubectl(
        "label", "namespace", installed.namespace,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )  # fmt: skip
    try:
        cluster.helm(
            "install", RELEASE, str(CHART), "--namespace", installed.namespace,
            "--set", f"watchNamespaces={{{installed.watched}}}", "--wait", "--timeout", "90s",
        )  # fmt: skip
        yield installed
    finally:
        cluster.helm("uninstall", RELEASE, "--namespace", installed.namespace, check=False)
        for name in (installed.namespace, installed.watched):
            cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def deployment_available(release: Release) -> dict[str, object] | None:
    found = get(release.cluster, "deployment", RELEASE, release.namespace)
    conditions = ((found or {}).get("status") or {}).get("conditions") or []
    available = any(c["type"] == "Available" and c["status"] == "True" for c in conditions)
    return found if available else None


def is_denial(line: str) -> bool:
    """An operator log line about a request RBAC refused. A 403 for an Event in a namespace
    being deleted (another test's, seen by the cluster-wide operator) is the namespace
    lifecycle's refusal, not RBAC's."""
    refused = "403" in line or "Forbidden" in line
    return refused and "because it is being terminated" not in line


def service_account_kubeconfig(release: Release, path: Path) -> Path:
    """A kubeconfig with the cluster's server and CA and a TokenRequest token of the chart's
    ServiceAccount: whoever uses it has exactly the chart's RBAC."""
    cluster = release.cluster
    token = cluster.kubectl(
        "create", "token", SERVICE_ACCOUNT, "-n", release.namespace, "--duration=1h"
    ).stdout.strip()
    view = json.loads(cluster.kubectl("config", "view", "--raw", "--minify", "-o", "json").stdout)
    server = view["clusters"][0]["cluster"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": server}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa"}}],
        "current-context": "sa",
    }
    path.write_text(json.dumps(config))
    return path


def test_the_namespace_enforces_restricted_pod_security(release: Release) -> None:
    privileged = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "privileged", "namespace": release.namespace},
        "spec": {
            "containers": [
                {"name": "c", "image": "busybox", "securityContext": {"privileged": True}}
            ]
        },
    }
    out = release.cluster.kubectl(
        "create", "--dry-run=server", "-f", "-", stdin=json.dumps(privileged), check=False
    )
    assert out.returncode != 0
    assert "violates PodSecurity" in out.stderr


def test_the_chart_installs_and_the_operator_deployment_becomes_available(
    release: Release,
) -> None:
    deployment = wait_until(
        lambda: deployment_available(release),
        timeout=AVAILABLE_TIMEOUT,
        what=f"deployment {release.namespace}/{RELEASE} Available",
    )
    pods = release.cluster.get_json(
        "pods", "-n", release.namespace, "-l", "app.kubernetes.io/component=operator"
    )["items"]
    assert [pod["spec"]["serviceAccountName"] for pod in pods] == [SERVICE_ACCOUNT]
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"  # type: ignore[index]


def test_the_service_account_may_not_read_secrets_nor_touch_other_namespaces(
    release: Release,
) -> None:
    who = f"--as=system:serviceaccount:{release.namespace}:{SERVICE_ACCOUNT}"

    def can(*args: str) -> str:
        out = release.cluster.kubectl("auth", "can-i", *args, who, check=False)
        return out.stdout.strip()

    assert can("get", "secrets", "-n", release.watched) == "no"
    assert can("list", "secrets", "-A") == "no"
    assert can("create", "deployments", "-n", "default") == "no"
    assert can("create", "pods", "-n", release.watched) == "no"
    assert can("patch", "deployments.apps", "-n", release.watched) == "yes"
    assert can("patch", "servicesteps.stepline.io/status", "-n", release.watched) == "yes"
    assert can("create", "tokenreviews.authentication.k8s.io") == "yes"
    assert can("create", "subjectaccessreviews.authorization.k8s.io") == "yes"
    assert can("invoke", "workflows.stepline.io", "-n", release.watched) == "no"
    # The leader election: its own Lease in the release's namespace, and no other.
    assert can("update", f"leases.coordination.k8s.io/{RELEASE}", "-n", release.namespace) == "yes"
    assert can("update", "leases.coordination.k8s.io/other", "-n", release.namespace) == "no"
    assert can("update", f"leases.coordination.k8s.io/{RELEASE}", "-n", release.watched) == "no"


def invoker_token(release: Release, account: str, *, bound: bool) -> str:
    """A token of ServiceAccount `account` in the watched namespace, bound there (`bound`) to
    the chart's ClusterRole <release>-invoker, as the README says to grant invoke."""
    cluster, namespace = release.cluster, release.watched
    cluster.kubectl("create", "serviceaccount", account, "-n", namespace)
    if bound:
        cluster.kubectl(
            "create", "rolebinding", f"{account}-invokes", "-n", namespace,
            f"--clusterrole={RELEASE}-invoker", f"--serviceaccount={namespace}:{account}",
        )  # fmt: skip
    return cluster.kubectl("create", "token", account, "-n", namespace).stdout.strip()


def test_the_operator_under_the_service_account_reconciles_and_runs_without_a_denial(
    release: Release, tmp_path: Path
) -> None:
    kubeconfig = service_account_kubeconfig(release, tmp_path / "sa.kubeconfig")
    server = ThreadedStepServer().start()
    overrides = {f"{release.watched}/echo": server.base_url}
    operator = OperatorProcess(
        release.cluster, (release.watched,), tmp_path / "operator.log",
        extra_env={
            "KUBECONFIG": str(kubeconfig),
            "STEPLINE_ENDPOINT_OVERRIDES": json.dumps(overrides),
            # As the chart sets them: the Lease its Role allows, in the release's namespace.
            "STEPLINE_LEASE_NAMESPACE": release.namespace,
            "STEPLINE_LEASE_NAME": RELEASE,
        },
    )  # fmt: skip
    bed = StepBed(release.cluster, release.watched, server, operator)
    # On kind the chart's pod is a real operator: stand it down so only this process (same
    # identity) reconciles; on kwok this changes nothing that matters.
    scale = ("scale", f"deployment/{RELEASE}", "-n", release.namespace)
    release.cluster.kubectl(*scale, "--replicas=0")
    try:
        operator.start()
        release.cluster.apply(
            service_step("echo", release.watched, image="stepline/echo:0.1.0", path="/echo")
        )
        wait_ready_step(bed, "echo")
        owned = owned_objects(release.cluster, release.watched, "echo")
        assert {kind: len(objs) for kind, objs in owned.items()} == {
            "deployment": 1, "service": 1, "horizontalpodautoscaler": 1,
        }  # fmt: skip
        apply_workflow(bed, "greet", [{"name": "echo", "stepRef": "echo"}])
        start_run(bed, "greet-1", "greet", {"hello": "world"})
        run = wait_finished(bed, "greet-1")
        assert run["status"]["phase"] == "Succeeded", operator.log_tail()
        for account, bound, wanted in (("caller", True, 200), ("stranger", False, 403)):
            token = invoker_token(release, account, bound=bound)
            status, answer = post_invoke(
                operator.base_url, release.watched, "greet", b'{"hello": "world"}', token=token
            )
            assert status == wanted, answer
    finally:
        operator.stop()
        server.stop()
        release.cluster.kubectl(*scale, "--replicas=1")
    log = (tmp_path / "operator.log").read_text(errors="replace")
    denials = [line for line in log.splitlines() if is_denial(line)]
    assert denials == [], "\n".join(denials[:20])


def test_upgrade_changes_the_deployment_and_uninstall_keeps_the_crds(release: Release) -> None:
    cluster = release.cluster
    cluster.helm(
        "upgrade", RELEASE, str(CHART), "--namespace", release.namespace, "--reuse-values",
        "--set", "operator.workerLimit=8", "--wait", "--timeout", "90s",
    )  # fmt: skip
    deployment = wait_until(
        lambda: deployment_available(release), timeout=AVAILABLE_TIMEOUT, what="Available again"
    )
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]  # type: ignore[index]
    assert {"name": "STEPLINE_WORKER_LIMIT", "value": "8"} in env
    history = cluster.helm("history", RELEASE, "-n", release.namespace, "-o", "json").stdout
    assert [entry["revision"] for entry in json.loads(history)] == [1, 2]

    cluster.helm("uninstall", RELEASE, "--namespace", release.namespace, "--wait")
    assert get(cluster, "deployment", RELEASE, release.namespace) is None
    for crd in ("servicesteps", "workflows", "workflowruns"):
        assert get(cluster, "crd", f"{crd}.stepline.io", "default") is not None


def test_in_cluster_wide_mode_the_operator_under_the_cluster_role_owns_and_cleans_up_a_step(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:6]
    wide = Release(cluster, f"t-chart-wide-{suffix}", f"t-chart-wide-work-{suffix}")
    name = "stepline-wide"  # its own ClusterRole name beside the module's release
    for namespace in (wide.namespace, wide.watched):
        cluster.kubectl("create", "namespace", namespace)
    try:
        cluster.helm(
            "install", name, str(CHART), "--namespace", wide.namespace,
            "--set", f"serviceAccount.name={SERVICE_ACCOUNT}", "--wait", "--timeout", "90s",
        )  # fmt: skip
        cluster.kubectl("scale", f"deployment/{name}", "-n", wide.namespace, "--replicas=0")
        kubeconfig = service_account_kubeconfig(wide, tmp_path / "sa.kubeconfig")
        operator = OperatorProcess(
            cluster, (), tmp_path / "operator.log",
            extra_env={"KUBECONFIG": str(kubeconfig), "STEPLINE_LEASE_NAMESPACE": wide.namespace,
                       "STEPLINE_LEASE_NAME": name},
        ).start()  # fmt: skip
        try:
            cluster.apply(service_step("echo", wide.watched, image="stepline/echo:0.1.0"))
            wait_ready(cluster, "servicestep", "echo", wide.watched)
            cluster.kubectl("delete", "servicestep", "echo", "-n", wide.watched)
            wait_until(
                lambda: not any(owned_objects(cluster, wide.watched, "echo").values()),
                timeout=30, what="the step's Deployment, Service and HPA deleted",
            )  # fmt: skip
        finally:
            operator.stop()
        denials = [line for line in operator.log_tail(10_000).splitlines() if is_denial(line)]
        assert denials == [], "\n".join(denials[:20])
    finally:
        cluster.helm("uninstall", name, "--namespace", wide.namespace, check=False)
        for namespace in (wide.namespace, wide.watched):
            cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
