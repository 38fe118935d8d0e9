"""A load ramp replayed through invoke against a step whose capacity is per replica: reactive
in-flight scaling against predictive, side by side in one run on the local control plane.

    .venv/bin/python -m bench.elastic.ramp [--modes inflight,rate,rate-predictive] [--out FILE]

What is real: the control plane (kube-apiserver, the HPA controller at its local 5 s sync),
the operator (invoke, its load sampling and forecast), Prometheus (1 s scrapes), prometheus-
adapter (the chart's rules) and the aggregation layer; the trace's calls are real HTTP invokes.

What is simulated, because kwok's pods run nothing and are Ready at once:
- a replica's start-up: the Deployment's `minReadySeconds` (STARTUP_SECONDS) keeps a new pod
  from counting as available until it has been Ready that long, the time a real replica's
  image pull and warm-up would take;
- the replicas' capacity: one local process serves the step, `PER_REPLICA` calls at once per
  available replica of the Deployment (read from the API every 0.5 s), each call holding a slot
  for SERVICE_SECONDS; calls beyond capacity queue, as at a saturated service.

Per mode and trace, a fresh step and workflow: WARMUP_SECONDS at the base rate (the forecast's
history), then the trace (`TRACES`): `ramp`, a linear rise to PEAK_RATE over RAMP_SECONDS;
`diurnal`, a day's rise compressed to DIURNAL_SECONDS (a half cosine: slow, then steep, then
levelling off); `step`, the rate jumping to STEP_RATE; `spike`, SPIKE_RATE for SPIKE_SECONDS and
back. Open loop: calls start on the trace's schedule whether or not earlier ones ended.
Recorded: calls over the latency objective (SLO_SECONDS) or failed, replica-seconds (the
Deployment's spec.replicas integrated: what a cluster pays for), the seconds the available
replicas were fewer than the load needed, and, from the end of the warm-up, the seconds until
the available replicas were first enough for the trace's highest rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from tests.integration.localcluster import LocalCluster
from tests.integration.metricsapi import ExternalMetricsApi
from tests.integration.operatorprocess import OperatorProcess, free_port

STEP, WORKFLOW, PATH = "capacity", "ramp", "/work"
SERVICE_SECONDS = 0.5  # one call's work
PER_REPLICA = 2  # calls at once per available replica: 4 calls/s each
STARTUP_SECONDS = 20  # simulated: a new replica serves this long after it is Ready
SLO_SECONDS = 1.0  # an invoke slower than this (or failed) misses the objective
BASE_RATE, PEAK_RATE = 2.0, 28.0  # calls per second
WARMUP_SECONDS, RAMP_SECONDS, HOLD_SECONDS = 75, 180, 45
DIURNAL_SECONDS = 480
STEP_RATE, STEP_SECONDS = 16.0, 120
SPIKE_RATE, SPIKE_SECONDS, AFTER_SPIKE_SECONDS = 20.0, 20, 100
MAX_REPLICAS = 12
# What each mode's autoscaler follows. A replica serves PER_REPLICA / SERVICE_SECONDS = 4 calls/s.
MODES: dict[str, dict[str, Any]] = {
    "inflight": {"metrics": [{"type": "InFlight", "target": PER_REPLICA}]},
    "inflight-predictive": {
        "metrics": [{"type": "InFlight", "target": PER_REPLICA}],
        "predictive": True,
    },
    "rate": {"metrics": [{"type": "CallsPerSecond", "target": PER_REPLICA / SERVICE_SECONDS}]},
    "rate-predictive": {
        "metrics": [{"type": "CallsPerSecond", "target": PER_REPLICA / SERVICE_SECONDS}],
        "predictive": True,
    },
    # 75 % of a replica's throughput: headroom, as a CPU target of 80 % leaves.
    "rate75": {"metrics": [{"type": "CallsPerSecond", "target": 3}]},
    "rate75-predictive": {"metrics": [{"type": "CallsPerSecond", "target": 3}], "predictive": True},
}


@dataclass(frozen=True)
class Trace:
    name: str
    seconds: float  # after the warm-up
    shape: Callable[[float], float]  # 0 (the base rate) to 1 (the peak), t s after the warm-up
    rising: float  # seconds after the warm-up while the load rises (misses: warm-up/rise/rest)
    peak: float  # calls per second at the top: enough replicas for it end the wait timed
    base: float = BASE_RATE  # calls per second in the warm-up

    @property
    def total(self) -> float:
        return WARMUP_SECONDS + self.seconds

    def rate_at(self, t: float) -> float:
        if t < WARMUP_SECONDS:
            return self.base
        return self.base + (self.peak - self.base) * self.shape(t - WARMUP_SECONDS)


def _linear(t: float) -> float:
    return min(t / RAMP_SECONDS, 1.0)


def _diurnal(t: float) -> float:
    return (1 - math.cos(math.pi * min(t / DIURNAL_SECONDS, 1.0))) / 2


TRACES = {
    "ramp": Trace("ramp", RAMP_SECONDS + HOLD_SECONDS, _linear, RAMP_SECONDS, PEAK_RATE),
    "diurnal": Trace(
        "diurnal", DIURNAL_SECONDS + HOLD_SECONDS, _diurnal, DIURNAL_SECONDS, PEAK_RATE
    ),
    "step": Trace("step", STEP_SECONDS, lambda t: 1.0, 0, STEP_RATE),
    "spike": Trace(
        "spike",
        SPIKE_SECONDS + AFTER_SPIKE_SECONDS,
        lambda t: 1.0 if t < SPIKE_SECONDS else 0.0,
        SPIKE_SECONDS,
        SPIKE_RATE,
    ),
}
REPLICA_RATE = PER_REPLICA / SERVICE_SECONDS  # calls per second one replica serves


class CapacityStep:
    """The step's replicas as one process: `capacity` calls at once, the rest queue."""

    def __init__(self) -> None:
        self.port = free_port()
        self.capacity = PER_REPLICA
        self._busy = 0
        self._changed: asyncio.Condition | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None

    def set_available(self, replicas: int) -> None:
        loop, changed = self._loop, self._changed
        if loop is None or changed is None:
            return

        async def widen() -> None:
            async with changed:
                self.capacity = PER_REPLICA * max(replicas, 1)
                changed.notify_all()

        asyncio.run_coroutine_threadsafe(widen(), loop)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        changed = self._changed
        if changed is None:
            raise web.HTTPServiceUnavailable
        async with changed:
            await changed.wait_for(lambda: self._busy < self.capacity)
            self._busy += 1
        try:
            await asyncio.sleep(SERVICE_SECONDS)
        finally:
            async with changed:
                self._busy -= 1
                changed.notify_all()
        return web.Response(body=body or b"null", content_type="application/json")

    @contextmanager
    def serving(self) -> Iterator[CapacityStep]:
        ready = threading.Event()

        async def main() -> None:
            self._loop, self._changed = asyncio.get_running_loop(), asyncio.Condition()
            app = web.Application()
            app.router.add_post(PATH, self._handle)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
            ready.set()
            await asyncio.Event().wait()

        thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
        thread.start()
        ready.wait(10)
        yield self


@dataclass
class Outcome:
    mode: str
    trace: Trace
    replica_rate: float  # calls per second one replica serves
    calls: int = 0
    misses: int = 0
    failures: int = 0
    replica_seconds: float = 0.0
    short_seconds: float = 0.0  # available replicas fewer than the load needs
    lead_seconds: float | None = None  # the operator's measured lead time (predictive modes)
    enough_after: float | None = None  # from the warm-up's end to enough available replicas
    latencies: list[float] = field(default_factory=list)
    missed_at: list[float] = field(default_factory=list)  # seconds into the trace
    timeline: list[dict[str, Any]] = field(default_factory=list)

    def needed(self, rate: float) -> int:
        """The replicas that serve `rate` calls per second."""
        return max(math.ceil(rate / self.replica_rate - 1e-9), 1)

    def record(self, t: float, dt: float, *, replicas: int, available: int) -> None:
        """One sample of the Deployment, `t` s into the trace and `dt` s after the last."""
        rate = self.trace.rate_at(t)
        self.replica_seconds += replicas * dt
        if available < self.needed(rate):
            self.short_seconds += dt
        top = self.needed(self.trace.peak)
        if self.enough_after is None and t >= WARMUP_SECONDS and available >= top:
            self.enough_after = round(t - WARMUP_SECONDS, 1)
        self.timeline.append({"t": round(t, 1), "rate": round(rate, 1),
                              "replicas": replicas, "available": available})  # fmt: skip

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        rise_end = WARMUP_SECONDS + self.trace.rising
        return {
            "mode": self.mode,
            "trace": self.trace.name,
            "calls": self.calls,
            "slo_misses": self.misses,
            "misses_warmup_rise_rest": [
                sum(t < WARMUP_SECONDS for t in self.missed_at),
                sum(WARMUP_SECONDS <= t < rise_end for t in self.missed_at),
                sum(t >= rise_end for t in self.missed_at),
            ],
            "failures": self.failures,
            "replica_seconds": round(self.replica_seconds, 1),
            "short_seconds": round(self.short_seconds, 1),
            "lead_seconds": self.lead_seconds,
            "enough_replicas_after_s": self.enough_after,
            "p50_s": round(ordered[len(ordered) // 2], 3) if ordered else None,
            "p99_s": round(ordered[int(len(ordered) * 0.99)], 3) if ordered else None,
        }


def deploy(cluster: LocalCluster, namespace: str, mode: str) -> None:
    cluster.apply([
        {
            "apiVersion": "stepline.io/v1alpha1",
            "kind": "ServiceStep",
            "metadata": {"name": STEP, "namespace": namespace},
            "spec": {
                "image": "stepline/capacity:bench",
                "path": PATH,
                "timeoutSeconds": 60,
                "scaling": {"minReplicas": 1, "maxReplicas": MAX_REPLICAS, **MODES[mode]},
            },
        },
        {
            "apiVersion": "stepline.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"name": WORKFLOW, "namespace": namespace},
            "spec": {"steps": [{"name": "work", "stepRef": STEP}], "concurrency": 1000},
        },
    ])  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = cluster.get_json("deployment", STEP, "-n", namespace)
        if found.get("status", {}).get("availableReplicas"):
            break
        time.sleep(0.5)
    # Simulated start-up (module docstring); another field manager's field, so Stepline's
    # server-side apply leaves it alone.
    patch = json.dumps({"spec": {"minReadySeconds": STARTUP_SECONDS}})
    cluster.kubectl("patch", "deployment", STEP, "-n", namespace, "--type=merge", "-p", patch)


async def drive(url: str, outcome: Outcome, body: Any = None) -> None:
    """Invokes `url` (a workflow's invoke) on the trace's schedule, open loop, recording each
    call in `outcome`; `body`: the input (default: the call's index)."""
    trace = outcome.trace
    total = trace.total
    timeout = aiohttp.ClientTimeout(total=90)
    # No connection cap: an open loop. (aiohttp's default of 100 made it a closed loop once
    # calls queued: arrivals then fell to what the replicas served, and a rate-following
    # autoscaler saw no excess to scale for.)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:

        async def one(index: int, at: float) -> None:
            began = time.monotonic()
            try:
                payload = {"n": index} if body is None else body
                async with session.post(url, json=payload) as response:
                    await response.read()
                    ok = response.status == 200
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            took = time.monotonic() - began
            outcome.calls += 1
            outcome.latencies.append(took)
            outcome.failures += not ok
            if not ok or took > SLO_SECONDS:
                outcome.misses += 1
                outcome.missed_at.append(at)

        start, due, index, tasks = time.monotonic(), 0.0, 0, []
        while due < total:
            await asyncio.sleep(max(start + due - time.monotonic(), 0))
            tasks.append(asyncio.create_task(one(index, due)))
            index += 1
            due += 1.0 / trace.rate_at(due)
        await asyncio.gather(*tasks)


def watch(
    cluster: LocalCluster,
    namespace: str,
    step: CapacityStep,
    outcome: Outcome,
    stop: threading.Event,
) -> None:
    start = last = time.monotonic()
    while not stop.is_set():
        found = cluster.get_json("deployment", STEP, "-n", namespace)
        spec = int(found["spec"].get("replicas") or 0)
        available = int(found.get("status", {}).get("availableReplicas") or 0)
        step.set_available(available)
        now = time.monotonic()
        outcome.record(now - start, now - last, replicas=spec, available=available)
        last = now
        stop.wait(0.5)


def lead_of(operator: OperatorProcess) -> float | None:
    url = f"{operator.metrics_url}/metrics"  # http, to the operator started here
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
        text = response.read().decode()
    found = re.search(
        r'^stepline_step_scaling_lead_seconds\{[^}]*step="capacity"\} (\S+)$', text, re.M
    )
    return round(float(found.group(1)), 1) if found else None


def run_mode(
    cluster: LocalCluster, api: ExternalMetricsApi, mode: str, trace: Trace, workdir: Path
) -> Outcome:
    namespace = f"{trace.name}-{mode}-{int(time.time())}"
    cluster.kubectl("create", "namespace", namespace)
    outcome = Outcome(mode, trace, REPLICA_RATE)
    with CapacityStep().serving() as step:
        env = {
            "STEPLINE_ENDPOINT_OVERRIDES": json.dumps({STEP: f"http://127.0.0.1:{step.port}"}),
            "STEPLINE_INVOKE_TIMEOUT_SECONDS": "80",
            # Scaling is measured here, not who may invoke (bench/overhead measures that).
            "STEPLINE_INVOKE_AUTH": "false",
        }
        operator = OperatorProcess(
            cluster, (namespace,), workdir / f"operator-{namespace}.log", extra_env=env,
            metrics_port=api.operator_port,
        ).start()  # fmt: skip
        try:
            deploy(cluster, namespace, mode)
            stop = threading.Event()
            watcher = threading.Thread(
                target=watch, args=(cluster, namespace, step, outcome, stop), daemon=True
            )
            watcher.start()
            url = f"{operator.base_url}/v1/namespaces/{namespace}/workflows/{WORKFLOW}:invoke"
            asyncio.run(drive(url, outcome))
            stop.set()
            watcher.join()
            outcome.lead_seconds = lead_of(operator)
        finally:
            operator.stop()
            cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", default="inflight,rate75,rate75-predictive")
    parser.add_argument("--traces", default="ramp", help=f"of {', '.join(TRACES)}")
    parser.add_argument("--out", type=Path, default=None, help="JSON results (with timelines)")
    parser.add_argument("--kubeconfig", help="a local cluster already up (default: start one)")
    args = parser.parse_args(argv)
    traces = [TRACES[name] for name in args.traces.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="stepline-ramp-"))
    cluster = LocalCluster.attach(args.kubeconfig) if args.kubeconfig else LocalCluster.start()
    api = ExternalMetricsApi(cluster, workdir / "metrics-api")
    results: list[dict[str, Any]] = []
    try:
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "crds")
        api.start()
        for trace in traces:
            for mode in args.modes.split(","):
                outcome = run_mode(cluster, api, mode, trace, workdir)
                print(json.dumps(outcome.summary()), flush=True)
                results.append({**outcome.summary(), "timeline": outcome.timeline})
                if args.out:  # after each mode: a long run that stops keeps what it measured
                    args.out.write_text(json.dumps(results, indent=1))
    finally:
        api.stop()
        cluster.stop()
    print(f"logs: {workdir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
