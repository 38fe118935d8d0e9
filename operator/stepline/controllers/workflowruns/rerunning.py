"""Rerunning a failed run: a new WorkflowRun whose `spec.rerunOf` names the run it reruns.

A finished run is a record and is never reset (docs/proposals/workflow-semantics.md, section 4).
A rerun is one more retry of the same process instance instead: it executes the definition the
source recorded (`status.workflowSpec`), not the Workflow as it is now; it copies the source's
Succeeded and Skipped step records, marked `reusedFrom`, and the completed elements of a forEach
step instead of calling them; it calls every other step under the first run's keys
(`<rootUID>/<step>`), its attempt numbers going on from the source's records.

`check_rerun(run, source)` is pure: from the new run and the source's body (None: not found) it
decides a `RerunRefusal` (reason RerunSourceNotFound or RerunNotAllowed, and a message naming
the cause) or a `RerunStart` (the definition, the records to resume from, the root uid).
`find_rerun_start` adds the GET of the source.

`prepare_rerun` is what the runner calls before executing a run. For a rerun not prepared yet
it writes the rerun's first checkpoint at once (`status.rerun`, the definition, the reused
records), before any step is called, and posts the `Rerun` Event; or it fails the run with the
refusal and a `Failed` Warning Event. Once `status.rerun` is written the source is never read
again: retention may delete it. A rerun without `status.rerun` has called nothing, so checking
the source again after a restart is safe.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from stepline.api import (
    API_VERSION,
    ConditionStatus,
    ConditionType,
    InvalidObjectError,
    ItemsSummary,
    Reason,
    RerunRecord,
    RunPhase,
    StepPhase,
    StepRecord,
    Workflow,
    WorkflowRun,
    compute_dependencies,
    set_condition,
)
from stepline.controllers.runtime import Runtime, involved_object
from stepline.engine.checkpoints import describe_progress

# What a rerun may start from: a run that ended without succeeding.
RERUNNABLE = frozenset({RunPhase.FAILED, RunPhase.CANCELLED})
# Elements recorded as in flight at most (ItemsSummary.in_flight's limit).
MAX_IN_FLIGHT = 100

# (namespace, name) → the run's body, or None when there is no such run.
RunGetter = Callable[[str, str], Awaitable[Mapping[str, Any] | None]]


@dataclass(frozen=True, slots=True)
class RerunRefusal:
    """Why a run cannot rerun its source: the rerun fails with this reason and message."""

    reason: Reason
    message: str


@dataclass(frozen=True, slots=True)
class RerunStart:
    """What a rerun starts from: the source's definition and records, and the root run's uid."""

    source: str
    root_uid: str
    workflow: Workflow  # the definition the source recorded
    records: tuple[StepRecord, ...]  # one per step of the definition, in its order
    reused_steps: tuple[str, ...]
    reused_elements: int  # completed elements of forEach steps that run again

    def record(self) -> RerunRecord:
        return RerunRecord(of=self.source, root_uid=self.root_uid, reused_steps=self.reused_steps)

    def first_checkpoint(self) -> dict[str, Any]:
        """The status fields the rerun writes before it calls anything."""
        return {
            "rerun": self.record().to_wire(),
            "workflowGeneration": self.workflow.metadata.generation,
            "workflowSpec": self.workflow.spec.to_wire(),
            "steps": [record.to_wire() for record in self.records],
            "progress": describe_progress(self.records),
        }

    def describe(self) -> str:
        """The `Rerun` Event's message: what was reused, and where the rerun starts."""
        count = len(self.reused_steps)
        said = f"{count} step{'' if count == 1 else 's'} reused from {self.source}"
        if self.reused_elements:
            said += f", and {self.reused_elements} completed forEach element(s)"
        starting = ready_steps(self.workflow, frozenset(self.reused_steps))
        if not starting:
            return f"{said}; no step left to run"
        return f"{said}; starting at {', '.join(repr(name) for name in starting)}"


@dataclass(frozen=True, slots=True)
class RerunPreparation:
    """What the runner needs to know of a run's rerun: whether it was refused (the run is
    failed already), and the uid its calls are keyed by (None: the run's own)."""

    refused: bool = False
    key_uid: str | None = None


NOT_A_RERUN = RerunPreparation()
REFUSED = RerunPreparation(refused=True)


class _Progress(Protocol):
    workflow: Workflow | None
    steps: tuple[StepRecord, ...] | None


class StatusWriter(Protocol):
    """What `prepare_rerun` needs of the runner's status writer."""

    @property
    def progress(self) -> _Progress: ...

    async def write(self, **status: Any) -> None: ...


def check_rerun(
    run: WorkflowRun, source_body: Mapping[str, Any] | None
) -> RerunStart | RerunRefusal:
    """Whether `run` may rerun the run `source_body` (None: not found), and from what."""
    name, namespace = run.spec.rerun_of or "", run.metadata.namespace or ""
    if source_body is None:
        return RerunRefusal(
            Reason.RERUN_SOURCE_NOT_FOUND,
            f"spec.rerunOf: WorkflowRun {name!r} not found in namespace {namespace!r}; a rerun "
            "starts from a run that still exists",
        )
    try:
        source = WorkflowRun.from_body(source_body)
    except InvalidObjectError as exc:
        return _not_allowed(f"the operator cannot read run {name!r}: {exc}")
    problem = find_rerun_problem(run, source)
    if problem is not None:
        return _not_allowed(problem)
    workflow = build_pinned_workflow(source)
    if isinstance(workflow, str):
        return _not_allowed(workflow)
    records, reused, elements = compute_reused_records(workflow, source)
    status = source.status
    return RerunStart(
        source=name,
        root_uid=status.rerun.root_uid if status.rerun is not None else source.metadata.uid or "",
        workflow=workflow,
        records=records,
        reused_steps=reused,
        reused_elements=elements,
    )


async def find_rerun_start(run: WorkflowRun, get_run: RunGetter) -> RerunStart | RerunRefusal:
    """`check_rerun` of `run` and its source, read with `get_run`."""
    source = await get_run(run.metadata.namespace or "", run.spec.rerun_of or "")
    return check_rerun(run, source)


def _not_allowed(cause: str) -> RerunRefusal:
    return RerunRefusal(Reason.RERUN_NOT_ALLOWED, f"spec.rerunOf: {cause}")


def find_rerun_problem(run: WorkflowRun, source: WorkflowRun) -> str | None:
    """Why `run` cannot rerun `source` (section 4's conditions); None when it can."""
    name, status = repr(source.metadata.name), source.status
    if source.spec.workflow_ref != run.spec.workflow_ref:
        return (
            f"run {name} ran Workflow {source.spec.workflow_ref!r}, this run names "
            f"{run.spec.workflow_ref!r}; a rerun runs the same Workflow"
        )
    if _canonical(source.spec.input) != _canonical(run.spec.input):
        return (
            f"this run's spec.input differs from run {name}'s; a rerun takes the same input "
            "(`stepline rerun` copies it): to run with another, start a fresh run"
        )
    if status.phase not in RERUNNABLE:
        return f"run {name} is {status.phase.value}; only a Failed or Cancelled run is rerun"
    if status.compensation is not None:
        return (
            f"run {name} ran its compensation (it undid its steps: {status.compensation.phase}); "
            "the outputs a rerun would reuse were undone: start a fresh run"
        )
    if status.workflow_spec is None:
        return (
            f"run {name} holds no record of the definition it ran (status.workflowSpec); it "
            "never started, or an older operator ran it: start a fresh run"
        )
    return None


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def build_pinned_workflow(run: WorkflowRun) -> Workflow | str:
    """The definition `run` recorded (`status.workflowSpec`, at `status.workflowGeneration`) as
    a Workflow, as `runner.pin_workflow` reads it; a message saying why when it cannot be read.

    Its uid is derived from the spec, so that the plan cache (keyed by uid and generation) never
    mistakes it for another definition of the same generation."""
    spec = run.status.workflow_spec
    if spec is None:
        return f"run {run.metadata.name!r} holds no record of the definition it ran"
    digest = hashlib.sha256(_canonical(spec).encode()).hexdigest()[:20]
    body = {
        "apiVersion": API_VERSION,
        "kind": "Workflow",
        "metadata": {
            "name": run.spec.workflow_ref,
            "namespace": run.metadata.namespace,
            "generation": run.status.workflow_generation,
            "uid": f"recorded-{digest}",
        },
        "spec": spec,
    }
    try:
        return Workflow.from_body(body)
    except InvalidObjectError as exc:
        return f"the definition run {run.metadata.name!r} recorded is not valid: {exc}"


def compute_reused_records(
    workflow: Workflow, source: WorkflowRun
) -> tuple[tuple[StepRecord, ...], tuple[str, ...], int]:
    """The records a rerun of `source` resumes from, one per step of `workflow`; the steps
    reused whole; and the completed forEach elements reused in steps that run again.

    A step recorded Succeeded (its output whole) or Skipped is copied, marked `reusedFrom`.
    Every other step starts Pending with the source's attempts, so its next call is numbered
    after them (after 1 at least when it was recorded Running: it may have been in flight); a
    forEach step keeps its completed elements, and its failed ones count as called before."""
    by_name = {record.name: record for record in source.status.steps}
    name = source.metadata.name or ""
    records: list[StepRecord] = []
    reused: list[str] = []
    elements = 0
    for step in workflow.spec.steps:
        record = by_name.get(step.name)
        if record is None:
            records.append(StepRecord(name=step.name))
        elif _is_reusable(record):
            records.append(record.model_copy(update={"reused_from": name, "compensation": None}))
            reused.append(step.name)
        else:
            again = _to_run_again(record)
            elements += again.items.succeeded if again.items is not None else 0
            records.append(again)
    return tuple(records), tuple(reused), elements


def _is_reusable(record: StepRecord) -> bool:
    truncated = record.output_info is not None and record.output_info.truncated
    return record.phase is StepPhase.SKIPPED or (
        record.phase is StepPhase.SUCCEEDED and not truncated
    )


def _to_run_again(record: StepRecord) -> StepRecord:
    """The record of a step the rerun calls (again): Pending, with the attempts made so far."""
    attempts = record.attempts
    if record.phase is StepPhase.RUNNING:
        attempts = max(attempts, 1)
    items = _completed_items(record)
    if items is None:
        return StepRecord(name=record.name, attempts=attempts)
    return StepRecord(
        name=record.name,
        attempts=attempts,
        output=record.output,
        output_info=record.output_info,
        items=items,
    )


def _completed_items(record: StepRecord) -> ItemsSummary | None:
    """A forEach step's elements as a rerun resumes them: the completed ones are kept (when
    their outputs are whole, as the engine requires), and those in flight or failed are called
    again at attempt 2 or more (the engine's `in_flight`)."""
    summary = record.items
    if summary is None:
        return None
    truncated = record.output_info is not None and record.output_info.truncated
    outputs = record.output
    whole = not truncated and isinstance(outputs, list) and len(outputs) == summary.total
    called = sorted({*summary.in_flight, *(error.index for error in summary.errors)})
    return ItemsSummary(
        total=summary.total,
        succeeded=summary.succeeded if whole else 0,
        completed=summary.completed if whole else "",
        in_flight=called[:MAX_IN_FLIGHT],
        max_attempts=summary.max_attempts,
    )


def ready_steps(workflow: Workflow, done: frozenset[str]) -> list[str]:
    """The steps not in `done` whose dependencies are all in it, in the definition's order."""
    dependencies = compute_dependencies(workflow.spec)
    return [
        step.name
        for step in workflow.spec.steps
        if step.name not in done and all(name in done for name in dependencies[step.name])
    ]


async def prepare_rerun(
    runtime: Runtime, run: WorkflowRun, writer: StatusWriter
) -> RerunPreparation:
    """Before `run` executes: nothing for a run that reruns nothing; for a rerun, its first
    checkpoint and Event, or its failure (the module docstring). Sets the writer's progress to
    the definition (and, the first time, the records) the rerun executes."""
    if run.spec.rerun_of is None:
        return NOT_A_RERUN
    progress = writer.progress
    if run.status.rerun is not None:  # prepared before: the source is not read again
        if progress.workflow is None:
            workflow = build_pinned_workflow(run)
            if isinstance(workflow, str):
                await _refuse(runtime, run, writer, _not_allowed(workflow))
                return REFUSED
            progress.workflow = workflow
        return RerunPreparation(key_uid=run.status.rerun.root_uid)

    async def get_run(namespace: str, name: str) -> Mapping[str, Any] | None:
        return await runtime.kube.get(API_VERSION, "WorkflowRun", namespace, name)

    start = await find_rerun_start(run, get_run)
    if isinstance(start, RerunRefusal):
        await _refuse(runtime, run, writer, start)
        return REFUSED
    await writer.write(**start.first_checkpoint())
    progress.workflow = start.workflow
    if progress.steps is None:
        progress.steps = start.records
    runtime.events.info(involved_object(run), reason="Rerun", message=start.describe())
    return RerunPreparation(key_uid=start.root_uid)


async def _refuse(
    runtime: Runtime, run: WorkflowRun, writer: StatusWriter, refusal: RerunRefusal
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    conditions = set_condition(
        run.status.conditions,
        condition_type=ConditionType.SUCCEEDED,
        status=ConditionStatus.FALSE,
        reason=refusal.reason,
        message=refusal.message,
        observed_generation=run.metadata.generation,
        now=now,
    )
    await writer.write(
        phase=RunPhase.FAILED,
        finishedAt=now.isoformat(),
        currentStep=None,
        conditions=[condition.to_wire() for condition in conditions],
    )
    runtime.events.warn(involved_object(run), reason="Failed", message=refusal.message)
