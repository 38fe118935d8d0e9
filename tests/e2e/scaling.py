"""Elastic scaling watched on real pods: load sent through invoke at a step while its HPA, its
Deployment and each pod's own request count are sampled, written out as the timeline
bench/elastic/RESULTS.md records.

Two scenarios (`Scenario`), each the finance user-validation image with a capacity knob, under
an HPA with short stabilization windows so that the test sees it scale up and back down within
minutes: CPU_HEAVY spends CPU on every call (`--cpu-ms-per-call`) and scales on CPU;
IN_FLIGHT waits on every call without using CPU (`--wait-ms-per-call`, one call at a time per
replica, as a step waiting on a database) and scales on the calls the operator has in flight,
read by the HPA through Prometheus and prometheus-adapter (tests/e2e/metricsstack.py).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.e2e.realpods import exec_python, pods, step_selector
from tests.integration.localcluster import LocalCluster

BODY = {"user": {"id": "u-1", "name": "ada", "age": 36, "country": "DE", "kycVerified": True}}
SCALE_DOWN_WINDOW_S = 15
# Each pod's own count of answered calls, read with the pod's Python from its /metrics.
READ_CALLS = """
import re, urllib.request
text = urllib.request.urlopen("http://127.0.0.1:8080/metrics", timeout=5).read().decode()
print(sum(float(v) for v in re.findall(r'^step_requests_total{[^}]*} (\\S+)$', text, re.M)))
"""
BEHAVIOR = {
    "scaleUp": {"stabilizationWindowSeconds": 0},
    "scaleDown": {"stabilizationWindowSeconds": SCALE_DOWN_WINDOW_S},
}


@dataclass(frozen=True)
class Scenario:
    step: str
    workflow: str
    args: tuple[str, ...]  # the step's capacity knobs
    scaling: dict[str, Any]
    clients: int  # each invokes in a loop
    metric: str  # what the HPA follows, as the timeline's column says it


CPU_HEAVY = Scenario(
    step="cpu-heavy",
    workflow="heavy",
    args=("--cpu-ms-per-call", "40"),
    scaling={"maxReplicas": 4, "targetCPUUtilizationPercentage": 50},
    clients=6,
    metric="HPA CPU (of the request)",
)
IN_FLIGHT = Scenario(
    step="waiting",
    workflow="waiting",
    args=("--wait-ms-per-call", "1000", "--concurrency", "1"),
    scaling={"maxReplicas": 4, "metrics": [{"type": "InFlight", "target": 1}]},
    clients=3,  # three calls always in flight: three replicas at a target of one
    metric="HPA calls in flight (per replica)",
)


def manifests(namespace: str, scenario: Scenario = CPU_HEAVY) -> list[dict[str, Any]]:
    step = {
        "apiVersion": "stepline.io/v1alpha1",
        "kind": "ServiceStep",
        "metadata": {"name": scenario.step, "namespace": namespace},
        "spec": {
            "image": "stepline/finance-user-validation:0.1.0",
            "args": ["--port", "8080", *scenario.args],
            "port": 8080,
            "path": "/validate",
            "resources": {
                "requests": {"cpu": "100m", "memory": "64Mi"},
                "limits": {"cpu": "500m", "memory": "128Mi"},
            },
            "probes": {"readiness": {"path": "/healthz"}},
            "scaling": {"minReplicas": 1, **scenario.scaling, "behavior": BEHAVIOR},
            "timeoutSeconds": 10,
        },
    }
    workflow = {
        "apiVersion": "stepline.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": scenario.workflow, "namespace": namespace},
        "spec": {"steps": [{"name": "validate", "stepRef": scenario.step}], "concurrency": 100},
    }
    return [step, workflow]


class Load:
    """The scenario's clients, threads POSTing its workflow's invoke in a loop until stopped,
    with a bearer token allowed to invoke it."""

    def __init__(self, base_url: str, namespace: str, scenario: Scenario, *, token: str) -> None:
        workflow = scenario.workflow
        self._url = f"{base_url}/v1/namespaces/{namespace}/workflows/{workflow}:invoke"
        self._headers = {"Authorization": f"Bearer {token}"}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.answers: Counter[str] = Counter()
        self._threads = [
            threading.Thread(target=self._client, daemon=True) for _ in range(scenario.clients)
        ]

    def _client(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                try:
                    answer = client.post(self._url, json=BODY, headers=self._headers)
                    outcome = str(answer.status_code)
                except httpx.HTTPError as failure:
                    outcome = type(failure).__name__
                    self._stop.wait(0.2)
                with self._lock:
                    self.answers[outcome] += 1

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=40)


@dataclass
class Sample:
    at: float  # seconds since the load started
    metric: str | None  # the HPA's current figure (CPU: % of the request); None while unknown
    desired: int
    ready: int


@dataclass
class Timeline:
    scenario: Scenario
    samples: list[Sample] = field(default_factory=list)
    scale_up_decided: float | None = None  # first sample with desired > 1
    reached: float | None = None  # first sample with the wanted number of Ready replicas
    load_stopped: float | None = None
    back_to_one: float | None = None
    calls_per_pod: dict[str, float] = field(default_factory=dict)  # since each pod started
    calls_in_hold: dict[str, float] = field(default_factory=dict)  # while the load was held
    late: list[str] = field(default_factory=list)  # pods that came during the hold (the HPA
    # asked for more): left out of the shares, which say how calls spread over a fixed set
    answers: dict[str, int] = field(default_factory=dict)

    def shares_in_hold(self) -> dict[str, float]:
        """Each pod's share of the calls served while the load was held at the top, among the
        pods there for the whole hold."""
        held = {pod: c for pod, c in self.calls_in_hold.items() if pod not in self.late}
        total = sum(held.values())
        return {pod: calls / total for pod, calls in held.items()} if total else {}

    def markdown(self) -> str:
        rows = [
            f"| t since load start | {self.scenario.metric} | desired | Ready |",
            "|---|---|---|---|",
            *(
                f"| {s.at:.0f} s | {'<unknown>' if s.metric is None else s.metric}"
                f" | {s.desired} | {s.ready} |"
                for s in self.samples
            ),
        ]
        shares = self.shares_in_hold()
        pods_table = [
            "| pod | calls served since it started | in the hold | share of the hold |",
            "|---|---|---|---|",
            *(
                f"| {pod} | {calls:.0f} | {self.calls_in_hold.get(pod, 0):.0f} |"
                f" {'came during the hold' if pod in self.late else f'{shares.get(pod, 0):.0%}'} |"
                for pod, calls in self.calls_per_pod.items()
            ),
        ]
        summary = (
            f"scale-up decided at {self.scale_up_decided} s; wanted Ready replicas at"
            f" {self.reached} s; load stopped at {self.load_stopped} s; back to 1 at"
            f" {self.back_to_one} s; answers {json.dumps(self.answers)}"
        )
        return "\n".join([summary, "", *rows, "", *pods_table])


def sample(cluster: LocalCluster, namespace: str, at: float, scenario: Scenario) -> Sample:
    hpa = cluster.get_json("hpa", scenario.step, "-n", namespace)
    status = hpa.get("status") or {}
    figure = None
    for metric in status.get("currentMetrics") or []:
        resource = (metric.get("resource") or {}).get("current") or {}
        external = (metric.get("external") or {}).get("current") or {}
        if metric.get("type") == "Resource" and "averageUtilization" in resource:
            figure = f"{resource['averageUtilization']} %"
        elif metric.get("type") == "External" and "averageValue" in external:
            figure = f"{external['averageValue']} per replica"
    deployment = cluster.get_json("deployment", scenario.step, "-n", namespace)
    return Sample(
        at=round(at, 1),
        metric=figure,
        desired=int(status.get("desiredReplicas") or 0),
        ready=int((deployment.get("status") or {}).get("readyReplicas") or 0),
    )


def calls_per_pod(cluster: LocalCluster, namespace: str, step: str) -> dict[str, float]:
    counts: dict[str, float] = {}
    for pod in pods(cluster, namespace, step_selector(step)):
        name = pod["metadata"]["name"]
        out = exec_python(cluster, namespace, name, READ_CALLS)
        counts[name] = float(out.stdout.strip()) if out.returncode == 0 else float("nan")
    return counts


def watch_scaling(
    cluster: LocalCluster,
    namespace: str,
    base_url: str,
    *,
    scenario: Scenario = CPU_HEAVY,
    token: str,
    wanted: int,
    up_within: float = 180,
    hold: float = 20,
    down_within: float = 180,
    every: float = 3,
) -> Timeline:
    """Loads the step until `wanted` replicas are Ready (at most `up_within` s), keeps the load
    `hold` s more, reading each pod's calls before and after, stops, and samples until one
    replica is left (at most `down_within` s)."""
    timeline = Timeline(scenario)
    load = Load(base_url, namespace, scenario, token=token).start()
    started = time.monotonic()
    try:
        while time.monotonic() - started < up_within:
            now = sample(cluster, namespace, time.monotonic() - started, scenario)
            timeline.samples.append(now)
            if timeline.scale_up_decided is None and now.desired > 1:
                timeline.scale_up_decided = now.at
            if now.ready >= wanted:
                timeline.reached = now.at
                break
            time.sleep(every)
        if timeline.reached is not None:
            at_top = calls_per_pod(cluster, namespace, scenario.step)
            time.sleep(hold)
            timeline.calls_per_pod = calls_per_pod(cluster, namespace, scenario.step)
            timeline.calls_in_hold = {
                pod: calls - at_top.get(pod, 0) for pod, calls in timeline.calls_per_pod.items()
            }
            timeline.late = [pod for pod in timeline.calls_per_pod if pod not in at_top]
    finally:
        load.stop()
    timeline.load_stopped = round(time.monotonic() - started, 1)
    timeline.answers = dict(load.answers)
    if timeline.reached is None:
        return timeline
    stopped = time.monotonic()
    while time.monotonic() - stopped < down_within:
        now = sample(cluster, namespace, time.monotonic() - started, scenario)
        timeline.samples.append(now)
        if now.desired == 1 and now.ready == 1:
            timeline.back_to_one = now.at
            break
        time.sleep(every)
    return timeline
