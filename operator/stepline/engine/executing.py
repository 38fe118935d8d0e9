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
import json
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from stepline.api import (
    ApprovalRecord,
    Reason,
    StepError,
    StepPhase,
)
from stepline.engine.balancing import Balancer
from stepline.engine.calling import MAX_MESSAGE_CHARACTERS
from stepline.engine.checkpoints import (
    RunStore,
    StepState,
)
from stepline.engine.clocks import SYSTEM_CLOCK, Clock
from stepline.engine.compensating import CompensationProgress, CompensationState, undo_order
from stepline.engine.directories import StepDirectory
from stepline.engine.encoding import InvalidJsonError, encode_json
from stepline.engine.endpoints import NO_OVERRIDES
from stepline.engine.errors import RunCancelledError, RunParkedError, StepFailedError
from stepline.engine.expressions import (
    ExpressionError,
)
from stepline.engine.foreach import call_elements
from stepline.engine.loads import StepLoads
from stepline.engine.observing import NULL_OBSERVER, RunObservation, RunObserver, StepObservation
from stepline.engine.outcomes import RunOutcome, RunStatus, StepWaiting
from stepline.engine.planning import Plan, PlannedStep
from stepline.engine.runstate import (
    Halt,
    RunRequest,
    RunState,
    expression_failure,
    step_failure,
)
from stepline.engine.stepcalls import StepCaller, Unready
from stepline.engine.undoing import Compensator, has_effects
from stepline.httpclient.transports import Transport
from stepline.observability.tracing import DISABLED, TraceSpan, Tracing, logging_trace


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
        tracing: Tracing = DISABLED,
    ) -> None:
        self._caller = StepCaller(
            transport=transport, directory=directory, overrides=overrides, unready=unready,
            clock=clock, jitter=jitter, balancer=balancer, loads=loads, tracing=tracing,
        )  # fmt: skip
        self._tracing = tracing
        self._compensator = Compensator(self._caller, clock=clock)
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
        run = RunState(plan, request, clock=self._clock, store=store)
        with (
            self._tracing.span(
                f"run {plan.workflow}", parent=request.trace_parent, trace_id=run.trace_id,
                attributes=run_span_attributes(run),
            ) as span,
            logging_trace(span.trace_id),
        ):  # fmt: skip
            run.span = span
            if run.compensation is not None:
                outcome = self._failure_being_undone(run, run.compensation)
            else:
                outcome = await self._execute_steps(run, cancel)
            if outcome.status in _UNDONE and any(step.compensation for step in plan.steps):
                outcome = await self._compensate(run, outcome)
            if span.recorded:
                describe_outcome(span, outcome)
            if not outcome.status.parked:
                self._observe_run(run, outcome)
            return outcome

    async def _execute_steps(self, run: RunState, cancel: asyncio.Event | None) -> RunOutcome:
        try:
            await self._run_steps(run, cancel=cancel)
            return self._succeed(run)
        except StepFailedError as exc:
            status = RunStatus.TIMED_OUT if exc.timed_out else RunStatus.FAILED
            reason = Reason.TIMED_OUT if exc.timed_out else Reason.STEP_FAILED
            return self._end(run, status, reason, exc.error.message, error=exc.error)
        except RunCancelledError as exc:
            message = f"run cancelled at step {exc.step!r}"
            return self._end(run, RunStatus.CANCELLED, Reason.CANCELLED, message, step=exc.step)
        except RunParkedError as exc:
            return self._park(run, exc.status)

    def _park(self, run: RunState, status: RunStatus) -> RunOutcome:
        """A run that stops before its end: suspended, or every step that could go on waits
        for a person."""
        if status is RunStatus.SUSPENDED:
            return self._end(run, status, Reason.SUSPENDED, "suspended (spec.suspend)")
        waits = tuple(
            StepWaiting(state.name, state.started_at or self._clock.now(), *state.waiting)
            for state in run.order
            if state.phase is StepPhase.WAITING and state.waiting is not None
        )
        names = ", ".join(repr(wait.step) for wait in waits)
        message = f"waiting for approval: step {names}"
        outcome = self._end(run, status, Reason.WAITING_FOR_APPROVAL, message)
        return dataclasses.replace(outcome, waits=waits)

    def _failure_being_undone(self, run: RunState, progress: CompensationProgress) -> RunOutcome:
        """The outcome a run resumed while compensating had, from its records and summary."""
        failed = next((state for state in run.order if state.phase is StepPhase.FAILED), None)
        known = {reason.value for reason in Reason}
        cause = Reason(progress.cause) if progress.cause in known else Reason.STEP_FAILED
        status = _CAUSE_STATUS.get(cause, RunStatus.FAILED)
        error = failed.error if failed is not None else None
        return self._end(run, status, cause, progress.message, error=error)

    async def _compensate(self, run: RunState, outcome: RunOutcome) -> RunOutcome:
        """Undoes the steps that succeeded (`compensating`); the outcome, with how it went."""
        targets = {
            name: state.finished_at
            for name, state in run.states.items()
            if run.steps[name].compensation is not None and has_effects(state)
        }
        if not targets:
            return outcome
        progress = run.compensation
        if progress is None:
            progress = run.compensation = CompensationProgress(
                cause=outcome.reason, message=outcome.message, steps=len(targets),
                started_at=self._clock.now(),
            )  # fmt: skip
        undone: list[str] = []
        failed_at: str | None = None
        for position, name in enumerate(undo_order(targets, list(run.steps)), start=1):
            state, step = run.states[name], run.steps[name]
            assert step.compensation is not None  # noqa: S101 (targets have one)
            undo = state.compensation = state.compensation or CompensationState(
                step_ref=step.compensation.step_ref, order=position
            )
            if failed_at is not None and not undo.settled:
                undo.phase, undo.reason = StepPhase.SKIPPED, Reason.EARLIER_COMPENSATION_FAILED
                continue
            if not undo.settled:
                await self._compensator.undo(run, step, state, undo)
                progress.succeeded += undo.phase is StepPhase.SUCCEEDED
                progress.failed += undo.phase is StepPhase.FAILED
            if undo.phase is StepPhase.SUCCEEDED:
                undone.append(name)
            elif undo.phase is StepPhase.FAILED:
                failed_at = name
        progress.phase = StepPhase.FAILED if failed_at else StepPhase.SUCCEEDED
        progress.finished_at = self._clock.now()
        reason = Reason.COMPENSATION_FAILED if failed_at else outcome.reason
        message = outcome.message + progress.describe(undone, failed_at)
        ended = self._end(run, outcome.status, reason, message, error=outcome.error)
        return dataclasses.replace(
            ended, output=outcome.output, step=outcome.step, compensation=progress.to_summary()
        )

    async def _run_steps(self, run: RunState, *, cancel: asyncio.Event | None) -> None:
        """Starts the ready steps, up to the plan's parallelism, as steps end (module
        docstring); raises the first failure once every step in flight has ended."""
        halt = Halt(cancel, run.request.suspend)
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
        if not run.done:
            raise _why_stopped(run, halt, cancelled=cancel is not None and cancel.is_set())

    @staticmethod
    async def _checkpoint(run: RunState, steps: Sequence[PlannedStep]) -> None:
        """Marks `steps` Running and, unless no step has run yet, saves the checkpoint before
        they start: a restart then knows they may have been in flight."""
        started = any(state.phase is not StepPhase.PENDING for state in run.order)
        for step in steps:
            run.states[step.name].phase = StepPhase.RUNNING
        if started:
            await run.save()

    @staticmethod
    def _settle(step: str, error: BaseException | None, halt: Halt) -> Exception | None:
        """What a step's end means for the run: None, or the failure that ends it (and halts
        the other steps)."""
        if error is None:
            return None
        if not isinstance(error, Exception):
            raise error
        if isinstance(error, RunCancelledError):  # the run is cancelled, or another step failed
            return error if halt.failed_step is None and not halt.suspending else None
        halt.fail(step)
        return error

    async def _run_step(self, run: RunState, step: PlannedStep, halt: Halt) -> None:
        state = run.states[step.name]
        began = self._clock.monotonic()
        if step.approval is None or state.started_at is None:  # a wait goes on from its start
            state.started_at = self._clock.now()
        cancel = halt.event
        try:
            if step.has_condition and not _should_run(run, step):
                self._finish(run, step, state, began, StepPhase.SKIPPED)
                return
            if step.approval is not None:
                self._decide(run, step, state, began)
                return
            if step.for_each:
                output, attempts = await call_elements(self._caller, run, step, halt)
                state.output = run.outputs[step.name] = output
                self._finish(run, step, state, began, StepPhase.SUCCEEDED, attempts=attempts)
                return
            body = _encode_input(run, step)
            service = await self._caller.find_ready_step(run, step, cancel)
            sent = state.attempts
            if step.name in run.interrupted:
                sent = max(sent, 1)  # a call may have been in flight when the run stopped
            call = self._caller.build_call(run, step, service, body, first_attempt=sent + 1)
            result = await self._caller.client.call(call, cancel=cancel)
        except StepFailedError as exc:
            state.error = exc.error
            self._finish(run, step, state, began, StepPhase.FAILED, attempts=exc.attempts)
            raise
        except RunCancelledError as exc:
            if halt.suspending:  # it goes on at resume, its attempts counted
                state.phase, state.attempts = StepPhase.PENDING, max(exc.attempts, state.attempts)
                raise
            if halt.failed_step is not None:
                message = f"not retried: step {halt.failed_step!r} failed the run"
                state.error = StepError(reason=Reason.CANCELLED, message=message)
            self._finish(run, step, state, began, StepPhase.CANCELLED, attempts=exc.attempts)
            raise
        state.output = run.outputs[step.name] = result.output
        self._finish(run, step, state, began, StepPhase.SUCCEEDED, attempts=result.attempts)

    def _decide(self, run: RunState, step: PlannedStep, state: StepState, began: float) -> None:
        """An approval step: a person's decision ends it (Succeeded with the decision as its
        output, or Failed: Rejected); none by its deadline fails it (ApprovalTimedOut); else it
        waits (phase Waiting), and the run is parked once nothing else can go on."""
        assert step.approval is not None  # noqa: S101 (only approval steps are decided)
        since = state.started_at or self._clock.now()
        deadline = since + timedelta(seconds=step.approval.timeout_seconds)
        decide = run.request.decide
        decision = decide(step.name, since) if decide is not None else None
        if decision is not None:
            state.approval = ApprovalRecord(
                decision="Approve" if decision.approve else "Reject", user=decision.user,
                uid=decision.uid or None, reason=decision.reason or None,
                decided_at=decision.decided_at, approval_name=decision.name,
            )  # fmt: skip
            if decision.approve:
                output = {"decision": "Approve", "user": decision.user, "reason": decision.reason}
                state.output = run.outputs[step.name] = output
                self._finish(run, step, state, began, StepPhase.SUCCEEDED)
                return
            message = f"step {step.name!r} rejected by {decision.user}: {decision.reason}"
            error = StepError(reason=Reason.REJECTED, message=message[:MAX_MESSAGE_CHARACTERS])
        elif self._clock.now() >= deadline:
            message = f"step {step.name!r}: no decision by {deadline.isoformat()}"
            error = StepError(reason=Reason.APPROVAL_TIMED_OUT, message=message)
        else:
            state.phase = StepPhase.WAITING
            state.waiting = (deadline, approval_message(run, step))
            return
        state.error = error
        self._finish(run, step, state, began, StepPhase.FAILED)
        raise StepFailedError(error, attempts=0)

    def _finish(
        self,
        run: RunState,
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
                trace_id=run.span.trace_id if run.span.recorded else None,
            )
        )

    def _succeed(self, run: RunState) -> RunOutcome:
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
        run: RunState,
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
            trace_id=run.span.trace_id,
        )

    def _observe_run(self, run: RunState, outcome: RunOutcome) -> None:
        undo = outcome.compensation
        self._observer.observe_run(
            RunObservation(
                namespace=run.plan.namespace,
                workflow=run.plan.workflow,
                status=outcome.status,
                reason=outcome.reason,
                seconds=self._clock.monotonic() - run.started,
                resumed=run.request.resumed,
                compensated=undo.succeeded if undo is not None else 0,
                compensations_failed=undo.failed if undo is not None else 0,
                trace_id=run.span.trace_id if run.span.recorded else None,
            )
        )


def run_span_attributes(run: RunState) -> dict[str, str | bool]:
    """What a run's span says of it from its start."""
    return {
        "stepline.namespace": run.plan.namespace,
        "stepline.workflow": run.plan.workflow,
        "stepline.run": run.request.name,
        "stepline.run_uid": run.request.uid,
        "stepline.resumed": run.request.resumed,
    }


def describe_outcome(span: TraceSpan, outcome: RunOutcome) -> None:
    """What a run's span records of how this execution of it ended."""
    span.set({"stepline.outcome": outcome.status.value, "stepline.reason": outcome.reason})
    if outcome.status in {RunStatus.FAILED, RunStatus.TIMED_OUT}:
        span.fail(outcome.message[:512])


# An approval step's question is cut to this (WaitRecord.message's limit).
MAX_APPROVAL_MESSAGE = 1024
# The outcomes that undo what the run did (compensation).
_UNDONE = frozenset({RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TIMED_OUT})


def _why_stopped(run: RunState, halt: Halt, *, cancelled: bool) -> Exception:
    """Why a run stopped before its end with nothing in flight and no failure: suspended,
    waiting for a person, or cancelled."""
    if halt.suspending and not cancelled:
        return RunParkedError(RunStatus.SUSPENDED)
    if not halt.is_set() and any(state.phase is StepPhase.WAITING for state in run.order):
        return RunParkedError(RunStatus.WAITING)
    pending = next(state.name for state in run.order if not state.settled)
    return RunCancelledError(step=pending)  # cancelled between steps


def approval_message(run: RunState, step: PlannedStep) -> str:
    """What an approval step asks: its `message` expression's value, else its name."""
    expression = run.plan.expressions.approval_messages.get(step.name)
    if expression is None:
        return f"approve step {step.name!r}"
    try:
        value = expression.evaluate(run.activation())
    except ExpressionError as exc:
        return f"approve step {step.name!r} (its message failed: {exc})"[:MAX_APPROVAL_MESSAGE]
    return (value if isinstance(value, str) else json.dumps(value))[:MAX_APPROVAL_MESSAGE]


def _should_run(run: RunState, step: PlannedStep) -> bool:
    try:
        return run.plan.expressions.should_run(step.name, run.activation())
    except ExpressionError as exc:
        raise expression_failure(step, exc) from exc


def _encode_input(run: RunState, step: PlannedStep) -> bytes:
    """The JSON sent to `step`: its default input (the module docstring), or the value of its
    `input` expression."""
    if not step.has_input:
        payload = run.default_input(step)
        if step.compensation is not None:
            run.states[step.name].sent_input = payload
    else:
        try:
            payload = run.plan.expressions.evaluate_input(step.name, run.activation(), default=None)
        except ExpressionError as exc:
            raise expression_failure(step, exc) from exc
    if step.compensation is not None:
        run.states[step.name].sent_input = payload
    try:
        return encode_json(payload)
    except InvalidJsonError as exc:  # only an `input` expression can compute such a value
        message = f"step {step.name!r}: its input {exc}"
        raise step_failure(Reason.EXPRESSION_ERROR, message) from exc


# The status a run that compensated ends in, by the cause of its undoing.
_CAUSE_STATUS = {
    Reason.CANCELLED: RunStatus.CANCELLED,
    Reason.TIMED_OUT: RunStatus.TIMED_OUT,
}


def _compute_output(run: RunState) -> Any:
    default = run.last_output(default=None)
    if not run.plan.has_output:
        return default
    return run.plan.expressions.evaluate_output(run.activation(), default=default)


async def _ended(step: Awaitable[None]) -> BaseException | None:
    """How a step awaited in place ended: None, or its exception (a cancellation propagates)."""
    try:
        await step
    except Exception as exc:
        return exc
    return None
