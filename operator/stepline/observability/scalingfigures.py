"""The scaling figures of the steps that scale on their load, rendered when Prometheus scrapes.

Five gauges per step and load metric (`stepline_step_load`, `_load_forecast`,
`_load_forecast_error_ratio`, `stepline_step_scaling_value`, `stepline_step_scaling_lead_seconds`)
are set every few seconds for every such step. As labelled children of the client library's
`Gauge` each series carries a child object, its value holder and lock, and the label tuple
twice. Here each step holds one small record of floats, and `collect()` builds the families
when a scrape asks for them: the same series in far less memory, the work moved to the scrape
(once per scrape interval, not per sample). bench/elastic/RESULTS.md has both measured at 1,000
steps.

Label values are admitted by one `LabelGuard` per (namespace, step), as every Stepline metric's
are: past the cap, steps fold into `_other` and the overflow counter says so.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from stepline.observability.guarding import FoldReason, LabelGuard

LOAD = "stepline_step_load"
FORECAST = "stepline_step_load_forecast"
FORECAST_ERROR = "stepline_step_load_forecast_error_ratio"
VALUE = "stepline_step_scaling_value"
LEAD = "stepline_step_scaling_lead_seconds"

DOCUMENTATION = {
    LOAD: "The load the operator puts on a predictive step: calls in flight (mean over the last "
    "sample) or calls started per second (a reactive step's is its scaling value).",
    FORECAST: "The step's load forecast one lead time ahead (Holt's linear smoothing).",
    FORECAST_ERROR: "Smoothed absolute error of the load forecasts, scored when their time came, "
    "over the smoothed load.",
    VALUE: "What the step's autoscaler follows (an External metric, per replica target): the "
    "load now, or with predictive scaling the larger of now and the forecast.",
    LEAD: "A predictive step's lead time: measured seconds from the sample that asked for more "
    "replicas to those replicas available (an assumed default until one is measured).",
}
NAMES = tuple(DOCUMENTATION)


@dataclass(frozen=True, slots=True)
class StepFigure:
    """One load metric of one step, as last sampled."""

    load: float
    forecast: float | None  # None: a reactive step (only its value is exported)
    error_ratio: float | None
    value: float


@dataclass(slots=True)
class _Step:
    figures: dict[str, StepFigure] = field(default_factory=dict)  # by metric label
    lead: float | None = None


class ScalingFigures(Collector):
    """The latest scaling figures per step; a collector for the metrics registry."""

    def __init__(self, *, max_series: int, on_fold: Callable[[str, FoldReason, str], None]) -> None:
        self._guard = LabelGuard(VALUE, ("namespace", "step"), max_series=max_series,
                                 on_fold=on_fold)  # fmt: skip
        self._steps: dict[tuple[str, ...], _Step] = {}
        self._lock = threading.Lock()  # scrapes come from the HTTP server's thread

    def set(self, *, namespace: str, step: str, metric: str, figure: StepFigure) -> None:
        key = self._guard.admit({"namespace": namespace, "step": step})
        with self._lock:
            self._steps.setdefault(key, _Step()).figures[metric] = figure

    def set_lead(self, *, namespace: str, step: str, seconds: float) -> None:
        key = self._guard.admit({"namespace": namespace, "step": step})
        with self._lock:
            self._steps.setdefault(key, _Step()).lead = seconds

    def forget(self, *, namespace: str, step: str) -> None:
        self._guard.forget({"namespace": namespace, "step": step})
        with self._lock:
            self._steps.pop((namespace, step), None)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield from self._families()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = self._families()
        load, forecast, error, value, lead = families
        with self._lock:
            steps = [(key, step.lead, list(step.figures.items())) for key, step in
                     self._steps.items()]  # fmt: skip
        for (namespace, name), seconds, figures in steps:
            for metric, figure in figures:
                labels = [namespace, name, metric]
                value.add_metric(labels, figure.value)
                if figure.forecast is None:
                    continue
                load.add_metric(labels, figure.load)
                forecast.add_metric(labels, figure.forecast)
                if figure.error_ratio is not None:
                    error.add_metric(labels, figure.error_ratio)
            if seconds is not None:
                lead.add_metric([namespace, name], seconds)
        yield from families

    @staticmethod
    def _families() -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily(
                name,
                DOCUMENTATION[name],
                labels=("namespace", "step") if name == LEAD else ("namespace", "step", "metric"),
            )
            for name in NAMES
        ]
