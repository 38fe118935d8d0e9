"""One execution's state, as the executor, the forEach calls and the undoing share it.

`RunRequest` is what a caller asks for; `RunState` is what an execution keeps while it goes: the
steps' states (`checkpoints.StepState`), which may have been in flight when the run stopped, the
checkpoints it saves, and its undoing (`compensating`). `Halt` stops a run's steps: the caller's
cancel, or the first failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stepline.api import (
    ApprovalDecision,
    CompensationSummary,
    Reason,
    RunPhase,
    StepError,
    StepPhase,
    StepRecord,
)
from stepline.engine.calling import MAX_MESSAGE_CHARACTERS
from stepline.engine.checkpoints import Checkpoint, RunStore, restore_exactly, restore_states
from stepline.engine.clocks import Clock
from stepline.engine.compensating import CompensationProgress
from stepline.engine.errors import StepFailedError
from stepline.engine.expressions import ExpressionError, ExpressionEvaluationError, build_activation
from stepline.engine.planning import Plan, PlannedStep
from stepline.engine.tracing import derive_trace_id
from stepline.observability.tracing import TraceParent, TraceSpan

# A forEach step's element ends are saved at most this often (or the workflow's checkpoint
# interval, when longer), besides the saves between steps: 1,000 elements, not 1,000 writes.
PROGRESS_CHECKPOINT_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class RunRequest:
    """One run to execute.

    `uid` keys the idempotency of every call (a WorkflowRun's metadata.uid; for invoke, a fresh
    UUID). `resume_from` holds the step records of a checkpoint to resume; `started_at` the time
    the run first started, when resuming; `interrupted_step` a step that checkpoint says was
    being called (its `currentStep`, as operators before parallel steps wrote it), whose next
    call is numbered after at least one attempt, as is that of any step recorded Running.
    `trace_parent`, a caller's trace context, makes the run's span its child, in its trace;
    otherwise the run's trace id is derived from `uid`. `name` names the run in its spans (a
    WorkflowRun's name; empty for invoke).
    `key_uid`, when set, keys the idempotency instead of `uid`: a rerun's calls go under the
    first run's keys (`RunState.key_uid`).
    """

    uid: str
    input: Any
    deadline_seconds: float | None = None
    trace_parent: TraceParent | None = None
    name: str = ""
    key_uid: str | None = None
    started_at: datetime | None = None
    resume_from: Sequence[StepRecord] = ()
    interrupted_step: str | None = None
    # Asked before each step call's attempt; no: NotLeadingError (`calling`). None: always.
    may_call: Callable[[], bool] | None = None
    # A run resumed while it compensated: no step runs again; the undoing goes on from the
    # records, and the run ends as this summary's cause says.
    compensation: CompensationSummary | None = None
    # Set while the run is to be suspended: nothing new starts, and once the calls in flight
    # end the run is parked (RunStatus.SUSPENDED), to go on when resumed.
    suspend: asyncio.Event | None = None
    # What decides an approval step, asked with the step and when it began to wait: a person's
    # decision, or None (it waits on).
    decide: Callable[[str, datetime], ApprovalDecision | None] | None = None

    @property
    def resumed(self) -> bool:
        """It goes on from a checkpoint: steps recorded, or one recorded as being called."""
        return bool(self.resume_from) or self.interrupted_step is not None


class RunState:
    """The mutable state of one execution."""

    __slots__ = (
        "clock", "compensation", "deadline", "interrupted", "order", "outputs", "plan", "request",
        "saved_at", "span", "started", "started_at", "states", "steps", "store", "trace_id",
    )  # fmt: skip

    def __init__(
        self, plan: Plan, request: RunRequest, *, clock: Clock, store: RunStore | None = None
    ) -> None:
        self.plan = plan
        self.request = request
        self.clock = clock
        self.store = store
        self.saved_at = clock.monotonic()
        parent = request.trace_parent
        self.trace_id = parent.trace_id if parent is not None else derive_trace_id(request.uid)
        # The run's span, while it executes (`Executor.execute`); its calls' spans are children.
        self.span = TraceSpan(self.trace_id, "0" * 15 + "1", sampled=False)
        self.started = clock.monotonic()
        self.started_at = request.started_at or clock.now()
        limit = request.deadline_seconds
        self.deadline = None if limit is None else self.started + limit
        self.steps = {step.name: step for step in plan.steps}
        self.compensation: CompensationProgress | None = None
        if request.compensation is None:
            self.states = restore_states(self.steps, request.resume_from)
        else:
            records = {record.name: record for record in request.resume_from}
            self.states = {name: restore_exactly(name, records.get(name)) for name in self.steps}
            self.compensation = CompensationProgress.from_summary(request.compensation)
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

    @property
    def key_uid(self) -> str:
        """What every Idempotency-Key of the run starts with: `key_uid`, else `uid`."""
        return self.request.key_uid or self.request.uid

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
        if self.compensation is not None:
            return Checkpoint(
                run_uid=self.request.uid,
                started_at=self.started_at,
                current_step=None,
                steps=records,
                phase=RunPhase.COMPENSATING,
                compensation=self.compensation.to_summary(),
            )
        return Checkpoint(
            run_uid=self.request.uid,
            started_at=self.started_at,
            current_step=describe_running(running),
            steps=records,
        )


class Halt:
    """A run's stop for its steps: the caller's `cancel` (the run is cancelled), its `suspend`
    (the run is to be suspended), or the first step failure (`fail`); any of them, and no step
    starts and no call is tried again."""

    __slots__ = ("_followers", "_suspend", "event", "failed_step")

    def __init__(self, cancel: asyncio.Event | None, suspend: asyncio.Event | None = None) -> None:
        self.failed_step: str | None = None
        self._suspend = suspend
        self._followers: list[asyncio.Task[None]] = []
        self.event = asyncio.Event()
        for source in (cancel, suspend):
            if source is None:
                continue
            if source.is_set():
                self.event.set()
            else:
                self._followers.append(asyncio.ensure_future(self._follow(source)))

    async def _follow(self, source: asyncio.Event) -> None:
        await source.wait()
        self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()

    @property
    def suspending(self) -> bool:
        """Halted only because the run is to be suspended: what stopped goes on at resume."""
        return self._suspend is not None and self._suspend.is_set() and self.failed_step is None

    def fail(self, step: str) -> None:
        if self.failed_step is None:
            self.failed_step = step
        self.event.set()

    def close(self) -> None:
        for follower in self._followers:
            follower.cancel()


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


def expression_failure(step: PlannedStep, exc: ExpressionError) -> StepFailedError:
    """InvalidInput when the expression reads the run input alone (the caller's data lacks what
    it needs), ExpressionError otherwise (a step's output, or the expression, is to blame)."""
    blames_input = isinstance(exc, ExpressionEvaluationError) and exc.blames_input
    reason = Reason.INVALID_INPUT if blames_input else Reason.EXPRESSION_ERROR
    return step_failure(reason, f"step {step.name!r}: {exc}")


def step_failure(reason: Reason, message: str) -> StepFailedError:
    error = StepError(reason=reason, message=message[:MAX_MESSAGE_CHARACTERS])
    return StepFailedError(error, attempts=0)
