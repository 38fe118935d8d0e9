"""Manifests and reads shared by the controller tests: ServiceSteps, Workflows, the objects a
step owns, their conditions and the Events about them, all through kubectl."""

from __future__ import annotations

import json
from typing import Any

from tests.integration.localcluster import LocalCluster, wait_until

API_VERSION = "stepline.io/v1alpha1"
STEP_LABEL = "stepline.io/step"
OWNED_KINDS = ("deployment", "service", "horizontalpodautoscaler")
# kwok runs a pod in a second or two; the slack is for a CI machine of 2 shared cores.
READY_TIMEOUT = 60.0
Manifest = dict[str, Any]


def service_step(name: str, namespace: str, **spec: Any) -> Manifest:
    return {
        "apiVersion": API_VERSION,
        "kind": "ServiceStep",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec or {"image": "stepline/echo:0.1.0"},
    }


def workflow(name: str, namespace: str, steps: list[Manifest], **spec: Any) -> Manifest:
    return {
        "apiVersion": API_VERSION,
        "kind": "Workflow",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"steps": steps, **spec},
    }


def get(cluster: LocalCluster, kind: str, name: str, namespace: str) -> Manifest | None:
    """The object, or None when it does not exist."""
    out = cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
    if out.returncode != 0:
        if "NotFound" in out.stderr:
            return None
        raise AssertionError(f"kubectl get {kind} {name}: {out.stderr}")
    found: Manifest = json.loads(out.stdout)
    return found


def items(cluster: LocalCluster, kind: str, namespace: str, *selector: str) -> list[Manifest]:
    found: list[Manifest] = cluster.get_json(kind, "-n", namespace, *selector)["items"]
    return found


def condition(obj: Manifest | None, kind: str) -> Manifest:
    """The status condition of type `kind`, or {} (also for a missing object)."""
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == kind), {})


def is_ready(obj: Manifest | None) -> bool:
    return condition(obj, "Ready").get("status") == "True"


def wait_ready(
    cluster: LocalCluster, kind: str, name: str, namespace: str, timeout: float = READY_TIMEOUT
) -> Manifest:
    """Waits for the object's Ready condition to be True and for its status to describe the
    current generation; returns the object."""

    def ready() -> Manifest | None:
        obj = get(cluster, kind, name, namespace)
        if obj is None or not is_ready(obj):
            return None
        current = obj["status"].get("observedGeneration") == obj["metadata"]["generation"]
        return obj if current else None

    return wait_until(ready, timeout=timeout, what=f"{kind} {namespace}/{name} Ready")


def wait_condition(
    cluster: LocalCluster,
    kind: str,
    name: str,
    namespace: str,
    *,
    condition_type: str = "Ready",
    status: str,
    reason: str,
    mentioning: str = "",
    timeout: float = READY_TIMEOUT,
) -> Manifest:
    """Waits for a condition with that status and reason (and a message mentioning something);
    returns the condition."""

    def matches() -> Manifest | None:
        found = condition(get(cluster, kind, name, namespace), condition_type)
        expected = (found.get("status"), found.get("reason")) == (status, reason)
        return found if expected and mentioning in found.get("message", "") else None

    return wait_until(
        matches,
        timeout=timeout,
        what=f"{kind} {namespace}/{name}: {condition_type}={status} ({reason})",
    )


def owned_objects(cluster: LocalCluster, namespace: str, step: str) -> dict[str, list[Manifest]]:
    """The Deployments, Services and HPAs labelled as `step`'s, by kind."""
    selector = f"-l={STEP_LABEL}={step}"
    return {kind: items(cluster, kind, namespace, selector) for kind in OWNED_KINDS}


def events_about(cluster: LocalCluster, namespace: str, kind: str, name: str) -> list[Manifest]:
    selector = f"--field-selector=involvedObject.kind={kind},involvedObject.name={name}"
    return items(cluster, "events", namespace, selector)


def wait_event(
    cluster: LocalCluster, namespace: str, kind: str, name: str, *, reason: str
) -> Manifest:
    """Waits for an Event with `reason` about the object; returns it."""

    def posted() -> Manifest | None:
        found = events_about(cluster, namespace, kind, name)
        return next((e for e in found if e.get("reason") == reason), None)

    return wait_until(posted, timeout=30, what=f"a {reason} Event on {kind} {namespace}/{name}")


def merge_patch(cluster: LocalCluster, kind: str, name: str, namespace: str, patch: Any) -> None:
    cluster.kubectl("patch", kind, name, "-n", namespace, "--type=merge", "-p", json.dumps(patch))
