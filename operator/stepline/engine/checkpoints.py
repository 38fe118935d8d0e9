"""A run's progress as the executor keeps it, and as a `RunStore` saves it.

The executor keeps one `StepState` per step of the plan and turns it into an api `StepRecord`
only when someone needs the record: a checkpoint, or the caller reading `RunOutcome.records()`.
Invoke, which needs neither, never pays for records or for `record_payload()` (JSON encoding and
a SHA-256 of every output). A finished step's record is built once and kept.

`RunStore.save()` is called after steps end, before the steps they make ready start (those are
recorded Running), and after steps end that make none ready while others are still in flight;
never after the last step of an execution: what follows is the run's outcome, which the caller
writes itself. An exception from `save()`
propagates out of `Executor.execute()`: the run's progress since the previous checkpoint is then
unknown to the store, and resuming from that checkpoint calls the later steps again, under the
same idempotency keys.

Resuming (`restore_states()`): a step recorded as Succeeded or Skipped is not called again, its
output is taken from the record. Any other step is called (again), its attempt numbers going on
from the record's; one recorded Running may have been in flight, so its next attempt is 2 or
more. A Succeeded step whose output was too large to record (`outputInfo.truncated`)
is called again too, under the same idempotency key, to get its output back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from stepline.api import (
    ApprovalRecord,
    CompensationSummary,
    RunPhase,
    StepError,
    StepPhase,
    StepRecord,
    record_payload,
)
from stepline.engine.compensating import CompensationState
from stepline.engine.elements import ElementProgress

# What a step with a compensation was sent is recorded when it is at most this large (its
# compensation's `step.input`); larger, `has(step.input)` is false after a restart.
MAX_RECORDED_INPUT_BYTES = 4 * 1024

SETTLED = frozenset({StepPhase.SUCCEEDED, StepPhase.SKIPPED})


class _NotSent:
    def __repr__(self) -> str:
        return "NOT_SENT"


NOT_SENT: Any = _NotSent()  # a step's `sent_input` before it was sent anything
FINAL = frozenset({StepPhase.SUCCEEDED, StepPhase.SKIPPED, StepPhase.FAILED, StepPhase.CANCELLED})


@dataclass(slots=True)
class StepState:
    """One step's progress in a run; `output` is meaningful when the phase is Succeeded."""

    name: str
    phase: StepPhase = StepPhase.PENDING
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_seconds: float | None = None
    output: Any = None
    error: StepError | None = None
    elements: ElementProgress | None = None  # a forEach step's
    sent_input: Any = NOT_SENT  # what it was sent, kept for a step with a compensation
    compensation: CompensationState | None = None  # its undoing, once the run compensates
    approval: ApprovalRecord | None = None  # who decided an approval step
    waiting: tuple[datetime, str] | None = None  # an approval step's (deadline, question)
    _record: StepRecord | None = None

    @property
    def settled(self) -> bool:
        """Succeeded or Skipped: a resumed run does not call it again."""
        return self.phase in SETTLED

    def to_record(self) -> StepRecord:
        """The api record of this step; the output is recorded within the size cap."""
        record = self._base_record()
        if self.compensation is None:
            return record
        return record.model_copy(update={"compensation": self.compensation.to_record()})

    def _base_record(self) -> StepRecord:
        if self._record is not None:
            return self._record
        output, info = (None, None)
        if self.phase is StepPhase.SUCCEEDED:
            output, info = record_payload(self.output)
        elif self.elements is not None:  # the outputs so far
            output, info = record_payload(self.elements.output_list())
        record = StepRecord(
            name=self.name,
            phase=self.phase,
            attempts=self.attempts,
            started_at=self.started_at,
            finished_at=self.finished_at,
            duration_seconds=self.duration_seconds,
            output=output,
            output_info=info,
            error=self.error,
            items=None if self.elements is None else self.elements.summary(),
            input=self._recorded_input(),
            approval=self.approval,
        )
        if self.phase in FINAL:
            self._record = record
        return record

    def _recorded_input(self) -> Any:
        if self.sent_input is NOT_SENT:
            return None
        value, info = record_payload(self.sent_input)
        return value if info.size_bytes <= MAX_RECORDED_INPUT_BYTES else None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A run's state after a step: what the caller writes to the WorkflowRun's status.

    `steps` has a record for every step of the plan, in order; `current_step` names the steps
    recorded Running (the status's `currentStep`).
    """

    run_uid: str
    started_at: datetime
    current_step: str | None
    steps: tuple[StepRecord, ...]
    phase: RunPhase = RunPhase.RUNNING  # Compensating while the run is undone
    compensation: CompensationSummary | None = None

    @property
    def progress(self) -> str:
        """Steps done (Succeeded or Skipped) of all: the status's `progress`."""
        return describe_progress(self.steps)


class RunStore(Protocol):
    async def save(self, checkpoint: Checkpoint) -> None:
        """Persists `checkpoint`; returns once it is durable (or raises)."""
        ...


def describe_progress(records: Sequence[StepRecord]) -> str:
    """`done/all`, done being Succeeded or Skipped."""
    done = sum(record.phase in SETTLED for record in records)
    return f"{done}/{len(records)}"


def restore_states(names: Iterable[str], records: Sequence[StepRecord]) -> dict[str, StepState]:
    """A state per step name, in the given order, resumed from `records` where they allow."""
    by_name = {record.name: record for record in records}
    return {name: restore_state(name, by_name.get(name)) for name in names}


def restore_state(name: str, record: StepRecord | None) -> StepState:
    if record is None:
        return StepState(name)
    truncated = record.output_info is not None and record.output_info.truncated
    if record.phase not in SETTLED or (record.phase is StepPhase.SUCCEEDED and truncated):
        return StepState(
            name,
            attempts=record.attempts,
            # An approval step's wait goes on from when it began.
            started_at=record.started_at if record.phase is StepPhase.WAITING else None,
            finished_at=record.finished_at,
            elements=ElementProgress.from_record(record),
            compensation=_restore_compensation(record),
        )
    return StepState(
        name,
        phase=record.phase,
        attempts=record.attempts,
        started_at=record.started_at,
        finished_at=record.finished_at,
        duration_seconds=record.duration_seconds,
        output=record.output,
        sent_input=record.input if record.input is not None else NOT_SENT,
        compensation=_restore_compensation(record),
        _record=record.model_copy(update={"compensation": None}),
    )


def restore_exactly(name: str, record: StepRecord | None) -> StepState:
    """A state that is the record as it stands, for a run resumed while it compensates: no step
    runs again, and the final status keeps each step's phase and error."""
    if record is None:
        return StepState(name)
    truncated = record.output_info is not None and record.output_info.truncated
    return StepState(
        name,
        phase=record.phase,
        attempts=record.attempts,
        started_at=record.started_at,
        finished_at=record.finished_at,
        duration_seconds=record.duration_seconds,
        output=None if truncated else record.output,
        error=record.error,
        elements=ElementProgress.from_record(record),
        sent_input=record.input if record.input is not None else NOT_SENT,
        compensation=_restore_compensation(record),
        _record=record.model_copy(update={"compensation": None}) if record.phase in FINAL else None,
    )


def _restore_compensation(record: StepRecord) -> CompensationState | None:
    undo = record.compensation
    return None if undo is None else CompensationState.from_record(undo)
