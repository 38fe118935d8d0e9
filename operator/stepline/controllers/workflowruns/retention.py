"""Which finished WorkflowRuns to delete, by a Workflow's retention policy. Pure: no I/O.

A finished run goes when its `ttlSecondsAfterFinished` has passed, or when it falls outside the
history limit of its class: the newest `successfulRuns` succeeded runs are kept, and the newest
`failedRuns` failed or cancelled ones. Unfinished runs are never selected.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from stepline.api import Retention, RunPhase


@dataclass(frozen=True)
class FinishedRun:
    """What retention needs to know of a run."""

    name: str
    phase: RunPhase
    finished_at: datetime


def select_expired_runs(
    runs: Iterable[FinishedRun], retention: Retention, *, now: datetime
) -> list[str]:
    """Names of the runs to delete now, oldest first."""
    finished = sorted(
        (run for run in runs if run.phase.is_finished), key=lambda run: run.finished_at
    )
    succeeded = [run for run in finished if run.phase is RunPhase.SUCCEEDED]
    failed = [run for run in finished if run.phase is not RunPhase.SUCCEEDED]
    expired = {run.name for run in _beyond_limit(succeeded, retention.successful_runs)}
    expired |= {run.name for run in _beyond_limit(failed, retention.failed_runs)}
    if retention.ttl_seconds_after_finished is not None:
        ttl = timedelta(seconds=retention.ttl_seconds_after_finished)
        expired |= {run.name for run in finished if run.finished_at + ttl <= now}
    return [run.name for run in finished if run.name in expired]


def _beyond_limit(runs: Sequence[FinishedRun], keep: int) -> Sequence[FinishedRun]:
    """All but the newest `keep` of `runs` (sorted oldest first)."""
    return runs[: max(len(runs) - keep, 0)]


def seconds_until_expiry(run: FinishedRun, retention: Retention, *, now: datetime) -> float | None:
    """How long until the run's TTL passes (0 if it has); None without a TTL."""
    if retention.ttl_seconds_after_finished is None:
        return None
    due = run.finished_at + timedelta(seconds=retention.ttl_seconds_after_finished)
    return max((due - now).total_seconds(), 0.0)
