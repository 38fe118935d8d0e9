"""Statistics of a workflow's runs for its status: counts, success rate, latency quantiles, and
the predicted duration of the next run (prediction.py: T = Σ t_i, each t_i random). Pure.

Computed over the runs the caller hands in (those still kept in the cluster); quantiles use the
nearest-rank method, which needs no interpolation and is exact for the small samples kept.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from stepline.api import LatencyQuantiles, PredictedDuration, RunPhase, RunStatistics
from stepline.controllers.workflowruns.prediction import SuccessfulRun, predict_duration


@dataclass(frozen=True)
class RunSummary:
    """What statistics need to know of one run."""

    name: str
    phase: RunPhase
    duration_seconds: float | None = None
    # Step name → duration of its successful call, for the steps that succeeded.
    step_seconds: Mapping[str, float] = field(default_factory=dict)


def nearest_rank(ordered: Sequence[float], quantile: float) -> float:
    """The `quantile` (0..1) of an ascending, non-empty sample."""
    rank = max(math.ceil(quantile * len(ordered)), 1)
    return ordered[rank - 1]


def compute_quantiles(samples: Iterable[float]) -> LatencyQuantiles | None:
    ordered = sorted(samples)
    if not ordered:
        return None
    return LatencyQuantiles(
        p50=nearest_rank(ordered, 0.5),
        p90=nearest_rank(ordered, 0.9),
        p99=nearest_rank(ordered, 0.99),
    )


def compute_run_statistics(
    runs: Sequence[RunSummary],
    *,
    last_run_name: str | None,
    observed: Sequence[SuccessfulRun] | None = None,
) -> RunStatistics:
    """Statistics of `runs`; the prediction from `observed` (a longer history of successful
    runs) when given, else from the successful runs among `runs`."""
    counts = {phase: sum(run.phase is phase for run in runs) for phase in RunPhase}
    finished = counts[RunPhase.SUCCEEDED] + counts[RunPhase.FAILED] + counts[RunPhase.CANCELLED]
    durations = [
        run.duration_seconds
        for run in runs
        if run.phase is RunPhase.SUCCEEDED and run.duration_seconds is not None
    ]
    if observed is None:
        observed = [
            SuccessfulRun(run.duration_seconds, run.step_seconds)
            for run in runs
            if run.phase is RunPhase.SUCCEEDED and run.duration_seconds is not None
        ]
    prediction = predict_duration(observed)
    predicted = (
        None
        if prediction is None
        else PredictedDuration(p50=prediction.p50, p95=prediction.p95, runs=prediction.runs)
    )
    return RunStatistics(
        total=len(runs),
        active=counts[RunPhase.PENDING] + counts[RunPhase.RUNNING] + counts[RunPhase.COMPENSATING],
        succeeded=counts[RunPhase.SUCCEEDED],
        failed=counts[RunPhase.FAILED],
        cancelled=counts[RunPhase.CANCELLED],
        success_rate=counts[RunPhase.SUCCEEDED] / finished if finished else None,
        latency_seconds=compute_quantiles(durations),
        predicted_duration_seconds=None if predicted is None else predicted.p50,
        predicted_duration=predicted,
        last_run_name=last_run_name,
    )
