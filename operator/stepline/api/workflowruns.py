"""WorkflowRun: one execution of a Workflow, and its checkpointed progress.

Declarative only. The spec is the request (`workflowRef`, `input`; both immutable once created)
plus `cancel`, which can be set but not undone. The status is the run's checkpoint: the engine
writes a `StepRecord` after every step, so a run survives an operator restart and resumes where
it stopped. Outputs larger than the recording cap keep only a preview and a digest
(`payloads.record_payload`).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from stepline.api.approvals import RunName
from stepline.api.base import (
    MAX_LABEL_LENGTH,
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
)
from stepline.api.conditions import Condition
from stepline.api.payloads import InputPayload, Payload, PayloadInfo
from stepline.api.workflows import MAX_FOREACH_ITEMS, MAX_STEPS

BODY_EXCERPT_CHARACTERS = 1024
# A forEach step's completed elements as a base64 bitmap: 4 characters per 3 bytes.
MAX_COMPLETED_CHARACTERS = 4 * (((MAX_FOREACH_ITEMS + 7) // 8 + 2) // 3)
# The first failed elements of a forEach step kept in its record.
MAX_ITEM_ERRORS = 5


class RunPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    # Parked, not finished: no step in flight, holding no run slot.
    SUSPENDED = "Suspended"  # spec.suspend
    WAITING = "Waiting"  # every step that could go on waits for a person
    # A failed or cancelled run undoing the steps that succeeded; then Failed or Cancelled.
    COMPENSATING = "Compensating"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def is_finished(self) -> bool:
        return self in {RunPhase.SUCCEEDED, RunPhase.FAILED, RunPhase.CANCELLED}


class StepPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    WAITING = "Waiting"  # an approval step, until a person decides
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"
    CANCELLED = "Cancelled"


class WorkflowRunSpec(SpecModel):
    """The request: which workflow, with what input; and whether to cancel it."""

    rules = (
        Rule(
            "self.workflowRef == oldSelf.workflowRef",
            message="workflowRef is immutable: start a new run instead",
            field_path=".workflowRef",
            reason=RuleReason.INVALID,
        ),
        Rule(
            "self.input == oldSelf.input",
            message="input is immutable: start a new run instead",
            field_path=".input",
            reason=RuleReason.INVALID,
        ),
        Rule(
            "!oldSelf.cancel || self.cancel",
            message="a cancelled run cannot be resumed: start a new run instead",
            field_path=".cancel",
            reason=RuleReason.INVALID,
        ),
        Rule(
            "has(self.rerunOf) == has(oldSelf.rerunOf) && "
            "(!has(self.rerunOf) || self.rerunOf == oldSelf.rerunOf)",
            message="rerunOf is immutable: start a new run instead",
            field_path=".rerunOf",
            reason=RuleReason.INVALID,
        ),
    )

    workflow_ref: ObjectName = Field(
        description="Name of the Workflow, in the run's namespace, to execute. Immutable."
    )
    input: InputPayload = Field(
        default_factory=dict,
        description="The run input: a JSON object given to the first step and to every "
        "expression as `input`; at most 64 KiB of compact JSON, nested at most 64 deep (a "
        "bigger or deeper one is admitted, and its run fails with reason InputTooLarge or "
        "InvalidRun). Immutable.",
    )
    cancel: bool = Field(
        default=False,
        description="Set to true to cancel the run: no further step starts. Cannot be undone.",
    )
    rerun_of: RunName | None = Field(
        default=None,
        description="Name of a Failed or Cancelled run, in this namespace, that this run reruns "
        "(`stepline rerun` fills it): it must have the same workflowRef and input. The rerun "
        "executes the definition that run recorded, copies its Succeeded and Skipped steps "
        "instead of calling them, and calls the others under the first run's Idempotency-Keys "
        "(status.rerun). Immutable.",
    )
    suspend: bool = Field(
        default=False,
        description="Set to true to suspend the run: no step, element or attempt starts; the "
        "calls in flight end, then the run is Suspended, holding no run slot. Set back to "
        "false to resume it. Suspended time does not count toward the workflow's "
        "timeoutSeconds. A run created suspended does not start.",
    )


class StepError(ApiModel):
    """Why a step failed, as precisely as the call allows."""

    reason: Annotated[str, StringConstraints(max_length=64)] = Field(
        description="Timeout, ConnectionError, ServerError, TooManyRequests, ClientError, "
        "InvalidResponse, ExpressionError, InvalidInput (an expression over the run input "
        "alone found it lacking), StepNotFound or NoReadyEndpoints."
    )
    message: Annotated[str, StringConstraints(max_length=4096)] = Field(
        description="What failed, for people."
    )
    http_status: int | None = Field(
        default=None, ge=100, le=599, description="HTTP status of the last response, if any."
    )
    body: Annotated[str, StringConstraints(max_length=BODY_EXCERPT_CHARACTERS)] | None = Field(
        default=None, description="The beginning of the last response's body, if any."
    )


class ItemError(ApiModel):
    """Why one element of a forEach step failed."""

    index: int = Field(ge=0, description="The element's position in the list.")
    reason: Annotated[str, StringConstraints(max_length=64)] = Field(description="As StepError's.")
    message: Annotated[str, StringConstraints(max_length=256)] = Field(description="What failed.")
    http_status: int | None = Field(
        default=None, ge=100, le=599, description="HTTP status of the last response, if any."
    )


class ItemsSummary(ApiModel):
    """A forEach step's elements at the checkpoint, in bounded space whatever their number."""

    total: int = Field(ge=0, description="Elements in the list.")
    succeeded: int = Field(default=0, ge=0, description="Elements that succeeded.")
    failed: int = Field(default=0, ge=0, description="Elements that failed.")
    running: int = Field(default=0, ge=0, description="Elements being called.")
    completed: Annotated[str, StringConstraints(max_length=MAX_COMPLETED_CHARACTERS)] = Field(
        default="",
        description="Which elements succeeded: bit i % 8 of byte i // 8, base64. A resumed run "
        "does not call them again (unless the output was truncated).",
    )
    in_flight: list[int] = Field(
        default_factory=list,
        max_length=100,
        json_schema_extra=list_type("atomic"),
        description="Elements being called at the checkpoint; resumed at attempt 2 or more.",
    )
    max_attempts: int = Field(default=0, ge=0, description="Most attempts of one element.")
    errors: list[ItemError] = Field(
        default_factory=list,
        max_length=MAX_ITEM_ERRORS,
        json_schema_extra=list_type("atomic"),
        description="The first elements that failed, by index.",
    )


class ApprovalRecord(ApiModel):
    """Who decided an approval step, and how."""

    decision: Annotated[str, StringConstraints(max_length=16)] = Field(
        description="Approve or Reject."
    )
    user: Annotated[str, StringConstraints(max_length=512)] = Field(
        description="The user who decided, as the API server authenticated them."
    )
    uid: Annotated[str, StringConstraints(max_length=128)] | None = Field(
        default=None, description="That user's uid."
    )
    reason: Annotated[str, StringConstraints(max_length=1024)] | None = Field(
        default=None, description="Why, in their words."
    )
    decided_at: datetime | None = Field(default=None, description="When the Approval was made.")
    approval_name: Annotated[str, StringConstraints(max_length=253)] | None = Field(
        default=None, description="The Approval object."
    )


class WaitRecord(ApiModel):
    """A step waiting for a person."""

    step: StepName = Field(description="The approval step.")
    since: datetime = Field(description="When it began to wait.")
    deadline: datetime = Field(description="When it fails unless decided (ApprovalTimedOut).")
    message: Annotated[str, StringConstraints(max_length=1024)] = Field(
        default="", description="What the person is asked."
    )
    approvers: Annotated[str, StringConstraints(max_length=1024)] = Field(
        default="", description="Who may decide, and how."
    )


class CompensationRecord(ApiModel):
    """The undoing of one step (its `compensation`), when the run failed or was cancelled."""

    step_ref: StepName = Field(description="The compensating ServiceStep.")
    phase: StepPhase = Field(
        default=StepPhase.PENDING,
        description="Pending, Running, Succeeded, Failed or Skipped (reason says why).",
    )
    reason: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        default=None, description="Why it was skipped: WhenFalse or EarlierCompensationFailed."
    )
    order: int | None = Field(default=None, ge=1, description="Its place in the undo sequence.")
    attempts: int = Field(default=0, ge=0, description="Calls made, retries included.")
    started_at: datetime | None = Field(default=None, description="When the first call began.")
    finished_at: datetime | None = Field(default=None, description="When it finished.")
    output_info: PayloadInfo | None = Field(
        default=None, description="Size and digest of the answer (the answer is not recorded)."
    )
    error: StepError | None = Field(default=None, description="Why it failed.")


class CompensationSummary(ApiModel):
    """How the undoing of a failed or cancelled run went."""

    phase: StepPhase = Field(description="Running, Succeeded or Failed.")
    cause: Annotated[str, StringConstraints(max_length=64)] = Field(
        description="Why the run compensates: StepFailed, TimedOut, Cancelled or ExpressionError."
    )
    message: Annotated[str, StringConstraints(max_length=4096)] = Field(
        default="", description="What failed the run, as its condition will say."
    )
    steps: int = Field(default=0, ge=0, description="Steps to undo.")
    succeeded: int = Field(default=0, ge=0, description="Steps undone.")
    failed: int = Field(default=0, ge=0, description="Compensations that failed.")
    started_at: datetime | None = Field(default=None, description="When the undoing began.")
    finished_at: datetime | None = Field(default=None, description="When it ended.")


class StepRecord(ApiModel):
    """What happened to one step of the run: the checkpoint a resumed run starts from."""

    name: StepName = Field(description="The step's name in the workflow.")
    phase: StepPhase = Field(
        default=StepPhase.PENDING,
        description="Pending, Running, Succeeded, Failed, Skipped or Cancelled.",
    )
    attempts: int = Field(default=0, ge=0, description="Calls made so far, retries included.")
    started_at: datetime | None = Field(default=None, description="When the first call began.")
    finished_at: datetime | None = Field(default=None, description="When the step finished.")
    duration_seconds: float | None = Field(
        default=None, ge=0, description="Time from start to finish, retries included, seconds."
    )
    output: Payload | None = Field(
        default=None, description="The step's output, unless outputInfo.truncated."
    )
    output_info: PayloadInfo | None = Field(
        default=None, description="Size and digest of the output, and a preview if truncated."
    )
    error: StepError | None = Field(default=None, description="Why the step failed.")
    items: ItemsSummary | None = Field(
        default=None,
        description="A forEach step's elements; its output, while it runs, holds the outputs "
        "so far (null for those not done).",
    )
    input: Payload | None = Field(
        default=None,
        description="What a step with a compensation was sent (for its compensation's "
        "step.input), when it fits within the record's size cap.",
    )
    compensation: CompensationRecord | None = Field(
        default=None, description="The undoing of this step, once the run compensates."
    )
    reused_from: RunName | None = Field(
        default=None,
        description="In a rerun: the run whose record of this step was copied; the step was not "
        "called again.",
    )
    approval: ApprovalRecord | None = Field(
        default=None, description="Who decided an approval step, and how."
    )


class RerunRecord(ApiModel):
    """Where a rerun started from: the run it reruns, and what it took from that run."""

    of: RunName = Field(description="The run this one reruns (spec.rerunOf).")
    root_uid: Annotated[str, StringConstraints(max_length=128)] = Field(
        alias="rootUID",
        description="The uid of the first run of the rerun chain: the rerun's calls go under its "
        "Idempotency-Keys (<rootUID>/<step>), as one more retry of that run.",
    )
    reused_steps: list[StepName] = Field(
        default_factory=list,
        max_length=MAX_STEPS,
        json_schema_extra=list_type("atomic"),
        description="The steps whose records were copied from that run (Succeeded or Skipped "
        "there), not called again.",
    )


class WorkflowRunStatus(ApiModel):
    """The observed state of a run, written by the operator after every step."""

    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation this status describes."
    )
    phase: RunPhase = Field(
        default=RunPhase.PENDING,
        description="Pending, Running, Succeeded, Failed or Cancelled.",
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        json_schema_extra=list_type("map", "type"),
        description="Succeeded: True once the run succeeded, False once it failed or was "
        "cancelled, with the reason.",
    )
    workflow_generation: int | None = Field(
        default=None, ge=0, description="The Workflow's generation the run executes."
    )
    workflow_spec: Payload | None = Field(
        default=None,
        description="The Workflow's spec at workflowGeneration, recorded when the run started: "
        "a run resumed after the Workflow changed executes this definition, never half the old "
        "one and half the new.",
    )
    current_step: Annotated[str, StringConstraints(max_length=MAX_LABEL_LENGTH)] | None = Field(
        default=None,
        description="The steps being executed, in plan order, joined by commas (cut to 63 "
        "characters, with +N for the rest).",
    )
    progress: Annotated[str, StringConstraints(max_length=16)] | None = Field(
        default=None, description="Steps done (Succeeded or Skipped) of all, as done/all."
    )
    started_at: datetime | None = Field(default=None, description="When the run began.")
    estimated_completion_time: datetime | None = Field(
        default=None,
        description="While it runs: when it should finish, from the steps left and how long "
        "they took in the workflow's last successful runs (their median sum); absent without "
        "such runs.",
    )
    finished_at: datetime | None = Field(default=None, description="When the run finished.")
    duration_seconds: float | None = Field(
        default=None, ge=0, description="Time from start to finish, seconds."
    )
    steps: list[StepRecord] = Field(
        default_factory=list,
        max_length=MAX_STEPS,
        json_schema_extra=list_type("map", "name"),
        description="A record per step, in order.",
    )
    output: Payload | None = Field(
        default=None, description="The run's output, unless outputInfo.truncated."
    )
    output_info: PayloadInfo | None = Field(
        default=None, description="Size and digest of the output, and a preview if truncated."
    )
    compensation: CompensationSummary | None = Field(
        default=None, description="The undoing of a failed or cancelled run, if it had any."
    )
    rerun: RerunRecord | None = Field(
        default=None,
        description="For a rerun (spec.rerunOf): the run it reruns, the first run's uid that "
        "keys its calls, and the steps it reused.",
    )
    waiting_for: list[WaitRecord] = Field(
        default_factory=list,
        max_length=MAX_STEPS,
        json_schema_extra=list_type("map", "step"),
        description="The approval steps waiting for a person: since when, until when, what "
        "they ask and who may decide.",
    )
    suspended_seconds: float | None = Field(
        default=None,
        ge=0,
        description="Time spent suspended, not counted toward the workflow's timeoutSeconds.",
    )


class WorkflowRun(KubeObject):
    """One execution of a Workflow with an input; its status is the run's progress."""

    kind_info = KindInfo(
        plural="workflowruns",
        short_names=("wfrun",),
        columns=(
            PrinterColumn("Workflow", ".spec.workflowRef", description="The workflow run."),
            PrinterColumn("Phase", ".status.phase", description="Where the run is."),
            PrinterColumn("Step", ".status.currentStep", description="The steps executing."),
            PrinterColumn(
                "Progress", ".status.progress", description="Steps done (Succeeded or Skipped)/all."
            ),
            PrinterColumn(
                "Duration", ".status.durationSeconds", "number", "Seconds from start to finish."
            ),
            PrinterColumn(
                "Message",
                '.status.conditions[?(@.type=="Succeeded")].message',
                description="Why the run ended as it did.",
                priority=1,
            ),
            PrinterColumn(
                "Rerun-Of", ".spec.rerunOf", description="The run this one reruns.", priority=1
            ),
            PrinterColumn("Age", ".metadata.creationTimestamp", "date"),
        ),
    )
    rules = (
        Rule(
            "!has(self.spec.rerunOf) || self.spec.rerunOf != self.metadata.name",
            message="a run cannot rerun itself",
            field_path=".spec.rerunOf",
            reason=RuleReason.INVALID,
        ),
    )

    kind: Literal["WorkflowRun"] = "WorkflowRun"
    spec: WorkflowRunSpec = Field(description="Which workflow, with what input.")
    status: WorkflowRunStatus = Field(
        default_factory=WorkflowRunStatus, description="Progress, written by Stepline."
    )
