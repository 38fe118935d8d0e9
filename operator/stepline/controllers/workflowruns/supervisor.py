"""Supervising WorkflowRuns: one asyncio task per unfinished run in this operator process, and
the rule that every run the API server admitted either runs or fails visibly.

`RunSupervisor.follow_event()` is fed every watch event of every WorkflowRun (level-triggered): an
unfinished run without a task gets one (`running.drive_run`), which resumes from the run's
checkpointed status; `spec.cancel` sets the task's cancel event; a deleted run's task is stopped.
No kopf annotations or finalizers are written per run: the status is the checkpoint.

Nothing admitted is dropped. A run the operator cannot execute although the API server admitted
it (an input over the size cap, nested too deep, a body the model refuses) is failed in its
status, reason InputTooLarge or InvalidRun, with a Warning Event. A run whose task fails is
handled by what failed:

- the API server did not take a status write (it is down, or answers 5xx, 409, 429): the task
  waits (a doubling backoff), reads the run again once the API server answers, and resumes from
  the newer of the checkpoint the API holds and the one it could not write, which it kept. So
  finished steps are not called again, `startedAt` never moves (the run's `timeoutSeconds`
  counts from it), and a run whose end was computed but not written is not executed again: its
  end is written;
- anything else (the API refused the status itself, or a defect of the operator's): the run
  fails, reason InternalError, and the operator's log has the traceback. It is not retried,
  which would call its steps again and again for a failure of ours.

On operator shutdown the tasks are cancelled without touching status, so the next start resumes.
Only the leader runs runs: a standby starts no task, and one that stops leading cancels its tasks
the same way (`shutdown`), for the new leader to resume; a write or a step call refused past the
fence (`NotLeadingError`) ends a task quietly, leaving the run to the new leader.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stepline.api import (
    API_VERSION,
    ConditionStatus,
    ConditionType,
    InvalidObjectError,
    Reason,
    RunPhase,
    WorkflowRun,
    find_input_problem,
    set_condition,
)
from stepline.controllers.backoff import backoff
from stepline.controllers.runtime import Runtime
from stepline.controllers.workflowruns.parking import Parking, read_parking
from stepline.controllers.workflowruns.queueing import QueuedRun, RunQueue
from stepline.controllers.workflowruns.runner import (
    FINISHED_PHASES,
    Parked,
    RunProgress,
    WorkflowLookup,
    drive_run,
    trace_id_of,
)
from stepline.errors import KubeApiError, KubeConflictError, NotLeadingError
from stepline.observability import WaitReasonLabel
from stepline.observability.tracing import logging_trace

logger = logging.getLogger(__name__)
# Finished runs remembered, so that a late watch event of a finished run starts nothing.
FINISHED_MEMORY = 100_000
# Seconds before a run whose status could not be written is read again and resumed; doubles per
# failure, up to the maximum. The first wait is short: most outages are a restart of the API.
RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 30.0
# A run left to the leader is looked at again after this long, in case this replica still leads.
HANDOVER_RECHECK_SECONDS = 5.0
# An exception's text in a run's status is cut to this; the log has it whole.
MAX_ERROR_CHARACTERS = 512


@dataclass
class _ParkedRun:
    """A run stopped before its end (suspended, or waiting for a person): about 300 bytes and
    at most one timer, no task (docs/proposals/workflow-semantics.md, section 7)."""

    uid: str
    namespace: str
    name: str
    workflow: str
    reason: WaitReasonLabel
    timer: asyncio.TimerHandle | None = None


class UnrunnableRunError(ValueError):
    """A run the API server admitted but the operator cannot execute."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def parse_run(body: Mapping[str, Any]) -> WorkflowRun:
    """The WorkflowRun in a watch event's body; `UnrunnableRunError` saying why it cannot run. The
    input is checked before the body is parsed: parsing is recursive, the check is not."""
    problem = find_input_problem((body.get("spec") or {}).get("input", {}))
    if problem is not None:
        raise UnrunnableRunError(problem[0], f"spec.{problem[1]}")
    try:
        return WorkflowRun.from_body(body)
    except InvalidObjectError as exc:
        raise UnrunnableRunError(
            Reason.INVALID_RUN, f"the operator cannot read this run: {exc}"
        ) from exc


class RunSupervisor:
    """The tasks of the runs this process executes, or fails (module docstring)."""

    def __init__(self, runtime: Runtime, *, find_workflow: WorkflowLookup) -> None:
        self._runtime = runtime
        self._find_workflow = find_workflow
        self._tasks: dict[str, tuple[asyncio.Task[None], asyncio.Event]] = {}
        self._suspends: dict[str, asyncio.Event] = {}  # a run's task's suspend signal
        self._parked: dict[str, _ParkedRun] = {}  # runs stopped before their end: no task
        self._rechecks: set[asyncio.Task[None]] = set()  # `_recheck_after_handover`
        self._finished: OrderedDict[str, None] = OrderedDict()
        # The runs executing and those waiting for their turn (queueing.py).
        self._queue = RunQueue(runtime.settings.run_limit, self._concurrency_of)
        # Queued runs whose Pending status is to be written, and the task writing them.
        self._pending: deque[tuple[QueuedRun, str, int | None]] = deque()
        self._pending_writer: asyncio.Task[None] | None = None

    def follow_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """One watch event of a run: its raw `body`, parsed only when a task is to start (not
        for the echoes of our own checkpoints)."""
        uid = body.get("metadata", {}).get("uid", "")
        running = self._tasks.get(uid)
        spec = body.get("spec") or {}
        if event_type == "DELETED":
            if running:
                running[0].cancel()
            self._unpark(uid)
            self._unqueue(uid)
            return
        if not self._runtime.leads():
            return  # the leader runs it
        if running is not None:
            if spec.get("cancel"):
                running[1].set()
            if spec.get("suspend") and uid in self._suspends:
                self._suspends[uid].set()
            return
        if (
            self._stays_parked(uid, spec)
            or uid in self._finished
            or body.get("status", {}).get("phase") in FINISHED_PHASES
            or self._park_from_status(uid, body)
        ):
            return  # it stays parked, it is over, or it is parked now as its status says
        if not self._takes_turn(uid, body):
            return  # queued: it starts when its turn comes
        try:
            run = parse_run(body)
        except UnrunnableRunError as exc:
            refusal = self._refuse(body.get("metadata", {}), exc.reason, str(exc))
            self._spawn(uid, refusal, name=f"refuse run {uid}")
            return
        self._start(run)

    def _takes_turn(self, uid: str, body: Mapping[str, Any]) -> bool:
        """Whether the run may execute now (it then counts as executing); else it is queued,
        with no task (`queueing`). A run to cancel or suspend goes at once: it ends or parks."""
        metadata, spec = body.get("metadata") or {}, body.get("spec") or {}
        run = QueuedRun(uid, metadata.get("namespace") or "", metadata.get("name") or "",
                        str(spec.get("workflowRef") or ""))  # fmt: skip
        if spec.get("cancel") or spec.get("suspend"):
            if self._queue.is_queued(uid):
                self._count_unqueued(run)
            self._queue.admit_now(run)
            return True
        if self._queue.admit(run):
            return True
        if self._queue.enqueue(run):
            self._runtime.metrics.run_parked(
                namespace=run.namespace, workflow=run.workflow, reason=WaitReasonLabel.QUEUED
            )
            if not (body.get("status") or {}).get("phase"):  # never started: say it waits
                self._write_pending(run, metadata.get("resourceVersion") or "",
                                    metadata.get("generation"))  # fmt: skip
        return False

    def _concurrency_of(self, namespace: str, workflow: str) -> int | None:
        found = self._find_workflow(namespace, workflow)
        return found.spec.concurrency if found is not None else None

    def _unqueue(self, uid: str) -> None:
        run = self._queue.remove(uid)
        if run is not None:
            self._count_unqueued(run)

    def _count_unqueued(self, run: QueuedRun) -> None:
        self._runtime.metrics.run_unparked(
            namespace=run.namespace, workflow=run.workflow, reason=WaitReasonLabel.QUEUED
        )

    def _start_queued(self) -> None:
        """Starts the queued runs whose turn it is now (a run stopped): each is read again."""
        if not self._runtime.leads():
            return
        for run in self._queue.next_admitted():
            self._count_unqueued(run)
            work = self._read_and_start(run.uid, run.namespace, run.name)
            self._spawn(run.uid, work, name=f"start queued run {run.name}")

    def _write_pending(self, run: QueuedRun, version: str, generation: int | None) -> None:
        """Says in the queued run's status that it waits (phase Pending), one run at a time in
        a task of its own, on the version seen: never over a status the run's own task wrote."""
        self._pending.append((run, version, generation))
        if self._pending_writer is None or self._pending_writer.done():
            self._pending_writer = asyncio.create_task(
                self._write_pending_runs(), name="Pending status of queued runs"
            )

    async def _write_pending_runs(self) -> None:
        while self._pending:
            run, version, generation = self._pending.popleft()
            if not self._queue.is_queued(run.uid) or not self._runtime.leads():
                continue
            message = (
                f"queued: the operator executes at most {self._queue.limit} runs at once "
                "(STEPLINE_RUN_LIMIT), and each Workflow at most its spec.concurrency"
            )
            status = build_pending_status(message, generation=generation)
            try:
                await self._runtime.kube.patch_status(
                    API_VERSION, "WorkflowRun", run.namespace, run.name, status,
                    resource_version=version or None,
                )  # fmt: skip
            except KubeApiError as exc:  # moved on, gone, or not now: the phase is a courtesy
                logger.debug("run %s/%s: Pending not written: %s", run.namespace, run.name, exc)

    def _stays_parked(self, uid: str, spec: Mapping[str, Any]) -> bool:
        """The run is parked here and stays so (a decision, its deadline or a resume wakes
        it); a parked run to cancel or resume is unparked, for a task to go on with it."""
        parked = self._parked.get(uid)
        if parked is None:
            return False
        going_on = spec.get("cancel") or (
            parked.reason is WaitReasonLabel.SUSPENDED and not spec.get("suspend")
        )
        if not going_on:
            return True
        self._unpark(uid)
        return False

    def _park_from_status(self, uid: str, body: Mapping[str, Any]) -> bool:
        """Parks the run as its status says it waits (`parking`), with no task, parse or
        write; False when a task is to look at it."""
        parking = read_parking(body, now=datetime.now(UTC), decided=self._decided)
        if parking is None:
            return False
        metadata, spec = body.get("metadata") or {}, body.get("spec") or {}
        namespace, name = metadata.get("namespace") or "", metadata.get("name") or ""
        self._park_as(uid, namespace, name, spec.get("workflowRef") or "", parking)
        return True

    def wake(self, namespace: str, name: str) -> None:
        """A parked run of that name goes on (a person decided its approval step): it is read
        again and given a task. Nothing for a run that is not parked here."""
        if not self._runtime.leads():
            return
        uid = next(
            (uid for uid, parked in self._parked.items() if (parked.namespace, parked.name) == (
                namespace, name)),
            None,
        )  # fmt: skip
        if uid is not None:
            self._wake(uid)

    def _wake(self, uid: str) -> None:
        parked = self._unpark(uid)
        if parked is None or uid in self._tasks:
            return
        work = self._read_and_start(uid, parked.namespace, parked.name)
        self._spawn(uid, work, name=f"wake run {parked.name}")

    async def _read_and_start(self, uid: str, namespace: str, name: str) -> None:
        """Reads the run again and hands over to its own task (`follow_event`); a run that gets
        no task (gone, finished, parked or queued again) gives its turn to the next one."""
        body: dict[str, Any] | None = None
        try:
            body = await self._runtime.kube.get(API_VERSION, "WorkflowRun", namespace, name)
        except KubeApiError as exc:
            logger.warning("run %s/%s: could not be read to start (%s); again in %.0f s",
                           namespace, name, exc, RETRY_SECONDS)  # fmt: skip
            loop = asyncio.get_running_loop()
            loop.call_later(RETRY_SECONDS, self._retry_start, uid, namespace, name)
        finally:
            self._tasks.pop(uid, None)  # this reading task hands over to the run's own
        if body is not None:
            self.follow_event("MODIFIED", body)
        if uid not in self._tasks:
            self._queue.done(uid)
            self._start_queued()

    def _retry_start(self, uid: str, namespace: str, name: str) -> None:
        if self._runtime.leads() and uid not in self._tasks and uid not in self._parked:
            self._spawn(uid, self._read_and_start(uid, namespace, name), name=f"read run {name}")

    def _start(self, run: WorkflowRun) -> None:
        uid = run.metadata.uid or ""
        cancel, suspend = asyncio.Event(), asyncio.Event()
        if run.spec.cancel:
            cancel.set()
        if run.spec.suspend:
            suspend.set()
        self._suspends[uid] = suspend
        work = self._drive(run, cancel, suspend)
        self._spawn(uid, work, name=f"run {run.metadata.name}", cancel=cancel)

    def _park(self, run: WorkflowRun, parked: Parked) -> bool:
        """Parks the run its task stopped (module docstring); True, for `_drive` to say so."""
        metadata = run.metadata
        self._park_as(metadata.uid or "", metadata.namespace or "", metadata.name or "",
                      run.spec.workflow_ref, Parking(parked.reason, parked.deadline))  # fmt: skip
        return True

    def _park_as(
        self, uid: str, namespace: str, name: str, workflow: str, parking: Parking
    ) -> None:
        self._unpark(uid)
        entry = _ParkedRun(uid, namespace, name, workflow, parking.reason)
        if parking.deadline is not None:
            delay = max((parking.deadline - datetime.now(UTC)).total_seconds(), 0.0)
            entry.timer = asyncio.get_running_loop().call_later(delay, self._wake, uid)
        self._parked[uid] = entry
        self._runtime.metrics.run_parked(namespace=namespace, workflow=workflow,
                                         reason=parking.reason)  # fmt: skip

    def _decided(self, namespace: str, run: str, step: str, since: datetime) -> bool:
        """A person decided that wait: the run's task takes the decision."""
        return (
            self._runtime.approvals.decision_for(namespace, run, step, waiting_since=since)
            is not None
        )

    def _unpark(self, uid: str) -> _ParkedRun | None:
        parked = self._parked.pop(uid, None)
        if parked is None:
            return None
        if parked.timer is not None:
            parked.timer.cancel()
        self._runtime.metrics.run_unparked(namespace=parked.namespace, workflow=parked.workflow,
                                           reason=parked.reason)  # fmt: skip
        return parked

    @property
    def parked(self) -> int:
        """Runs parked here: stopped before their end, holding no task."""
        return len(self._parked)

    async def shutdown(self) -> None:
        """Stops every task without touching status: the next start resumes the runs."""
        for uid in list(self._parked):
            self._unpark(uid)
        for run in self._queue.clear():
            self._count_unqueued(run)
        self._pending.clear()
        for recheck in list(self._rechecks):
            recheck.cancel()
        tasks = [task for task, _ in self._tasks.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(
        self,
        uid: str,
        work: Awaitable[bool | None],
        *,
        name: str,
        cancel: asyncio.Event | None = None,
    ) -> None:
        task = asyncio.create_task(self._supervise(uid, work), name=name)
        self._tasks[uid] = (task, cancel or asyncio.Event())

    async def _supervise(self, uid: str, work: Awaitable[bool | None]) -> None:
        task = asyncio.current_task()
        try:
            stopped = await work  # None: it ended; True: parked; False: left to the leader
            if stopped is None and self._owns(uid, task):
                self._finished[uid] = None
                if len(self._finished) > FINISHED_MEMORY:
                    self._finished.popitem(last=False)
        finally:
            # A reading task (`_read_and_start`) has handed the run to a task of its own by
            # now: that one is not this task's to clear.
            if self._owns(uid, task):
                self._tasks.pop(uid, None)
                self._suspends.pop(uid, None)
                self._queue.done(uid)
                self._start_queued()

    def _owns(self, uid: str, task: asyncio.Task[Any] | None) -> bool:
        entry = self._tasks.get(uid)
        return entry is not None and entry[0] is task

    async def _drive(
        self, run: WorkflowRun, cancel: asyncio.Event, suspend: asyncio.Event
    ) -> bool | None:
        """Drives the run to its end, or to its failure (module docstring): None; True when it
        is parked instead, False when it was left to the leader."""
        with logging_trace(trace_id_of(run)):
            return await self._drive_logged(run, cancel, suspend)

    async def _drive_logged(
        self, run: WorkflowRun, cancel: asyncio.Event, suspend: asyncio.Event
    ) -> bool | None:
        progress, failures = RunProgress(), 0
        current: WorkflowRun | None = run
        while current is not None:
            try:
                parked = await drive_run(
                    self._runtime, current, cancel=cancel, find_workflow=self._find_workflow,
                    progress=progress, suspend=suspend,
                )  # fmt: skip
                return None if parked is None else self._park(current, parked)
            except NotLeadingError:
                self._log_handed_over(run)
                self._recheck_after_handover(run)
                return False
            except KubeApiError as exc:
                if not exc.retryable:
                    await self._fail(run, f"its status could not be written: {exc}")
                    return None
                delay = backoff(RETRY_SECONDS, failures, maximum=MAX_RETRY_SECONDS)
                failures += 1
                logger.warning(
                    "run %s/%s: could not write its status (%s); resuming it in %.0f s",
                    run.metadata.namespace, run.metadata.name, exc, delay,
                )  # fmt: skip
                await asyncio.sleep(delay)
            except Exception as exc:  # a defect of ours: fail the run, never loop on it
                logger.exception("run %s/%s failed", run.metadata.namespace, run.metadata.name)
                await self._fail(run, f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARACTERS])
                return None
            try:
                current = await self._reread(run)
            except KubeApiError as exc:  # refused, not unavailable: _reread waits those out
                await self._fail(run, f"it could not be read again: {exc}")
                return None
        return None

    def _recheck_after_handover(self, run: WorkflowRun) -> None:
        """A run left to the leader because this replica's fence lapsed: if the Lease was
        renewed meanwhile (the fence lapsed without losing the lead, say the loop stalled),
        there is no takeover to resume it, so this replica does, once it sees it still leads."""
        uid, namespace, name = (
            run.metadata.uid or "",
            run.metadata.namespace or "",
            run.metadata.name or "",
        )

        async def recheck() -> None:
            await asyncio.sleep(HANDOVER_RECHECK_SECONDS)
            if not self._runtime.leads() or uid in self._tasks or uid in self._parked:
                return
            self._spawn(uid, self._read_and_start(uid, namespace, name), name=f"resume run {name}")

        self._rechecks.add(task := asyncio.create_task(recheck(), name=f"recheck run {name}"))
        task.add_done_callback(self._rechecks.discard)

    @staticmethod
    def _log_handed_over(run: WorkflowRun) -> None:
        namespace, name = run.metadata.namespace, run.metadata.name
        logger.info("run %s/%s: left to the leader (this replica stopped leading)", namespace, name)

    async def _reread(self, run: WorkflowRun) -> WorkflowRun | None:
        """The run as the API server holds it, once it answers; None when it is gone, replaced
        by another of the same name, or finished."""
        namespace, name = run.metadata.namespace or "", run.metadata.name or ""
        body = await self._until_done(
            lambda: self._runtime.kube.get(API_VERSION, "WorkflowRun", namespace, name),
        )
        if body is None or body.get("metadata", {}).get("uid") != run.metadata.uid:
            return None
        if body.get("status", {}).get("phase") in FINISHED_PHASES:
            return None
        return WorkflowRun.from_body(body)

    async def _fail(self, run: WorkflowRun, detail: str) -> None:
        message = f"the operator failed executing this run ({detail}); see its log"
        metadata = run.metadata.to_wire()
        await self._refuse(metadata, Reason.INTERNAL_ERROR, message)

    async def _refuse(self, metadata: Mapping[str, Any], reason: Reason, message: str) -> None:
        """Fails the run for `reason`: its status and a Warning Event. Retried until the API
        server takes it, or the run is gone or finished; a refusal of the write itself is
        logged. Written on the version it read (`metadata`), else on the run's current one if
        it is still unfinished: never over another writer's end of the run."""
        namespace, name = metadata.get("namespace", ""), metadata.get("name", "")
        logger.warning("run %s/%s failed: %s", namespace, name, message)
        status = build_failed_status(reason, message, generation=metadata.get("generation"))
        kube, version = self._runtime.kube, metadata.get("resourceVersion")

        async def write() -> dict[str, Any] | None:
            nonlocal version
            try:
                return await kube.patch_status(
                    API_VERSION, "WorkflowRun", namespace, name, status, resource_version=version
                )
            except KubeConflictError:
                current = await kube.get(API_VERSION, "WorkflowRun", namespace, name) or {}
                if (current.get("metadata") or {}).get("uid") != metadata.get("uid") or (
                    (current.get("status") or {}).get("phase") in FINISHED_PHASES
                ):
                    return None  # gone, or ended by another writer
                version = current["metadata"].get("resourceVersion")
                raise  # written again, on that version

        try:
            written = await self._until_done(write, gone_is_done=True)
        except NotLeadingError:
            return  # the leader fails it
        except KubeApiError as exc:
            logger.error("run %s/%s: could not write its failure: %s", namespace, name, exc)
            return
        if written is not None:
            involved = {"apiVersion": API_VERSION, "kind": "WorkflowRun", "namespace": namespace,
                        "name": name, "uid": metadata.get("uid")}  # fmt: skip
            self._runtime.events.warn(involved, reason="Failed", message=message)

    async def _until_done(
        self,
        request: Callable[[], Awaitable[dict[str, Any] | None]],
        *,
        gone_is_done: bool = False,
    ) -> dict[str, Any] | None:
        """`request()`'s answer, retried with backoff while the API server cannot answer; None
        if the object is gone (404). Other refusals raise."""
        failures = 0
        while True:
            try:
                return await request()
            except KubeApiError as exc:
                if gone_is_done and exc.status == 404:
                    return None
                if not exc.retryable:
                    raise
                await asyncio.sleep(backoff(RETRY_SECONDS, failures, maximum=MAX_RETRY_SECONDS))
                failures += 1


def build_pending_status(message: str, *, generation: int | None) -> dict[str, Any]:
    """The status of a run queued for its turn: phase Pending, Succeeded Unknown."""
    condition = set_condition(
        [], condition_type=ConditionType.SUCCEEDED, status=ConditionStatus.UNKNOWN,
        reason=Reason.PENDING, message=message, observed_generation=generation,
    )[0]  # fmt: skip
    return {
        "observedGeneration": generation,
        "phase": RunPhase.PENDING,
        "conditions": [condition.to_wire()],
    }


def build_failed_status(reason: Reason, message: str, *, generation: int | None) -> dict[str, Any]:
    """The status of a run that fails before, or instead of, executing on: phase Failed and the
    Succeeded condition False for `reason`. Recorded steps are left as they are."""
    now = datetime.now(UTC).replace(microsecond=0)
    condition = set_condition(
        [],
        condition_type=ConditionType.SUCCEEDED,
        status=ConditionStatus.FALSE,
        reason=reason,
        message=message,
        observed_generation=generation,
        now=now,
    )[0]
    return {
        "observedGeneration": generation,
        "phase": RunPhase.FAILED,
        "finishedAt": now.isoformat(),
        "currentStep": None,
        "conditions": [condition.to_wire()],
    }
