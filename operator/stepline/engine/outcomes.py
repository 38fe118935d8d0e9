"""How a run ended: the `RunOutcome` that `Executor.execute()` returns instead of raising.

Callers map it, and nothing else, to what they report:

    status      phase      condition reason         invoke answers
    Succeeded   Succeeded  Succeeded                200 with `output`
    Failed      Failed     StepFailed (or           502, naming `step` and the error's reason;
                           ExpressionError when     400 InvalidInput when the step's error is
                           the workflow's output    InvalidInput (an expression over the run
                           expression failed)       input alone found it lacking)
    TimedOut    Failed     TimedOut                 504, naming `step`
    Cancelled   Cancelled  Cancelled                (the caller cancelled: no answer needed)

`message` is a sentence for people (a condition message, an Event, an error body). `error` is
the failing step's api `StepError`, with the HTTP status and a body excerpt when the step
answered. Pure data: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from stepline.api import CompensationSummary, Reason, RunPhase, StepError, StepRecord
from stepline.engine.checkpoints import StepState


class RunStatus(StrEnum):
    """How a run ended. TimedOut is a failure (phase Failed) that callers report as a timeout."""

    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"
    TIMED_OUT = "TimedOut"
    # Not an end: the run is parked, holding no task or slot, to go on later.
    SUSPENDED = "Suspended"
    WAITING = "Waiting"  # for a person's decision on an approval step

    @property
    def parked(self) -> bool:
        return self in {RunStatus.SUSPENDED, RunStatus.WAITING}

    @property
    def phase(self) -> RunPhase:
        """The WorkflowRun phase this ends a run in."""
        return _PHASES[self]


_PHASES = {
    RunStatus.SUCCEEDED: RunPhase.SUCCEEDED,
    RunStatus.FAILED: RunPhase.FAILED,
    RunStatus.CANCELLED: RunPhase.CANCELLED,
    RunStatus.TIMED_OUT: RunPhase.FAILED,
    RunStatus.SUSPENDED: RunPhase.SUSPENDED,
    RunStatus.WAITING: RunPhase.WAITING,
}


@dataclass(frozen=True, slots=True)
class StepWaiting:
    """An approval step waiting for a person: since when, until when, what it asks."""

    step: str
    since: datetime
    deadline: datetime
    message: str


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """The end of one execution of a run."""

    status: RunStatus
    reason: Reason
    message: str
    started_at: datetime
    finished_at: datetime
    duration_seconds: float
    output: Any = None
    step: str | None = None
    error: StepError | None = None
    states: tuple[StepState, ...] = ()
    # How the undoing of a failed or cancelled run went, if it had steps to undo.
    compensation: CompensationSummary | None = None
    # A run Waiting: the approval steps it waits on.
    waits: tuple[StepWaiting, ...] = ()
    # The trace the run's spans are in (exported or not).
    trace_id: str = ""

    @property
    def succeeded(self) -> bool:
        return self.status is RunStatus.SUCCEEDED

    @property
    def phase(self) -> RunPhase:
        return self.status.phase

    @property
    def http_status(self) -> int | None:
        """The HTTP status of the failing step's last answer, if it answered."""
        return self.error.http_status if self.error else None

    def records(self) -> list[StepRecord]:
        """A record per step of the plan, in order: the WorkflowRun's `status.steps`."""
        return [state.to_record() for state in self.states]
