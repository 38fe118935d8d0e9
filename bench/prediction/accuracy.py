"""How close the predicted duration of a run comes to what runs then take, against the sum of
step medians it replaced. A simulation of the run-time model alone (engine/prediction.py): step
durations are drawn from the examples' distributions here, not measured on step services.

    .venv/bin/python bench/prediction/accuracy.py [seeds]

For each scenario and each history size (20: the runs the finance example keeps; HISTORY_SIZE:
the successful runs the operator remembers per workflow; more), and for each of `seeds` seeds:
draw the history, predict, draw 1,000 new runs, and compare the predicted p50 and p95 with
those 1,000 runs' own. Prints the median and the worst relative error over the seeds, for the
model and for the sum of medians.
"""

from __future__ import annotations

import random
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass

from stepline.controllers.workflowruns.prediction import (
    HISTORY_SIZE,
    SuccessfulRun,
    predict_duration,
    quantile,
)

RUNS_MEASURED = 1000
OVERHEAD_SECONDS = 0.004  # the operator's own time per run (bench/overhead: about 1 ms per step)

Draw = Callable[[random.Random], float]


@dataclass(frozen=True)
class Step:
    name: str
    draw: Draw
    runs: float = 1.0  # how often the step runs (its `when`)


SCENARIOS = {
    # finance: exponential step times; the order step runs when the user is approved.
    "finance (exponential)": [
        Step("validation", lambda r: r.expovariate(1 / 0.05)),
        Step("order", lambda r: r.expovariate(1 / 0.15), runs=0.85),
    ],
    # manufacturing: normal step times; inspection runs when anything was scheduled.
    "manufacturing (normal)": [
        Step("monitoring", lambda r: max(r.gauss(0.08, 0.01), 0.0)),
        Step("scheduling", lambda r: max(r.gauss(0.20, 0.04), 0.0)),
        Step("inspection", lambda r: max(r.gauss(0.12, 0.02), 0.0), runs=0.9),
    ],
}


def one_run(rng: random.Random, steps: list[Step]) -> SuccessfulRun:
    took = {s.name: s.draw(rng) for s in steps if s.runs >= 1 or rng.random() < s.runs}
    return SuccessfulRun(sum(took.values()) + OVERHEAD_SECONDS, took)


def sum_of_medians(history: list[SuccessfulRun]) -> float:
    names = {name for run in history for name in run.step_seconds}
    return sum(
        quantile(sorted(run.step_seconds[n] for run in history if n in run.step_seconds), 0.5)
        for n in names
    )


def errors(steps: list[Step], kept: int, seed: int) -> tuple[float, float, float, float]:
    rng = random.Random(seed)  # noqa: S311
    history = [one_run(rng, steps) for _ in range(kept)]
    measured = sorted(one_run(rng, steps).duration_seconds for _ in range(RUNS_MEASURED))
    p50, p95 = quantile(measured, 0.5), quantile(measured, 0.95)
    predicted = predict_duration(history)
    if predicted is None:
        raise SystemExit("no prediction from a non-empty history")
    old = sum_of_medians(history)
    return (
        abs(predicted.p50 - p50) / p50,
        abs(predicted.p95 - p95) / p95,
        abs(old - p50) / p50,
        abs(old - p95) / p95,
    )


def main(seeds: int) -> None:
    print(f"relative error, median (worst) over {seeds} seeds; {RUNS_MEASURED} runs measured")
    print("| scenario | runs kept | p50: model | p95: model | p50: sum of medians | p95: same |")
    print("|---|---|---|---|---|---|")
    for name, steps in SCENARIOS.items():
        for kept in (20, 100, HISTORY_SIZE, 400):
            found = [errors(steps, kept, seed) for seed in range(seeds)]
            cells = [f"{statistics.median(c):.1%} ({max(c):.1%})" for c in zip(*found, strict=True)]
            print(f"| {name} | {kept} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
