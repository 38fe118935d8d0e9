"""The EndpointSlice watch feeds the balancer: a step's slices by their labels, deletions, and
slices of other Services ignored."""

from __future__ import annotations

from typing import Any

from stepline.controllers.servicesteps.endpoints import EndpointWatch
from stepline.engine import Address, Balancer


def slice_body(name: str, step: str | None, *ips: str) -> dict[str, Any]:
    labels = {"kubernetes.io/service-name": step or "other"}
    if step:
        labels |= {"stepline.io/step": step, "app.kubernetes.io/managed-by": "stepline"}
    return {
        "metadata": {"name": name, "namespace": "shop", "labels": labels},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080}],
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips],
    }


def test_slices_of_a_step_become_its_ready_replicas_and_their_deletion_forgets_them() -> None:
    balancer = Balancer()
    seen: list[str] = []
    watch = EndpointWatch(
        None,  # type: ignore[arg-type] # observe() alone, no API calls
        balancer=balancer, namespaces=("shop",), timeout_seconds=60, on_event=seen.append,
    )  # fmt: skip
    assert watch.observe("ADDED", slice_body("uv-a", "user-validation", "10.0.0.1")) == (
        "user-validation"
    )
    watch.observe("MODIFIED", slice_body("uv-a", "user-validation", "10.0.0.1", "10.0.0.2"))
    assert balancer.ready("shop", "user-validation") == (
        Address("10.0.0.1", 8080), Address("10.0.0.2", 8080),
    )  # fmt: skip
    assert watch.observe("ADDED", slice_body("x-a", None, "10.0.0.9")) is None
    watch.observe("DELETED", slice_body("uv-a", "user-validation"))
    assert balancer.ready("shop", "user-validation") == ()
    assert seen == ["EndpointSlice"] * 3
