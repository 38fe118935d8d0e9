"""The ServiceStep reconciler without a cluster: is_drifted() (an owned object's event is somebody
else's edit only when its spec, `replicas` aside, moved away from what our last apply returned),
retry_delay() (failed applies back off), what is known as applied, and reconcile_step() on a fake
API server applying nothing twice."""

from __future__ import annotations

import asyncio
import copy
import types
from typing import Any

from stepline.controllers.servicesteps.memory import AppliedObject, ServiceStepMemory
from stepline.controllers.servicesteps.owned import APPLIED_ANNOTATION, AsApplied, OwnedStates
from stepline.controllers.servicesteps.reconciler import (
    MAX_RETRY_DELAY,
    StepView,
    is_drifted,
    reconcile_step,
    retry_delay,
    spec_digest,
)
from stepline.controllers.servicesteps.scaling import Scalers
from stepline.errors import KubeApiError, KubeConflictError
from stepline.resources import build_deployment, build_service
from tests.unit.controllers.fakes import FakeKube, RecordedEvents
from tests.unit.resources.samples import make_step


def as_stored(manifest: dict[str, Any], *, generation: int | None) -> dict[str, Any]:
    """The manifest as the API server returns it: defaulted, with a generation if it has one."""
    body = copy.deepcopy(manifest)
    if generation is not None:
        body["metadata"]["generation"] = generation
        body["spec"]["replicas"] = 1
        body["spec"]["progressDeadlineSeconds"] = 600
    else:
        body["spec"]["clusterIP"] = "10.0.0.17"
    return body


def applied(body: dict[str, Any]) -> AppliedObject:
    return AppliedObject(int(body["metadata"].get("generation", 0)), spec_digest(body))


DEPLOYMENT = as_stored(build_deployment(make_step()), generation=1)
SERVICE = as_stored(build_service(make_step()), generation=None)


def test_the_event_of_our_own_apply_is_no_drift() -> None:
    assert not is_drifted(applied(DEPLOYMENT), DEPLOYMENT)
    assert not is_drifted(applied(SERVICE), SERVICE)


def test_status_updates_are_no_drift() -> None:
    body = copy.deepcopy(DEPLOYMENT)
    body["status"] = {"readyReplicas": 1, "observedGeneration": 1}
    assert not is_drifted(applied(DEPLOYMENT), body)


def test_the_autoscaler_changing_the_replica_count_is_no_drift() -> None:
    scaled = copy.deepcopy(DEPLOYMENT)
    scaled["metadata"]["generation"] = 2
    scaled["spec"]["replicas"] = 4
    assert not is_drifted(applied(DEPLOYMENT), scaled)


def test_an_image_edited_by_hand_is_drift() -> None:
    edited = copy.deepcopy(DEPLOYMENT)
    edited["metadata"]["generation"] = 2
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = "attacker/miner:1"
    assert is_drifted(applied(DEPLOYMENT), edited)


def test_an_event_older_than_our_last_apply_is_no_drift() -> None:
    older = copy.deepcopy(DEPLOYMENT)
    newer = copy.deepcopy(DEPLOYMENT)
    newer["metadata"]["generation"] = 2
    newer["spec"]["template"]["spec"]["containers"][0]["image"] = "validate:2"
    assert not is_drifted(applied(newer), older)


def test_a_service_without_a_generation_is_compared_by_its_spec() -> None:
    edited = copy.deepcopy(SERVICE)
    edited["spec"]["selector"] = {"stepline.io/step": "someone-else"}
    assert is_drifted(applied(SERVICE), edited)


def test_nothing_is_drift_before_the_operator_applied_the_object() -> None:
    assert not is_drifted(None, DEPLOYMENT)


def test_the_digest_ignores_key_order() -> None:
    reordered = dict(reversed(list(DEPLOYMENT["spec"].items())))
    assert spec_digest({"spec": reordered}) == spec_digest(DEPLOYMENT)


def test_an_unanswered_apply_is_retried_soon_and_then_ever_less_often() -> None:
    timeout = KubeApiError("PATCH …: no answer", status=0)
    delays = [retry_delay(timeout, attempt) for attempt in range(8)]
    assert delays == [5, 10, 20, 40, 80, 160, 300, 300]
    assert retry_delay(KubeConflictError("409", status=409), 0) == 5


def test_a_refused_apply_waits_longer_for_somebody_to_change_something() -> None:
    quota = KubeApiError('403 deployments.apps "x" is forbidden: exceeded quota', status=403)
    assert retry_delay(quota, 0) == 30
    assert retry_delay(quota, 1) == 60
    assert retry_delay(quota, 1000) == MAX_RETRY_DELAY


def test_a_step_owns_nothing_only_once_every_kind_is_listed_and_none_of_its_objects_is_seen() -> (
    None
):
    states = OwnedStates()
    assert not states.owns_nothing("shop", "validate")  # not listed yet: unknown
    states.synced.set()
    assert states.owns_nothing("shop", "validate")
    service = {"metadata": {"namespace": "shop", "name": "validate"}}
    states.record("Service", "ADDED", service, "validate")
    assert not states.owns_nothing("shop", "validate")
    states.record("Service", "DELETED", service, "validate")
    assert states.owns_nothing("shop", "validate")
    states.record("Deployment", "ADDED", DEPLOYMENT, "validate")
    assert not states.owns_nothing("shop", "validate")


def managed(*entries: tuple[str, str | None, dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"manager": manager, "operation": "Apply" if manager == "stepline" else "Update",
         **({"subresource": sub} if sub else {}), "fieldsV1": fields}
        for manager, sub, fields in entries
    ]  # fmt: skip


def with_fields(
    body: dict[str, Any], managed_fields: list[dict[str, Any]], applied: str | None = "d1"
) -> dict[str, Any]:
    copied = copy.deepcopy(body)
    copied["metadata"]["managedFields"] = managed_fields
    if applied:
        copied["metadata"]["annotations"] = {APPLIED_ANNOTATION: applied}
    return copied


def test_an_object_only_our_manager_set_the_spec_of_is_known_as_applied() -> None:
    states, key = OwnedStates(manager="stepline"), ("Deployment", "shop", "validate")
    ours = managed(
        ("stepline", None, {"f:spec": {}, "f:metadata": {}}),
        ("kube-controller-manager", "status", {"f:status": {}}),
        ("kube-controller-manager", "scale", {"f:spec": {"f:replicas": {}}}),  # the HPA
    )
    states.record("Deployment", "ADDED", with_fields(DEPLOYMENT, ours), "validate")
    assert states.as_applied[key] == AsApplied("d1", 1, spec_digest(DEPLOYMENT))


def test_an_object_edited_by_someone_else_or_never_annotated_is_not() -> None:
    states, key = OwnedStates(manager="stepline"), ("Deployment", "shop", "validate")
    edited = managed(("stepline", None, {"f:spec": {}}), ("kubectl-edit", None, {"f:spec": {}}))
    states.record("Deployment", "ADDED", with_fields(DEPLOYMENT, edited), "validate")
    assert key not in states.as_applied
    ours = managed(("stepline", None, {"f:spec": {}}))
    states.record("Deployment", "MODIFIED", with_fields(DEPLOYMENT, ours, applied=None), "validate")
    assert key not in states.as_applied
    states.record("Deployment", "MODIFIED", with_fields(DEPLOYMENT, ours), "validate")
    states.record("Deployment", "DELETED", with_fields(DEPLOYMENT, ours), "validate")
    assert key not in states.as_applied


async def test_a_reconcile_asked_again_before_the_watch_shows_its_apply_applies_nothing_twice() -> (
    None
):
    # At start-up the takeover and the step's own event each ask for a reconcile: the second
    # can run before the watch event of the first's applies arrives. The applies' answers are
    # enough to know the objects are as applied.
    kube = FakeKube()
    memory = ServiceStepMemory(scalers=Scalers(15, 60), reconcile_slots=asyncio.Semaphore(1))
    step = make_step()
    memory.status_refreshes[("shop", "validate")] = asyncio.create_task(asyncio.sleep(0))
    runtime = types.SimpleNamespace(kube=kube, events=RecordedEvents(), servicesteps=memory)
    view = StepView(steps={}, owned=memory.owned)

    await reconcile_step(runtime, step, view)  # type: ignore[arg-type]
    await reconcile_step(runtime, step, view)  # type: ignore[arg-type]

    assert sorted(kind for kind, _, _ in kube.called("apply")) == [
        "Deployment",
        "HorizontalPodAutoscaler",
        "Service",
    ]
