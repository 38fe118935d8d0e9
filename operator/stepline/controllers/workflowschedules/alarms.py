"""One timer per schedule: an asyncio `loop.call_at` handle set for its next time, and nothing
else, so that a thousand idle schedules cost a thousand handles and no polling loop.

A timer is set from the wall clock (schedule times are wall-clock times) onto the loop's
monotonic clock. Should the two drift apart while it waits (the wall clock stepped by NTP), the
reconcile it wakes reads the wall clock, finds its time not due yet and sets the timer again
for what is left; a time passed while it waited is the missed-time rule's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from stepline.controllers.workflowschedules.runindex import ScheduleKey


class Alarms:
    """The timers of the schedules, by key; `ring(key)` is called when one's time comes."""

    def __init__(
        self, *, ring: Callable[[ScheduleKey], None], clock: Callable[[], datetime]
    ) -> None:
        self._ring = ring
        self._clock = clock
        self._handles: dict[ScheduleKey, tuple[datetime, asyncio.TimerHandle]] = {}

    def set(self, key: ScheduleKey, when: datetime) -> None:
        """Rings for `key` at `when` (at once if it has passed), instead of any earlier timer."""
        current = self._handles.get(key)
        if current is not None and current[0] == when:
            return
        self.cancel(key)
        loop = asyncio.get_running_loop()
        delay = max((when - self._clock()).total_seconds(), 0.0)
        handle = loop.call_at(loop.time() + delay, self._fire, key)
        self._handles[key] = (when, handle)

    def due(self, key: ScheduleKey) -> datetime | None:
        """When the timer of `key` rings, if it is set."""
        current = self._handles.get(key)
        return current[0] if current is not None else None

    def cancel(self, key: ScheduleKey) -> None:
        current = self._handles.pop(key, None)
        if current is not None:
            current[1].cancel()

    def cancel_all(self) -> None:
        for key in list(self._handles):
            self.cancel(key)

    def __len__(self) -> int:
        return len(self._handles)

    def _fire(self, key: ScheduleKey) -> None:
        self._handles.pop(key, None)
        self._ring(key)
