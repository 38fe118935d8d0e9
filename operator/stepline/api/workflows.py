"""Workflow: a process as a chain (later a DAG) of references to ServiceSteps.

Declarative only. Steps run one at a time, in list order unless `dependsOn` names a later
step; a step receives the previous step's output unless its `input` expression says otherwise.
Expressions (`input`, `when`, `output`) are CEL over `input` (the run's input) and `steps` (step
name → `{phase, output}`); they are compiled by the engine, which reports errors in the status
(`expressionErrors` and the Ready condition). Rules needing other objects — a `stepRef` to a
missing ServiceStep, a cycle through `dependsOn` — are the controller's to report, not admission's.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from stepline.api.base import (
    MAX_LABEL_LENGTH,
    ApiModel,
    Expression,
    KindInfo,
    KubeObject,
    PrinterColumn,
    Rule,
    RuleReason,
    ServiceName,
    SpecModel,
    StepName,
    list_type,
)
from stepline.api.conditions import Condition
from stepline.api.policies import RetryPolicy
from stepline.api.servicesteps import MAX_TIMEOUT_SECONDS

# A week: a run is a business process, it can wait on slow steps for long.
MAX_RUN_TIMEOUT_SECONDS = 7 * 24 * 3600
MAX_CHECKPOINT_INTERVAL_SECONDS = 60

# A business process of more than 50 services is several workflows; the bound also keeps the API
# server's cost estimate of the uniqueness and dependsOn rules (quadratic in steps) low.
MAX_STEPS = 50
MAX_DEPENDENCIES = 16
# Step calls of one run in flight at once at most (spec.parallelism).
MAX_PARALLELISM = 100
# Elements of one forEach step at most: each is a call, and the status keeps a bit for each.
MAX_FOREACH_ITEMS = 1000
MAX_HISTORY = 1000


class ForEach(SpecModel):
    """Calls the step's service once per element of a list."""

    items: Expression = Field(
        description="CEL expression over input and steps giving the list, evaluated once when "
        f"the step is ready; at most {MAX_FOREACH_ITEMS} elements. The step's input expression "
        "sees each element as item and its position as index (default input: item); its "
        "output is the list of the elements' outputs, in order."
    )
    parallelism: int | None = Field(
        default=None,
        ge=1,
        le=MAX_PARALLELISM,
        description="Elements in flight at once; default: the workflow's parallelism.",
    )


class Compensation(SpecModel):
    """How to undo a step that succeeded, when its run fails or is cancelled (a saga)."""

    step_ref: ServiceName = Field(
        description="The ServiceStep, in the workflow's namespace, that undoes the step."
    )
    when: Expression | None = Field(
        default=None,
        description="CEL condition over input (the run input) and step ({output, input}: what "
        "the step answered and was sent; index in a forEach step); false: not undone. "
        "Default: always.",
    )
    input: Expression | None = Field(
        default=None,
        description="CEL expression computing what the compensating step is sent, over input "
        "and step (and index). Default: step.output.",
    )
    timeout_seconds: int | None = Field(
        default=None,
        ge=1,
        le=MAX_TIMEOUT_SECONDS,
        description="Time limit of one call, in seconds; default: the compensating ServiceStep's.",
    )
    retry: RetryPolicy | None = Field(
        default=None, description="Retry policy; default: the compensating ServiceStep's."
    )


# An approval step waits for a person at most this long by default, and within these bounds.
DEFAULT_APPROVAL_SECONDS = 86_400
MIN_APPROVAL_SECONDS = 60
MAX_APPROVAL_SECONDS = 604_800


class ApprovalStepSpec(SpecModel):
    """A step that waits for a person to approve or reject it (an `Approval`), not a service."""

    message: Expression | None = Field(
        default=None,
        description="CEL expression over input and steps giving what the person is asked (a "
        "string, cut to 1024 characters). Default: the step's name.",
    )
    timeout_seconds: int = Field(
        default=DEFAULT_APPROVAL_SECONDS,
        ge=MIN_APPROVAL_SECONDS,
        le=MAX_APPROVAL_SECONDS,
        description="How long the step waits for a decision before it fails (ApprovalTimedOut).",
    )


class WorkflowStep(SpecModel):
    """One step of a workflow: which ServiceStep to call, with what, and when."""

    rules = (
        Rule(
            "!has(self.dependsOn) || !(self.name in self.dependsOn)",
            message="a step cannot depend on itself",
            field_path=".dependsOn",
            reason=RuleReason.INVALID,
        ),
        Rule(
            "has(self.stepRef) != has(self.approval)",
            message="a step names either stepRef (a ServiceStep to call) or approval (a person "
            "decides)",
            reason=RuleReason.INVALID,
        ),
        Rule(
            "!has(self.approval) || !(has(self.forEach) || has(self.compensation) || "
            "has(self.retry) || has(self.timeoutSeconds) || has(self.input))",
            message="an approval step takes no forEach, compensation, retry, timeoutSeconds or "
            "input; its time limit is approval.timeoutSeconds",
            field_path=".approval",
            reason=RuleReason.INVALID,
        ),
    )

    name: StepName = Field(
        description="Name of the step within the workflow (a DNS-1123 label); expressions "
        "read its result as steps.<name> (steps[\"<name>\"] when it contains '-')."
    )
    step_ref: ServiceName | None = Field(
        default=None,
        description="Name of the ServiceStep, in the workflow's namespace, that runs this step "
        "(or approval, for a step a person decides).",
    )
    approval: ApprovalStepSpec | None = Field(
        default=None,
        description="A step that waits for a person: the run shows Waiting until an Approval "
        "from a user allowed to approve this Workflow decides it, or the time runs out.",
    )
    input: Expression | None = Field(
        default=None,
        description="CEL expression computing the JSON sent to the step, over input (the run "
        "input) and steps (name → {phase, output}; only the steps it waits for), and item and "
        "index in a forEach step. Default: the run input for a step that depends on none, its "
        "dependency's output (a skipped one: what it would have been given) for one that "
        "depends on one, an object of the dependencies' outputs by name for a join; in a "
        "forEach step, item.",
    )
    for_each: ForEach | None = Field(
        default=None, description="Call the service once per element of a list."
    )
    compensation: Compensation | None = Field(
        default=None,
        description="How to undo this step once it succeeded, when the run then fails or is "
        "cancelled: the steps that succeeded are undone one at a time, in reverse order of "
        "completion.",
    )
    when: Expression | None = Field(
        default=None,
        description="CEL condition; when it is false the step is Skipped and has no output. "
        "Default: always run.",
    )
    timeout_seconds: int | None = Field(
        default=None,
        ge=1,
        le=MAX_TIMEOUT_SECONDS,
        description="Time limit of one call, in seconds; default: the ServiceStep's.",
    )
    retry: RetryPolicy | None = Field(
        default=None, description="Retry policy of this step; default: the ServiceStep's."
    )
    depends_on: list[StepName] | None = Field(
        default=None,
        max_length=MAX_DEPENDENCIES,
        json_schema_extra=list_type("set"),
        description="Steps that must finish (Succeeded or Skipped) before this one starts. "
        "Default: the step before this one in the list. [] starts the step with the run. Steps "
        "whose dependencies are done run side by side, up to spec.parallelism. A step's "
        "expressions may read only the steps it waits for, directly or through others.",
    )


class Retention(SpecModel):
    """How long finished WorkflowRuns are kept."""

    ttl_seconds_after_finished: int | None = Field(
        default=None,
        ge=0,
        le=30 * 24 * 3600,
        description="Delete a finished run this many seconds after it finished. Default: keep "
        "it, within the history limits.",
    )
    successful_runs: int = Field(
        default=10, ge=0, le=MAX_HISTORY, description="Succeeded runs kept; older are deleted."
    )
    failed_runs: int = Field(
        default=10,
        ge=0,
        le=MAX_HISTORY,
        description="Failed or cancelled runs kept; older are deleted.",
    )


class WorkflowSpec(SpecModel):
    """The desired state of a Workflow: its steps, its output and how runs are managed."""

    rules = (
        Rule(
            "self.steps.all(s, self.steps.exists_one(t, t.name == s.name))",
            message="step names must be unique within a workflow",
            field_path=".steps",
            # Not FieldValueDuplicate: the API server prints no message with that reason.
            reason=RuleReason.INVALID,
        ),
        Rule(
            "self.steps.all(s, !has(s.dependsOn) || "
            "s.dependsOn.all(d, self.steps.exists(t, t.name == d)))",
            message="dependsOn must name steps of this workflow",
            field_path=".steps",
            reason=RuleReason.INVALID,
        ),
    )

    steps: list[WorkflowStep] = Field(
        min_length=1,
        max_length=MAX_STEPS,
        json_schema_extra=list_type("atomic"),
        description="The steps. Each starts once the steps it depends on are done (by default "
        "the one before it in the list, so a list without dependsOn is a chain).",
    )
    output: Expression | None = Field(
        default=None,
        description="CEL expression computing the run's output. Default: the output of the "
        "last step that produced one.",
    )
    concurrency: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="Most runs executing at once; further runs wait as Pending.",
    )
    parallelism: int = Field(
        default=10,
        ge=1,
        le=MAX_PARALLELISM,
        description="Most step calls of one run in flight at once: independent steps (dependsOn) "
        "run side by side up to this. 1 runs one step at a time, in list order.",
    )
    retention: Retention = Field(
        default_factory=Retention, description="How long finished runs are kept."
    )
    timeout_seconds: int | None = Field(
        default=None,
        ge=1,
        le=MAX_RUN_TIMEOUT_SECONDS,
        description="Time limit of a whole run, in seconds, from its start (startedAt) to its "
        "end, retries and waits for ready steps included; a run over it fails with reason "
        "TimedOut, and a step call is cut short to end by then. An invoke gets the lesser of "
        "this and the operator's invoke timeout. Default: no limit but the steps' own.",
    )
    checkpoint_interval_seconds: float = Field(
        default=0,
        ge=0,
        le=MAX_CHECKPOINT_INTERVAL_SECONDS,
        description="How long a WorkflowRun's progress may go unwritten to its status. 0 (the "
        "default): the status is written after every step, before the next one starts. More: "
        "the steps that finish within the interval are written together, at most this much "
        "later; fewer writes to the API server, but if the operator stops in between, those "
        "steps are called again (under the same Idempotency-Key) when the run resumes.",
    )


class LatencyQuantiles(ApiModel):
    """Quantiles of a duration, in seconds."""

    p50: float = Field(ge=0, description="Median, in seconds.")
    p90: float = Field(ge=0, description="90th percentile, in seconds.")
    p99: float = Field(ge=0, description="99th percentile, in seconds.")


class PredictedDuration(ApiModel):
    """The predicted duration of the next successful run, from the steps' observed durations
    combined as a sum of random durations (engine/prediction.py)."""

    p50: float = Field(ge=0, description="Median, in seconds.")
    p95: float = Field(ge=0, description="95th percentile, in seconds.")
    runs: int = Field(ge=1, description="Successful runs the prediction was made from.")


class RunStatistics(ApiModel):
    """What the runs of a workflow did, over the runs still kept and the operator's memory."""

    total: int = Field(default=0, ge=0, description="Runs started.")
    active: int = Field(default=0, ge=0, description="Runs Pending or Running now.")
    succeeded: int = Field(default=0, ge=0, description="Runs that succeeded.")
    failed: int = Field(default=0, ge=0, description="Runs that failed.")
    cancelled: int = Field(default=0, ge=0, description="Runs that were cancelled.")
    success_rate: float | None = Field(
        default=None, ge=0, le=1, description="Succeeded / finished runs, from 0 to 1."
    )
    latency_seconds: LatencyQuantiles | None = Field(
        default=None, description="Duration of succeeded runs."
    )
    predicted_duration_seconds: float | None = Field(
        default=None, ge=0, description="Expected duration of a run: predictedDuration.p50."
    )
    predicted_duration: PredictedDuration | None = Field(
        default=None,
        description="Predicted duration of the next successful run (p50, p95), from the steps' "
        "observed durations summed as random variables, skipped steps by how often they ran.",
    )
    last_run_name: str | None = Field(
        default=None, max_length=253, description="The most recently started run."
    )


class WorkflowStepStatus(ApiModel):
    """The observed state of one step of a workflow."""

    name: StepName = Field(description="The step's name.")
    step_ref: str = Field(max_length=MAX_LABEL_LENGTH, description="The ServiceStep it calls.")
    ready: bool = Field(description="Whether that ServiceStep exists and is Ready.")
    message: str | None = Field(
        default=None, max_length=1024, description="Why it is not ready, when it is not."
    )
    latency_seconds: LatencyQuantiles | None = Field(
        default=None, description="Duration of its successful calls."
    )
    compensation: CompensationReadiness | None = Field(
        default=None, description="Whether the ServiceStep that undoes it is Ready."
    )


class CompensationReadiness(ApiModel):
    """Whether a step's compensating ServiceStep exists and is Ready."""

    step_ref: str = Field(max_length=MAX_LABEL_LENGTH, description="The compensating ServiceStep.")
    ready: bool = Field(description="Whether it exists and is Ready.")
    message: str | None = Field(
        default=None, max_length=1024, description="Why it is not ready, when it is not."
    )


class ExpressionProblem(ApiModel):
    """An expression that does not compile: where it is, what it says and what is wrong."""

    field: str = Field(
        max_length=256, description="Path of the expression, e.g. spec.steps[1].input."
    )
    step: str | None = Field(
        default=None, max_length=MAX_LABEL_LENGTH, description="Name of the step, if any."
    )
    expression: str = Field(max_length=4096, description="The expression as written.")
    line: int | None = Field(default=None, ge=1, description="Line of the error, from 1.")
    column: int | None = Field(default=None, ge=1, description="Column of the error, from 1.")
    message: str = Field(max_length=2048, description="What is wrong.")

    def describe(self) -> str:
        """`spec.steps[1].input (step 'order') at 1:4: <message>: `1 +`` — for conditions."""
        step = f" (step {self.step!r})" if self.step else ""
        where = f" at {self.line}:{self.column}" if self.line and self.column else ""
        return f"{self.field}{step}{where}: {self.message}: `{self.expression}`"


class WorkflowStatus(ApiModel):
    """The observed state of a Workflow, written by the operator."""

    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation this status describes."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        json_schema_extra=list_type("map", "type"),
        description="Ready: every step's ServiceStep is Ready and every expression compiles.",
    )
    steps: list[WorkflowStepStatus] = Field(
        default_factory=list,
        max_length=MAX_STEPS,
        json_schema_extra=list_type("map", "name"),
        description="Readiness of each step.",
    )
    steps_ready: str | None = Field(
        default=None, max_length=16, description="Ready steps out of all, as in `2/3`."
    )
    expression_errors: list[ExpressionProblem] = Field(
        default_factory=list,
        max_length=3 * MAX_STEPS + 1,
        description="Expressions that do not compile.",
    )
    runs: RunStatistics | None = Field(default=None, description="Statistics of the runs.")


class Workflow(KubeObject):
    """A business process: a chain of ServiceSteps, each fed by the ones before it."""

    kind_info = KindInfo(
        plural="workflows",
        short_names=("wf",),
        columns=(
            PrinterColumn(
                "Ready",
                '.status.conditions[?(@.type=="Ready")].status',
                description="Every step Ready and every expression valid.",
            ),
            PrinterColumn("Steps", ".status.stepsReady", description="Ready steps of all."),
            PrinterColumn("Runs", ".status.runs.total", "integer", "Runs started."),
            PrinterColumn(
                "Success", ".status.runs.successRate", "number", "Succeeded / finished runs."
            ),
            PrinterColumn(
                "P50",
                ".status.runs.latencySeconds.p50",
                "number",
                "Median run duration, seconds.",
                priority=1,
            ),
            PrinterColumn(
                "Predicted",
                ".status.runs.predictedDurationSeconds",
                "number",
                "Expected run duration, seconds.",
                priority=1,
            ),
            PrinterColumn(
                "Parallelism",
                ".spec.parallelism",
                "integer",
                "Most step calls of one run at once.",
                priority=1,
            ),
            PrinterColumn("Age", ".metadata.creationTimestamp", "date"),
        ),
    )
    rules = (
        Rule(
            f"!has(self.metadata.name) || size(self.metadata.name) <= {MAX_LABEL_LENGTH}",
            message=f"a Workflow's name is a label value on its runs: at most {MAX_LABEL_LENGTH} "
            "characters",
            field_path=".metadata.name",
            reason=RuleReason.INVALID,
        ),
    )

    kind: Literal["Workflow"] = "Workflow"
    spec: WorkflowSpec = Field(description="The steps and how runs are managed.")
    status: WorkflowStatus = Field(
        default_factory=WorkflowStatus, description="Observed state, written by Stepline."
    )
