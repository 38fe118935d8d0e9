"""Conditions in the shape of Kubernetes' metav1.Condition, and the one way to change them.

Pure: `set_condition()` returns a new list and never reads the clock unless no `now` is given.
`lastTransitionTime` moves only when a condition's status flips, so a reconcile that finds the
same state writes the same status and a watcher sees no change. Times are kept to whole seconds,
as metav1.Time serialises them.

Condition `type` and `reason` are plain strings on the wire (other tools may add conditions, and
an older operator must still read a newer one's); Stepline writes them from the `ConditionType`
and `Reason` enums.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints

from stepline.api.base import ApiModel

# metav1.Condition's own validation.
_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
MAX_MESSAGE_LENGTH = 32768


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class ConditionType(StrEnum):
    """The conditions Stepline writes."""

    READY = "Ready"  # ServiceStep: serving; Workflow: every referenced step is Ready
    PROGRESSING = "Progressing"  # ServiceStep: a rollout is under way
    DEGRADED = "Degraded"  # ServiceStep: fewer replicas ready than desired
    SUCCEEDED = "Succeeded"  # WorkflowRun: True once succeeded, False once failed or cancelled
    ACCEPTED = "Accepted"  # Approval: True when it decides its step (reason Recorded)


class Reason(StrEnum):
    """Why a condition or a step record is what it is: one vocabulary for every kind."""

    # ServiceStep
    AVAILABLE = "Available"
    EXTERNAL_SERVICE = "ExternalService"
    ROLLOUT_IN_PROGRESS = "RolloutInProgress"
    REPLICAS_UNAVAILABLE = "ReplicasUnavailable"
    RECONCILE_FAILED = "ReconcileFailed"
    # Workflow
    ALL_STEPS_READY = "AllStepsReady"
    STEPS_NOT_READY = "StepsNotReady"
    STEP_NOT_FOUND = "StepNotFound"
    DEPENDENCY_CYCLE = "DependencyCycle"
    INVALID_EXPRESSION = "InvalidExpression"
    # WorkflowRun
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    STEP_FAILED = "StepFailed"
    CANCELLED = "Cancelled"
    TIMED_OUT = "TimedOut"
    WORKFLOW_NOT_FOUND = "WorkflowNotFound"
    WORKFLOW_NOT_READY = "WorkflowNotReady"
    # The Workflow changed since the run started, and the definition it started with is lost.
    WORKFLOW_CHANGED = "WorkflowChanged"
    INPUT_TOO_LARGE = "InputTooLarge"
    INVALID_RUN = "InvalidRun"  # admitted by the API server, but not a run the operator can execute
    INTERNAL_ERROR = "InternalError"  # the operator failed, not a step; its log has the details
    # A rerun (spec.rerunOf) refused: its source cannot be rerun, or is not there
    RERUN_NOT_ALLOWED = "RerunNotAllowed"
    RERUN_SOURCE_NOT_FOUND = "RerunSourceNotFound"
    # A failed step call (StepRecord.error.reason)
    TIMEOUT = "Timeout"
    CONNECTION_ERROR = "ConnectionError"
    SERVER_ERROR = "ServerError"
    TOO_MANY_REQUESTS = "TooManyRequests"
    CLIENT_ERROR = "ClientError"
    INVALID_RESPONSE = "InvalidResponse"
    EXPRESSION_ERROR = "ExpressionError"
    INVALID_INPUT = "InvalidInput"  # an expression over the run input alone found it lacking
    NO_READY_ENDPOINTS = "NoReadyEndpoints"  # the step's ServiceStep has no ready replica
    INVALID_ITEMS = "InvalidItems"  # a forEach step's items are not a list, or too many
    # Suspend and approval (WorkflowRun condition, StepRecord.error.reason)
    SUSPENDING = "Suspending"
    WAITING_FOR_APPROVAL = "WaitingForApproval"
    REJECTED = "Rejected"
    APPROVAL_TIMED_OUT = "ApprovalTimedOut"
    NOT_INVOCABLE = "NotInvocable"  # invoke of a workflow with an approval step
    # A Workflow with an approval step, where the Approvals' admission policies are missing
    APPROVALS_UNAVAILABLE = "ApprovalsUnavailable"
    # Compensation (WorkflowRun condition, StepRecord.compensation.reason)
    COMPENSATION_FAILED = "CompensationFailed"
    EARLIER_COMPENSATION_FAILED = "EarlierCompensationFailed"
    WHEN_FALSE = "WhenFalse"
    # WorkflowSchedule (Ready; WORKFLOW_NOT_FOUND above too)
    SCHEDULED = "Scheduled"
    SUSPENDED = "Suspended"
    INVALID_SCHEDULE = "InvalidSchedule"
    INVALID_TIME_ZONE = "InvalidTimeZone"
    # Approval (Accepted)
    RECORDED = "Recorded"
    RUN_NOT_FOUND = "RunNotFound"
    WORKFLOW_MISMATCH = "WorkflowMismatch"
    NOT_WAITING = "NotWaiting"
    UNVERIFIED = "Unverified"  # the admission policies that vouch for decidedBy are missing


class Condition(ApiModel):
    """One aspect of an object's state, in the shape of metav1.Condition."""

    type: Annotated[str, StringConstraints(max_length=316, pattern=_TYPE_PATTERN)] = Field(
        description="Which aspect this condition describes: Ready, Progressing, Degraded, "
        "Succeeded."
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    observed_generation: int | None = Field(
        default=None,
        ge=0,
        description="The .metadata.generation the condition was computed from.",
    )
    last_transition_time: datetime = Field(
        description="When the status last changed (not the reason or the message)."
    )
    reason: Annotated[str, StringConstraints(min_length=1, max_length=1024)] = Field(
        pattern=_REASON_PATTERN,
        description="A CamelCase word for programs: why the condition is what it is.",
    )
    message: Annotated[str, StringConstraints(max_length=MAX_MESSAGE_LENGTH)] = Field(
        description="A sentence for people: what is going on and, on failure, what to do."
    )


def find_condition(conditions: Sequence[Condition], condition_type: str) -> Condition | None:
    """The condition of that type, if there is one."""
    return next((c for c in conditions if c.type == condition_type), None)


def set_condition(
    conditions: Sequence[Condition],
    *,
    condition_type: ConditionType,
    status: ConditionStatus,
    reason: Reason,
    message: str,
    observed_generation: int | None = None,
    now: datetime | None = None,
) -> list[Condition]:
    """The conditions with `condition_type` set; its transition time moves only if its status flips.

    Other conditions keep their place; a new type is appended. `message` is cut to the
    metav1 limit rather than refused, since it often quotes an error of somebody else's.
    """
    previous = find_condition(conditions, condition_type)
    moment = (now or datetime.now(UTC)).replace(microsecond=0)
    if previous is not None and previous.status == status:
        moment = previous.last_transition_time
    updated = Condition(
        type=condition_type,
        status=status,
        reason=reason,
        message=message[:MAX_MESSAGE_LENGTH],
        observed_generation=observed_generation,
        last_transition_time=moment,
    )
    if previous is None:
        return [*conditions, updated]
    return [updated if c.type == condition_type else c for c in conditions]
