"""Scaling on the load the operator sees: the figures the steps' autoscalers follow.

A step whose `scaling.metrics` name InFlight or CallsPerSecond has an autoscaler that reads the
operator's gauge `stepline_step_scaling_value{step, metric}` through the external metrics API
(`resources/autoscalers.py`). Every `scaling_sample_seconds` this loop samples each such step's
load (`engine/loads.py`: calls in flight, time-averaged, and calls started per second), feeds
it to the step's forecasters (`engine/forecasting.py`, one per metric) and exports:

    load now, its forecast one lead time ahead, the forecast's error, and the scaling value

The scaling value is the load now; with `scaling.predictive`, once a series has enough history,
the larger of now and the forecast, the forecast capped at what `maxReplicas` replicas serve at
the target — so a forecast never scales below the reactive figure nor past `maxReplicas`. Until
then the status says the step scales reactively, and why (`ScalingStatus`).

The lead time is measured per step (`LeadTimes`): from the sample whose figures first asked for
more replicas than the Deployment has (as the HPA reads them: past its 10 % tolerance) to the
Deployment event where the replicas the autoscaler then decided are available (Ready, for the
Deployment's minReadySeconds if it sets one), smoothed. So it holds the whole way from load to
capacity: the metrics pipeline (scrape, the adapter, the HPA's sync) as well as the replicas'
start-up, and a forecast that far ahead is in time. A scale-up the figures did not ask for (on
CPU, say) is timed from the Deployment's own report. Until one is measured,
`scaling_default_lead_seconds`. Steps idle since the operator started export zeros,
so that their autoscalers have a value to read.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from stepline.api import (
    LOAD_METRICS,
    ScalingMetricType,
    ScalingMode,
    ScalingStatus,
    ServiceStep,
)
from stepline.controllers.servicesteps.forecasting import MIN_SAMPLES, Holt
from stepline.engine.loads import LoadSample, StepKey
from stepline.resources.autoscalers import LOAD_METRIC_LABELS

logger = logging.getLogger(__name__)

LEAD_SMOOTHING = 0.5  # weight of the newest measured lead time
MAX_LEAD_SECONDS = 600.0  # longer than this, a wait measured something else (metrics down, say)
# The HPA leaves the replicas alone while a metric is within this ratio of its target
# (kube-controller-manager's --horizontal-pod-autoscaler-tolerance, 0.1 by default).
HPA_TOLERANCE = 0.1
IDLE = LoadSample(in_flight=0.0, in_flight_now=0, calls_per_second=0.0)

NOT_PREDICTIVE = ScalingStatus(
    mode=ScalingMode.REACTIVE,
    reason="NotPredictive",
    message="the autoscaler follows the step's load now (scaling.predictive is off)",
)
INSUFFICIENT_HISTORY = ScalingStatus(
    mode=ScalingMode.REACTIVE,
    reason="InsufficientHistory",
    message=f"the forecast needs {MIN_SAMPLES} samples of the step's load first: until then "
    "the autoscaler follows the load now",
)
FORECASTING = ScalingStatus(
    mode=ScalingMode.PREDICTIVE,
    reason="Forecasting",
    message="the autoscaler follows the larger of the load now and its forecast one lead time "
    "ahead",
)


@dataclass(slots=True)
class _Timing:
    target: int  # the replicas asked for
    since: float  # when they were asked for
    decided: bool  # the Deployment's desired replicas have grown (not only the figures asked)


@dataclass
class LeadTimes:
    """Seconds from a scale-up to its available replicas, per step, from its Deployment's
    reports."""

    clock: Callable[[], float] = time.monotonic
    _desired: dict[StepKey, int] = field(default_factory=dict)
    _timing: dict[StepKey, _Timing] = field(default_factory=dict)
    _lead: dict[StepKey, float] = field(default_factory=dict)

    def asked(self, key: StepKey, replicas: int) -> None:
        """One sample's figures asked for `replicas` (what the HPA will decide from them)."""
        desired = self._desired.get(key)
        if desired is None:
            return
        timing = self._timing.get(key)
        if timing is None and replicas > desired:
            self._timing[key] = _Timing(target=replicas, since=self.clock(), decided=False)
        elif timing is not None and not timing.decided and replicas <= desired:
            del self._timing[key]  # the ask went away before the autoscaler acted on it

    def observe(self, key: StepKey, *, desired: int, available: int) -> None:
        """One report of the step's Deployment: its desired (spec) and available replicas."""
        now = self.clock()
        before = self._desired.get(key)
        self._desired[key] = desired
        timing = self._timing.get(key)
        grew = before is not None and desired > before
        if grew and timing is None and available < desired:
            self._timing[key] = timing = _Timing(target=desired, since=now, decided=True)
        elif grew and timing is not None:
            # The autoscaler's decision: its replicas end the wait (a further scale-up too).
            timing.target = desired if not timing.decided else max(timing.target, desired)
            timing.decided = True
        if timing is None or not timing.decided:
            return
        if desired < timing.target:
            del self._timing[key]  # scaled down before the replicas came: nothing to measure
        elif available >= timing.target:
            del self._timing[key]
            seconds = now - timing.since
            if seconds > MAX_LEAD_SECONDS:
                return
            known = self._lead.get(key)
            self._lead[key] = (
                seconds if known is None else known + LEAD_SMOOTHING * (seconds - known)
            )

    def lead(self, key: StepKey) -> float | None:
        return self._lead.get(key)

    def desired(self, key: StepKey) -> int | None:
        return self._desired.get(key)

    def forget(self, key: StepKey) -> None:
        self._desired.pop(key, None)
        self._timing.pop(key, None)
        self._lead.pop(key, None)


@dataclass(frozen=True, slots=True)
class ScalingFigure:
    """One load metric of one step at one sample."""

    metric: str  # its label: in_flight or calls_per_second
    load: float
    forecast: float | None  # None: the step is not predictive (nothing forecast)
    error_ratio: float | None
    value: float  # what the autoscaler follows


@dataclass
class _StepScaler:
    series: dict[ScalingMetricType, Holt] = field(default_factory=dict)
    predictive: bool = False


@dataclass(frozen=True, slots=True)
class Tick:
    """What one tick found: the figures of every step that scales on its load; the steps that
    stopped doing so (deleted, or back to CPU alone); those that stopped being predictive (their
    forecast series go, their scaling value stays)."""

    figures: dict[StepKey, list[ScalingFigure]]
    gone: list[StepKey]
    unpredicted: list[StepKey]


@dataclass
class Scalers:
    """The forecasters of every step that scales on its load. Pure: `tick()` takes the loads
    sampled and the steps, and returns what to export; the caller does the I/O."""

    sample_seconds: float
    default_lead_seconds: float
    leads: LeadTimes = field(default_factory=LeadTimes)
    _steps: dict[StepKey, _StepScaler] = field(default_factory=dict)
    statuses: dict[StepKey, ScalingStatus] = field(default_factory=dict)

    def lead_seconds(self, key: StepKey) -> float:
        return self.leads.lead(key) or self.default_lead_seconds

    def tick(self, samples: dict[StepKey, LoadSample], steps: Iterable[ServiceStep]) -> Tick:
        """Feeds each step's sampled load to its forecasters; see `Tick`. A step that is not
        predictive keeps its history (turned predictive, it forecasts at once) but makes no
        forecast."""
        figures: dict[StepKey, list[ScalingFigure]] = {}
        unpredicted: list[StepKey] = []
        for step in steps:
            scaling = step.spec.resolved_scaling
            targets = scaling.load_targets
            if step.spec.url is not None or not targets:
                continue
            key = (step.metadata.namespace or "", step.metadata.name or "")
            scaler = self._steps.setdefault(key, _StepScaler())
            predictive = scaling.predictive
            if scaler.predictive and not predictive:
                unpredicted.append(key)
            scaler.predictive = predictive
            sample = samples.get(key, IDLE)
            horizon = self.lead_seconds(key) / self.sample_seconds
            found: list[ScalingFigure] = []
            for metric in LOAD_METRICS:
                target = targets.get(metric)
                if target is None:
                    scaler.series.pop(metric, None)
                    continue
                series = scaler.series.setdefault(metric, Holt())
                load = (
                    sample.in_flight
                    if metric is ScalingMetricType.IN_FLIGHT
                    else (sample.calls_per_second)
                )
                series.observe(load)
                forecast = series.forecast(horizon) if predictive else None
                value = load
                if forecast is not None and series.ready:
                    value = max(load, min(forecast, scaling.max_replicas * target))
                found.append(
                    ScalingFigure(
                        metric=LOAD_METRIC_LABELS[metric],
                        load=load,
                        forecast=forecast,
                        error_ratio=series.error_ratio if predictive else None,
                        value=value,
                    )
                )
            figures[key] = found
            current = self.leads.desired(key)
            if current is not None:
                self.leads.asked(key, asked_replicas(found, targets, current, scaling.max_replicas))
            self.statuses[key] = self._status(predictive, scaler)
        gone = [key for key in self._steps if key not in figures]
        for key in gone:
            del self._steps[key]
            self.statuses.pop(key, None)
            self.leads.forget(key)
        return Tick(figures, gone, unpredicted)

    def status(self, key: StepKey) -> ScalingStatus | None:
        return self.statuses.get(key)

    @staticmethod
    def _status(predictive: bool, scaler: _StepScaler) -> ScalingStatus:
        if not predictive:
            return NOT_PREDICTIVE
        if not all(series.ready for series in scaler.series.values()):
            return INSUFFICIENT_HISTORY
        return FORECASTING


def asked_replicas(
    figures: list[ScalingFigure],
    targets: dict[ScalingMetricType, float],
    current: int,
    max_replicas: int,
) -> int:
    """The replicas an HPA on these figures asks for, from `current`: per metric (an External
    metric with an AverageValue target), value / target rounded up, unless within the tolerance
    of what `current` serves; the largest, within `max_replicas`."""
    wanted = current
    by_label = {LOAD_METRIC_LABELS[metric]: target for metric, target in targets.items()}
    for figure in figures:
        target = by_label[figure.metric]
        if current and abs(figure.value / (target * current) - 1) <= HPA_TOLERANCE:
            continue
        wanted = max(wanted, math.ceil(figure.value / target))
    return min(wanted, max_replicas)


async def scale_forever(
    scalers: Scalers,
    *,
    sample: Callable[[], dict[StepKey, LoadSample]],
    steps: Callable[[], Iterable[ServiceStep]],
    export: Callable[[StepKey, list[ScalingFigure], float], None],
    forget: Callable[[StepKey], None],
    status_changed: Callable[[StepKey], None],
) -> None:
    """Samples, forecasts and exports every `sample_seconds` until cancelled: `forget` drops a
    step's series (before its figures are exported again, if it still has some). A failure of
    one tick is logged, and the next tick runs as usual."""
    while True:
        await asyncio.sleep(scalers.sample_seconds)
        try:
            before = dict(scalers.statuses)
            tick = scalers.tick(sample(), steps())
            for key in (*tick.gone, *tick.unpredicted):
                forget(key)
            for key, found in tick.figures.items():
                export(key, found, scalers.lead_seconds(key))
                if before.get(key) != scalers.statuses.get(key):
                    status_changed(key)
            for key in tick.gone:
                status_changed(key)
        except Exception:
            logger.exception("scaling: a sample of the steps' load failed; the next one follows")
