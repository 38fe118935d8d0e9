"""The spans of a run (`Executor` with `Tracing`): one for the run in the trace derived from its
uid, or in its caller's; one per call attempt under it, whose ids are the `traceparent` the step
receives; a failed attempt and a failed run say why. Against a real HTTP step server on
loopback, exported into the SDK's in-memory exporter."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from stepline.api import Workflow
from stepline.engine import Executor, RunRequest, RunStatus, StepIndex, build_plan
from stepline.engine.tracing import derive_trace_id
from stepline.httpclient.transports import AiohttpTransport
from stepline.observability.tracing import TraceParent, Tracing
from tests.unit.engine.stepservers import Answer, StepServer, build_service_step

RETRY = {"limit": 2, "backoff": {"initialSeconds": 0.01, "maxSeconds": 0.01}}
CALLER = TraceParent("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", sampled=True)


def workflow(steps: list[dict[str, Any]]) -> Workflow:
    metadata = {"name": "trade", "namespace": "shop", "generation": 1, "uid": "uid-trade"}
    return Workflow.from_body({"metadata": metadata, "spec": {"steps": steps}})


def traced_executor(
    server: StepServer, transport: AiohttpTransport
) -> tuple[Executor, Tracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing = Tracing(exporter, delay=0.01)
    steps = [build_service_step(name, path=f"/{name}", retry=RETRY) for name in ("a", "b")]
    overrides = dict.fromkeys(("a", "b"), server.base_url)
    executor = Executor(
        transport=transport, directory=StepIndex(steps), overrides=overrides, tracing=tracing
    )
    return executor, tracing, exporter


def spans_of(tracing: Tracing, exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    tracing.shutdown()
    return sorted(exporter.get_finished_spans(), key=lambda span: span.start_time or 0)


def hex_ids(span: ReadableSpan) -> tuple[str, str]:
    return format(span.context.trace_id, "032x"), format(span.context.span_id, "016x")


async def test_a_run_is_a_span_with_a_child_per_attempt_each_sent_as_the_steps_traceparent(
    server: StepServer, transport: AiohttpTransport
) -> None:
    server.answer("/a", Answer(json={"ok": True}))
    server.answer("/b", Answer(status=503, json={"busy": True}), Answer(json={"done": True}))
    executor, tracing, exporter = traced_executor(server, transport)
    steps = [{"name": "a", "stepRef": "a"}, {"name": "b", "stepRef": "b"}]

    outcome = await executor.execute(
        build_plan(workflow(steps)), RunRequest("uid-7", {}, name="trade-7")
    )

    assert outcome.status is RunStatus.SUCCEEDED
    run, *calls = spans_of(tracing, exporter)
    assert run.name == "run trade"
    assert run.parent is None
    assert hex_ids(run)[0] == derive_trace_id("uid-7") == outcome.trace_id
    assert run.attributes is not None
    assert run.attributes["stepline.run"] == "trade-7"
    assert run.attributes["stepline.outcome"] == "Succeeded"
    assert [(c.name, (c.attributes or {})["stepline.attempt"]) for c in calls] == [
        ("call a", 1), ("call b", 1), ("call b", 2),
    ]  # fmt: skip
    for call in calls:
        assert call.parent is not None
        assert call.parent.span_id == run.context.span_id
    sent = [received.headers["traceparent"] for received in server.calls("/a") + server.calls("/b")]
    assert sent == [f"00-{trace}-{span}-01" for trace, span in map(hex_ids, calls)]
    refused = calls[1]
    assert refused.status.status_code is StatusCode.ERROR
    assert (refused.attributes or {})["http.response.status_code"] == 503
    assert (refused.attributes or {})["error.type"] == "ServerError"
    assert (calls[2].attributes or {})["http.response.status_code"] == 200


async def test_a_run_with_a_callers_traceparent_joins_its_trace_and_a_failure_is_marked(
    server: StepServer, transport: AiohttpTransport
) -> None:
    server.answer("/a", Answer(status=400, json={"error": "no such user"}))
    executor, tracing, exporter = traced_executor(server, transport)

    outcome = await executor.execute(
        build_plan(workflow([{"name": "a", "stepRef": "a"}])),
        RunRequest("uid-8", {}, trace_parent=CALLER),
    )

    assert outcome.status is RunStatus.FAILED
    run, call = spans_of(tracing, exporter)
    assert hex_ids(run)[0] == CALLER.trace_id == outcome.trace_id
    assert run.parent is not None
    assert format(run.parent.span_id, "016x") == CALLER.span_id
    assert run.status.status_code is StatusCode.ERROR
    assert "returned 400" in (run.status.description or "")
    assert call.status.status_code is StatusCode.ERROR
