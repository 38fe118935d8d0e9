"""Scalers: what each step's autoscaler follows — the load now, or ahead of a forecast — and
LeadTimes, measured from the Deployment's reports."""

from __future__ import annotations

from typing import Any

import pytest

from stepline.api import ScalingMetricType, ScalingMode
from stepline.controllers.servicesteps.forecasting import MIN_SAMPLES
from stepline.controllers.servicesteps.scaling import (
    LeadTimes,
    Scalers,
    ScalingFigure,
    asked_replicas,
)
from stepline.engine.loads import LoadSample
from tests.unit.resources.samples import make_step

KEY = ("shop", "validate")


def step_scaling(**scaling: Any) -> Any:
    return make_step(image="svc:1", scaling={"maxReplicas": 10, **scaling})


def load(in_flight: float, calls_per_second: float = 0.0) -> dict[tuple[str, str], LoadSample]:
    return {KEY: LoadSample(in_flight, round(in_flight), calls_per_second)}


def test_a_step_on_cpu_alone_is_not_fed() -> None:
    scalers = Scalers(sample_seconds=5, default_lead_seconds=30)
    tick = scalers.tick(load(3.0), [make_step(image="svc:1")])
    assert (tick.figures, tick.gone, scalers.status(KEY)) == ({}, [], None)


def test_reactive_scaling_follows_the_load_now_for_each_metric_it_names() -> None:
    scalers = Scalers(sample_seconds=5, default_lead_seconds=30)
    step = step_scaling(
        metrics=[{"type": "InFlight", "target": 2}, {"type": "CallsPerSecond", "target": 5}]
    )
    for value in (1.0, 2.0, 4.0, 8.0) * 5:  # a rising load, with history enough to forecast
        figures = scalers.tick(load(value, value * 3), [step]).figures
    by_metric = {f.metric: f for f in figures[KEY]}
    assert by_metric["in_flight"].value == by_metric["in_flight"].load == 8.0
    assert by_metric["calls_per_second"].value == 24.0
    assert by_metric["in_flight"].forecast is None  # not predictive: nothing forecast
    status = scalers.status(KEY)
    assert status is not None
    assert (status.mode, status.reason) == (ScalingMode.REACTIVE, "NotPredictive")


def test_an_idle_step_exports_zero_so_its_autoscaler_has_a_value() -> None:
    scalers = Scalers(sample_seconds=5, default_lead_seconds=30)
    figures = scalers.tick({}, [step_scaling(metrics=[{"type": "InFlight", "target": 2}])]).figures
    assert [(f.metric, f.load, f.value) for f in figures[KEY]] == [("in_flight", 0.0, 0.0)]


def test_predictive_scaling_waits_for_history_and_says_so() -> None:
    scalers = Scalers(sample_seconds=5, default_lead_seconds=30)
    step = step_scaling(metrics=[{"type": "InFlight", "target": 2}], predictive=True)
    for t in range(MIN_SAMPLES - 1):
        figures = scalers.tick(load(1.0 + t), [step]).figures
        assert figures[KEY][0].value == figures[KEY][0].load  # reactive meanwhile
    status = scalers.status(KEY)
    assert status is not None
    assert (status.mode, status.reason) == (ScalingMode.REACTIVE, "InsufficientHistory")
    figures = scalers.tick(load(float(MIN_SAMPLES)), [step]).figures
    status = scalers.status(KEY)
    assert status is not None
    assert (status.mode, status.reason) == (ScalingMode.PREDICTIVE, "Forecasting")
    assert figures[KEY][0].value > figures[KEY][0].load  # a ramp: ahead of it


def test_predictive_scaling_leads_a_ramp_by_the_lead_time_and_never_below_now() -> None:
    scalers = Scalers(sample_seconds=5, default_lead_seconds=20)  # 4 samples ahead
    step = step_scaling(metrics=[{"type": "InFlight", "target": 2}], predictive=True)
    for t in range(30):
        figures = scalers.tick(load(1.0 + 0.5 * t), [step]).figures
        assert figures[KEY][0].value >= figures[KEY][0].load
    figure = figures[KEY][0]
    assert figure.value == pytest.approx(figure.load + 4 * 0.5, rel=0.05)
    for t in range(30):  # the load falls: the forecast is lower, the load now wins
        figures = scalers.tick(load(max(15.0 - 2 * t, 0.0)), [step]).figures
        assert figures[KEY][0].value == max(figures[KEY][0].load, figures[KEY][0].forecast)
        assert figures[KEY][0].value >= figures[KEY][0].load


def test_a_forecast_never_asks_for_more_than_max_replicas_at_the_target() -> None:
    scalers = Scalers(sample_seconds=5, default_lead_seconds=60)
    step = step_scaling(metrics=[{"type": "InFlight", "target": 2}], predictive=True)
    for t in range(20):
        figures = scalers.tick(load(2.0 * t), [step]).figures  # steep: the forecast overshoots
    figure = figures[KEY][0]
    assert figure.forecast is not None
    assert figure.forecast > 10 * 2
    assert figure.value == max(figure.load, 10 * 2)


def test_a_step_that_stops_scaling_on_its_load_is_reported_gone() -> None:
    scalers = Scalers(sample_seconds=5, default_lead_seconds=30)
    scalers.tick(load(1.0), [step_scaling(metrics=[{"type": "InFlight", "target": 2}])])
    tick = scalers.tick(load(1.0), [make_step(image="svc:1")])
    assert (tick.figures, tick.gone, scalers.status(KEY)) == ({}, [KEY], None)


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_lead_time_runs_from_a_scale_up_to_its_available_replicas() -> None:
    clock = Clock()
    leads = LeadTimes(clock=clock)
    leads.observe(KEY, desired=1, available=1)
    clock.now = 10.0
    leads.observe(KEY, desired=3, available=1)  # the autoscaler asks for 3
    clock.now = 14.0
    leads.observe(KEY, desired=3, available=2)
    assert leads.lead(KEY) is None
    clock.now = 22.0
    leads.observe(KEY, desired=3, available=3)
    assert leads.lead(KEY) == pytest.approx(12.0)
    clock.now = 30.0
    leads.observe(KEY, desired=4, available=3)
    clock.now = 34.0
    leads.observe(KEY, desired=4, available=4)
    assert leads.lead(KEY) == pytest.approx(12.0 + 0.5 * (4.0 - 12.0))  # smoothed


def test_a_scale_up_undone_before_its_replicas_came_measures_nothing() -> None:
    clock = Clock()
    leads = LeadTimes(clock=clock)
    leads.observe(KEY, desired=1, available=1)
    leads.observe(KEY, desired=5, available=1)
    clock.now = 50.0
    leads.observe(KEY, desired=1, available=1)
    assert leads.lead(KEY) is None
    scalers = Scalers(sample_seconds=5, default_lead_seconds=30, leads=leads)
    assert scalers.lead_seconds(KEY) == 30


def test_a_step_that_stops_being_predictive_is_reported_so_its_forecast_series_go() -> None:
    scalers = Scalers(sample_seconds=5, default_lead_seconds=30)
    metrics = [{"type": "InFlight", "target": 2}]
    first = scalers.tick(load(1.0), [step_scaling(metrics=metrics, predictive=True)])
    assert first.figures[KEY][0].forecast is not None
    second = scalers.tick(load(1.0), [step_scaling(metrics=metrics)])
    assert second.unpredicted == [KEY]
    assert second.figures[KEY][0].forecast is None
    assert second.figures[KEY][0].value == 1.0


def test_the_lead_time_runs_from_the_sample_that_asked_for_more_replicas() -> None:
    # The metrics pipeline (scrape, adapter, the HPA's sync) is part of the wait a forecast must
    # cover, so the clock starts when the figures first asked, not when the Deployment grew.
    clock = Clock()
    leads = LeadTimes(clock=clock)
    leads.observe(KEY, desired=1, available=1)
    clock.now = 5.0
    leads.asked(KEY, 3)
    clock.now = 10.0
    leads.asked(KEY, 3)  # still asking: the wait started at 5 s
    clock.now = 17.0
    leads.observe(KEY, desired=2, available=1)  # the HPA decided 2 (its scale-up policy, say)
    clock.now = 25.0
    leads.observe(KEY, desired=2, available=2)
    assert leads.lead(KEY) == pytest.approx(20.0)


def test_an_ask_that_goes_away_before_the_autoscaler_acts_measures_nothing() -> None:
    clock = Clock()
    leads = LeadTimes(clock=clock)
    leads.observe(KEY, desired=2, available=2)
    leads.asked(KEY, 3)
    clock.now = 5.0
    leads.asked(KEY, 2)  # a burst that passed
    clock.now = 40.0
    leads.asked(KEY, 3)
    clock.now = 50.0
    leads.observe(KEY, desired=3, available=2)
    leads.observe(KEY, desired=3, available=3)
    assert leads.lead(KEY) == pytest.approx(10.0)


def test_a_wait_longer_than_any_start_up_is_not_taken_for_a_lead_time() -> None:
    clock = Clock()
    leads = LeadTimes(clock=clock)
    leads.observe(KEY, desired=1, available=1)
    leads.asked(KEY, 2)  # asked while the metrics pipeline was down, say
    clock.now = 3600.0
    leads.observe(KEY, desired=2, available=1)
    leads.observe(KEY, desired=2, available=2)
    assert leads.lead(KEY) is None


def figure(value: float, metric: str = "in_flight") -> ScalingFigure:
    return ScalingFigure(metric=metric, load=value, forecast=None, error_ratio=None, value=value)


@pytest.mark.parametrize(
    ("value", "current", "expected"),
    [
        (4.3, 2, 2),  # 4.3 / (2 x 2) is within the HPA's 10 % tolerance: no change
        (4.5, 2, 3),
        (9.0, 1, 5),
        (100.0, 1, 10),  # never past maxReplicas
        (1.0, 3, 3),  # a scale-down is not an ask for more
    ],
)
def test_the_replicas_asked_are_what_the_hpa_decides_from_the_figures(
    value: float, current: int, expected: int
) -> None:
    targets = {ScalingMetricType.IN_FLIGHT: 2.0, ScalingMetricType.CALLS_PER_SECOND: 4.0}
    figures = [figure(value), figure(1.0, "calls_per_second")]
    assert asked_replicas(figures, targets, current, 10) == expected


def test_the_scaling_loop_starts_the_wait_when_its_figures_ask() -> None:
    clock = Clock()
    scalers = Scalers(sample_seconds=5, default_lead_seconds=30, leads=LeadTimes(clock=clock))
    metrics = [{"type": "InFlight", "target": 2}]
    scalers.leads.observe(KEY, desired=1, available=1)
    scalers.tick(load(1.0), [step_scaling(metrics=metrics)])
    clock.now = 5.0
    scalers.tick(load(6.0), [step_scaling(metrics=metrics)])  # asks for 3
    clock.now = 12.0
    scalers.leads.observe(KEY, desired=3, available=1)
    clock.now = 30.0
    scalers.leads.observe(KEY, desired=3, available=3)
    assert scalers.lead_seconds(KEY) == pytest.approx(25.0)
