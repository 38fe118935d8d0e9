"""Undoing a failed or cancelled run (a saga): which steps, in what order, and what is recorded.

A run that ends Failed (a step failed, the run timed out, its output expression failed) or
Cancelled undoes every step that succeeded and has a `compensation`, one at a time, in reverse
order of completion (`finishedAt`; ties in reverse plan order): a step always finishes after the
steps it depends on, so a dependent is undone before what it depends on (Temporal's saga
default). A forEach step's succeeded elements are undone one by one, in reverse index order,
even when the step as a whole failed. Skipped, failed and never-started steps are not undone.

Each compensation is a call with its own retries and `Idempotency-Key: <uid>/<step>/compensation`
(`<uid>/<step>/<index>/compensation` for an element), not bounded by the run's deadline (a
timed-out run must still be undone). The first compensation that fails after its retries stops
the sequence: the steps not yet undone are Skipped with reason EarlierCompensationFailed, and the
run ends with reason CompensationFailed — undoing an earlier step while a later one's undo failed
would break the order that exists to keep the process consistent.

The executor keeps a `CompensationState` per step to undo and a `CompensationProgress` for the
run; both go into the checkpoint (phase Compensating), so a restarted operator goes on where the
undoing stopped: a compensation recorded Succeeded or Skipped is not called again, one recorded
Running is called again under its key at attempt 2 or more.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from stepline.api import (
    CompensationRecord,
    CompensationSummary,
    PayloadInfo,
    StepError,
    StepPhase,
)


@dataclass(slots=True)
class CompensationState:
    """The undoing of one step."""

    step_ref: str
    order: int
    phase: StepPhase = StepPhase.PENDING
    reason: str | None = None
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    output_info: PayloadInfo | None = None
    error: StepError | None = None
    interrupted: bool = False  # recorded Running: its call may have been in flight

    @property
    def settled(self) -> bool:
        return self.phase in {StepPhase.SUCCEEDED, StepPhase.SKIPPED, StepPhase.FAILED}

    @classmethod
    def from_record(cls, record: CompensationRecord) -> CompensationState:
        return cls(
            step_ref=record.step_ref,
            order=record.order or 0,
            phase=record.phase if record.phase is not StepPhase.RUNNING else StepPhase.PENDING,
            reason=record.reason,
            attempts=record.attempts,
            started_at=record.started_at,
            finished_at=record.finished_at,
            output_info=record.output_info,
            error=record.error,
            interrupted=record.phase is StepPhase.RUNNING,
        )

    def to_record(self) -> CompensationRecord:
        return CompensationRecord(
            step_ref=self.step_ref,
            phase=self.phase,
            reason=self.reason,
            order=self.order or None,
            attempts=self.attempts,
            started_at=self.started_at,
            finished_at=self.finished_at,
            output_info=self.output_info,
            error=self.error,
        )


@dataclass(slots=True)
class CompensationProgress:
    """The undoing of the run: why, how far, and how it went."""

    cause: str
    message: str
    steps: int = 0
    succeeded: int = 0
    failed: int = 0
    phase: StepPhase = StepPhase.RUNNING
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @classmethod
    def from_summary(cls, summary: CompensationSummary) -> CompensationProgress:
        return cls(
            cause=summary.cause,
            message=summary.message,
            steps=summary.steps,
            succeeded=summary.succeeded,
            failed=summary.failed,
            phase=summary.phase,
            started_at=summary.started_at,
            finished_at=summary.finished_at,
        )

    def to_summary(self) -> CompensationSummary:
        return CompensationSummary(
            phase=self.phase,
            cause=self.cause,
            message=self.message,
            steps=self.steps,
            succeeded=self.succeeded,
            failed=self.failed,
            started_at=self.started_at,
            finished_at=self.finished_at,
        )

    def describe(self, undone: Sequence[str], failed: str | None) -> str:
        """What the run's condition adds to the failure: '; undone: order, payment'."""
        if failed is not None:
            return f"; compensation failed at step {failed!r}: the steps before it are not undone"
        return f"; undone: {', '.join(undone)}" if undone else ""


def undo_order(finished: Mapping[str, datetime | None], plan_order: Sequence[str]) -> list[str]:
    """The steps to undo, latest finished first; ties (and unknown times) in reverse plan
    order."""
    position = {name: index for index, name in enumerate(plan_order)}

    def latest_first(name: str) -> tuple[float, int]:
        at = finished[name]
        return (at.timestamp() if at is not None else float("-inf"), position[name])

    return sorted(finished, key=latest_first, reverse=True)
