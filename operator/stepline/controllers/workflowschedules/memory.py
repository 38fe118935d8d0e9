"""What the WorkflowSchedule controller remembers, in this process: every schedule as kopf last
showed it, the runs each one started (`runindex`), whether that index is filled, and how to wake
the leader's scheduler for one schedule.

Every replica keeps the schedules and their runs, so that a replica that takes over the lead
schedules at once; only the leader's scheduler (`scheduler.Scheduler`) acts on them. While it
runs, `wake` is its `reconcile_soon`; otherwise waking does nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from stepline.api import WorkflowSchedule
from stepline.controllers.workflowschedules.runindex import ScheduledRuns, ScheduleKey


def _utc_now() -> datetime:
    return datetime.now(UTC)


def asleep(key: ScheduleKey) -> None:
    """No scheduler runs here (a standby): nothing to wake."""


@dataclass
class ScheduleMemory:
    # (namespace, name) → the schedule as kopf's last event of it showed it.
    schedules: dict[ScheduleKey, WorkflowSchedule] = field(default_factory=dict)
    runs: ScheduledRuns = field(default_factory=ScheduledRuns)
    # Set once the watch of scheduled runs listed them all, in every watched namespace: before
    # that, a schedule under Forbid might not see its active run.
    runs_listed: asyncio.Event = field(default_factory=asyncio.Event)
    wake: Callable[[ScheduleKey], None] = asleep
    # The wall clock schedule times are compared with (a seam for tests).
    clock: Callable[[], datetime] = _utc_now

    def forget(self, key: ScheduleKey) -> None:
        self.schedules.pop(key, None)
