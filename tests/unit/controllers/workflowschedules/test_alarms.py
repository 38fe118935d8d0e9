"""One timer per schedule, set from the wall clock the test gives: a time passed rings at once,
a later one waits, setting again replaces, cancelling silences. No waiting for real time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from stepline.controllers.workflowschedules.alarms import Alarms
from stepline.controllers.workflowschedules.runindex import ScheduledRuns

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
KEY = ("factory", "monitor")


async def turns(count: int = 5) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def test_a_time_already_passed_rings_at_once_and_a_later_one_waits() -> None:
    rung: list[tuple[str, str]] = []
    alarms = Alarms(ring=rung.append, clock=lambda: NOW)
    alarms.set(("factory", "late"), NOW - timedelta(seconds=5))
    alarms.set(KEY, NOW + timedelta(hours=1))
    await turns()
    assert rung == [("factory", "late")]
    assert (len(alarms), alarms.due(KEY)) == (1, NOW + timedelta(hours=1))


async def test_a_timer_set_again_replaces_the_earlier_and_cancel_silences_it() -> None:
    rung: list[tuple[str, str]] = []
    alarms = Alarms(ring=rung.append, clock=lambda: NOW)
    alarms.set(KEY, NOW + timedelta(hours=1))
    alarms.set(KEY, NOW - timedelta(seconds=1))
    await turns()
    assert rung == [KEY]
    alarms.set(KEY, NOW - timedelta(seconds=1))
    alarms.cancel_all()
    await turns()
    assert (rung, len(alarms)) == ([KEY], 0)


def test_the_run_index_wakes_a_schedule_only_when_a_run_starts_finishes_or_goes() -> None:
    runs = ScheduledRuns()
    body = {
        "metadata": {"name": "monitor-1", "namespace": "factory", "uid": "u1",
                     "labels": {"stepline.io/schedule": "monitor"},
                     "ownerReferences": [{"kind": "WorkflowSchedule", "uid": "s1",
                                          "controller": True}]},
        "spec": {"workflowRef": "flow"},
        "status": {"phase": "Running"},
    }  # fmt: skip
    assert runs.record("ADDED", body) == KEY
    assert runs.record("MODIFIED", body) is None  # a checkpoint of the run under way
    finished = {**body, "status": {"phase": "Succeeded", "finishedAt": "2026-05-01T12:00:05Z"}}
    assert runs.record("MODIFIED", finished) == KEY
    assert [run.name for run in runs.of("factory", "monitor", uid="s1")] == ["monitor-1"]
    assert runs.of("factory", "monitor", uid="another-schedule-of-that-name") == []
    assert runs.record("DELETED", finished) == KEY
    assert runs.of("factory", "monitor", uid="s1") == []
    assert runs.record("ADDED", {"metadata": {"name": "unlabelled"}}) is None
