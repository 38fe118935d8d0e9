"""Traces of runs in a real Jaeger, through the operator on the real control plane: a three-step
run is one trace (the run's span, a call span per step, each the `traceparent` its step got); a
retried step has a span per attempt, the refused one marked; a run resumed after the operator
was killed continues its trace; a failed run's span says why; an
invoke joins its caller's trace, and one with an invalid `traceparent` starts its own; a
WorkflowRun joins the trace its annotation names; the finance example's user-validation service,
run as its image runs it, continues the trace under the operator's call span; a slow call's
exemplar in a real Prometheus leads to its trace; and a collector that is away costs runs
nothing but the spans, which are counted as dropped.

One namespace, step server and operator (exporting to the session's Jaeger at a ratio of 1)
serve the module (see stepservices.py); each test reads its own trace by its id.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stepline.engine.tracing import derive_trace_id
from tests.integration.jaeger import JaegerServer, parent_span_id, service_of, span_named, tags_of
from tests.integration.localcluster import LocalCluster, wait_until
from tests.integration.operatorprocess import OperatorProcess, free_port
from tests.integration.prometheus import PrometheusServer
from tests.integration.stepobjects import get
from tests.integration.stepservices import (
    StepBed,
    apply_workflow,
    close_step_bed,
    open_step_bed,
    restart,
    start_run,
    wait_finished,
)
from tests.integration.test_approvals import sample, scraped
from tests.unit.engine.stepservers import Answer

pytestmark = pytest.mark.integration

STEPS = ("a", "b", "c", "flaky", "broken", "validate")
REPO = Path(__file__).resolve().parents[2]
OPERATOR = "stepline-operator"
CALLER = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
ADA = {"id": "u-1001", "name": "Ada Lovelace", "country": "GB", "age": 36, "kycVerified": True}


@pytest.fixture(scope="module")
def validation(jaeger: JaegerServer) -> Iterator[str]:
    """The finance example's user-validation service as its image runs it (`python -m
    finance.user_validation`), exporting its spans to Jaeger; its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "examples"),
        "OTEL_EXPORTER_OTLP_ENDPOINT": jaeger.otlp_http_endpoint,
        "OTEL_SERVICE_NAME": "user-validation",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "finance.user_validation", "--host", "127.0.0.1", "--port",
         str(port)], env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(f"{url}/healthz"), timeout=30, what="user-validation up")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def bed(
    cluster: LocalCluster,
    crds: None,
    jaeger: JaegerServer,
    validation: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[StepBed]:
    env = {
        "STEPLINE_TRACING_ENDPOINT": jaeger.otlp_http_endpoint,
        "STEPLINE_TRACING_SAMPLING_RATIO": "1",
    }
    opened = open_step_bed(
        cluster, "traces", STEPS, tmp_path_factory.mktemp("traces"), extra_env=env,
        elsewhere={"validate": validation},
    )  # fmt: skip
    try:
        yield opened
    finally:
        close_step_bed(opened)


def calls_of(trace: dict[str, Any], step: str) -> list[dict[str, Any]]:
    found = [span for span in trace["spans"] if span["operationName"] == f"call {step}"]
    return sorted(found, key=lambda span: tags_of(span)["stepline.attempt"])


def test_a_three_step_run_is_one_trace_of_its_span_and_a_call_span_per_step(
    bed: StepBed, jaeger: JaegerServer
) -> None:
    for step in ("a", "b", "c"):
        bed.server.answer(f"/{step}", Answer(json={"done": step}))
    apply_workflow(bed, "three", [{"name": s, "stepRef": s} for s in ("a", "b", "c")])
    uid = start_run(bed, "three-1", "three", {"order": 7})
    assert wait_finished(bed, "three-1")["status"]["phase"] == "Succeeded"

    trace = jaeger.wait_for_trace(derive_trace_id(uid), spans=4)

    run = span_named(trace, "run three")
    assert parent_span_id(run) is None
    assert service_of(trace, run) == OPERATOR
    tags = tags_of(run)
    assert (tags["stepline.namespace"], tags["stepline.run"]) == (bed.namespace, "three-1")
    assert tags["stepline.outcome"] == "Succeeded"
    for step in ("a", "b", "c"):
        (call,) = calls_of(trace, step)
        assert parent_span_id(call) == run["spanID"]
        assert tags_of(call)["stepline.step"] == step
        assert tags_of(call)["http.response.status_code"] == 200
        (received,) = bed.server.calls(f"/{step}", run_uid=uid)
        assert received.headers["traceparent"] == f"00-{trace['traceID']}-{call['spanID']}-01"


def test_a_retried_step_has_a_span_per_attempt_the_refused_one_marked(
    bed: StepBed, jaeger: JaegerServer
) -> None:
    bed.server.answer("/flaky", Answer(status=503, json={"busy": True}), Answer(json={"ok": 1}))
    apply_workflow(bed, "retried", [{"name": "flaky", "stepRef": "flaky"}])
    uid = start_run(bed, "retried-1", "retried", {})
    assert wait_finished(bed, "retried-1")["status"]["phase"] == "Succeeded"

    trace = jaeger.wait_for_trace(derive_trace_id(uid), spans=3)

    first, second = calls_of(trace, "flaky")
    assert tags_of(first)["stepline.attempt"] == 1
    assert tags_of(first)["http.response.status_code"] == 503
    assert tags_of(first)["error.type"] == "ServerError"
    assert tags_of(first)["otel.status_code"] == "ERROR"
    assert tags_of(second)["stepline.attempt"] == 2
    assert "otel.status_code" not in tags_of(second)


def test_a_run_resumed_after_the_operator_was_killed_continues_its_trace(
    bed: StepBed, jaeger: JaegerServer, tmp_path: Path
) -> None:
    bed.server.answer("/c", Answer(json={"done": "c"}, delay=4))
    apply_workflow(bed, "resumed", [{"name": "c", "stepRef": "c", "timeoutSeconds": 15}])
    uid = start_run(bed, "resumed-1", "resumed", {})
    wait_until(lambda: bed.server.calls("/c", run_uid=uid), timeout=30, what="the first call")
    wait_until(
        lambda: ((get(bed.cluster, "workflowrun", "resumed-1", bed.namespace) or {})
                 .get("status") or {}).get("currentStep") == "c",
        timeout=30, what="the call checkpointed as under way",
    )  # fmt: skip

    bed.operator.kill()  # mid-call: neither its run span nor its call span ever ends
    bed.operator = restart(bed.operator, tmp_path / "restarted.log")
    assert wait_finished(bed, "resumed-1", timeout=60)["status"]["phase"] == "Succeeded"

    trace = jaeger.wait_for_trace(derive_trace_id(uid), spans=2)
    run = span_named(trace, "run resumed")
    assert tags_of(run)["stepline.resumed"] is True
    (call,) = calls_of(trace, "c")
    assert parent_span_id(call) == run["spanID"]
    assert tags_of(call)["stepline.attempt"] == 2  # the interrupted call, sent again


def test_a_failed_runs_span_says_why(bed: StepBed, jaeger: JaegerServer) -> None:
    bed.server.answer("/broken", Answer(status=400, json={"error": "no such account"}))
    apply_workflow(bed, "failing", [{"name": "broken", "stepRef": "broken"}])
    uid = start_run(bed, "failing-1", "failing", {})
    assert wait_finished(bed, "failing-1")["status"]["phase"] == "Failed"

    trace = jaeger.wait_for_trace(derive_trace_id(uid), spans=2)

    tags = tags_of(span_named(trace, "run failing"))
    assert tags["otel.status_code"] == "ERROR"
    assert "returned 400" in tags["otel.status_description"]
    assert tags["stepline.reason"] == "StepFailed"


def invoke(bed: StepBed, workflow: str, traceparent: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {bed.token}", "Content-Type": "application/json"}
    if traceparent is not None:
        headers["traceparent"] = traceparent
    url = f"{bed.operator.base_url}/v1/namespaces/{bed.namespace}/workflows/{workflow}:invoke"
    return httpx.post(url, content=b"{}", headers=headers, timeout=30)


def test_an_invoke_joins_its_callers_trace_and_an_invalid_traceparent_starts_another(
    bed: StepBed, jaeger: JaegerServer
) -> None:
    bed.server.answer("/a", Answer(json={"done": "a"}))
    apply_workflow(bed, "single", [{"name": "a", "stepRef": "a"}])
    trace_id, span_id = CALLER

    joined = invoke(bed, "single", f"00-{trace_id}-{span_id}-01")
    invalid = invoke(bed, "single", f"00-{trace_id.upper()}-{span_id}-01")

    assert joined.status_code == invalid.status_code == 200
    assert joined.headers["Stepline-Trace-Id"] == trace_id
    trace = jaeger.wait_for_trace(trace_id, spans=2)
    run = span_named(trace, "run single")
    assert parent_span_id(run) == span_id
    assert parent_span_id(span_named(trace, "call a")) == run["spanID"]
    started = invalid.headers["Stepline-Trace-Id"]
    assert started not in (trace_id, trace_id.upper())
    assert parent_span_id(span_named(jaeger.wait_for_trace(started, spans=2), "run single")) is None


def test_a_workflow_run_joins_the_trace_its_annotation_names(
    bed: StepBed, jaeger: JaegerServer
) -> None:
    bed.server.answer("/b", Answer(json={"done": "b"}))
    apply_workflow(bed, "joined", [{"name": "b", "stepRef": "b"}])
    trace_id, span_id = "5" * 32, "6" * 16
    bed.cluster.apply({
        "apiVersion": "stepline.io/v1alpha1", "kind": "WorkflowRun",
        "metadata": {"name": "joined-1", "namespace": bed.namespace,
                     "annotations": {"stepline.io/traceparent": f"00-{trace_id}-{span_id}-01"}},
        "spec": {"workflowRef": "joined", "input": {}},
    })  # fmt: skip
    assert wait_finished(bed, "joined-1")["status"]["phase"] == "Succeeded"

    trace = jaeger.wait_for_trace(trace_id, spans=2)

    assert parent_span_id(span_named(trace, "run joined")) == span_id


def test_the_example_service_continues_the_trace_under_the_call_span(
    bed: StepBed, jaeger: JaegerServer
) -> None:
    apply_workflow(bed, "screening", [{"name": "validate", "stepRef": "validate"}])
    uid = start_run(bed, "screening-1", "screening", {"user": ADA})
    run = wait_finished(bed, "screening-1")
    assert run["status"]["phase"] == "Succeeded", run["status"]

    trace = jaeger.wait_for_trace(derive_trace_id(uid), spans=3)

    (call,) = calls_of(trace, "validate")
    served = span_named(trace, "POST /validate")
    assert service_of(trace, served) == "user-validation"
    assert parent_span_id(served) == call["spanID"]
    assert tags_of(served)["stepline.idempotency_key"] == f"{uid}/validate"
    assert tags_of(served)["http.response.status_code"] == 200


def test_a_slow_calls_exemplar_in_prometheus_leads_to_its_trace(
    bed: StepBed, jaeger: JaegerServer, tmp_path: Path
) -> None:
    target = f"127.0.0.1:{bed.operator.metrics_port}"
    with PrometheusServer(targets=[target], workdir=tmp_path) as prometheus:
        bed.server.answer("/b", Answer(json={"done": "b"}, delay=0.3))
        apply_workflow(bed, "slow", [{"name": "b", "stepRef": "b"}])
        uid = start_run(bed, "slow-1", "slow", {})
        assert wait_finished(bed, "slow-1")["status"]["phase"] == "Succeeded"
        since = time.time() - 120

        def exemplars() -> list[dict[str, Any]]:
            found = prometheus.exemplars(
                'stepline_step_call_duration_seconds_bucket{workflow="slow"}',
                start=since, end=time.time() + 5,
            )  # fmt: skip
            return [e for series in found for e in series["exemplars"]]

        (exemplar,) = prometheus.wait_for("the slow call's exemplar", exemplars)

    trace_id = exemplar["labels"]["trace_id"]
    assert trace_id == derive_trace_id(uid)
    assert float(exemplar["value"]) >= 0.3
    trace = jaeger.wait_for_trace(trace_id, spans=2)
    assert tags_of(span_named(trace, "run slow"))["stepline.run"] == "slow-1"
    assert parent_span_id(span_named(trace, "call b")) == span_named(trace, "run slow")["spanID"]


def test_a_collector_that_is_away_costs_runs_nothing_and_the_spans_lost_are_counted(
    bed: StepBed, tmp_path: Path
) -> None:
    away = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    overrides = {f"{bed.namespace}/c": bed.server.base_url}
    operator = OperatorProcess(
        bed.cluster, (bed.namespace,), tmp_path / "operator.log",
        extra_env={
            "STEPLINE_ENDPOINT_OVERRIDES": json.dumps(overrides),
            "STEPLINE_TRACING_ENDPOINT": away,
            "STEPLINE_TRACING_EXPORT_TIMEOUT_SECONDS": "1",
        },
    )  # fmt: skip
    bed.server.answer("/c", Answer(json={"done": "c"}))
    apply_workflow(bed, "unheard", [{"name": "c", "stepRef": "c"}])
    bed.operator.stop()
    try:
        operator.start()
        start_run(bed, "unheard-1", "unheard", {})
        run = wait_finished(bed, "unheard-1")
        assert run["status"]["phase"] == "Succeeded", run["status"]
        wait_until(
            lambda: (sample(scraped(operator), "stepline_spans_dropped_total",
                            {"reason": "export_failed"}) or 0) >= 2,
            timeout=30, what="the lost spans counted",
        )  # fmt: skip
    finally:
        operator.stop()
        bed.operator.start()
