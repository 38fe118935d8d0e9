"""compute_step_status() and compute_external_step_status(): a ServiceStep's status from what
its objects (or its health check) report, with conditions that move only when they flip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from stepline.api import Condition, ServiceStep, find_condition
from stepline.controllers.servicesteps.status import (
    AutoscalerState,
    DeploymentState,
    ExternalCheck,
    compute_external_step_status,
    compute_step_status,
)
from tests.unit.resources.samples import make_step

T0 = datetime(2026, 3, 1, 9, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(seconds=40)
T2 = T1 + timedelta(seconds=40)
QUOTA_MESSAGE = (
    'pods "validate-5d4f8-x2x" is forbidden: exceeded quota: small, requested: cpu=100m, '
    "used: cpu=1, limited: cpu=1"
)


def deployment_body(
    *,
    generation: int = 1,
    observed: int = 1,
    replicas: int = 3,
    ready: int = 3,
    updated: int = 3,
    available: int | None = None,
    conditions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A Deployment as the API server reports it (the fields readiness reads, and some noise)."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "validate", "namespace": "shop", "generation": generation},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"stepline.io/step": "x"}}},
        "status": {
            "observedGeneration": observed,
            "replicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready if available is None else available,
            "updatedReplicas": updated,
            "conditions": conditions or [],
        },
    }


def ready_deployment(replicas: int = 3) -> DeploymentState:
    return DeploymentState.from_body(
        deployment_body(replicas=replicas, ready=replicas, updated=replicas)
    )


def conditions_of(
    step: ServiceStep, deployment: DeploymentState | None, **kwargs: Any
) -> dict[str, Condition]:
    status = compute_step_status(
        step, deployment=deployment, autoscaler=kwargs.pop("autoscaler", None), now=T0, **kwargs
    )
    return {condition.type: condition for condition in status.conditions}


def summary(conditions: dict[str, Condition]) -> dict[str, tuple[str, str]]:
    return {kind: (c.status.value, c.reason) for kind, c in conditions.items()}


def with_status(step: ServiceStep, status: Any) -> ServiceStep:
    return step.model_copy(update={"status": status})


def test_before_the_deployment_exists_the_step_is_progressing_and_not_ready() -> None:
    step = make_step(generation=4)
    status = compute_step_status(step, deployment=None, autoscaler=None, now=T0)
    conditions = {c.type: c for c in status.conditions}
    assert summary(conditions) == {
        "Ready": ("False", "RolloutInProgress"),
        "Progressing": ("True", "RolloutInProgress"),
        "Degraded": ("False", "Available"),
    }
    assert conditions["Ready"].message == "the Deployment is being created"
    assert all(c.observed_generation == 4 for c in status.conditions)
    assert all(c.last_transition_time == T0 for c in status.conditions)
    assert status.observed_generation == 4
    assert status.endpoint == "http://validate.shop.svc:8080/"
    assert (status.replicas, status.ready_replicas, status.desired_replicas) == (0, 0, 0)


def test_a_created_deployment_without_ready_replicas_is_not_ready_yet() -> None:
    state = DeploymentState.from_body(deployment_body(replicas=2, ready=0, updated=2))
    conditions = conditions_of(make_step(), state)
    assert summary(conditions) == {
        "Ready": ("False", "ReplicasUnavailable"),
        "Progressing": ("True", "RolloutInProgress"),
        "Degraded": ("False", "Available"),
    }
    assert conditions["Ready"].message == "no replica is ready yet"
    assert conditions["Progressing"].message == "2 of 2 replicas updated, 0 available"


def test_a_rollout_of_a_new_generation_keeps_the_step_ready_while_it_progresses() -> None:
    state = DeploymentState.from_body(
        deployment_body(generation=3, observed=3, replicas=4, ready=3, updated=1, available=3)
    )
    assert state.rolling_out
    conditions = conditions_of(make_step(), state)
    assert summary(conditions) == {
        "Ready": ("True", "Available"),
        "Progressing": ("True", "RolloutInProgress"),
        "Degraded": ("False", "Available"),
    }


def test_a_deployment_controller_that_has_not_seen_the_new_generation_is_a_rollout() -> None:
    state = DeploymentState.from_body(deployment_body(generation=5, observed=4))
    assert state.rolling_out
    assert conditions_of(make_step(), state)["Progressing"].status == "True"


def test_an_available_deployment_makes_the_step_ready_with_its_replica_counts() -> None:
    step = make_step(generation=2)
    status = compute_step_status(step, deployment=ready_deployment(3), autoscaler=None, now=T0)
    conditions = {c.type: c for c in status.conditions}
    assert summary(conditions) == {
        "Ready": ("True", "Available"),
        "Progressing": ("False", "Available"),
        "Degraded": ("False", "Available"),
    }
    assert conditions["Ready"].message == "3 of 3 replicas ready"
    assert (status.replicas, status.ready_replicas, status.desired_replicas) == (3, 3, 3)
    assert status.observed_generation == 2


def test_the_desired_count_is_the_autoscalers_when_it_has_one() -> None:
    autoscaler = AutoscalerState.from_body({"status": {"desiredReplicas": 5, "currentReplicas": 3}})
    status = compute_step_status(
        make_step(), deployment=ready_deployment(3), autoscaler=autoscaler, now=T0
    )
    assert status.desired_replicas == 5
    ready = find_condition(status.conditions, "Ready")
    assert ready is not None
    assert ready.message == "3 of 5 replicas ready"


def test_an_autoscaler_without_a_status_leaves_the_deployments_count() -> None:
    autoscaler = AutoscalerState.from_body({"spec": {"minReplicas": 1}})
    status = compute_step_status(
        make_step(), deployment=ready_deployment(2), autoscaler=autoscaler, now=T0
    )
    assert status.desired_replicas == 2


def test_a_replica_failure_degrades_the_step_with_the_deployments_message() -> None:
    state = DeploymentState.from_body(
        deployment_body(
            replicas=1,
            ready=0,
            updated=0,
            conditions=[
                {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
                {
                    "type": "ReplicaFailure",
                    "status": "True",
                    "reason": "FailedCreate",
                    "message": QUOTA_MESSAGE,
                },
            ],
        )
    )
    conditions = conditions_of(make_step(), state)
    assert summary(conditions)["Degraded"] == ("True", "ReplicasUnavailable")
    assert conditions["Degraded"].message == f"FailedCreate: {QUOTA_MESSAGE}"
    assert summary(conditions)["Ready"] == ("False", "ReplicasUnavailable")


def test_an_exceeded_progress_deadline_degrades_the_step() -> None:
    state = DeploymentState.from_body(
        deployment_body(
            ready=1,
            updated=1,
            conditions=[
                {
                    "type": "Progressing",
                    "status": "False",
                    "reason": "ProgressDeadlineExceeded",
                    "message": 'ReplicaSet "validate-5d4f8" has timed out progressing.',
                }
            ],
        )
    )
    degraded = conditions_of(make_step(), state)["Degraded"]
    assert degraded.status == "True"
    assert degraded.message.startswith("ProgressDeadlineExceeded: ReplicaSet")


def test_a_false_replica_failure_condition_is_no_problem() -> None:
    state = DeploymentState.from_body(
        deployment_body(conditions=[{"type": "ReplicaFailure", "status": "False"}])
    )
    assert state.problem is None
    assert conditions_of(make_step(), state)["Degraded"].status == "False"


def test_fewer_ready_replicas_than_desired_after_the_rollout_is_degraded() -> None:
    state = DeploymentState.from_body(deployment_body(replicas=3, ready=2, available=3))
    conditions = conditions_of(make_step(), state)
    assert summary(conditions)["Ready"] == ("True", "Available")
    assert summary(conditions)["Degraded"] == ("True", "ReplicasUnavailable")
    assert conditions["Degraded"].message == "only 2 of 3 replicas are ready"


def test_an_apply_error_degrades_the_step_with_the_api_servers_message() -> None:
    message = (
        "PATCH /apis/apps/v1/namespaces/shop/deployments/validate: 403 deployments.apps "
        '"validate" is forbidden: exceeded quota: no-deployments'
    )
    conditions = conditions_of(make_step(), ready_deployment(), apply_error=message)
    assert summary(conditions)["Degraded"] == ("True", "ReconcileFailed")
    assert conditions["Degraded"].message == message
    # The replicas that already run still serve.
    assert summary(conditions)["Ready"] == ("True", "Available")


def test_an_apply_error_before_any_deployment_says_why_the_step_is_not_ready() -> None:
    message = 'deployments.apps "validate" is forbidden: exceeded quota: no-deployments'
    conditions = conditions_of(make_step(), None, apply_error=message)
    assert summary(conditions) == {
        "Ready": ("False", "ReconcileFailed"),
        "Progressing": ("False", "ReconcileFailed"),
        "Degraded": ("True", "ReconcileFailed"),
    }
    assert conditions["Ready"].message == message


def test_the_transition_time_moves_only_for_conditions_that_flip() -> None:
    step = make_step()
    creating = compute_step_status(step, deployment=None, autoscaler=None, now=T0)
    ready = compute_step_status(
        with_status(step, creating), deployment=ready_deployment(), autoscaler=None, now=T1
    )
    times = {c.type: c.last_transition_time for c in ready.conditions}
    assert times == {"Ready": T1, "Progressing": T1, "Degraded": T0}

    scaled = AutoscalerState(desired=3, current=3)
    again = compute_step_status(
        with_status(step, ready), deployment=ready_deployment(), autoscaler=scaled, now=T2
    )
    assert {c.type: c.last_transition_time for c in again.conditions} == times
    assert again == ready


def test_a_status_computed_twice_from_the_same_state_is_the_same() -> None:
    step = make_step()
    first = compute_step_status(step, deployment=ready_deployment(), autoscaler=None, now=T0)
    second = compute_step_status(
        with_status(step, first), deployment=ready_deployment(), autoscaler=None, now=T1
    )
    assert second.to_wire() == first.to_wire()


def test_an_external_step_that_answers_is_ready() -> None:
    step = make_step(url="http://127.0.0.1:9999/validate", generation=3)
    check = ExternalCheck(healthy=True, detail="GET http://127.0.0.1:9999/validate answered 405")
    status = compute_external_step_status(step, check=check, now=T0)
    conditions = {c.type: c for c in status.conditions}
    assert summary(conditions) == {
        "Ready": ("True", "ExternalService"),
        "Progressing": ("False", "ExternalService"),
        "Degraded": ("False", "ExternalService"),
    }
    assert conditions["Ready"].message == "GET http://127.0.0.1:9999/validate answered 405"
    assert status.endpoint == "http://127.0.0.1:9999/validate"
    assert status.observed_generation == 3
    assert (status.replicas, status.ready_replicas, status.desired_replicas) == (None, None, None)


def test_an_external_step_that_does_not_answer_is_not_ready_and_says_why() -> None:
    step = make_step(url="http://127.0.0.1:9999/validate")
    detail = "GET http://127.0.0.1:9999/validate: ConnectError: All connection attempts failed"
    status = compute_external_step_status(
        step, check=ExternalCheck(healthy=False, detail=detail), now=T0
    )
    conditions = {c.type: c for c in status.conditions}
    assert summary(conditions)["Ready"] == ("False", "ExternalService")
    assert summary(conditions)["Degraded"] == ("True", "ExternalService")
    assert conditions["Ready"].message == f"the health check failed: {detail}"


def test_an_external_step_not_checked_yet_is_not_ready_but_not_degraded() -> None:
    status = compute_external_step_status(make_step(url="https://x.example/"), check=None, now=T0)
    conditions = {c.type: c for c in status.conditions}
    assert summary(conditions)["Ready"] == ("False", "ExternalService")
    assert summary(conditions)["Degraded"] == ("False", "ExternalService")
    assert conditions["Ready"].message == "the health check has not run yet"


def test_an_external_steps_ready_time_moves_when_it_stops_and_starts_answering() -> None:
    step = make_step(url="https://partner.example/")
    up, down = ExternalCheck(True, "answered 200"), ExternalCheck(False, "refused")
    first = compute_external_step_status(step, check=up, now=T0)
    still = compute_external_step_status(with_status(step, first), check=up, now=T1)
    gone = compute_external_step_status(with_status(step, still), check=down, now=T2)
    ready_times = [
        c.last_transition_time
        for status in (first, still, gone)
        for c in status.conditions
        if c.type == "Ready"
    ]
    assert ready_times == [T0, T0, T2]
    progressing = find_condition(gone.conditions, "Progressing")
    assert progressing is not None
    assert progressing.last_transition_time == T0


def test_a_status_written_but_not_yet_seen_keeps_its_transition_times() -> None:
    step = make_step()  # its status, as the watch last showed it, is still empty
    written = compute_step_status(step, deployment=None, autoscaler=None, now=T0)
    again = compute_step_status(step, deployment=None, autoscaler=None, previous=written, now=T1)
    assert again == written


def failing_autoscaler(since: datetime) -> AutoscalerState:
    return AutoscalerState.from_body(
        {
            "status": {
                "desiredReplicas": 2,
                "currentReplicas": 2,
                "conditions": [
                    {
                        "type": "ScalingActive",
                        "status": "False",
                        "reason": "FailedGetExternalMetric",
                        "message": "unable to get external metric shop/stepline_step_scaling_value",
                        "lastTransitionTime": since.isoformat(),
                    }
                ],
            }
        }
    )


def test_an_autoscaler_that_cannot_read_its_metrics_for_a_minute_is_reported_in_status() -> None:
    autoscaler = failing_autoscaler(since=T0)
    young = compute_step_status(
        make_step(), deployment=ready_deployment(2), autoscaler=autoscaler,
        now=T0 + timedelta(seconds=30),
    )  # fmt: skip
    assert young.scaling is None  # a new step's first reads fail until the adapter relists
    lasting = compute_step_status(
        make_step(), deployment=ready_deployment(2), autoscaler=autoscaler, now=T2
    )
    assert lasting.scaling is not None
    assert lasting.scaling.reason == "MetricsUnavailable"
    assert "FailedGetExternalMetric: unable to get external metric" in lasting.scaling.message
    assert lasting.desired_replicas == 2  # it keeps its replicas


def test_scaling_disabled_by_hand_is_no_problem() -> None:
    autoscaler = AutoscalerState.from_body(
        {"status": {"conditions": [{"type": "ScalingActive", "status": "False",
                                    "reason": "ScalingDisabled"}]}}
    )  # fmt: skip
    assert autoscaler.problem is None
