"""The scheduler's reconciles (`Scheduler.reconcile_soon`): a ring that comes while a reconcile
of the same schedule is ending is not lost (the timer that rang is gone, so a lost ring would
leave the schedule without a timer for good)."""

from __future__ import annotations

import asyncio
import contextlib
import types
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from stepline.controllers.workflowschedules import scheduler

KEY = ("factory", "every-minute")


@contextlib.contextmanager
def reconciling(kind: str) -> Iterator[None]:
    yield


async def test_a_ring_while_a_reconcile_is_ending_starts_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[Any] = []
    loop = asyncio.get_running_loop()
    runtime = types.SimpleNamespace(
        leads=lambda: True,
        reconciling=reconciling,
        schedules=types.SimpleNamespace(clock=lambda: datetime.now(UTC)),
    )
    planner = scheduler.Scheduler(runtime, workflows={})  # type: ignore[arg-type]

    async def reconcile_schedule(runtime: Any, key: Any, **_: Any) -> None:
        calls.append(key)
        if len(calls) == 1:
            # The schedule's timer rings now: after this reconcile has ended, before the
            # callbacks of its task have run.
            loop.call_soon(planner.reconcile_soon, key)

    monkeypatch.setattr(scheduler, "reconcile_schedule", reconcile_schedule)

    planner.reconcile_soon(KEY)
    for _ in range(10):
        await asyncio.sleep(0)

    assert calls == [KEY, KEY]
    assert KEY not in planner._tasks  # both ended, and neither is remembered as running
