from __future__ import annotations

import pytest

from stepline.api import RunPhase
from stepline.controllers.workflowruns.statistics import (
    RunSummary,
    compute_quantiles,
    compute_run_statistics,
    nearest_rank,
)


def test_nearest_rank_picks_an_observed_value() -> None:
    sample = [float(v) for v in range(1, 101)]
    assert nearest_rank(sample, 0.5) == 50
    assert nearest_rank(sample, 0.99) == 99
    assert nearest_rank([7.0], 0.99) == 7


def test_no_samples_give_no_quantiles() -> None:
    assert compute_quantiles([]) is None


def test_statistics_count_by_phase_and_rate_only_finished_runs() -> None:
    runs = [
        RunSummary("a", RunPhase.SUCCEEDED, 1.0, {"validate": 0.2, "order": 0.7}),
        RunSummary("b", RunPhase.SUCCEEDED, 3.0, {"validate": 0.4, "order": 0.9}),
        RunSummary("c", RunPhase.FAILED, 0.5, {"validate": 0.3}),
        RunSummary("d", RunPhase.RUNNING),
    ]
    stats = compute_run_statistics(runs, last_run_name="d")
    assert (stats.total, stats.active, stats.succeeded, stats.failed) == (4, 1, 2, 1)
    assert stats.success_rate == pytest.approx(2 / 3)
    assert stats.latency_seconds is not None
    assert (stats.latency_seconds.p50, stats.latency_seconds.p99) == (1.0, 3.0)
    # Sampled from the two successful runs (engine/prediction.py): between the smallest and
    # the largest sum of a step duration each and an overhead (0.1 s or 1.7 s).
    predicted = stats.predicted_duration
    assert predicted is not None
    assert predicted.runs == 2
    assert 1.0 <= predicted.p50 <= predicted.p95 <= 3.0
    assert stats.predicted_duration_seconds == predicted.p50
    assert stats.last_run_name == "d"


def test_a_workflow_without_finished_runs_has_no_rate_and_no_prediction() -> None:
    stats = compute_run_statistics([RunSummary("x", RunPhase.PENDING)], last_run_name="x")
    assert stats.success_rate is None
    assert stats.predicted_duration_seconds is None
    assert stats.predicted_duration is None
