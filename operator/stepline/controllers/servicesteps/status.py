"""A ServiceStep's status, computed from what its owned objects report. Pure: no I/O.

The controller hands in small observed states (`DeploymentState`, `AutoscalerState`, an
`ExternalCheck`), parsed from watched bodies, and the previous status; out comes the new
status. Conditions keep their lastTransitionTime unless their status flips (`set_condition`).

    Ready        True when at least one replica serves (a url step: its health check answers)
    Progressing  True while a rollout is under way
    Degraded     True when the operator could not apply the objects, the Deployment reports a
                 failure (quota, deadline exceeded), or fewer replicas are ready than desired

`scaling` says how the autoscaler is fed: the scaling loop's mode, unless the autoscaler reports
that it cannot read its metrics (MetricsUnavailable, with its message).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stepline.api import (
    ConditionStatus,
    ConditionType,
    Reason,
    ScalingMode,
    ScalingStatus,
    ServiceStep,
    ServiceStepStatus,
    set_condition,
)
from stepline.resources.labels import build_endpoint

TRUE, FALSE = ConditionStatus.TRUE, ConditionStatus.FALSE
METRICS_UNAVAILABLE = "MetricsUnavailable"
# How long an autoscaler may fail to read its metrics before the status and an Event say so.
METRICS_GRACE_SECONDS = 60.0


@dataclass(frozen=True)
class DeploymentState:
    """What a step's Deployment reports, reduced to what readiness needs."""

    generation: int = 0
    observed_generation: int = 0
    desired: int = 0
    replicas: int = 0
    ready: int = 0
    available: int = 0
    updated: int = 0
    problem: str | None = None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> DeploymentState:
        status = body.get("status") or {}
        return cls(
            generation=int(body.get("metadata", {}).get("generation") or 0),
            observed_generation=int(status.get("observedGeneration") or 0),
            desired=int((body.get("spec") or {}).get("replicas") or 0),
            replicas=int(status.get("replicas") or 0),
            ready=int(status.get("readyReplicas") or 0),
            available=int(status.get("availableReplicas") or 0),
            updated=int(status.get("updatedReplicas") or 0),
            problem=_deployment_problem(status.get("conditions") or []),
        )

    @property
    def rolling_out(self) -> bool:
        return (
            self.observed_generation < self.generation
            or self.updated < self.desired
            or self.replicas > self.desired
            or self.available < self.desired
        )


def _deployment_problem(conditions: list[Mapping[str, Any]]) -> str | None:
    """The message of a failing Deployment condition (ReplicaFailure, ProgressDeadlineExceeded)."""
    for condition in conditions:
        failing = (
            condition.get("type") == "ReplicaFailure" and condition.get("status") == "True"
        ) or (condition.get("type") == "Progressing" and condition.get("status") == "False")
        if failing:
            return f"{condition.get('reason', 'Failed')}: {condition.get('message', '')}".strip()
    return None


@dataclass(frozen=True)
class AutoscalerState:
    """What a step's HorizontalPodAutoscaler reports."""

    desired: int | None = None
    current: int | None = None
    # Why it cannot compute replicas (its ScalingActive condition is False: a metric it cannot
    # read, say), and since when; it keeps the replicas it has meanwhile.
    problem: str | None = None
    problem_since: datetime | None = None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> AutoscalerState:
        status = body.get("status") or {}
        problem, since = _autoscaler_problem(status.get("conditions") or [])
        return cls(
            desired=status.get("desiredReplicas"),
            current=status.get("currentReplicas"),
            problem=problem,
            problem_since=since,
        )

    def lasting_problem(self, now: datetime) -> str | None:
        """The problem once it has lasted METRICS_GRACE_SECONDS: a new step's series reaches
        the metrics API only after the adapter's next relist, and a new autoscaler's first
        reads fail until then — not worth a warning."""
        return self.problem if self.problem_age(now) >= METRICS_GRACE_SECONDS else None

    def problem_age(self, now: datetime) -> float:
        """Seconds the problem has lasted; without a transition time, forever."""
        since = self.problem_since
        return (now - since).total_seconds() if since is not None else math.inf


def _autoscaler_problem(conditions: list[Mapping[str, Any]]) -> tuple[str | None, datetime | None]:
    for condition in conditions:
        if condition.get("type") == "ScalingActive" and condition.get("status") == "False":
            reason = condition.get("reason") or "ScalingInactive"
            if reason == "ScalingDisabled":  # scaled to zero by hand: not a fault
                return None, None
            message = f"{reason}: {condition.get('message') or 'the autoscaler is not scaling'}"
            try:
                since = datetime.fromisoformat(str(condition.get("lastTransitionTime")))
            except ValueError:
                since = None
            return message, since
    return None, None


@dataclass(frozen=True)
class ExternalCheck:
    """The last health check of a url step: answered or not, and why not."""

    healthy: bool
    detail: str


def compute_step_status(
    step: ServiceStep,
    *,
    deployment: DeploymentState | None,
    autoscaler: AutoscalerState | None,
    apply_error: str | None = None,
    previous: ServiceStepStatus | None = None,
    now: datetime | None = None,
    scaling: ScalingStatus | None = None,
) -> ServiceStepStatus:
    """The status of a step Stepline deploys (one with an image). `previous` is the status last
    written when the caller knows one newer than the step's (whose echo is still on its way);
    its conditions keep their transition times. `scaling` is how the scaling loop feeds the
    autoscaler (None: CPU only); an autoscaler that cannot read its metrics overrides it."""
    previous = previous or step.status
    generation = step.metadata.generation
    conditions = list(previous.conditions)

    def put(kind: ConditionType, status: ConditionStatus, reason: Reason, message: str) -> None:
        nonlocal conditions
        conditions = set_condition(
            conditions,
            condition_type=kind,
            status=status,
            reason=reason,
            message=message,
            observed_generation=generation,
            now=now,
        )

    dep = deployment or DeploymentState()
    desired = (autoscaler.desired if autoscaler and autoscaler.desired else None) or dep.desired
    if dep.ready > 0:
        put(ConditionType.READY, TRUE, Reason.AVAILABLE, f"{dep.ready} of {desired} replicas ready")
    elif deployment is None and apply_error:
        # Nothing is being created: say why, not "being created".
        put(ConditionType.READY, FALSE, Reason.RECONCILE_FAILED, apply_error)
    elif deployment is None:
        put(
            ConditionType.READY,
            FALSE,
            Reason.ROLLOUT_IN_PROGRESS,
            "the Deployment is being created",
        )
    else:
        put(ConditionType.READY, FALSE, Reason.REPLICAS_UNAVAILABLE, "no replica is ready yet")

    if deployment is None and apply_error:
        put(ConditionType.PROGRESSING, FALSE, Reason.RECONCILE_FAILED, apply_error)
    elif deployment is None or dep.rolling_out:
        put(ConditionType.PROGRESSING, TRUE, Reason.ROLLOUT_IN_PROGRESS, _rollout_message(dep))
    else:
        put(ConditionType.PROGRESSING, FALSE, Reason.AVAILABLE, "the rollout is complete")

    if apply_error:
        put(ConditionType.DEGRADED, TRUE, Reason.RECONCILE_FAILED, apply_error)
    elif dep.problem:
        put(ConditionType.DEGRADED, TRUE, Reason.REPLICAS_UNAVAILABLE, dep.problem)
    elif deployment is not None and not dep.rolling_out and dep.ready < desired:
        message = f"only {dep.ready} of {desired} replicas are ready"
        put(ConditionType.DEGRADED, TRUE, Reason.REPLICAS_UNAVAILABLE, message)
    else:
        put(ConditionType.DEGRADED, FALSE, Reason.AVAILABLE, "the objects are applied as declared")

    return ServiceStepStatus(
        observed_generation=generation,
        conditions=conditions,
        replicas=dep.replicas,
        ready_replicas=dep.ready,
        desired_replicas=desired,
        endpoint=build_endpoint(step),
        scaling=_scaling_status(autoscaler, scaling, now or datetime.now(UTC)),
    )


def _scaling_status(
    autoscaler: AutoscalerState | None, scaling: ScalingStatus | None, now: datetime
) -> ScalingStatus | None:
    problem = autoscaler.lasting_problem(now) if autoscaler is not None else None
    if problem is None:
        return scaling
    message = (
        f"the autoscaler keeps its replicas: {problem}"
        " (is the external metrics adapter running, and Prometheus scraping the operator?)"
    )[:1024]
    return ScalingStatus(mode=ScalingMode.REACTIVE, reason=METRICS_UNAVAILABLE, message=message)


def _rollout_message(dep: DeploymentState) -> str:
    return f"{dep.updated} of {dep.desired} replicas updated, {dep.available} available"


def compute_external_step_status(
    step: ServiceStep, *, check: ExternalCheck | None, now: datetime | None = None
) -> ServiceStepStatus:
    """The status of a step reached at a `url`: Ready when its health check answered."""
    generation = step.metadata.generation
    if check is None:
        status, message = FALSE, "the health check has not run yet"
    elif check.healthy:
        status, message = TRUE, check.detail
    else:
        status, message = FALSE, f"the health check failed: {check.detail}"
    conditions = list(step.status.conditions)
    for kind, value in (
        (ConditionType.READY, status),
        (ConditionType.PROGRESSING, FALSE),
        (ConditionType.DEGRADED, TRUE if status is FALSE and check is not None else FALSE),
    ):
        conditions = set_condition(
            conditions,
            condition_type=kind,
            status=value,
            reason=Reason.EXTERNAL_SERVICE,
            message=message,
            observed_generation=generation,
            now=now,
        )
    return ServiceStepStatus(
        observed_generation=generation, conditions=conditions, endpoint=build_endpoint(step)
    )
