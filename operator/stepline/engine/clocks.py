"""Time as the engine sees it: a `Clock` it is given, so that tests check waits without waiting.

The engine reads `monotonic()` for deadlines and durations, `now()` for the times it records, and
waits (backoff between attempts, polling for a ready step) only through `sleep()`. The timeout of
an HTTP call itself is the transport's, in real time. `SystemClock` is the real thing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Protocol, TypeVar

T = TypeVar("T")


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes back."""
        ...

    def now(self) -> datetime:
        """The wall-clock time, timezone-aware (UTC)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Returns after `seconds`."""
        ...


class SystemClock:
    """The real clock: time.monotonic, datetime.now(UTC) and asyncio.sleep."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK = SystemClock()


async def unless_cancelled(
    awaitable: Awaitable[T], cancel: asyncio.Event | None
) -> tuple[bool, T | None]:
    """Awaits `awaitable` unless `cancel` is set first: (True, its result) or (False, None).

    Without a cancel event this is a plain await. Used around waits only (backoff, readiness),
    never around a call in flight.
    """
    if cancel is None:
        return True, await awaitable
    if cancel.is_set():
        if asyncio.iscoroutine(awaitable):
            awaitable.close()
        return False, None
    work = asyncio.ensure_future(awaitable)
    stop = asyncio.ensure_future(cancel.wait())
    try:
        await asyncio.wait((work, stop), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (work, stop):
            if not task.done():
                task.cancel()
    if work.done() and not work.cancelled():
        return True, work.result()
    return False, None
