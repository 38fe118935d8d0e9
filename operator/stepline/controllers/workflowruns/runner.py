"""Running one WorkflowRun to its end, in a task of `supervisor.RunSupervisor`.

A run resumes from its checkpointed status, or from the newer `RunProgress` its task kept when
a status write failed: steps already Succeeded or Skipped are not called again; the interrupted
one is called again with the same Idempotency-Key, and an attempt number above any the
checkpoint knows was sent (the step the status names as `currentStep` was being called: its
next call is attempt 2 or more).

`drive_run`: waits (Pending) for its Workflow to exist, plans it, waits (Pending) for a run slot
of the workflow, executes it through the engine, checkpoints the status after every step, and
writes the final status with Events (Started, StepFailed, Succeeded / Failed / Cancelled).
On operator shutdown the tasks are cancelled without touching status, so the next start resumes.

The start of a run (phase Running, startedAt, the Running condition) is not written on its own
at once: it goes with the first checkpoint, or with the final status of a run that ends first,
or on its own after `START_GRACE_SECONDS` if neither came by then, and only then with a
Started Event: a run whose first step is quick shows its start in the status alone, and gets
the Events of its end. A quick 3-step run so costs the API server one status write and one
Event fewer (of 4 and 2); the durable guarantee is unchanged, as a run whose start was not
written yet has no progress to lose: it starts over, under the same idempotency keys.

With a Workflow's `checkpointIntervalSeconds`, checkpoints are held the same way, for at most
that long: the steps that finish within the interval are written together (see the field).

A Workflow's `timeoutSeconds` bounds the whole run, counted from its `startedAt`, so a resumed
run has only what was left of it.

A run is pinned to the Workflow it started with: its start records the Workflow's generation
and spec in its status, and a run resumed after the Workflow changed executes that recorded
definition (`pin_workflow`). A run whose status names another generation but holds no spec
(started before specs were recorded) fails with `WorkflowChanged` rather than run half old, half
new.

Status writes carry the resourceVersion they build on: two replicas (an old leader's write still
in flight, the new leader's) never overwrite each other. On a conflict the writer reads the run
again: if its steps are as this task left them (someone changed something else: a label,
`spec.cancel`), it writes on that version; if another writer recorded progress, or finished the
run, this task stops without writing (`NotLeadingError`); a run gone is a 404.

Watch events of runs this process is executing, or has finished, are its own checkpoints coming
back: `follow_event` looks at their raw body and parses a WorkflowRun only to start a task.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from stepline.api import (
    ApprovalDecision,
    CompensationSummary,
    ConditionStatus,
    ConditionType,
    InvalidObjectError,
    Reason,
    RunPhase,
    StepPhase,
    StepRecord,
    WaitRecord,
    Workflow,
    WorkflowRun,
    find_condition,
    record_payload,
    set_condition,
)
from stepline.controllers.runtime import Runtime, involved_object
from stepline.controllers.workflowruns.prediction import predict_remaining
from stepline.controllers.workflowruns.rerunning import prepare_rerun
from stepline.engine import Checkpoint, PlanError, RunOutcome, RunRequest, RunStatus
from stepline.engine.checkpoints import describe_progress
from stepline.engine.tracing import derive_trace_id
from stepline.errors import KubeApiError, KubeConflictError, NotLeadingError
from stepline.observability import ApprovalDecisionLabel, WaitReasonLabel
from stepline.observability.tracing import TraceParent

logger = logging.getLogger(__name__)
# How often a run waiting for its Workflow looks again, in seconds (an index look-up).
WORKFLOW_POLL_SECONDS = 1.0
# How long the start of a run waits to be written with its first checkpoint (module docstring).
START_GRACE_SECONDS = 1.0
# What a Suspended run says it waits for.
SUSPENDED_MESSAGE = "suspended (spec.suspend): it goes on when spec.suspend is false"
# A condition message is cut to this (Condition.message's limit).
MAX_CONDITION_MESSAGE = 32768  # conditions.MAX_MESSAGE_LENGTH
# The annotation a WorkflowRun may carry to join a trace begun elsewhere (a W3C traceparent).
TRACEPARENT_ANNOTATION = "stepline.io/traceparent"
FINISHED_PHASES = frozenset(phase.value for phase in RunPhase if phase.is_finished)

WorkflowLookup = Callable[[str, str], Workflow | None]
# Steps whose time is behind a run: what is left of it is the other steps.
_DONE = frozenset({StepPhase.SUCCEEDED, StepPhase.SKIPPED})


@dataclass
class RunProgress:
    """What a run's task knows beyond the status the API holds, kept across its retries: when
    the run started, the newest checkpoint (written or not), and the end once it is computed."""

    started_at: datetime | None = None
    steps: tuple[StepRecord, ...] | None = None
    outcome: RunOutcome | None = None
    workflow: Workflow | None = None  # the definition the run executes, once pinned
    compensation: CompensationSummary | None = None  # while the run is undone


class RunStatusWriter:
    """The run's status as the engine checkpoints it: the engine's `RunStore`.

    Writes happen one at a time, in order; each carries whatever is held back. `hold()` keeps
    fields back until the next write or until its time is up, whichever comes first: the start
    of the run (`START_GRACE_SECONDS`) and, with a checkpoint interval, the checkpoints (the
    module docstring).
    """

    def __init__(self, runtime: Runtime, run: WorkflowRun, progress: RunProgress) -> None:
        self._runtime = runtime
        self._run = run
        self.progress = progress
        self.events = runtime.events
        self.metrics = runtime.metrics
        self._lock = asyncio.Lock()
        self._held: dict[str, Any] = {}
        self._flush_at = math.inf
        self._flushing: asyncio.Task[None] | None = None
        self._announcing: asyncio.Task[None] | None = None
        self.checkpoint_interval = 0.0
        self.saved = False
        # The version of the run the next write builds on, and its steps as this task last saw
        # or wrote them (module docstring).
        self._version = run.metadata.resource_version
        self._steps_seen = steps_summary([record.to_wire() for record in run.status.steps])

    def hold(self, *, within: float, **status: Any) -> None:
        """Writes `status` with the next write, or by itself within `within` seconds."""
        self._held.update(status)
        flush_at = time.monotonic() + within
        if flush_at < self._flush_at:
            self._cancel_flush()
            self._flush_at = flush_at
            self._flushing = asyncio.create_task(self._flush_later(within))

    def announce_unless_saved(self, *, after: float, announce: Callable[[], None]) -> None:
        """Calls `announce` after `after` seconds unless a checkpoint came first, or `end()`."""

        async def later() -> None:
            await asyncio.sleep(after)
            if not self.saved:
                announce()

        self._announcing = asyncio.create_task(later())

    def end(self) -> None:
        """The run is over, or this process stops executing it: nothing more happens by itself
        (what is held goes with the final write, if there is one)."""
        self._cancel_flush()
        if self._announcing is not None:
            self._announcing.cancel()

    async def save(self, checkpoint: Checkpoint) -> None:
        self.saved = True
        self.progress.steps = checkpoint.steps
        status: dict[str, Any] = {
            "phase": checkpoint.phase,
            "startedAt": checkpoint.started_at.isoformat(),
            "currentStep": checkpoint.current_step,
            "progress": checkpoint.progress,
            "steps": [record.to_wire() for record in checkpoint.steps],
        }
        if checkpoint.compensation is not None:  # undoing: written at once, not held
            if self.progress.compensation is None:
                self._announce_compensation(checkpoint.compensation)
            self.progress.compensation = checkpoint.compensation
            status["compensation"] = checkpoint.compensation.to_wire()
            await self.write(**status)
            return
        done = (r.name for r in checkpoint.steps if r.phase in _DONE)
        estimate = self.estimate_completion(frozenset(done))
        if estimate is not None:
            status["estimatedCompletionTime"] = estimate
        if self.checkpoint_interval > 0:
            self.hold(within=self.checkpoint_interval, **status)
        else:
            await self.write(**status)

    def _announce_compensation(self, summary: CompensationSummary) -> None:
        if self._run.status.compensation is not None:
            return  # announced before a restart
        message = f"{summary.message}; undoing {summary.steps} step(s)"
        self.events.info(involved_object(self._run), reason="Compensating", message=message)

    def estimate_completion(self, done: frozenset[str]) -> str | None:
        """When the run should finish, having done the steps in `done`: now plus the median
        time its other steps took in the workflow's last successful runs; None without any."""
        run = self._run
        history = self._runtime.runs.histories.get(
            (run.metadata.namespace or "", run.spec.workflow_ref)
        )
        left = predict_remaining(history, done) if history is not None and len(history) else None
        if left is None:
            return None
        estimate = datetime.now(UTC) + timedelta(seconds=left)
        return estimate.replace(microsecond=0).isoformat()

    async def write(self, **status: Any) -> None:
        """Merges `status`, and what is held, into the run's status."""
        async with self._lock:
            fields = {**self._held, **status}
            if not fields:
                return
            status = {"observedGeneration": self._run.metadata.generation, **fields}
            try:
                written = await self._patch(status)
            except KubeConflictError:
                await self._adopt_current_version()
                written = await self._patch(status)
            self._version = (written.get("metadata") or {}).get("resourceVersion")
            if "steps" in status:
                self._steps_seen = steps_summary(status["steps"])
            self._held = {}
            if self._flushing is not asyncio.current_task():
                self._cancel_flush()

    async def _patch(self, status: dict[str, Any]) -> dict[str, Any]:
        run = self._run
        return await self._runtime.kube.patch_status(
            run.api_version, "WorkflowRun", run.metadata.namespace or "", run.metadata.name or "",
            status, resource_version=self._version,
        )  # fmt: skip

    async def _adopt_current_version(self) -> None:
        """After a conflict: the run's current version, if this task may write on it."""
        run = self._run
        namespace, name = run.metadata.namespace or "", run.metadata.name or ""
        where = f"WorkflowRun {namespace}/{name}"
        current = await self._runtime.kube.get(run.api_version, "WorkflowRun", namespace, name)
        metadata = (current or {}).get("metadata") or {}
        if current is None or metadata.get("uid") != run.metadata.uid:
            raise KubeApiError(f"{where}: gone", status=404)
        status = current.get("status") or {}
        if status.get("phase") in FINISHED_PHASES:
            raise NotLeadingError(f"{where}: finished by another writer")
        if steps_summary(status.get("steps") or ()) != self._steps_seen:
            raise NotLeadingError(f"{where}: its steps were written by another writer")
        self._version = metadata.get("resourceVersion")

    async def _flush_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self._flush_at = math.inf
        try:
            await self.write()
        except KubeApiError as exc:  # still held: the next write carries it
            logger.warning("run %s: could not write its status: %s", self._run.metadata.name, exc)

    def _cancel_flush(self) -> None:
        if self._flushing is not None and self._flushing is not asyncio.current_task():
            self._flushing.cancel()
        self._flushing = None
        self._flush_at = math.inf


def steps_summary(steps: Any) -> list[tuple[Any, Any, Any]]:
    """What says that a run progressed: each step's name, phase and attempts."""
    return [
        (step.get("name"), step.get("phase"), step.get("attempts"))
        for step in steps
        if isinstance(step, dict)
    ]


@dataclass(frozen=True)
class Parked:
    """A run that stopped before its end, to go on later: `reason` suspended (it goes on when
    spec.suspend is false) or approval (when a person decides, or at `deadline`)."""

    reason: WaitReasonLabel
    deadline: datetime | None = None


async def drive_run(
    runtime: Runtime,
    run: WorkflowRun,
    *,
    cancel: asyncio.Event,
    find_workflow: WorkflowLookup,
    progress: RunProgress,
    suspend: asyncio.Event | None = None,
) -> Parked | None:
    """Executes one run to its end, or until it is parked (see the module docstring); raises
    `KubeApiError` when its status cannot be written, with `progress` holding what it had
    done."""
    writer = RunStatusWriter(runtime, run, progress)
    try:
        if progress.outcome is None:
            if run.spec.suspend and not run.spec.cancel:
                return await _stay_suspended(writer, run)
            progress.outcome = await _execute(
                runtime, run, writer, cancel, find_workflow, suspend=suspend
            )
            if progress.outcome is None:
                return None
        writer.end()  # no Started Event after the final one; a held start goes with the end
        if progress.outcome.status.parked:
            outcome, progress.outcome = progress.outcome, None  # a later task goes on
            return await _park(writer, run, outcome)
        await _finish(writer, run, progress.outcome)
        return None
    finally:
        writer.end()


async def _stay_suspended(writer: RunStatusWriter, run: WorkflowRun) -> Parked:
    """A run whose spec says suspend, taken over without a call in flight: it is Suspended."""
    if run.status.phase is not RunPhase.SUSPENDED:
        started = run.status.started_at is not None
        message = SUSPENDED_MESSAGE if started else "created suspended: " + SUSPENDED_MESSAGE
        await writer.write(
            phase=RunPhase.SUSPENDED, currentStep=None,
            conditions=_conditions(run, ConditionStatus.UNKNOWN, Reason.SUSPENDED, message),
        )  # fmt: skip
        writer.events.info(involved_object(run), reason="Suspended", message=message)
    return Parked(WaitReasonLabel.SUSPENDED)


async def _park(writer: RunStatusWriter, run: WorkflowRun, outcome: RunOutcome) -> Parked:
    """The status of a run that stops before its end (Suspended, or Waiting for a person), and
    the Event of a new stop; the run's slot and task go."""
    records = outcome.records()
    fields: dict[str, Any] = {
        "phase": outcome.phase,
        "currentStep": None,
        "progress": describe_progress(records),
        "steps": [record.to_wire() for record in records],
    }
    ref, namespace = involved_object(run), run.metadata.namespace or ""
    if outcome.status is RunStatus.SUSPENDED:
        fields["waitingFor"] = None
        conditions = (ConditionStatus.UNKNOWN, Reason.SUSPENDED, SUSPENDED_MESSAGE)
        fields["conditions"] = _conditions(run, *conditions)
        await writer.write(**fields)
        if run.status.phase is not RunPhase.SUSPENDED:
            writer.events.info(ref, reason="Suspended", message=SUSPENDED_MESSAGE)
        return Parked(WaitReasonLabel.SUSPENDED)
    workflow, name = run.spec.workflow_ref, run.metadata.name or ""
    waits = [
        WaitRecord(
            step=wait.step, since=wait.since, deadline=wait.deadline, message=wait.message,
            approvers=describe_approvers(namespace, workflow, name, wait.step),
        )
        for wait in outcome.waits
    ]  # fmt: skip
    message = "; ".join(
        f"step {w.step!r} waits until {w.deadline.isoformat()} for {w.approvers}" for w in waits
    )[:MAX_CONDITION_MESSAGE]
    fields["waitingFor"] = [wait.to_wire() for wait in waits]
    fields["conditions"] = _conditions(
        run, ConditionStatus.UNKNOWN, Reason.WAITING_FOR_APPROVAL, message
    )
    await writer.write(**fields)
    known = {wait.step for wait in run.status.waiting_for}
    if any(wait.step not in known for wait in waits):
        writer.events.info(ref, reason="WaitingForApproval", message=message)
    return Parked(WaitReasonLabel.APPROVAL, deadline=min(wait.deadline for wait in waits))


def describe_approvers(namespace: str, workflow: str, run: str, step: str) -> str:
    """Who may decide an approval step, and how: the permission and the command."""
    return (
        f"a user with verb approve on workflows.stepline.io/{workflow} in {namespace}: "
        f"stepline approve {run} --step {step} -n {namespace}"
    )


async def _execute(
    runtime: Runtime,
    run: WorkflowRun,
    writer: RunStatusWriter,
    cancel: asyncio.Event,
    find_workflow: WorkflowLookup,
    *,
    suspend: asyncio.Event | None = None,
) -> RunOutcome | None:
    """The run's outcome; None when it ended before executing (its status says how)."""
    rerun = await prepare_rerun(runtime, run, writer)  # spec.rerunOf: rerunning.py
    if rerun.refused:
        return None
    found = await _wait_for_workflow(writer, run, cancel, find_workflow)
    if found is None:
        await _finish_cancelled_early(writer, run)
        return None
    workflow = writer.progress.workflow or pin_workflow(found, run)
    if isinstance(workflow, str):
        await _fail_early(writer, run, Reason.WORKFLOW_CHANGED, workflow)
        return None
    writer.progress.workflow = workflow
    try:
        plan = runtime.workflows.plan_of(workflow)
    except PlanError as exc:
        await _fail_early(writer, run, exc.reason, str(exc))
        return None
    progress, namespace = writer.progress, run.metadata.namespace or ""
    started = progress.started_at is not None or run.status.started_at is not None
    if runtime.runs.slots.held(plan.key) >= plan.concurrency and not started:
        message = (
            f"waiting for a run slot: workflow {plan.workflow} runs at most {plan.concurrency} "
            "at once (spec.concurrency)"
        )
        await writer.write(
            phase=RunPhase.PENDING,
            conditions=_conditions(run, ConditionStatus.UNKNOWN, Reason.PENDING, message),
        )
    async with runtime.runs.slots.hold(plan.key, limit=plan.concurrency, wait=True):
        if progress.started_at is None and run.status.started_at is None:
            progress.started_at = datetime.now(UTC)
            _announce_start(runtime, run, writer, workflow, plan.steps[0].name)
        started_at = progress.started_at or run.status.started_at or datetime.now(UTC)
        progress.started_at = started_at
        writer.checkpoint_interval = workflow.spec.checkpoint_interval_seconds
        in_memory = progress.steps is not None
        suspended = _resume(runtime, run, writer)
        request = RunRequest(
            uid=run.metadata.uid or "", input=run.spec.input, started_at=started_at,
            name=run.metadata.name or "", trace_parent=trace_parent_of(run),
            key_uid=rerun.key_uid,
            resume_from=progress.steps or run.status.steps,
            interrupted_step=None if in_memory else run.status.current_step,
            deadline_seconds=_time_left(workflow, started_at, suspended), may_call=runtime.leads,
            compensation=progress.compensation or _being_undone(run),
            suspend=suspend, decide=_decisions(runtime, run),
        )  # fmt: skip
        with runtime.metrics.run_in_flight(namespace=namespace, workflow=plan.workflow):
            return await runtime.executor.execute(plan, request, store=writer, cancel=cancel)


def trace_id_of(run: WorkflowRun) -> str:
    """The trace of a run's spans, and of its log lines."""
    parent = trace_parent_of(run)
    return parent.trace_id if parent is not None else derive_trace_id(run.metadata.uid or "")


def trace_parent_of(run: WorkflowRun) -> TraceParent | None:
    """The trace a run joins: its `stepline.io/traceparent` annotation (W3C), set by whatever
    started it; None when it has none or an invalid one (the run then starts its own trace,
    derived from its uid, so that a resumed run continues it)."""
    return TraceParent.parse((run.metadata.annotations or {}).get(TRACEPARENT_ANNOTATION))


def _announce_start(
    runtime: Runtime, run: WorkflowRun, writer: RunStatusWriter, workflow: Workflow, first: str
) -> None:
    """The start of a new run: held for its first checkpoint (the module docstring), with the
    first step as the one being called, a Started Event unless a checkpoint comes first."""
    started_at = writer.progress.started_at or datetime.now(UTC)
    writer.hold(
        within=START_GRACE_SECONDS,
        phase=RunPhase.RUNNING, startedAt=started_at.isoformat(), currentStep=first,
        workflowGeneration=workflow.metadata.generation, workflowSpec=workflow.spec.to_wire(),
        estimatedCompletionTime=writer.estimate_completion(frozenset()),
        conditions=_conditions(run, ConditionStatus.UNKNOWN, Reason.RUNNING, "running"),
    )  # fmt: skip
    ref, message = involved_object(run), f"running workflow {workflow.metadata.name}"
    writer.announce_unless_saved(
        after=START_GRACE_SECONDS,
        announce=lambda: runtime.events.info(ref, reason="Started", message=message),
    )
    namespace = run.metadata.namespace or ""
    runtime.metrics.record_run_started(namespace=namespace, workflow=workflow.metadata.name or "")


def _being_undone(run: WorkflowRun) -> CompensationSummary | None:
    """The undoing a run's status says it was in when this task took it over, if any."""
    status = run.status
    return status.compensation if status.phase is RunPhase.COMPENSATING else None


def pin_workflow(found: Workflow, run: WorkflowRun) -> Workflow | str:
    """The definition `run` executes: `found` (the Workflow now) for a run that has not started
    or started on this generation; for one that started on another, the spec its status
    recorded, at that generation. A message saying why, when that definition cannot be had."""
    status = run.status
    recorded, now = status.workflow_generation, found.metadata.generation
    if status.started_at is None or recorded is None or recorded == now:
        return found
    changed = f"Workflow {found.metadata.name!r} changed (generation {recorded} to {now}) since "
    if status.workflow_spec is None:
        return changed + "this run started, and the run holds no record of the definition it "
        "started with; run it again"
    body = found.to_wire()
    body["spec"] = status.workflow_spec
    body["metadata"]["generation"] = recorded
    try:
        return Workflow.from_body(body)
    except InvalidObjectError as exc:
        return changed + f"this run started, and the definition it recorded is not valid: {exc}"


def _time_left(workflow: Workflow, started_at: datetime, suspended: float = 0.0) -> float | None:
    """Seconds left of the run's time limit, counted from its first start (a resumed run does
    not get its time again) and not counting the time it spent suspended; None without a
    limit."""
    limit = workflow.spec.timeout_seconds
    if limit is None:
        return None
    return limit + suspended - (datetime.now(UTC) - started_at).total_seconds()


def _resume(runtime: Runtime, run: WorkflowRun, writer: RunStatusWriter) -> float:
    """The seconds the run has spent suspended; a run resumed now from Suspended adds the time
    since it was suspended (its condition's transition), and says so (Event Resumed)."""
    suspended = run.status.suspended_seconds or 0.0
    if run.status.phase is not RunPhase.SUSPENDED:
        return suspended
    condition = find_condition(run.status.conditions, ConditionType.SUCCEEDED)
    if condition is not None and condition.last_transition_time is not None:
        since = condition.last_transition_time
        suspended += max((datetime.now(UTC) - since).total_seconds(), 0.0)
    message = f"resumed after {suspended:.0f}s suspended in all"
    writer.hold(within=START_GRACE_SECONDS, suspendedSeconds=round(suspended, 3))
    runtime.events.info(involved_object(run), reason="Resumed", message=message)
    return suspended


def _decisions(
    runtime: Runtime, run: WorkflowRun
) -> Callable[[str, datetime], ApprovalDecision | None]:
    """What decides the run's approval steps: the Approvals the operator follows."""
    namespace, name = run.metadata.namespace or "", run.metadata.name or ""

    def decide(step: str, since: datetime) -> ApprovalDecision | None:
        return runtime.approvals.decision_for(namespace, name, step, waiting_since=since)

    return decide


async def _wait_for_workflow(
    writer: RunStatusWriter, run: WorkflowRun, cancel: asyncio.Event, find: WorkflowLookup
) -> Workflow | None:
    """The run's Workflow once it exists; None if the run is cancelled first."""
    namespace, name = run.metadata.namespace or "", run.spec.workflow_ref
    said = False
    while (workflow := find(namespace, name)) is None:
        if cancel.is_set():
            return None
        if not said:
            message = f"Workflow {name!r} not found in {namespace}; the run waits for it"
            await writer.write(
                phase=RunPhase.PENDING,
                conditions=_conditions(
                    run, ConditionStatus.UNKNOWN, Reason.WORKFLOW_NOT_FOUND, message
                ),
            )
            ref = involved_object(run)
            writer.events.warn(ref, reason=Reason.WORKFLOW_NOT_FOUND, message=message)
            said = True
        await asyncio.sleep(WORKFLOW_POLL_SECONDS)
    return workflow


def _conditions(
    run: WorkflowRun, status: ConditionStatus, reason: Reason, message: str
) -> list[dict[str, Any]]:
    conditions = set_condition(
        run.status.conditions,
        condition_type=ConditionType.SUCCEEDED,
        status=status,
        reason=reason,
        message=message,
        observed_generation=run.metadata.generation,
    )
    return [condition.to_wire() for condition in conditions]


async def _fail_early(
    writer: RunStatusWriter, run: WorkflowRun, reason: Reason, message: str
) -> None:
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    await writer.write(
        phase=RunPhase.FAILED, finishedAt=now,
        conditions=_conditions(run, ConditionStatus.FALSE, reason, message),
    )  # fmt: skip
    writer.events.warn(involved_object(run), reason="Failed", message=message)


async def _finish_cancelled_early(writer: RunStatusWriter, run: WorkflowRun) -> None:
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    message = "run cancelled before it started"
    await writer.write(
        phase=RunPhase.CANCELLED, finishedAt=now,
        conditions=_conditions(run, ConditionStatus.FALSE, Reason.CANCELLED, message),
    )  # fmt: skip
    writer.events.info(involved_object(run), reason="Cancelled", message=message)


async def _finish(writer: RunStatusWriter, run: WorkflowRun, outcome: RunOutcome) -> None:
    """The final status, in one write, and the Events a user reads in `kubectl describe`."""
    fields: dict[str, Any] = {
        "phase": outcome.phase,
        "startedAt": outcome.started_at.isoformat(),
        "finishedAt": outcome.finished_at.isoformat(),
        "durationSeconds": round(outcome.duration_seconds, 6),
        "currentStep": None,
        "estimatedCompletionTime": None,
        "progress": describe_progress(records := outcome.records()),
        "steps": [record.to_wire() for record in records],
    }
    if outcome.compensation is not None:
        fields["compensation"] = outcome.compensation.to_wire()
    if run.status.waiting_for:
        fields["waitingFor"] = None
    if outcome.succeeded:
        value, info = record_payload(outcome.output)
        fields.update(output=value, outputInfo=info.to_wire())
        condition = (ConditionStatus.TRUE, Reason.SUCCEEDED, outcome.message or "succeeded")
    else:
        condition = (ConditionStatus.FALSE, outcome.reason, outcome.message)
    fields["conditions"] = _conditions(run, *condition)
    await writer.write(**fields)
    ref, events = involved_object(run), writer.events
    if outcome.status is RunStatus.SUCCEEDED:
        message = f"finished in {outcome.duration_seconds:.3f}s"
        events.info(ref, reason="Succeeded", message=message)
    elif outcome.status is RunStatus.CANCELLED:
        events.info(ref, reason="Cancelled", message=outcome.message)
    else:
        failed = [r for r in outcome.records() if r.phase is StepPhase.FAILED]
        if failed:
            events.warn(ref, reason="StepFailed", message=outcome.message)
        events.warn(ref, reason="Failed", message=outcome.message)
    if outcome.error is not None and outcome.error.reason == Reason.APPROVAL_TIMED_OUT:
        writer.metrics.record_approval(
            namespace=run.metadata.namespace or "", workflow=run.spec.workflow_ref,
            decision=ApprovalDecisionLabel.TIMED_OUT,
        )  # fmt: skip
    undo = outcome.compensation
    if undo is not None and undo.phase is StepPhase.SUCCEEDED:
        events.info(
            ref, reason="Compensated", message=f"undid {undo.succeeded} of {undo.steps} step(s)"
        )
    elif undo is not None:
        events.warn(ref, reason="CompensationFailed", message=outcome.message)
