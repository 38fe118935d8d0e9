"""Running WorkflowRuns: one asyncio task per unfinished run, in this operator process.

`RunSupervisor.follow()` is fed every watch event of every WorkflowRun (level-triggered): an
unfinished run without a task gets one, which resumes from the run's checkpointed status (steps
already Succeeded or Skipped are not called again; the interrupted one is re-called with the same
Idempotency-Key); `spec.cancel` sets the task's cancel event; a deleted run's task is stopped.
No kopf annotations or finalizers are written per run: the status is the checkpoint.

A run task: waits (Pending) for its Workflow to exist, plans it, waits (Pending) for a run slot
of the workflow, executes it through the engine, checkpoints the status after every step, and
writes the final status with Events (Started, StepFailed, Succeeded / Failed / Cancelled).
On operator shutdown the tasks are cancelled without touching status, so the next start resumes.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import kopf

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
from stepline.controllers.runtime import Runtime, object_ref
from stepline.engine import Checkpoint, PlanError, RunOutcome, RunRequest, RunStatus
from stepline.errors import KubeApiError

logger = logging.getLogger(__name__)
# How often a run waiting for its Workflow looks again, in seconds (an index look-up).
WORKFLOW_POLL_SECONDS = 1.0
# Finished runs remembered, so that a late watch event of a finished run starts nothing.
FINISHED_MEMORY = 100_000

WorkflowLookup = Callable[[str, str], Workflow | None]


class RunStatusWriter:
    """The run's status as the engine checkpoints it: the engine's `RunStore`."""

    def __init__(self, runtime: Runtime, run: WorkflowRun) -> None:
        self._runtime = runtime
        self._run = run

    async def save(self, checkpoint: Checkpoint) -> None:
        await self.write(
            phase=RunPhase.RUNNING,
            startedAt=checkpoint.started_at.isoformat(),
            currentStep=checkpoint.current_step,
            steps=[record.to_wire() for record in checkpoint.steps],
        )

    async def write(self, **status: Any) -> None:
        run = self._run
        await self._runtime.kube.patch_status(
            run.api_version, "WorkflowRun", run.metadata.namespace or "", run.metadata.name or "",
            {"observedGeneration": run.metadata.generation, **status},
        )  # fmt: skip


class RunSupervisor:
    """The tasks of the runs this process executes."""

    def __init__(self, runtime: Runtime, *, find_workflow: WorkflowLookup) -> None:
        self._runtime = runtime
        self._find_workflow = find_workflow
        self._tasks: dict[str, tuple[asyncio.Task[None], asyncio.Event]] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()

    def follow(self, event_type: str | None, run: WorkflowRun) -> None:
        uid = run.metadata.uid or ""
        running = self._tasks.get(uid)
        if event_type == "DELETED":
            if running:
                running[0].cancel()
            return
        if running is not None:
            if run.spec.cancel:
                running[1].set()
            return
        if run.status.phase.is_finished or uid in self._finished:
            return
        cancel = asyncio.Event()
        if run.spec.cancel:
            cancel.set()
        task = asyncio.create_task(self._drive(run, cancel), name=f"run {run.metadata.name}")
        self._tasks[uid] = (task, cancel)

    async def shutdown(self) -> None:
        """Stops every task without touching status: the next start resumes the runs."""
        tasks = [task for task, _ in self._tasks.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _drive(self, run: WorkflowRun, cancel: asyncio.Event) -> None:
        uid = run.metadata.uid or ""
        try:
            await drive_run(self._runtime, run, cancel=cancel, find_workflow=self._find_workflow)
            self._finished[uid] = None
            if len(self._finished) > FINISHED_MEMORY:
                self._finished.popitem(last=False)
        except asyncio.CancelledError:
            raise
        except Exception:  # the task must not die silently; the next event retries it
            logger.exception(
                "run %s/%s failed to execute", run.metadata.namespace, run.metadata.name
            )
        finally:
            self._tasks.pop(uid, None)


async def drive_run(
    runtime: Runtime, run: WorkflowRun, *, cancel: asyncio.Event, find_workflow: WorkflowLookup
) -> None:
    """Executes one run to its end (see the module docstring)."""
    writer = RunStatusWriter(runtime, run)
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
            await writer.write(
                phase=RunPhase.RUNNING, startedAt=started_at.isoformat(),
                workflowGeneration=workflow.metadata.generation,
                conditions=_conditions(run, ConditionStatus.UNKNOWN, Reason.RUNNING, "running"),
            )  # fmt: skip
            kopf.info(
                object_ref(run), reason="Started", message=f"running workflow {plan.workflow}"
            )
            runtime.metrics.record_run_started(namespace=namespace, workflow=plan.workflow)
        request = RunRequest(
            uid=run.metadata.uid or "", input=run.spec.input, started_at=started_at,
            resume_from=run.status.steps,
        )  # fmt: skip
        with runtime.metrics.run_in_flight(namespace=namespace, workflow=plan.workflow):
            outcome = await runtime.executor.execute(plan, request, store=writer, cancel=cancel)
    await _finish(writer, run, outcome)


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
            kopf.warn(object_ref(run), reason=Reason.WORKFLOW_NOT_FOUND, message=message)
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
    kopf.warn(object_ref(run), reason="Failed", message=message)


async def _finish_cancelled_early(writer: RunStatusWriter, run: WorkflowRun) -> None:
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    message = "run cancelled before it started"
    await writer.write(
        phase=RunPhase.CANCELLED, finishedAt=now,
        conditions=_conditions(run, ConditionStatus.FALSE, Reason.CANCELLED, message),
    )  # fmt: skip
    kopf.info(object_ref(run), reason="Cancelled", message=message)


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
    try:
        await writer.write(**fields)
    except KubeApiError as exc:
        raise kopf.TemporaryError(f"could not write the run's final status: {exc}") from exc
    ref = object_ref(run)
    if outcome.status is RunStatus.SUCCEEDED:
        kopf.info(ref, reason="Succeeded", message=f"finished in {outcome.duration_seconds:.3f}s")
    elif outcome.status is RunStatus.CANCELLED:
        kopf.info(ref, reason="Cancelled", message=outcome.message)
    else:
        failed = [r for r in outcome.records() if r.phase is StepPhase.FAILED]
        if failed:
            kopf.warn(ref, reason="StepFailed", message=outcome.message)
        kopf.warn(ref, reason="Failed", message=outcome.message)
