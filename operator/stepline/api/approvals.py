"""Approval: a person's decision on a run's approval step, as an object the API server vouches for.

Declarative only; no I/O. A person creates an Approval (`kubectl create`, or `stepline approve`
/ `stepline reject`); two admission policies (`api.admission`) stamp `spec.decidedBy` with the
requester's identity and refuse a requester without verb `approve` on the Workflow. The spec is a
record: it never changes once created (`self == oldSelf`), and a rejection must say why.

The operator says in `status.conditions` (type Accepted) whether it honoured the Approval:
True with reason Recorded, or False with reason RunNotFound, WorkflowMismatch, NotWaiting or
Unverified (controllers/approvals). Only a Recorded Approval ever decides a step.

Also here, for the engine (which must not import the controllers): `ApprovalDecision`, what a
recorded Approval says; and the two readings of a run's raw status that the operator and the
command line share (`find_wait`, `find_recorded_approval`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from stepline.api.base import (
    API_VERSION,
    ApiModel,
    KindInfo,
    KubeObject,
    ObjectName,
    PrinterColumn,
    Rule,
    RuleReason,
    SpecModel,
    StepName,
    list_type,
    parse_timestamp,
)
from stepline.api.conditions import Condition

MAX_REASON_LENGTH = 1024
# Kubernetes' own bounds: a user name is free text, a uid is usually a UUID.
MAX_USERNAME_LENGTH = 1024
MAX_UID_LENGTH = 128
# A run's name is any object name (a DNS-1123 subdomain), not only a label: a WorkflowRun named
# by hand may be longer than a Workflow's.
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
RunName = Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN)]
IMMUTABLE_MESSAGE = "an Approval is a record: create another instead"
REASON_MESSAGE = "a rejection needs a reason"
# What a run's status says of a step that waits for a person (the engine writes it).
WAITING_PHASE = "Waiting"


class Verdict(StrEnum):
    """What a person decided."""

    APPROVE = "Approve"
    REJECT = "Reject"


class DecidedBy(ApiModel):
    """Who decided: the requester's identity, written by the API server's admission policy."""

    username: Annotated[str, StringConstraints(max_length=MAX_USERNAME_LENGTH)] = Field(
        description="The user who created the Approval, as the API server authenticated them."
    )
    uid: Annotated[str, StringConstraints(max_length=MAX_UID_LENGTH)] | None = Field(
        default=None, description="That user's uid, if the authenticator gives one."
    )


class ApprovalSpec(SpecModel):
    """The decision: which run's step, which Workflow's permission, approve or reject, and why."""

    rules = (
        Rule(
            "self == oldSelf",
            message=IMMUTABLE_MESSAGE,
            reason=RuleReason.INVALID,
        ),
        Rule(
            "self.decision == 'Approve' || (has(self.reason) && size(self.reason) > 0)",
            message=REASON_MESSAGE,
            field_path=".reason",
            reason=RuleReason.REQUIRED,
        ),
    )

    run_ref: RunName = Field(description="Name of the WorkflowRun, in the Approval's namespace.")
    workflow_ref: ObjectName = Field(
        description="Name of the run's Workflow: the creator needs verb approve on "
        "workflows.stepline.io of this name; it must be the run's spec.workflowRef."
    )
    step: StepName = Field(description="The approval step of the run that this decides.")
    decision: Verdict = Field(
        description="Approve (the step succeeds) or Reject (the step fails with reason Rejected)."
    )
    reason: Annotated[str, StringConstraints(max_length=MAX_REASON_LENGTH)] | None = Field(
        default=None,
        description=f"Why, in at most {MAX_REASON_LENGTH} characters; required to Reject.",
    )
    decided_by: DecidedBy | None = Field(
        default=None,
        description="Who decided; set by the API server (a MutatingAdmissionPolicy) from the "
        "request, whatever the client wrote.",
    )


class ApprovalStatus(ApiModel):
    """Whether the operator honoured the Approval, written by the operator."""

    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation this status describes."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=8,
        json_schema_extra=list_type("map", "type"),
        description="Accepted: True (reason Recorded) when it decides the step; False with "
        "reason RunNotFound, WorkflowMismatch, NotWaiting or Unverified when it does not.",
    )


class Approval(KubeObject):
    """A person's decision on an approval step of a WorkflowRun: approve or reject, and why."""

    kind_info = KindInfo(
        plural="approvals",
        short_names=("appr",),
        columns=(
            PrinterColumn("Run", ".spec.runRef", description="The WorkflowRun decided on."),
            PrinterColumn("Step", ".spec.step", description="Its approval step."),
            PrinterColumn("Decision", ".spec.decision", description="Approve or Reject."),
            PrinterColumn(
                "User", ".spec.decidedBy.username", description="Who decided, per the API server."
            ),
            PrinterColumn(
                "Accepted",
                '.status.conditions[?(@.type=="Accepted")].status',
                description="True: it decides the step.",
            ),
            PrinterColumn(
                "Reason",
                '.status.conditions[?(@.type=="Accepted")].reason',
                description="Why it was accepted or not.",
                priority=1,
            ),
            PrinterColumn("Age", ".metadata.creationTimestamp", "date"),
        ),
    )

    kind: Literal["Approval"] = "Approval"
    spec: ApprovalSpec = Field(description="The decision; immutable.")
    status: ApprovalStatus = Field(
        default_factory=ApprovalStatus, description="Whether it was honoured, written by Stepline."
    )


@dataclass(frozen=True)
class ApprovalDecision:
    """What a recorded Approval decides, for the engine: approve or reject, by whom, why, when."""

    approve: bool
    user: str
    uid: str
    reason: str
    decided_at: datetime  # the Approval's creationTimestamp
    name: str  # the Approval's name


def build_approval_request(
    namespace: str,
    *,
    run: str,
    workflow: str,
    step: str,
    verdict: Verdict,
    reason: str | None,
) -> dict[str, Any]:
    """The Approval to create for a decision (named by the API server: `<run>-<step>-xxxxx`);
    no `decidedBy`, which the API server writes."""
    spec: dict[str, Any] = {
        "runRef": run,
        "workflowRef": workflow,
        "step": step,
        "decision": verdict.value,
    }
    if reason:
        spec["reason"] = reason
    return {
        "apiVersion": API_VERSION,
        "kind": "Approval",
        "metadata": {"generateName": f"{run}-{step}-", "namespace": namespace},
        "spec": spec,
    }


@dataclass(frozen=True)
class StepWait:
    """A step of a run that waits for a person, as the run's status says."""

    step: str
    since: datetime | None  # when the wait began, if the status says


def find_wait(status: Mapping[str, Any], step: str) -> StepWait | None:
    """The wait of `step` in a run's raw status: listed in `waitingFor` (with `since`), or its
    step record in phase Waiting (since its `startedAt`); None if it does not wait, or the run
    has finished."""
    if status.get("phase") in {"Succeeded", "Failed", "Cancelled"}:
        return None
    for entry in _dicts(status.get("waitingFor")):
        if entry.get("step") == step:
            return StepWait(step, parse_timestamp(entry.get("since")))
    record = find_step_record(status, step)
    if record is not None and record.get("phase") == WAITING_PHASE:
        return StepWait(step, parse_timestamp(record.get("startedAt")))
    return None


def find_step_record(status: Mapping[str, Any], step: str) -> Mapping[str, Any] | None:
    """The record of `step` in a run's raw status, if it has one."""
    return next((r for r in _dicts(status.get("steps")) if r.get("name") == step), None)


def find_recorded_approval(status: Mapping[str, Any], step: str) -> str | None:
    """The name of the Approval the run recorded for `step` (its record's
    `approval.approvalName`), if it recorded one."""
    record = find_step_record(status, step) or {}
    approval = record.get("approval")
    name = approval.get("approvalName") if isinstance(approval, Mapping) else None
    return name if isinstance(name, str) and name else None


def _dicts(value: object) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []
