"""Scaling on the load the operator sees, end to end on the real control plane: the operator's
gauge → a real Prometheus → a real prometheus-adapter (the chart's rules) → the API aggregation
layer → the HorizontalPodAutoscaler controller → the step's Deployment.

The step's calls are served by a local process that holds each call (kwok's pods serve nothing:
the operator reaches the process through STEPLINE_ENDPOINT_OVERRIDES); the operator samples
each step's load every second here (every 5 s by default).
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.localcluster import LocalCluster, wait_until
from tests.integration.metricsapi import ExternalMetricsApi
from tests.integration.operatorprocess import OperatorProcess
from tests.integration.stepobjects import API_VERSION, get, service_step, wait_ready, workflow
from tests.integration.stepservices import ThreadedStepServer, invoker_token, post_invoke
from tests.unit.engine.stepservers import Answer

pytestmark = pytest.mark.integration

STEP = "slow"
PATH = "/slow"
HOLD_SECONDS = 40  # how long the step process holds each call
RUNS = 8  # calls held at once
TARGET = 2  # in flight per replica: 8 calls want 4 replicas


@pytest.fixture(scope="module")
def metrics_api(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ExternalMetricsApi]:
    api = ExternalMetricsApi(cluster, tmp_path_factory.mktemp("metrics-api"))
    try:
        yield api.start()
    finally:
        api.stop()


@pytest.fixture
def held_step() -> Iterator[ThreadedStepServer]:
    server = ThreadedStepServer().start()
    server.answer(PATH, Answer(json={"done": True}, delay=HOLD_SECONDS))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def scaling_operator(  # noqa: PLR0917 (fixtures)
    cluster: LocalCluster,
    crds: None,
    namespace: str,
    tmp_path: Path,
    metrics_api: ExternalMetricsApi,
    held_step: ThreadedStepServer,
) -> Iterator[OperatorProcess]:
    env = {
        "STEPLINE_ENDPOINT_OVERRIDES": json.dumps({STEP: held_step.base_url}),
        "STEPLINE_SCALING_SAMPLE_SECONDS": "1",
        "STEPLINE_SCALING_DEFAULT_LEAD_SECONDS": "4",
    }
    process = OperatorProcess(
        cluster, (namespace,), tmp_path / "operator.log", extra_env=env,
        metrics_port=metrics_api.operator_port,
    ).start()  # fmt: skip
    try:
        yield process
    finally:
        process.stop()


def deploy(
    cluster: LocalCluster,
    namespace: str,
    *,
    first: Callable[[], object] | None = None,
    **scaling: Any,
) -> None:
    """The held step and a one-step workflow calling it; `first` runs once the step is applied,
    before waiting for it to be Ready."""
    scaling = {
        "minReplicas": 1,
        "maxReplicas": 5,
        # Down at once when the load is gone (the default waits 5 minutes).
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}},
        **scaling,
    }
    cluster.apply(
        service_step(STEP, namespace, image="stepline/echo:0.1.0", path=PATH,
                     timeoutSeconds=HOLD_SECONDS + 30, scaling=scaling)
    )  # fmt: skip
    if first is not None:
        first()
    cluster.apply(workflow("hold", namespace, [{"name": "call", "stepRef": STEP}], concurrency=50))
    wait_ready(cluster, "servicestep", STEP, namespace)
    wait_ready(cluster, "workflow", "hold", namespace)


def start_runs(cluster: LocalCluster, namespace: str, count: int, prefix: str = "r") -> None:
    cluster.apply(
        [
            {
                "apiVersion": API_VERSION,
                "kind": "WorkflowRun",
                "metadata": {"name": f"{prefix}{i}", "namespace": namespace},
                "spec": {"workflowRef": "hold", "input": {"i": i}},
            }
            for i in range(count)
        ]
    )


def autoscaler(cluster: LocalCluster, namespace: str) -> dict[str, Any]:
    found = get(cluster, "hpa", STEP, namespace)
    assert found is not None
    return found


def replicas(cluster: LocalCluster, namespace: str) -> int:
    deployment = get(cluster, "deployment", STEP, namespace)
    assert deployment is not None
    return int(deployment["spec"].get("replicas") or 0)


def scaling_reason(cluster: LocalCluster, namespace: str) -> str | None:
    """The step's status.scaling.reason, None while it has none."""
    found = get(cluster, "servicestep", STEP, namespace) or {}
    reason: str | None = (found.get("status", {}).get("scaling") or {}).get("reason")
    return reason


def scrape(operator: OperatorProcess, *names: str) -> list[dict[str, float]]:
    """The operator's series of each metric named, by their label text, from one scrape (so
    that figures of one sample are read together)."""
    url = f"{operator.metrics_url}/metrics"  # http, to the operator started here
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
        text = response.read().decode()
    found = []
    for name in names:
        pattern = re.compile(rf"^{name}\{{([^}}]*)\}} (\S+)$", re.MULTILINE)
        found.append({labels: float(value) for labels, value in pattern.findall(text)})
    return found


def test_in_flight_scaling_moves_replicas_through_the_external_metrics_api(
    cluster: LocalCluster,
    namespace: str,
    scaling_operator: OperatorProcess,
    metrics_api: ExternalMetricsApi,
    held_step: ThreadedStepServer,
) -> None:
    deploy(cluster, namespace, metrics=[{"type": "InFlight", "target": TARGET}])
    hpa = autoscaler(cluster, namespace)
    assert hpa["spec"]["metrics"][0]["external"]["metric"]["selector"]["matchLabels"] == {
        "step": STEP, "metric": "in_flight",
    }  # fmt: skip
    # Idle, the step's figure exists (zero), so the autoscaler can read it and keeps one replica.
    wait_until(
        lambda: metrics_api.value(namespace, STEP, "in_flight") == 0,
        timeout=60, what="the idle step's in-flight figure (0) through the metrics API",
    )  # fmt: skip
    wait_until(
        lambda: scaling_reason(cluster, namespace) == "NotPredictive",
        timeout=10, what="the status saying the autoscaler follows the load now",
    )  # fmt: skip

    start_runs(cluster, namespace, RUNS)
    started = time.monotonic()
    wait_until(lambda: len(held_step.calls(PATH)) == RUNS, timeout=30, what=f"{RUNS} calls held")
    # 8 calls in flight at a target of 2 per replica: the autoscaler wants 4.
    try:
        wait_until(
            lambda: replicas(cluster, namespace) == RUNS // TARGET,
            timeout=HOLD_SECONDS - 5,
            what=f"the Deployment scaled to {RUNS // TARGET} replicas",
        )
    except AssertionError as exc:
        hpa_status = autoscaler(cluster, namespace).get("status")
        raise AssertionError(f"{exc}\nHPA: {hpa_status}\n{metrics_api.log_tail()}") from None
    scaled_after = time.monotonic() - started
    status = autoscaler(cluster, namespace)["status"]
    assert status["desiredReplicas"] == RUNS // TARGET
    current = status["currentMetrics"][0]["external"]
    assert current["metric"]["name"] == "stepline_step_scaling_value"
    print(f"in-flight scale-up 1 → {RUNS // TARGET} replicas {scaled_after:.1f} s after the calls")

    # The calls end: the load is gone and the autoscaler goes back to one replica.
    wait_until(
        lambda: replicas(cluster, namespace) == 1,
        timeout=HOLD_SECONDS + 60,
        what="the Deployment back to 1 replica once the calls ended",
    )
    # The figure is a time average, read through Prometheus and the adapter: it reaches 0
    # a scrape or two after the last call, not necessarily by the scale-down.
    wait_until(
        lambda: metrics_api.value(namespace, STEP, "in_flight") == 0,
        timeout=60,
        what="in_flight back to 0 once the calls ended",
    )


def test_calls_per_second_scaling_moves_replicas_with_the_arrival_rate(
    cluster: LocalCluster,
    namespace: str,
    scaling_operator: OperatorProcess,
    metrics_api: ExternalMetricsApi,
    held_step: ThreadedStepServer,
) -> None:
    held_step.answer(PATH, Answer(json={"done": True}))  # quick calls: rate, not concurrency
    deploy(cluster, namespace, metrics=[{"type": "CallsPerSecond", "target": 1}])
    wait_until(
        lambda: metrics_api.value(namespace, STEP, "calls_per_second") == 0,
        timeout=60, what="the idle step's calls-per-second figure (0) through the metrics API",
    )  # fmt: skip
    stop = threading.Event()
    token = invoker_token(cluster, namespace)

    def call_at_3_per_second() -> None:  # on a schedule, whatever each call took
        due = time.monotonic()
        while not stop.is_set():
            post_invoke(scaling_operator.base_url, namespace, "hold", b"{}", token=token)
            due += 1 / 3
            stop.wait(max(due - time.monotonic(), 0))

    caller = threading.Thread(target=call_at_3_per_second, daemon=True)
    caller.start()
    try:
        # About 3 calls a second at a target of 1 per replica: the autoscaler wants 3.
        wait_until(
            lambda: replicas(cluster, namespace) == 3,
            timeout=60, what="the Deployment scaled to 3 replicas on the arrival rate",
        )  # fmt: skip
        current = autoscaler(cluster, namespace)["status"]["currentMetrics"][0]["external"]
        assert current["metric"]["selector"]["matchLabels"]["metric"] == "calls_per_second"
        rate = metrics_api.value(namespace, STEP, "calls_per_second")
        assert rate is not None
        # What the operator measured of the 3 calls a second, over its last 1 s sample.
        assert 1.5 <= rate <= 4.5
    finally:
        stop.set()
        caller.join()
    wait_until(
        lambda: replicas(cluster, namespace) == 1,
        timeout=90, what="the Deployment back to 1 replica once the calls stopped",
    )  # fmt: skip


def test_predictive_scaling_runs_ahead_of_a_rising_load_once_it_has_history(
    cluster: LocalCluster,
    namespace: str,
    scaling_operator: OperatorProcess,
    held_step: ThreadedStepServer,
) -> None:
    def says_too_little_history() -> object:
        # For its first 12 samples (12 s here), whether or not it is called.
        statuses: list[object] = []

        def reason() -> bool:
            statuses.append((get(cluster, "servicestep", STEP, namespace) or {}).get("status"))
            return scaling_reason(cluster, namespace) == "InsufficientHistory"

        try:
            return wait_until(reason, timeout=10, what="the status saying: too little history")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {statuses[-1]}") from None

    # The autoscaler may not scale up here: kwok's pods are Ready within 0.1 s, so a measured
    # lead time would leave the forecast nothing to run ahead of; unmeasured, it is the default
    # (4 s here), one second per sample.
    behavior = {"scaleUp": {"selectPolicy": "Disabled"}}
    deploy(
        cluster, namespace, maxReplicas=20, predictive=True, behavior=behavior,
        metrics=[{"type": "InFlight", "target": TARGET}], first=says_too_little_history,
    )  # fmt: skip
    # A ramp: one more call held each second, for 20 s (the forecast needs 12 samples).
    labels = f'metric="in_flight",namespace="{namespace}",step="{STEP}"'
    seen: list[tuple[float, float]] = []  # (load, scaling value) as the operator exports them
    for i in range(20):
        start_runs(cluster, namespace, 1, prefix=f"ramp{i}-")
        time.sleep(1)
        values, loads = scrape(
            scaling_operator, "stepline_step_scaling_value", "stepline_step_load"
        )
        seen.append((loads.get(labels, 0.0), values.get(labels, 0.0)))
    assert all(value >= load for load, value in seen), seen  # never below the load now
    assert seen[-1][0] > 15, seen  # the ramp was seen
    # Once it has history, about 4 samples ahead of a ramp of 0.8 more calls each.
    assert all(value > load + 1.5 for load, value in seen[15:]), seen[12:]
    step = wait_until(
        lambda: (found := get(cluster, "servicestep", STEP, namespace))
        and found["status"]["scaling"]["reason"] == "Forecasting" and found,
        timeout=30, what="the status saying the step scales on its forecast",
    )  # fmt: skip
    assert step["status"]["scaling"]["mode"] == "Predictive"
    (lead,) = scrape(scaling_operator, "stepline_step_scaling_lead_seconds")
    assert lead[f'namespace="{namespace}",step="{STEP}"'] == 4


def test_an_autoscaler_that_cannot_read_its_metrics_keeps_its_replicas_and_says_why(
    cluster: LocalCluster,
    namespace: str,
    scaling_operator: OperatorProcess,
    metrics_api: ExternalMetricsApi,
) -> None:
    deploy(cluster, namespace, metrics=[{"type": "InFlight", "target": TARGET}])
    wait_until(
        lambda: metrics_api.value(namespace, STEP, "in_flight") == 0,
        timeout=60, what="the step's figure through the metrics API",
    )  # fmt: skip
    metrics_api.stop_adapter()
    try:
        step = wait_until(
            lambda: (found := get(cluster, "servicestep", STEP, namespace))
            and (found["status"].get("scaling") or {}).get("reason") == "MetricsUnavailable"
            and found,
            # The status waits a minute (a new step's series takes the adapter's relist).
            timeout=120, what="the ServiceStep's status saying the metrics cannot be read",
        )  # fmt: skip
        assert "FailedGetExternalMetric" in step["status"]["scaling"]["message"]
        assert replicas(cluster, namespace) == 1  # kept, as Kubernetes does
        events = cluster.get_json(
            "events", "-n", namespace, "--field-selector", f"involvedObject.name={STEP}"
        )["items"]
        assert any(e["reason"] == "ScalingMetricsUnavailable" for e in events), events
        (active,) = scrape(scaling_operator, "stepline_step_autoscaler_active")
        assert active[f'namespace="{namespace}",step="{STEP}"'] == 0
    finally:
        metrics_api.start_adapter()
    wait_until(
        lambda: scaling_reason(cluster, namespace) == "NotPredictive",
        timeout=90, what="the status back to normal once the adapter answers again",
    )  # fmt: skip
