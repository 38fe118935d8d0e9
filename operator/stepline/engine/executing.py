"""The executor: runs a plan for one input, independent steps side by side, and says how the
run ended.

    outcome = await executor.execute(plan, RunRequest(uid=run_uid, input=run_input))

A step starts once every step it depends on (`PlannedStep.depends_on`) is Succeeded or Skipped;
the steps ready at once start in plan order, at most `Plan.parallelism` of one run in flight. A
chain (no `dependsOn`) so runs one step after another, as does any plan at parallelism 1.

Per step: skip it if its `when` is false (phase Skipped, no output); compute its input (without
an `input` expression, without touching CEL: the run input for a step that depends on none, its
dependency's output for a step that depends on one — or, when that one was skipped, what it
would have been given — and for a join, an object of its dependencies' outputs by name; with an
`input` expression, that expression over `input` and `steps`); find its ServiceStep in the
directory and make sure it is ready (wait for it, bounded by its timeout and the run's deadline,
or fail at once with reason NoReadyEndpoints, as `Unready` says); resolve its endpoint; call it
through the `StepClient` (retries, backoff, headers); record the result. The run's output is
the workflow's `output` expression, or the output of the last step in plan order that produced
one.

When a step fails, nothing new starts, and no step in flight is tried again; the attempts in
flight run to their end (a call that was sent cannot be taken back: its outcome is recorded, a
success as Succeeded, for whoever undoes it), the steps that would have retried end Cancelled
("not retried"), and the run fails naming the first step that failed.

Failures do not raise: `execute()` returns a `RunOutcome` (`outcomes`). It raises only what the
caller gave it: an exception from `RunStore.save()`, or `asyncio.CancelledError` when the task
itself is cancelled — an operator shutting down, which must leave the run to resume, not mark it
Cancelled. Cancelling a run is the `cancel` event: honoured before each step and while waiting
(backoff, readiness), never in the middle of a call.

Checkpoints (`store.save`): after steps end, before the steps they make ready start, recording
those as Running — at most one save in flight per run, the ends that come meanwhile going with
the next. A resumed run calls a step recorded Running again, under its key, numbered after at
least one attempt (it may have been in flight).

Timing: `deadline_seconds` bounds the whole execution; each call's timeout is cut to what is
left of it. No kopf, no Kubernetes: the caller hands in the directory, the store, the transport.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from stepline.api import MAX_FOREACH_ITEMS, Reason, ServiceStep, StepError, StepPhase, StepRecord
from stepline.engine.balancing import Balancer
from stepline.engine.calling import MAX_MESSAGE_CHARACTERS, CallResult, StepCall, StepClient
from stepline.engine.checkpoints import Checkpoint, RunStore, StepState, restore_states
from stepline.engine.clocks import SYSTEM_CLOCK, Clock, unless_cancelled
from stepline.engine.directories import StepDirectory, wait_for_ready_step
from stepline.engine.elements import ElementProgress
from stepline.engine.encoding import InvalidJsonError, encode_json
from stepline.engine.endpoints import NO_OVERRIDES, resolve_endpoint, resolve_route
from stepline.engine.errors import RunCancelledError, StepFailedError
from stepline.engine.expressions import (
    ExpressionError,
    ExpressionEvaluationError,
    build_activation,
)
from stepline.engine.loads import StepLoads
from stepline.engine.observing import NULL_OBSERVER, RunObservation, RunObserver, StepObservation
from stepline.engine.outcomes import RunOutcome, RunStatus
from stepline.engine.planning import Plan, PlannedStep
from stepline.engine.tracing import build_idempotency_key, derive_trace_id
from stepline.httpclient.transports import Transport

# A forEach step's element ends are saved at most this often (or the workflow's checkpoint
# interval, when longer), besides the saves between steps: 1,000 elements, not 1,000 writes.
PROGRESS_CHECKPOINT_SECONDS = 1.0


class Unready(StrEnum):
    """What to do when a step's ServiceStep has no ready replica."""

    WAIT = "Wait"  # wait until it is ready, at most the step's timeout (and the run's deadline)
    FAIL = "Fail"  # fail the step at once, reason NoReadyEndpoints


@dataclass(frozen=True, slots=True)
class RunRequest:
    """One run to execute.

    `uid` keys the idempotency of every call (a WorkflowRun's metadata.uid; for invoke, a fresh
    UUID). `resume_from` holds the step records of a checkpoint to resume; `started_at` the time
    the run first started, when resuming; `interrupted_step` a step that checkpoint says was
    being called (its `currentStep`, as operators before parallel steps wrote it), whose next
    call is numbered after at least one attempt, as is that of any step recorded Running.
    `trace_id` (32 hex digits) overrides the trace id derived from `uid`.
    """

    uid: str
    input: Any
    deadline_seconds: float | None = None
    trace_id: str | None = None
    started_at: datetime | None = None
    resume_from: Sequence[StepRecord] = ()
    interrupted_step: str | None = None
    # Asked before each step call's attempt; no: NotLeadingError (`calling`). None: always.
    may_call: Callable[[], bool] | None = None


class _Run:
    """The mutable state of one execution."""

    __slots__ = (
        "clock", "deadline", "interrupted", "order", "outputs", "plan", "request", "saved_at",
        "started", "started_at", "states", "steps", "store", "trace_id",
    )  # fmt: skip

    def __init__(
        self, plan: Plan, request: RunRequest, *, clock: Clock, store: RunStore | None = None
    ) -> None:
        self.plan = plan
        self.request = request
        self.clock = clock
        self.store = store
        self.saved_at = clock.monotonic()
        self.trace_id = request.trace_id or derive_trace_id(request.uid)
        self.started = clock.monotonic()
        self.started_at = request.started_at or clock.now()
        limit = request.deadline_seconds
        self.deadline = None if limit is None else self.started + limit
        self.steps = {step.name: step for step in plan.steps}
        self.states = restore_states(self.steps, request.resume_from)
        self.order = tuple(self.states.values())
        self.outputs = {
            state.name: state.output for state in self.order if state.phase is StepPhase.SUCCEEDED
        }
        # Steps that may have been in flight when the run stopped: their next call is attempt 2
        # or more.
        self.interrupted = {
            record.name for record in request.resume_from if record.phase is StepPhase.RUNNING
        }
        if request.interrupted_step is not None:
            self.interrupted.add(request.interrupted_step)

    def last_output(self, default: Any) -> Any:
        """The output of the last step in plan order that produced one."""
        for state in reversed(self.order):
            if state.phase is StepPhase.SUCCEEDED:
                return state.output
        return default

    def default_input(self, step: PlannedStep) -> Any:
        """What a step without an `input` expression is given (the module docstring)."""
        while len(step.depends_on) == 1:
            dependency = self.states[step.depends_on[0]]
            if dependency.phase is StepPhase.SUCCEEDED:
                return dependency.output
            step = self.steps[dependency.name]  # skipped: what it would have been given
        if not step.depends_on:
            return self.request.input
        return {
            name: self.states[name].output
            for name in step.depends_on
            if self.states[name].phase is StepPhase.SUCCEEDED
        }

    def ready_steps(self) -> list[PlannedStep]:
        """The steps not started whose dependencies are all Succeeded or Skipped, in plan order."""
        return [
            step
            for step in self.steps.values()
            if self.states[step.name].phase is StepPhase.PENDING
            and all(self.states[name].settled for name in step.depends_on)
        ]

    @property
    def done(self) -> bool:
        return all(state.settled for state in self.order)

    def activation(self) -> dict[str, Any]:
        phases = {name: state.phase.value for name, state in self.states.items()}
        return build_activation(run_input=self.request.input, phases=phases, outputs=self.outputs)

    async def save(self) -> None:
        """Saves the checkpoint, if there is a store."""
        if self.store is not None:
            self.saved_at = self.clock.monotonic()
            await self.store.save(self.checkpoint())

    async def save_progress(self) -> float | None:
        """Saves the checkpoint unless one was saved within `PROGRESS_CHECKPOINT_SECONDS` (or
        the workflow's checkpoint interval, when longer): a forEach step's elements end often.
        None when saved (or there is no store); else the seconds until a save is due."""
        if self.store is None:
            return None
        interval = max(PROGRESS_CHECKPOINT_SECONDS, self.plan.checkpoint_interval)
        due_in = interval - (self.clock.monotonic() - self.saved_at)
        if due_in > 0:
            return due_in
        await self.save()
        return None

    def checkpoint(self) -> Checkpoint:
        records = tuple(state.to_record() for state in self.order)
        running = [state.name for state in self.order if state.phase is StepPhase.RUNNING]
        return Checkpoint(
            run_uid=self.request.uid,
            started_at=self.started_at,
            current_step=describe_running(running),
            steps=records,
        )


class Executor:
    """Executes runs; one executor serves every run of every workflow of the process.

    `overrides` maps steps to base URLs for local runs (`endpoints.resolve_endpoint`).
    `balancer`, when given, spreads a deployed step's calls over its ready replicas
    (`balancing`). `loads`, when given, counts each step's calls in flight (`loads`). `jitter`
    and `clock` exist for tests: they fix the backoff and make waits instant.
    """

    def __init__(
        self,
        *,
        transport: Transport,
        directory: StepDirectory,
        overrides: Mapping[str, str] = NO_OVERRIDES,
        unready: Unready = Unready.WAIT,
        observer: RunObserver = NULL_OBSERVER,
        clock: Clock = SYSTEM_CLOCK,
        jitter: Callable[[], float] = random.random,
        balancer: Balancer | None = None,
        loads: StepLoads | None = None,
    ) -> None:
        self._client = StepClient(
            transport, clock=clock, jitter=jitter, balancer=balancer, loads=loads
        )
        self._loads = loads
        self._directory = directory
        self._overrides = overrides
        self._unready = unready
        self._observer = observer
        self._clock = clock

    async def execute(
        self,
        plan: Plan,
        request: RunRequest,
        *,
        store: RunStore | None = None,
        cancel: asyncio.Event | None = None,
    ) -> RunOutcome:
        """Runs `plan` for `request` to its end; see the module docstring."""
        run = _Run(plan, request, clock=self._clock, store=store)
        try:
            await self._run_steps(run, cancel=cancel)
            outcome = self._succeed(run)
        except StepFailedError as exc:
            status = RunStatus.TIMED_OUT if exc.timed_out else RunStatus.FAILED
            reason = Reason.TIMED_OUT if exc.timed_out else Reason.STEP_FAILED
            outcome = self._end(run, status, reason, exc.error.message, error=exc.error)
        except RunCancelledError as exc:
            message = f"run cancelled at step {exc.step!r}"
            outcome = self._end(run, RunStatus.CANCELLED, Reason.CANCELLED, message, step=exc.step)
        self._observe_run(run, outcome)
        return outcome

    async def _run_steps(self, run: _Run, *, cancel: asyncio.Event | None) -> None:
        """Starts the ready steps, up to the plan's parallelism, as steps end (module
        docstring); raises the first failure once every step in flight has ended."""
        halt = _Halt(cancel)
        running: dict[asyncio.Future[None], str] = {}
        failure: Exception | None = None
        unsaved = False  # steps ended since the last save
        try:
            while True:
                if failure is None and not halt.is_set():
                    ready = run.ready_steps()[: run.plan.parallelism - len(running)]
                    if ready or (unsaved and running):  # (ends that start nothing: saved alone)
                        await self._checkpoint(run, ready)
                        unsaved = False
                    if len(ready) == 1 and not running:
                        # One step at a time (a chain): awaited here, no task to make.
                        error = await _ended(self._run_step(run, ready[0], halt))
                        failure = self._settle(ready[0].name, error, halt)
                        unsaved = True
                        continue
                    for step in ready:
                        running[asyncio.ensure_future(self._run_step(run, step, halt))] = step.name
                if not running:
                    break
                ended, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for branch in ended:
                    settled = self._settle(running.pop(branch), branch.exception(), halt)
                    failure = failure or settled
                unsaved = True
        finally:
            if running:  # cancelled (the operator stops), or a save failed: stop every branch
                for branch in running:
                    branch.cancel()
                await asyncio.gather(*running, return_exceptions=True)
            halt.close()
        if failure is not None:
            raise failure
        if not run.done:  # cancelled between steps
            pending = next(state.name for state in run.order if not state.settled)
            raise RunCancelledError(step=pending)

    @staticmethod
    async def _checkpoint(run: _Run, steps: Sequence[PlannedStep]) -> None:
        """Marks `steps` Running and, unless no step has run yet, saves the checkpoint before
        they start: a restart then knows they may have been in flight."""
        started = any(state.phase is not StepPhase.PENDING for state in run.order)
        for step in steps:
            run.states[step.name].phase = StepPhase.RUNNING
        if started:
            await run.save()

    @staticmethod
    def _settle(step: str, error: BaseException | None, halt: _Halt) -> Exception | None:
        """What a step's end means for the run: None, or the failure that ends it (and halts
        the other steps)."""
        if error is None:
            return None
        if not isinstance(error, Exception):
            raise error
        if isinstance(error, RunCancelledError):  # the run is cancelled, or another step failed
            return error if halt.failed_step is None else None
        halt.fail(step)
        return error

    async def _run_step(self, run: _Run, step: PlannedStep, halt: _Halt) -> None:
        state = run.states[step.name]
        began = self._clock.monotonic()
        state.started_at = self._clock.now()
        cancel = halt.event
        try:
            if step.has_condition and not _should_run(run, step):
                self._finish(run, step, state, began, StepPhase.SKIPPED)
                return
            if step.for_each:
                output, attempts = await self._call_elements(run, step, halt)
                state.output = run.outputs[step.name] = output
                self._finish(run, step, state, began, StepPhase.SUCCEEDED, attempts=attempts)
                return
            body = _encode_input(run, step)
            service = await self._find_ready_step(run, step, cancel)
            sent = state.attempts
            if step.name in run.interrupted:
                sent = max(sent, 1)  # a call may have been in flight when the run stopped
            call = self._build_call(run, step, service, body, first_attempt=sent + 1)
            result = await self._client.call(call, cancel=cancel)
        except StepFailedError as exc:
            state.error = exc.error
            self._finish(run, step, state, began, StepPhase.FAILED, attempts=exc.attempts)
            raise
        except RunCancelledError as exc:
            if halt.failed_step is not None:
                message = f"not retried: step {halt.failed_step!r} failed the run"
                state.error = StepError(reason=Reason.CANCELLED, message=message)
            self._finish(run, step, state, began, StepPhase.CANCELLED, attempts=exc.attempts)
            raise
        state.output = run.outputs[step.name] = result.output
        self._finish(run, step, state, began, StepPhase.SUCCEEDED, attempts=result.attempts)

    async def _find_ready_step(
        self, run: _Run, step: PlannedStep, cancel: asyncio.Event | None
    ) -> ServiceStep:
        namespace = run.plan.namespace
        service = self._directory.find_step(namespace, step.step_ref)
        if service is None:
            message = f"step {step.name!r}: ServiceStep {namespace}/{step.step_ref} not found"
            raise _step_failure(Reason.STEP_NOT_FOUND, message)
        if self._directory.is_step_ready(service):
            return service
        if self._unready is Unready.FAIL:
            message = (
                f"step {step.name!r}: ServiceStep {namespace}/{step.step_ref} has no ready "
                "endpoints; not calling it"
            )
            raise _step_failure(Reason.NO_READY_ENDPOINTS, message)
        step_timeout = step.timeout_seconds or service.spec.timeout_seconds
        timeout = self._time_left(run, step_timeout)
        waiting = wait_for_ready_step(
            self._directory, namespace, step.step_ref, timeout=timeout, clock=self._clock
        )
        waited, ready = await unless_cancelled(waiting, cancel)
        if not waited:
            raise RunCancelledError(step=step.name, attempts=run.states[step.name].attempts)
        if ready is None:
            message = (
                f"step {step.name!r}: ServiceStep {namespace}/{step.step_ref} had no ready "
                f"endpoints within {timeout:.3g}s"
            )
            if timeout < step_timeout:  # the run's deadline, not the step's timeout, ended it
                error = StepError(reason=Reason.TIMEOUT, message=message + ", the run's time left")
                raise StepFailedError(error, attempts=0, timed_out=True)
            raise _step_failure(Reason.NO_READY_ENDPOINTS, message)
        return ready

    def _time_left(self, run: _Run, timeout: float) -> float:
        if run.deadline is None:
            return timeout
        return max(min(timeout, run.deadline - self._clock.monotonic()), 0.0)

    async def _call_elements(
        self, run: _Run, step: PlannedStep, run_halt: _Halt
    ) -> tuple[list[Any], int]:
        """A forEach step: one call per element, at most its parallelism in flight; the list of
        outputs in order, and the attempts of all. The first element that fails fails the step
        (no new element starts, those in flight end), its error naming the element."""
        state = run.states[step.name]
        items = _evaluate_items(run, step)
        elements = state.elements = state.elements or ElementProgress()
        elements.restart(len(items))
        service = await self._find_ready_step(run, step, run_halt.event) if items else None
        halt = _Halt(run_halt.event)  # set by the run's halt, or by a failed element
        pending = [index for index in range(len(items)) if index not in elements.outputs]
        pending.reverse()
        limit = step.element_parallelism or run.plan.parallelism
        running: dict[asyncio.Future[CallResult], int] = {}
        failure: tuple[int, StepFailedError] | None = None
        unsaved = False  # elements started or ended since the last save
        try:
            while True:
                while pending and len(running) < limit and not halt.is_set() and service:
                    index = pending.pop()
                    try:
                        call = self._element_call(run, step, service, items[index], index)
                    except StepFailedError as exc:  # its input expression failed on it
                        elements.fail(index, exc.error, 0)
                        failure = failure or (index, exc)
                        halt.fail(step.name)
                        break
                    elements.in_flight.add(index)
                    running[asyncio.ensure_future(self._client.call(call, cancel=halt.event))] = (
                        index
                    )
                    unsaved = True
                if not running:
                    break
                # Saved within a second of a change, and no more often (`save_progress`).
                due_in = await run.save_progress() if unsaved else None
                unsaved = due_in is not None
                ended, _ = await asyncio.wait(
                    running, timeout=due_in, return_when=asyncio.FIRST_COMPLETED
                )
                for task in ended:
                    failed = self._element_ended(elements, running.pop(task), task)
                    unsaved = True
                    if failed is not None and failure is None:
                        failure = failed
                        halt.fail(step.name)
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            halt.close()
        if failure is not None:
            index, first = failure
            message = f"element {index} of {len(items)}: {first.error.message}"
            error = first.error.model_copy(update={"message": message[:MAX_MESSAGE_CHARACTERS]})
            raise StepFailedError(error, attempts=elements.attempts, timed_out=first.timed_out)
        if len(elements.outputs) < len(items):  # the run was halted between elements
            raise RunCancelledError(step=step.name, attempts=elements.attempts)
        return elements.output_list(), elements.attempts

    def _element_call(
        self, run: _Run, step: PlannedStep, service: ServiceStep, item: Any, index: int
    ) -> StepCall:
        elements = run.states[step.name].elements
        interrupted = elements is not None and index in elements.interrupted
        body = _encode_element_input(run, step, item, index)
        call = self._build_call(run, step, service, body, first_attempt=2 if interrupted else 1)
        key = build_idempotency_key(run.request.uid, f"{step.name}/{index}")
        return dataclasses.replace(call, idempotency_key=key)

    @staticmethod
    def _element_ended(
        elements: ElementProgress, index: int, task: asyncio.Future[CallResult]
    ) -> tuple[int, StepFailedError] | None:
        """Records an element's end; its failure, if it failed."""
        elements.in_flight.discard(index)
        error = task.exception()
        if error is None:
            result = task.result()
            elements.succeed(index, result.output, result.attempts)
            return None
        if isinstance(error, StepFailedError):
            elements.fail(index, error.error, error.attempts)
            return index, error
        if isinstance(error, RunCancelledError):
            elements.attempts += error.attempts
            return None
        raise error

    def _build_call(
        self, run: _Run, step: PlannedStep, service: ServiceStep, body: bytes, *, first_attempt: int
    ) -> StepCall:
        return StepCall(
            step=step.name,
            url=resolve_endpoint(service, overrides=self._overrides),
            body=body,
            idempotency_key=build_idempotency_key(run.request.uid, step.name),
            trace_id=run.trace_id,
            timeout=step.timeout_seconds or self._step_timeout(service),
            retry=step.retry or service.spec.retry,
            deadline=run.deadline,
            first_attempt=first_attempt,
            route=resolve_route(service, overrides=self._overrides),
            load_key=(service.metadata.namespace or "", service.metadata.name or ""),
            may_call=run.request.may_call,
        )

    def _step_timeout(self, service: ServiceStep) -> float:
        """The step's `timeoutSeconds`, or with an adaptive timeout and enough calls observed,
        `multiplier` x their p99, at least `floorSeconds` and at most `timeoutSeconds`."""
        limit = float(service.spec.timeout_seconds)
        adaptive = service.spec.adaptive_timeout
        if adaptive is None or self._loads is None:
            return limit
        key = (service.metadata.namespace or "", service.metadata.name or "")
        p99 = self._loads.p99(key)
        if p99 is None:
            return limit
        return min(limit, max(adaptive.floor_seconds, adaptive.multiplier * p99))

    def _finish(
        self,
        run: _Run,
        step: PlannedStep,
        state: StepState,
        began: float,
        phase: StepPhase,
        *,
        attempts: int = 0,
    ) -> None:
        seconds = self._clock.monotonic() - began
        state.phase = phase
        state.attempts = max(attempts, state.attempts)
        state.finished_at = self._clock.now()
        state.duration_seconds = seconds
        error = state.error
        self._observer.observe_step(
            StepObservation(
                namespace=run.plan.namespace,
                workflow=run.plan.workflow,
                step=step.name,
                step_ref=step.step_ref,
                phase=phase,
                reason=error.reason if error else None,
                attempts=state.attempts,
                seconds=seconds,
                http_status=error.http_status if error else None,
            )
        )

    def _succeed(self, run: _Run) -> RunOutcome:
        try:
            output = _compute_output(run)
        except ExpressionError as exc:
            error = StepError(reason=Reason.EXPRESSION_ERROR, message=f"run output: {exc}")
            return self._end(
                run, RunStatus.FAILED, Reason.EXPRESSION_ERROR, error.message, error=error
            )
        called = sum(state.phase is StepPhase.SUCCEEDED for state in run.states.values())
        skipped = len(run.states) - called
        message = f"{called} steps succeeded" + (f", {skipped} skipped" if skipped else "")
        return self._end(run, RunStatus.SUCCEEDED, Reason.SUCCEEDED, message, output=output)

    def _end(
        self,
        run: _Run,
        status: RunStatus,
        reason: Reason,
        message: str,
        *,
        output: Any = None,
        step: str | None = None,
        error: StepError | None = None,
    ) -> RunOutcome:
        finished_at = self._clock.now()
        if run.request.started_at is None:
            duration = self._clock.monotonic() - run.started
        else:
            duration = max((finished_at - run.started_at).total_seconds(), 0.0)
        failed = step or next(
            (name for name, state in run.states.items() if state.phase is StepPhase.FAILED), None
        )
        return RunOutcome(
            status=status,
            reason=reason,
            message=message,
            started_at=run.started_at,
            finished_at=finished_at,
            duration_seconds=duration,
            output=output,
            step=failed,
            error=error,
            states=tuple(run.states.values()),
        )

    def _observe_run(self, run: _Run, outcome: RunOutcome) -> None:
        self._observer.observe_run(
            RunObservation(
                namespace=run.plan.namespace,
                workflow=run.plan.workflow,
                status=outcome.status,
                reason=outcome.reason,
                seconds=self._clock.monotonic() - run.started,
                resumed=bool(run.request.resume_from),
            )
        )


def _should_run(run: _Run, step: PlannedStep) -> bool:
    try:
        return run.plan.expressions.should_run(step.name, run.activation())
    except ExpressionError as exc:
        raise _expression_failure(step, exc) from exc


def _encode_input(run: _Run, step: PlannedStep) -> bytes:
    """The JSON sent to `step`: its default input (the module docstring), or the value of its
    `input` expression."""
    if not step.has_input:
        payload = run.default_input(step)
    else:
        try:
            payload = run.plan.expressions.evaluate_input(step.name, run.activation(), default=None)
        except ExpressionError as exc:
            raise _expression_failure(step, exc) from exc
    try:
        return encode_json(payload)
    except InvalidJsonError as exc:  # only an `input` expression can compute such a value
        message = f"step {step.name!r}: its input {exc}"
        raise _step_failure(Reason.EXPRESSION_ERROR, message) from exc


def _evaluate_items(run: _Run, step: PlannedStep) -> list[Any]:
    """A forEach step's list; InvalidItems when it is none, or too long."""
    try:
        items = run.plan.expressions.evaluate_items(step.name, run.activation())
    except ExpressionError as exc:
        raise _expression_failure(step, exc) from exc
    where = f"{run.plan.expressions.items[step.name].field} (step {step.name!r})"
    if not isinstance(items, list):
        kind = "a map" if isinstance(items, dict) else f"{json_kind(items)}"
        raise _step_failure(Reason.INVALID_ITEMS, f"{where}: must be a list, not {kind}")
    if len(items) > MAX_FOREACH_ITEMS:
        message = f"{where}: {len(items)} elements, more than the {MAX_FOREACH_ITEMS} allowed"
        raise _step_failure(Reason.INVALID_ITEMS, message)
    return items


def json_kind(value: Any) -> str:
    """'a string', 'a number', … for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a bool"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"


def _encode_element_input(run: _Run, step: PlannedStep, item: Any, index: int) -> bytes:
    """The JSON sent for one element: `item`, or the step's `input` over item and index."""
    if not step.has_input:
        payload = item
    else:
        activation = {**run.activation(), "item": item, "index": index}
        try:
            payload = run.plan.expressions.evaluate_input(step.name, activation, default=None)
        except ExpressionError as exc:
            raise _expression_failure(step, exc) from exc
    try:
        return encode_json(payload)
    except InvalidJsonError as exc:
        message = f"step {step.name!r}: element {index}'s input {exc}"
        raise _step_failure(Reason.EXPRESSION_ERROR, message) from exc


def _compute_output(run: _Run) -> Any:
    default = run.last_output(default=None)
    if not run.plan.has_output:
        return default
    return run.plan.expressions.evaluate_output(run.activation(), default=default)


def _expression_failure(step: PlannedStep, exc: ExpressionError) -> StepFailedError:
    """InvalidInput when the expression reads the run input alone (the caller's data lacks what
    it needs), ExpressionError otherwise (a step's output, or the expression, is to blame)."""
    blames_input = isinstance(exc, ExpressionEvaluationError) and exc.blames_input
    reason = Reason.INVALID_INPUT if blames_input else Reason.EXPRESSION_ERROR
    return _step_failure(reason, f"step {step.name!r}: {exc}")


def _step_failure(reason: Reason, message: str) -> StepFailedError:
    error = StepError(reason=reason, message=message[:MAX_MESSAGE_CHARACTERS])
    return StepFailedError(error, attempts=0)


async def _ended(step: Awaitable[None]) -> BaseException | None:
    """How a step awaited in place ended: None, or its exception (a cancellation propagates)."""
    try:
        await step
    except Exception as exc:
        return exc
    return None


class _Halt:
    """A run's stop for its steps: the caller's `cancel` (the run is cancelled), or the first
    step failure (`fail`); either way no step starts and no call is tried again."""

    __slots__ = ("_follower", "event", "failed_step")

    def __init__(self, cancel: asyncio.Event | None) -> None:
        self.failed_step: str | None = None
        self._follower: asyncio.Task[None] | None = None
        if cancel is None:
            self.event = asyncio.Event()
        elif cancel.is_set():
            self.event = cancel
        else:
            self.event = asyncio.Event()
            self._follower = asyncio.ensure_future(self._follow(cancel))

    async def _follow(self, cancel: asyncio.Event) -> None:
        await cancel.wait()
        self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()

    def fail(self, step: str) -> None:
        if self.failed_step is None:
            self.failed_step = step
        self.event.set()

    def close(self) -> None:
        if self._follower is not None:
            self._follower.cancel()


# The status's currentStep is a label-sized display of the steps in flight.
MAX_CURRENT_STEP_CHARACTERS = 63


def describe_running(names: Sequence[str]) -> str | None:
    """The steps in flight joined by commas, cut to 63 characters with `+N` for the rest."""
    if not names:
        return None
    shown: list[str] = []
    for index, name in enumerate(names):
        rest = len(names) - index - 1
        candidate = ",".join([*shown, name]) + (f",+{rest}" if rest else "")
        if len(candidate) > MAX_CURRENT_STEP_CHARACTERS and shown:
            return ",".join(shown) + f",+{len(names) - index}"
        shown.append(name)
    return ",".join(shown)
