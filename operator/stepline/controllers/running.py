"""Running WorkflowRuns: one asyncio task per unfinished run, in this operator process.

`RunSupervisor.follow_event()` is fed every watch event of every WorkflowRun (level-triggered): an
unfinished run without a task gets one, which resumes from the run's checkpointed status (steps
already Succeeded or Skipped are not called again; the interrupted one is re-called with the same
Idempotency-Key); `spec.cancel` sets the task's cancel event; a deleted run's task is stopped.
No kopf annotations or finalizers are written per run: the status is the checkpoint.

A run task: waits (Pending) for its Workflow to exist, plans it, waits (Pending) for a run slot
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

Watch events of runs this process is executing, or has finished, are its own checkpoints coming
back: `follow_event` looks at their raw body and parses a WorkflowRun only to start a task.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from stepline.api import (
    ConditionStatus,
    ConditionType,
    Reason,
    RunPhase,
    StepPhase,
    Workflow,
    WorkflowRun,
    record_payload,
    set_condition,
)
from stepline.controllers.pacing import backoff
from stepline.controllers.runtime import Runtime, involved_object
from stepline.engine import Checkpoint, PlanError, RunOutcome, RunRequest, RunStatus
from stepline.errors import KubeApiError

logger = logging.getLogger(__name__)
# How often a run waiting for its Workflow looks again, in seconds (an index look-up).
WORKFLOW_POLL_SECONDS = 1.0
# Finished runs remembered, so that a late watch event of a finished run starts nothing.
FINISHED_MEMORY = 100_000
# How long the start of a run waits to be written with its first checkpoint (module docstring).
START_GRACE_SECONDS = 1.0
# Seconds before a run whose task failed is resumed; doubles per failure, up to the maximum.
RETRY_SECONDS = 5.0
MAX_RETRY_SECONDS = 300.0
FINISHED_PHASES = frozenset(phase.value for phase in RunPhase if phase.is_finished)

WorkflowLookup = Callable[[str, str], Workflow | None]


class RunStatusWriter:
    """The run's status as the engine checkpoints it: the engine's `RunStore`.

    Writes happen one at a time, in order; each carries whatever is held back. `hold()` keeps
    fields back until the next write or until its time is up, whichever comes first: the start
    of the run (`START_GRACE_SECONDS`) and, with a checkpoint interval, the checkpoints (the
    module docstring).
    """

    def __init__(self, runtime: Runtime, run: WorkflowRun) -> None:
        self._runtime = runtime
        self._run = run
        self.events = runtime.events
        self._lock = asyncio.Lock()
        self._held: dict[str, Any] = {}
        self._flush_at = math.inf
        self._flushing: asyncio.Task[None] | None = None
        self._announcing: asyncio.Task[None] | None = None
        self.checkpoint_interval = 0.0
        self.saved = False

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
        status = {
            "phase": RunPhase.RUNNING,
            "startedAt": checkpoint.started_at.isoformat(),
            "currentStep": checkpoint.current_step,
            "steps": [record.to_wire() for record in checkpoint.steps],
        }
        if self.checkpoint_interval > 0:
            self.hold(within=self.checkpoint_interval, **status)
        else:
            await self.write(**status)

    async def write(self, **status: Any) -> None:
        """Merges `status`, and what is held, into the run's status."""
        async with self._lock:
            fields = {**self._held, **status}
            if not fields:
                return
            run = self._run
            await self._runtime.kube.patch_status(
                run.api_version, "WorkflowRun", run.metadata.namespace or "",
                run.metadata.name or "", {"observedGeneration": run.metadata.generation, **fields},
            )  # fmt: skip
            self._held = {}
            if self._flushing is not asyncio.current_task():
                self._cancel_flush()

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


class RunSupervisor:
    """The tasks of the runs this process executes."""

    def __init__(self, runtime: Runtime, *, find_workflow: WorkflowLookup) -> None:
        self._runtime = runtime
        self._find_workflow = find_workflow
        self._tasks: dict[str, tuple[asyncio.Task[None], asyncio.Event]] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()

    def follow_event(
        self, event_type: str | None, body: Mapping[str, Any], parse: Callable[[], WorkflowRun]
    ) -> None:
        """One watch event of a run: its raw `body`, and how to parse it (only done when a task
        is to start, not for the echoes of our own checkpoints)."""
        uid = body.get("metadata", {}).get("uid", "")
        running = self._tasks.get(uid)
        if event_type == "DELETED":
            if running:
                running[0].cancel()
            return
        if running is not None:
            if body.get("spec", {}).get("cancel"):
                running[1].set()
            return
        if uid in self._finished or body.get("status", {}).get("phase") in FINISHED_PHASES:
            return
        self._start(parse())

    def _start(self, run: WorkflowRun) -> None:
        cancel = asyncio.Event()
        if run.spec.cancel:
            cancel.set()
        task = asyncio.create_task(self._drive(run, cancel), name=f"run {run.metadata.name}")
        self._tasks[run.metadata.uid or ""] = (task, cancel)

    async def shutdown(self) -> None:
        """Stops every task without touching status: the next start resumes the runs."""
        tasks = [task for task, _ in self._tasks.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _drive(self, run: WorkflowRun, cancel: asyncio.Event) -> None:
        """Drives the run to its end; a failure (its status cannot be written, a bug) is logged
        and the run resumed from its last checkpoint we know of after a backoff, until it ends,
        is deleted (the task is cancelled) or the operator stops."""
        uid, failures = run.metadata.uid or "", 0
        try:
            while True:
                try:
                    await drive_run(
                        self._runtime, run, cancel=cancel, find_workflow=self._find_workflow
                    )
                    break
                except Exception:  # the task must not die silently
                    delay = backoff(RETRY_SECONDS, failures, maximum=MAX_RETRY_SECONDS)
                    failures += 1
                    logger.exception(
                        "run %s/%s failed to execute; resuming it in %.0f s",
                        run.metadata.namespace, run.metadata.name, delay,
                    )  # fmt: skip
                    await asyncio.sleep(delay)
            self._finished[uid] = None
            if len(self._finished) > FINISHED_MEMORY:
                self._finished.popitem(last=False)
        finally:
            self._tasks.pop(uid, None)


async def drive_run(
    runtime: Runtime, run: WorkflowRun, *, cancel: asyncio.Event, find_workflow: WorkflowLookup
) -> None:
    """Executes one run to its end (see the module docstring)."""
    writer = RunStatusWriter(runtime, run)
    try:
        await _drive_run(runtime, run, writer, cancel=cancel, find_workflow=find_workflow)
    finally:
        writer.end()


async def _drive_run(
    runtime: Runtime,
    run: WorkflowRun,
    writer: RunStatusWriter,
    *,
    cancel: asyncio.Event,
    find_workflow: WorkflowLookup,
) -> None:
    namespace = run.metadata.namespace or ""
    workflow = await _wait_for_workflow(writer, run, cancel, find_workflow)
    if workflow is None:
        await _finish_cancelled_early(writer, run)
        return
    try:
        plan = runtime.plan_of(workflow)
    except PlanError as exc:
        await _fail_early(writer, run, Reason.INVALID_EXPRESSION, str(exc))
        return
    resumed = bool(run.status.started_at)
    async with runtime.slots.hold(plan.key, limit=plan.concurrency, wait=True):
        started_at = run.status.started_at or datetime.now(UTC)
        if not resumed:
            writer.hold(
                within=START_GRACE_SECONDS,
                phase=RunPhase.RUNNING, startedAt=started_at.isoformat(),
                workflowGeneration=workflow.metadata.generation,
                conditions=_conditions(run, ConditionStatus.UNKNOWN, Reason.RUNNING, "running"),
            )  # fmt: skip
            ref, message = involved_object(run), f"running workflow {plan.workflow}"
            writer.announce_unless_saved(
                after=START_GRACE_SECONDS,
                announce=lambda: runtime.events.info(ref, reason="Started", message=message),
            )
            runtime.metrics.record_run_started(namespace=namespace, workflow=plan.workflow)
        writer.checkpoint_interval = workflow.spec.checkpoint_interval_seconds
        request = RunRequest(
            uid=run.metadata.uid or "", input=run.spec.input, started_at=started_at,
            resume_from=run.status.steps, deadline_seconds=_time_left(workflow, started_at),
        )  # fmt: skip
        with runtime.metrics.run_in_flight(namespace=namespace, workflow=plan.workflow):
            outcome = await runtime.executor.execute(plan, request, store=writer, cancel=cancel)
    writer.end()  # no Started Event after the final one; a held start goes with the final write
    await _finish(writer, run, outcome)


def _time_left(workflow: Workflow, started_at: datetime) -> float | None:
    """Seconds left of the run's time limit, counted from its first start (a resumed run does
    not get its time again); None without a limit."""
    limit = workflow.spec.timeout_seconds
    if limit is None:
        return None
    return limit - (datetime.now(UTC) - started_at).total_seconds()


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
        "steps": [record.to_wire() for record in outcome.records()],
    }
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
