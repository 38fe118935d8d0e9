"""A step's load a little ahead: Holt's linear exponential smoothing, online. Pure.

Each sample updates a level and a trend (Holt, 1957):

    level' = alpha * x + (1 - alpha) * (level + trend)
    trend' = beta * (level' - level) + (1 - beta) * trend

and the forecast h samples ahead is level + h·trend (never below zero). Two numbers per series,
O(1) per sample: at 1,000 steps with two series each, a few hundred kilobytes and microseconds,
which is why no library is used (statsmodels would bring numpy, scipy and pandas, ~100 MB, into
an operator whose budget is 150 MB). No season: the horizons that matter here (a replica's
start-up, seconds to minutes) are far shorter than a day's cycle, and a ramp or a step is what
the trend follows.

The forecast is scored at the horizon it is used at: each forecast is kept until its sample
arrives, and the error ratio is the smoothed absolute error over the smoothed load (a relative
error that stays defined at zero load). A series with fewer than `min_samples` samples is not
trusted (`ready` is False): the caller scales on the load now and says so.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

ALPHA = 0.5  # how fast the level follows the load: half of each new sample
BETA = 0.3  # how fast the trend follows changes of the level
MIN_SAMPLES = 12  # a minute of 5-second samples before the forecast is used
ERROR_SMOOTHING = 0.1  # weight of the newest scored forecast in the error ratio
MAX_PENDING = 720  # forecasts waiting for their sample: an hour of 5-second samples


@dataclass
class Holt:
    """One series (a step's calls in flight, say), sampled at a fixed interval."""

    alpha: float = ALPHA
    beta: float = BETA
    min_samples: int = MIN_SAMPLES
    samples: int = 0
    level: float = 0.0
    trend: float = 0.0
    _pending: deque[tuple[int, float]] = field(default_factory=deque)
    _error: float | None = None  # smoothed |forecast - actual|
    _load: float | None = None  # smoothed |actual|, over the same samples

    @property
    def ready(self) -> bool:
        return self.samples >= self.min_samples

    @property
    def error_ratio(self) -> float | None:
        """The smoothed absolute error of the forecasts scored so far, relative to the smoothed
        load; None before one is scored, 0 while the load is zero and was forecast so."""
        if self._error is None or self._load is None:
            return None
        if self._load <= 0:
            return 0.0 if self._error <= 0 else 1.0
        return self._error / self._load

    def observe(self, value: float) -> None:
        """Takes the next sample."""
        value = max(value, 0.0)
        self._score(value)
        if self.samples == 0:
            self.level, self.trend = value, 0.0
        else:
            level = self.alpha * value + (1 - self.alpha) * (self.level + self.trend)
            self.trend = self.beta * (level - self.level) + (1 - self.beta) * self.trend
            self.level = level
        self.samples += 1

    def forecast(self, horizon: float) -> float:
        """The load `horizon` samples after the last one (≥ 0), remembered to be scored when
        its sample comes."""
        value = max(self.level + horizon * self.trend, 0.0)
        if self.samples:
            due = self.samples - 1 + max(round(horizon), 1)
            self._pending.append((due, value))
            if len(self._pending) > MAX_PENDING:
                self._pending.popleft()
        return value

    def _score(self, actual: float) -> None:
        index = self.samples  # the index of the sample being observed
        while self._pending and self._pending[0][0] <= index:
            due, predicted = self._pending.popleft()
            if due == index:
                self._error = _smooth(self._error, abs(predicted - actual))
                self._load = _smooth(self._load, actual)


def _smooth(previous: float | None, value: float) -> float:
    return value if previous is None else previous + ERROR_SMOOTHING * (value - previous)
