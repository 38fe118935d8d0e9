"""The run-time model: T = Σ t_i sampled from the steps' observed durations, checked against the
true quantiles of known distributions and against the sum of medians it replaced."""

from __future__ import annotations

import random

import pytest

from stepline.controllers.workflowruns.prediction import (
    DurationHistory,
    SuccessfulRun,
    predict_duration,
    predict_remaining,
    quantile,
)


def observe(rng: random.Random, means: dict[str, float], *, runs: int) -> list[SuccessfulRun]:
    """`runs` successful runs whose steps take exponential times with the given means, plus
    5 ms of the operator's own time each."""
    found = []
    for _ in range(runs):
        steps = {step: rng.expovariate(1 / mean) for step, mean in means.items()}
        found.append(SuccessfulRun(sum(steps.values()) + 0.005, steps))
    return found


def true_quantiles(rng: random.Random, means: dict[str, float]) -> tuple[float, float]:
    totals = sorted(
        sum(rng.expovariate(1 / mean) for mean in means.values()) + 0.005 for _ in range(100_000)
    )
    return quantile(totals, 0.5), quantile(totals, 0.95)


def test_no_runs_no_prediction() -> None:
    assert predict_duration([]) is None


def test_the_same_observations_give_the_same_prediction() -> None:
    runs = observe(random.Random(1), {"a": 0.1, "b": 0.3}, runs=50)  # noqa: S311
    assert predict_duration(runs) == predict_duration(list(runs))


def test_exponential_steps_are_predicted_within_ten_percent_where_medians_fall_short() -> None:
    rng = random.Random(7)  # noqa: S311
    means = {"validate": 0.1, "order": 0.3}
    runs = observe(rng, means, runs=400)
    predicted = predict_duration(runs)
    assert predicted is not None
    p50, p95 = true_quantiles(rng, means)
    assert predicted.p50 == pytest.approx(p50, rel=0.1)
    assert predicted.p95 == pytest.approx(p95, rel=0.1)
    # What the status used to say: the sum of the steps' medians, 10 % or more too low.
    medians = sum(
        quantile(sorted(r.step_seconds[s] for r in runs), 0.5) for s in means
    )  # fmt: skip
    assert medians < 0.9 * p50


def test_a_step_skipped_in_most_runs_counts_by_how_often_it_ran() -> None:
    always = [SuccessfulRun(1.0, {"check": 1.0}) for _ in range(8)]
    sometimes = [SuccessfulRun(11.0, {"check": 1.0, "repair": 10.0}) for _ in range(2)]
    predicted = predict_duration(always + sometimes)
    assert predicted is not None
    assert predicted.p50 == pytest.approx(1.0)  # repair ran in 20 % of the runs
    assert predicted.p95 == pytest.approx(11.0)
    assert predicted.runs == 10


def test_the_history_keeps_the_last_runs_and_a_new_step_gets_a_column() -> None:
    history = DurationHistory(size=3)
    history.add(SuccessfulRun(1.0, {"check": 1.0}))
    history.add(SuccessfulRun(11.0, {"check": 1.0, "repair": 10.0}))  # a column for repair
    assert history.observations() == [
        SuccessfulRun(1.0, {"check": 1.0}),
        SuccessfulRun(11.0, {"check": 1.0, "repair": 10.0}),
    ]
    for n in range(2, 6):
        history.add(SuccessfulRun(float(n), {"check": float(n)}))
    assert len(history) == 3
    assert [run.duration_seconds for run in history.observations()] == [3.0, 4.0, 5.0]
    history.add(SuccessfulRun(9.0, {"check": 2.0, "ship": 7.0}))  # widened when full
    assert history.observations() == [
        SuccessfulRun(4.0, {"check": 4.0}),
        SuccessfulRun(5.0, {"check": 5.0}),
        SuccessfulRun(9.0, {"check": 2.0, "ship": 7.0}),
    ]
    history.add(SuccessfulRun(6.0, {"check": 6.0}))
    assert [run.duration_seconds for run in history.observations()] == [5.0, 9.0, 6.0]


def test_what_is_left_of_a_run_is_the_median_of_its_other_steps() -> None:
    history = DurationHistory()
    for i in range(100):
        history.add(SuccessfulRun(6.0 + i % 2, {"a": 1.0, "b": 2.0 + i % 2, "c": 3.0}))
    whole = predict_remaining(history, frozenset())
    after_a = predict_remaining(history, frozenset({"a"}))
    after_ab = predict_remaining(history, frozenset({"a", "b"}))
    assert whole is not None
    assert after_a is not None
    assert after_ab is not None
    assert 6.0 <= whole <= 7.0
    assert 5.0 <= after_a <= 6.0
    assert after_ab == pytest.approx(3.0)
    assert predict_remaining(history, frozenset({"a", "b", "c"})) == 0.0


def test_the_estimate_of_what_is_left_follows_new_runs() -> None:
    history = DurationHistory()
    history.add(SuccessfulRun(1.0, {"a": 1.0}))
    assert predict_remaining(history, frozenset()) == pytest.approx(1.0)
    for _ in range(10):
        history.add(SuccessfulRun(5.0, {"a": 5.0}))
    assert predict_remaining(history, frozenset()) == pytest.approx(5.0)
