from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stepline.api import Retention, RunPhase
from stepline.controllers.workflowruns.retention import (
    FinishedRun,
    seconds_until_expiry,
    select_expired_runs,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def run(name: str, phase: RunPhase, minutes_ago: float) -> FinishedRun:
    return FinishedRun(name=name, phase=phase, finished_at=NOW - timedelta(minutes=minutes_ago))


def test_the_oldest_succeeded_runs_beyond_the_limit_are_deleted_oldest_first() -> None:
    runs = [run(f"ok-{i}", RunPhase.SUCCEEDED, minutes_ago=i) for i in range(5)]
    expired = select_expired_runs(runs, Retention(successful_runs=2), now=NOW)
    assert expired == ["ok-4", "ok-3", "ok-2"]


def test_failed_and_cancelled_runs_share_their_own_limit() -> None:
    runs = [
        run("ok", RunPhase.SUCCEEDED, 10),
        run("bad-old", RunPhase.FAILED, 9),
        run("stopped", RunPhase.CANCELLED, 8),
        run("bad-new", RunPhase.FAILED, 1),
    ]
    expired = select_expired_runs(runs, Retention(successful_runs=5, failed_runs=2), now=NOW)
    assert expired == ["bad-old"]


def test_runs_past_their_ttl_are_deleted_even_within_the_limits() -> None:
    runs = [run("old", RunPhase.SUCCEEDED, 10), run("fresh", RunPhase.SUCCEEDED, 1)]
    retention = Retention(ttl_seconds_after_finished=300, successful_runs=10)
    assert select_expired_runs(runs, retention, now=NOW) == ["old"]


def test_unfinished_runs_are_never_selected() -> None:
    runs = [run("busy", RunPhase.RUNNING, 100), run("queued", RunPhase.PENDING, 100)]
    retention = Retention(ttl_seconds_after_finished=0, successful_runs=0, failed_runs=0)
    assert select_expired_runs(runs, retention, now=NOW) == []


def test_time_until_expiry_counts_down_to_zero_and_is_none_without_a_ttl() -> None:
    finished = run("r", RunPhase.SUCCEEDED, minutes_ago=1)
    assert seconds_until_expiry(finished, Retention(ttl_seconds_after_finished=300), now=NOW) == 240
    assert seconds_until_expiry(finished, Retention(ttl_seconds_after_finished=30), now=NOW) == 0
    assert seconds_until_expiry(finished, Retention(), now=NOW) is None
