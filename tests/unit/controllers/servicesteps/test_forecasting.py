"""Holt's linear smoothing: follows a level and a trend, forecasts ahead, scores itself."""

from __future__ import annotations

import random

import pytest

from stepline.controllers.servicesteps.forecasting import MIN_SAMPLES, Holt


def test_a_steady_load_is_forecast_as_itself_with_no_error() -> None:
    holt = Holt()
    for _ in range(30):
        holt.forecast(3)
        holt.observe(8.0)
    assert holt.forecast(6) == pytest.approx(8.0)
    assert holt.error_ratio == pytest.approx(0.0)


def test_a_ramp_is_forecast_ahead_along_its_slope() -> None:
    holt = Holt()
    for t in range(40):
        holt.observe(2.0 + 0.5 * t)  # the last sample: 21.5
    assert holt.trend == pytest.approx(0.5, rel=0.02)
    assert holt.forecast(6) == pytest.approx(21.5 + 6 * 0.5, rel=0.02)


def test_it_is_not_ready_before_its_minimum_history() -> None:
    holt = Holt()
    for _ in range(MIN_SAMPLES - 1):
        holt.observe(1.0)
    assert not holt.ready
    holt.observe(1.0)
    assert holt.ready


def test_a_forecast_never_goes_below_zero() -> None:
    holt = Holt()
    for value in (30, 20, 10, 5, 1, 0):
        holt.observe(value)
    assert holt.forecast(10) == 0.0


def test_the_error_is_scored_when_the_sample_a_forecast_was_made_for_comes() -> None:
    # A load that jumps from 10 to 20: the forecast made 4 samples before the jump said 10 for
    # it, an error of 10; forecasts made after the jump are scored 4 samples later, and as the
    # level catches up the error ratio decays.
    holt = Holt()
    assert holt.error_ratio is None
    for _ in range(20):
        holt.observe(10.0)
        holt.forecast(4)
    assert holt.error_ratio == pytest.approx(0.0)
    holt.observe(20.0)
    holt.forecast(4)
    # the smoothed error (0.1 * 10) over the smoothed load (10 + 0.1 * 10)
    assert holt.error_ratio == pytest.approx(1.0 / 11.0)
    for _ in range(60):
        holt.observe(20.0)
        holt.forecast(4)
    assert holt.error_ratio is not None
    assert holt.error_ratio < 0.01


def test_noise_around_a_level_gives_an_error_ratio_of_the_noises_size() -> None:
    rng = random.Random(7)  # noqa: S311 (noise, not a secret)
    holt = Holt()
    for _ in range(500):
        holt.observe(rng.gauss(50.0, 5.0))
        holt.forecast(2)
    assert holt.error_ratio is not None
    assert 0.05 < holt.error_ratio < 0.25
