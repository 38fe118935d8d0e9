"""What a WorkflowSchedule does now: start a run, skip its time, record it missed, or wait. Pure:
the caller passes the clock's reading and the schedule's state; no I/O.

The rule, CronJob's: the time acted on is the **latest** schedule time at or before now that is
later than the last one dealt with (`max(lastScheduleTime, lastSkip.time, creationTimestamp)`).
Earlier missed times are never run: after an operator restart, or after `suspend` goes back to
false, at most one run starts. It is skipped as missed when `startingDeadlineSeconds` is set and
now is more than that past it. The library gives the previous time directly, so there is no
count of missed times and no CronJob-style limit of 100 of them.

Then the concurrency policy: with a run of the schedule still active, Allow starts another,
Forbid skips the time, Replace cancels the active runs and starts the new one. A missing
Workflow skips the time too (a run would only wait for it, and pile up).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from stepline.api import ConcurrencyPolicy, SkipReason
from stepline.controllers.workflowschedules.timing import CronSchedule, latest_time, next_time


class Action(StrEnum):
    WAIT = "Wait"  # nothing due: look again at `next_time`
    START = "Start"
    REPLACE = "Replace"  # cancel the active runs, then start
    SKIP = "Skip"  # no run for `time`: `skip_reason` says why


@dataclass(frozen=True)
class ScheduleState:
    """What the decision needs of a schedule beyond its times."""

    created: datetime
    last_schedule_time: datetime | None
    last_skip_time: datetime | None
    suspend: bool
    starting_deadline_seconds: int | None
    concurrency_policy: ConcurrencyPolicy
    active_runs: Sequence[str]
    workflow_exists: bool

    @property
    def handled(self) -> datetime:
        """The last schedule time dealt with (run or skipped), or the schedule's creation."""
        times = [self.created, self.last_schedule_time, self.last_skip_time]
        return max(t for t in times if t is not None)


@dataclass(frozen=True)
class Decision:
    action: Action
    time: datetime | None = None  # the schedule time acted on
    skip_reason: SkipReason | None = None
    next_time: datetime | None = None  # when to look again; None: never (suspended, no times)


def decide(schedule: CronSchedule, state: ScheduleState, *, now: datetime) -> Decision:
    """What to do at `now` (module docstring)."""
    if state.suspend:
        return Decision(Action.WAIT)
    upcoming = next_time(schedule, now)
    due = latest_time(schedule, now)
    if due is None or due <= state.handled:
        return Decision(Action.WAIT, next_time=upcoming)
    reason = find_skip_reason(state, due, now=now)
    if reason is not None:
        return Decision(Action.SKIP, time=due, skip_reason=reason, next_time=upcoming)
    replace = bool(state.active_runs) and state.concurrency_policy is ConcurrencyPolicy.REPLACE
    return Decision(Action.REPLACE if replace else Action.START, time=due, next_time=upcoming)


def find_skip_reason(state: ScheduleState, due: datetime, *, now: datetime) -> SkipReason | None:
    """Why the time `due` gets no run, if it gets none: too late, no Workflow, or Forbid."""
    deadline = state.starting_deadline_seconds
    if deadline is not None and (now - due).total_seconds() > deadline:
        return SkipReason.DEADLINE_EXCEEDED
    if not state.workflow_exists:
        return SkipReason.WORKFLOW_NOT_FOUND
    if state.active_runs and state.concurrency_policy is ConcurrencyPolicy.FORBID:
        return SkipReason.FORBID
    return None
