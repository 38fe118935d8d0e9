"""Helpers for the suite on real pods: pods and their readiness, a port-forward to a Service,
and what a person looks at first when something fails there."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.integration.localcluster import REPO, LocalCluster, wait_until
from tests.integration.stepobjects import is_ready

Manifest = dict[str, Any]
CHART = REPO / "charts" / "stepline"
MANIFESTS = REPO / "manifests"
EXAMPLES = REPO / "examples"
OPERATOR_SELECTOR = "app.kubernetes.io/component=operator"
# Namespaces the suite makes; the diagnostics describe what is in them.
SYSTEM = "stepline-system"


def restricted_namespace(cluster: LocalCluster, name: str) -> None:
    """Creates `name` (if missing) enforcing the Pod Security `restricted` profile."""
    manifest = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
            },
        },
    }
    cluster.apply(manifest)


def pods(cluster: LocalCluster, namespace: str, selector: str) -> list[Manifest]:
    found: list[Manifest] = cluster.get_json("pods", "-n", namespace, "-l", selector)["items"]
    return [pod for pod in found if not pod["metadata"].get("deletionTimestamp")]


def pod_ready(pod: Manifest) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def wait_pods_ready(
    cluster: LocalCluster, namespace: str, selector: str, *, count: int, timeout: float = 180
) -> list[Manifest]:
    """Waits until exactly `count` pods match `selector` and all are Ready; returns them. Fails
    at once when a container is stuck (STUCK), naming it and why."""

    def ready() -> list[Manifest] | None:
        found = pods(cluster, namespace, selector)
        stuck = stuck_containers(found)
        assert not stuck, f"pods {selector} in {namespace} will not become Ready: {stuck}"
        return found if len(found) == count and all(map(pod_ready, found)) else None

    return wait_until(
        ready, timeout=timeout, interval=2, what=f"{count} Ready pod(s) {selector} in {namespace}"
    )


# Container states that will not fix themselves: waiting for them to pass only delays the failure.
STUCK = frozenset({
    "CrashLoopBackOff", "ErrImageNeverPull", "ErrImagePull", "ImagePullBackOff",
    "CreateContainerConfigError", "CreateContainerError", "InvalidImageName", "RunContainerError",
})  # fmt: skip


def stuck_containers(found: list[Manifest]) -> list[str]:
    """'<pod>/<container>: <reason>: <message>' for each container in a state in STUCK."""
    stuck = []
    for pod in found:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = (status.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in STUCK:
                stuck.append(
                    f"{pod['metadata']['name']}/{status['name']}: {waiting['reason']}:"
                    f" {waiting.get('message', '')}"
                )
    return stuck


def wait_step_ready(
    cluster: LocalCluster, step: str, namespace: str, *, timeout: float = 240
) -> Manifest:
    """Waits for the ServiceStep's Ready condition (for its current generation); fails at once,
    naming the container and its reason, when one of its pods is stuck (a crashing program, an
    image that is not there)."""

    seen: list[Any] = [None]

    def ready() -> Manifest | None:
        stuck = stuck_containers(pods(cluster, namespace, step_selector(step)))
        assert not stuck, f"ServiceStep {namespace}/{step} will not become Ready: {stuck}"
        found: Manifest = cluster.get_json("servicestep", step, "-n", namespace)
        status = found.get("status") or {}
        seen[0] = status.get("conditions") or []
        current = status.get("observedGeneration") == found["metadata"]["generation"]
        return found if is_ready(found) and current else None

    try:
        return wait_until(ready, timeout=timeout, interval=2, what=f"{namespace}/{step} Ready")
    except AssertionError as late:
        raise AssertionError(f"{late}; its conditions: {json.dumps(seen[0], indent=1)}") from None


def step_selector(step: str) -> str:
    """The label selector of the pods the operator runs for the ServiceStep `step`."""
    return f"stepline.io/step={step}"


def apply_file(cluster: LocalCluster, path: str, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / path))


def wait_run_finished(
    cluster: LocalCluster, name: str, namespace: str, *, timeout: float = 120
) -> Manifest:
    def finished() -> Manifest | None:
        run: Manifest = cluster.get_json("workflowrun", name, "-n", namespace)
        phase = (run.get("status") or {}).get("phase")
        return run if phase in {"Succeeded", "Failed", "Cancelled"} else None

    return wait_until(finished, timeout=timeout, interval=1, what=f"run {namespace}/{name} over")


@contextmanager
def port_forward(cluster: LocalCluster, namespace: str, target: str, port: int) -> Iterator[str]:
    """`kubectl port-forward` to `target` (svc/name) on a free local port; yields its base URL."""
    process = subprocess.Popen(
        [
            str(cluster.kubectl_path), "--kubeconfig", str(cluster.kubeconfig),
            "port-forward", "--address", "127.0.0.1", "-n", namespace, target, f":{port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # "Forwarding from 127.0.0.1:40123 -> 8080"
        found = re.search(r"127\.0\.0\.1:(\d+)", first)
        if not found:
            process.kill()
            _, err = process.communicate(timeout=10)
            raise AssertionError(f"kubectl port-forward {target} failed: {first!r} {err!r}")
        yield f"http://127.0.0.1:{found.group(1)}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def exec_python(cluster: LocalCluster, namespace: str, pod: str, code: str) -> Any:
    """Runs `code` with the pod's own Python (every Stepline image has one); returns the
    CompletedProcess, unchecked."""
    return cluster.kubectl("exec", "-n", namespace, pod, "--", "python3", "-c", code, check=False)


def diagnostics(cluster: LocalCluster) -> str:
    """What a person looks at first on a failure: pods everywhere, recent warnings, the
    description of every pod that is not Ready outside kube-system, the operator's log."""
    parts: list[str] = []

    def section(title: str, *args: str, tail: int = 60) -> None:
        out = cluster.kubectl(*args, check=False, timeout=30)
        lines = (out.stdout + out.stderr).splitlines()[-tail:]
        parts.append(f"--- {title} ({' '.join(args)})\n" + "\n".join(lines))

    section("pods", "get", "pods", "-A", "-o", "wide")
    section("warnings", "get", "events", "-A", "--field-selector", "type=Warning",
            "--sort-by", ".lastTimestamp")  # fmt: skip
    section("step objects", "get", "servicesteps,workflows,workflowruns,hpa", "-A")
    listing = cluster.kubectl("get", "pods", "-A", "-o", "json", check=False, timeout=30)
    if listing.returncode == 0:
        for pod in json.loads(listing.stdout)["items"]:
            meta = pod["metadata"]
            where, name = meta["namespace"], meta["name"]
            if where != "kube-system" and not pod_ready(pod):
                section(f"pod {where}/{name} not Ready", "describe", "pod", "-n", where, name,
                        tail=40)  # fmt: skip
    section("operator log", "logs", "-n", SYSTEM, "-l", OPERATOR_SELECTOR, "--tail", "80",
            "--all-containers", "--prefix")  # fmt: skip
    return "\n\n".join(parts)
