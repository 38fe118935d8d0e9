"""Statistics of a workflow's runs for its status: counts, success rate, latency quantiles, and
the predicted duration of the next run, T = Σ t_i over the steps' median durations. Pure.

Computed over the runs the caller hands in (those still kept in the cluster); quantiles use the
nearest-rank method, which needs no interpolation and is exact for the small samples kept.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from stepline.api import LatencyQuantiles, RunPhase, RunStatistics


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


def compute_step_quantiles(runs: Iterable[RunSummary]) -> dict[str, LatencyQuantiles]:
    """Per step, the quantiles of its successful call durations."""
    samples: dict[str, list[float]] = {}
    for run in runs:
        for step, seconds in run.step_seconds.items():
            samples.setdefault(step, []).append(seconds)
    return {step: q for step, values in samples.items() if (q := compute_quantiles(values))}


def compute_run_statistics(
    runs: Sequence[RunSummary], *, last_run_name: str | None
) -> RunStatistics:
    counts = {phase: sum(run.phase is phase for run in runs) for phase in RunPhase}
    finished = counts[RunPhase.SUCCEEDED] + counts[RunPhase.FAILED] + counts[RunPhase.CANCELLED]
    durations = [
        run.duration_seconds
        for run in runs
        if run.phase is RunPhase.SUCCEEDED and run.duration_seconds is not None
    ]
    step_quantiles = compute_step_quantiles(runs)
    predicted = sum(q.p50 for q in step_quantiles.values()) if step_quantiles else None
    return RunStatistics(
        total=len(runs),
        active=counts[RunPhase.PENDING] + counts[RunPhase.RUNNING],
        succeeded=counts[RunPhase.SUCCEEDED],
        failed=counts[RunPhase.FAILED],
        cancelled=counts[RunPhase.CANCELLED],
        success_rate=counts[RunPhase.SUCCEEDED] / finished if finished else None,
        latency_seconds=compute_quantiles(durations),
        predicted_duration_seconds=predicted,
        last_run_name=last_run_name,
    )
