"""The spans of a run (`Executor` with `Tracing`): one for the run in the trace derived from its
uid, or in its caller's; one per call attempt under it, whose ids are the `traceparent` the step
receives; a failed attempt and a failed run say why. Against a real HTTP step server on
loopback, exported into a list."""

from __future__ import annotations

from typing import Any

from stepline.api import Workflow
from stepline.engine import Executor, RunRequest, RunStatus, StepIndex, build_plan
from stepline.engine.tracing import derive_trace_id
from stepline.httpclient.transports import AiohttpTransport
from stepline.observability.tracing import SpanKind, TraceParent, TraceSpan, Tracing
from tests.unit.engine.stepservers import Answer, StepServer, build_service_step
from tests.unit.observability.test_tracing import Collected

RETRY = {"limit": 2, "backoff": {"initialSeconds": 0.01, "maxSeconds": 0.01}}
CALLER = TraceParent("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", sampled=True)


def workflow(steps: list[dict[str, Any]]) -> Workflow:
    metadata = {"name": "trade", "namespace": "shop", "generation": 1, "uid": "uid-trade"}
    return Workflow.from_body({"metadata": metadata, "spec": {"steps": steps}})


def traced_executor(
    server: StepServer, transport: AiohttpTransport
) -> tuple[Executor, Tracing, Collected]:
    exporter = Collected()
    tracing = Tracing(exporter, delay=0.01)
    steps = [build_service_step(name, path=f"/{name}", retry=RETRY) for name in ("a", "b")]
    overrides = dict.fromkeys(("a", "b"), server.base_url)
    executor = Executor(
        transport=transport, directory=StepIndex(steps), overrides=overrides, tracing=tracing
    )
    return executor, tracing, exporter


def spans_of(tracing: Tracing, exporter: Collected) -> list[TraceSpan]:
    tracing.shutdown()
    return sorted(exporter.spans, key=lambda span: span.start_ns)


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
    assert run.parent_span_id is None
    assert run.trace_id == derive_trace_id("uid-7") == outcome.trace_id
    assert run.attributes["stepline.run"] == "trade-7"
    assert run.attributes["stepline.outcome"] == "Succeeded"
    assert [(c.name, c.attributes["stepline.attempt"]) for c in calls] == [
        ("call a", 1), ("call b", 1), ("call b", 2),
    ]  # fmt: skip
    for call in calls:
        assert call.parent_span_id == run.span_id
        assert call.kind is SpanKind.CLIENT
    sent = [received.headers["traceparent"] for received in server.calls("/a") + server.calls("/b")]
    assert sent == [f"00-{call.trace_id}-{call.span_id}-01" for call in calls]
    refused = calls[1]
    assert "returned 503" in (refused.failure or "")
    assert refused.attributes["http.response.status_code"] == 503
    assert refused.attributes["error.type"] == "ServerError"
    assert calls[2].attributes["http.response.status_code"] == 200
    assert calls[2].failure is None


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
    assert run.trace_id == CALLER.trace_id == outcome.trace_id
    assert run.parent_span_id == CALLER.span_id
    assert "returned 400" in (run.failure or "")
    assert call.failure is not None
