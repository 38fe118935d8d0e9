"""What the load sampling, forecasting and export cost the operator at 1,000 steps.

    .venv/bin/python -m bench.elastic.scaling_cost [steps]

In one process, as the operator runs them: `StepLoads` counting calls, `Scalers.tick()` over
every step (each scaling on InFlight and CallsPerSecond, predictive: two Holt series each, the
worst case) and the export of five gauges per step into a `Metrics` registry. Reported: the CPU
time of one tick, as a share of one core at the default 5 s sample interval; the CPU of one
scrape of those series (rendered at scrape time, `observability/scalingfigures.py`), as a share
at the ServiceMonitor's 30 s interval; the extra CPU a counted call costs against an uncounted
one (side by side); and the memory the scaling state and its series take (tracemalloc), against
the budget of issue 15 (1 % CPU, 10 MiB).
"""

from __future__ import annotations

import random
import sys
import time
import tracemalloc

from prometheus_client import generate_latest

from stepline.api import ServiceStep
from stepline.controllers.servicesteps.scaling import Scalers
from stepline.engine.loads import LoadSample, StepLoads
from stepline.observability import Metrics

SAMPLE_SECONDS = 5.0
SCRAPE_SECONDS = 30.0  # deploy/monitoring's ServiceMonitor
TICKS = 30


def build_steps(count: int) -> list[ServiceStep]:
    scaling = {
        "maxReplicas": 20,
        "predictive": True,
        "metrics": [{"type": "InFlight", "target": 4}, {"type": "CallsPerSecond", "target": 20}],
    }
    return [
        ServiceStep.from_body(
            {
                "apiVersion": "stepline.io/v1alpha1",
                "kind": "ServiceStep",
                "metadata": {"name": f"step-{i}", "namespace": "bench", "uid": f"u{i}"},
                "spec": {"image": "bench/step:1", "scaling": scaling},
            }
        )
        for i in range(count)
    ]


def tick_cost(steps: list[ServiceStep], *, traced: bool) -> tuple[float, float, int]:
    """CPU seconds of one tick and of one scrape (medians), and, when `traced`, the bytes the
    state and series hold (tracemalloc slows the ticks: the time is taken from an untraced
    pass)."""
    rng = random.Random(1)  # noqa: S311 (load figures, not secrets)
    metrics = Metrics(max_series_per_metric=10_000)
    if traced:
        tracemalloc.start()
    before = tracemalloc.take_snapshot() if traced else None
    scalers = Scalers(sample_seconds=SAMPLE_SECONDS, default_lead_seconds=30)
    costs = []
    for _ in range(TICKS):
        samples = {
            ("bench", step.metadata.name or ""): LoadSample(rng.random() * 8, 4, rng.random() * 40)
            for step in steps
        }
        began = time.process_time()
        figures = scalers.tick(samples, steps).figures
        for (namespace, name), found in figures.items():
            for f in found:
                metrics.set_step_load(
                    namespace=namespace, step=name, metric=f.metric, load=f.load,
                    forecast=f.forecast, error_ratio=f.error_ratio, value=f.value,
                )  # fmt: skip
            metrics.set_step_scaling_lead(namespace=namespace, step=name, seconds=30.0)
        costs.append(time.process_time() - began)
    scrapes = []
    for _ in range(5):
        began = time.process_time()
        generate_latest(metrics.registry)
        scrapes.append(time.process_time() - began)
    held = 0
    if before is not None:
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        held = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    costs.sort()
    scrapes.sort()
    return costs[len(costs) // 2], scrapes[len(scrapes) // 2], held


def call_cost(calls: int = 200_000) -> tuple[float, float]:
    """CPU seconds per call: counted by StepLoads (enter, exit, duration), and a bare loop."""
    loads = StepLoads()
    key = ("bench", "step-0")
    began = time.process_time()
    for _ in range(calls):
        with loads.call(key):
            pass
        loads.record_duration(key, 0.01)
    counted = (time.process_time() - began) / calls
    began = time.process_time()
    for _ in range(calls):
        pass
    bare = (time.process_time() - began) / calls
    return counted, bare


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    steps = build_steps(count)
    tick, scrape, _ = tick_cost(steps, traced=False)
    _, _, held = tick_cost(steps, traced=True)
    counted, bare = call_cost()
    print(f"{count} steps, each InFlight + CallsPerSecond, predictive")
    print(f"one tick: {tick * 1000:.1f} ms CPU = {tick / SAMPLE_SECONDS:.2%} of a core at 5 s")
    print(f"one scrape of the registry: {scrape * 1000:.1f} ms CPU = "
          f"{scrape / SCRAPE_SECONDS:.2%} of a core at 30 s")  # fmt: skip
    print(f"state and series: {held / 2**20:.2f} MiB")
    print(f"per call: {(counted - bare) * 1e6:.2f} µs CPU counted (bare loop {bare * 1e6:.3f} µs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
