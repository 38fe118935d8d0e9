"""The example services' spans (`finance.serving`): a call is a SERVER span in its caller's trace,
child of the span its `traceparent` names, with the attempt, the key and the answer's status;
without `OTEL_EXPORTER_OTLP_ENDPOINT` no tracer is made. Over real HTTP, into the SDK's
in-memory exporter."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from finance.serving import build_step_app, build_tracer
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tests.unit.examples.conftest import Serve

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALL_SPAN = "00f067aa0ba902b7"


def decide(body: dict[str, Any], key: str | None) -> tuple[int, Any]:
    return (503, {"error": "busy"}) if body.get("busy") else (200, {"ok": True})


async def test_a_call_is_a_server_span_under_the_callers_span(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    url = await serve(build_step_app("/step", decide, tracer=provider.get_tracer("t"))) + "/step"
    headers = {
        "traceparent": f"00-{TRACE}-{CALL_SPAN}-01",
        "Idempotency-Key": "uid-1/validate",
        "Stepline-Attempt": "2",
    }

    async with http.post(url, json={}, headers=headers) as answered:
        assert answered.status == 200
    async with http.post(url, json={"busy": True}, headers={}) as refused:
        assert refused.status == 503

    called, busy = exporter.get_finished_spans()
    assert called.kind is SpanKind.SERVER
    assert format(called.context.trace_id, "032x") == TRACE
    assert called.parent is not None
    assert format(called.parent.span_id, "016x") == CALL_SPAN
    assert called.attributes is not None
    assert called.attributes["stepline.attempt"] == "2"
    assert called.attributes["stepline.idempotency_key"] == "uid-1/validate"
    assert called.attributes["http.response.status_code"] == 200
    assert busy.parent is None  # no traceparent: a trace of its own
    assert busy.status.status_code is StatusCode.ERROR


def test_no_tracer_is_made_without_the_otlp_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)

    assert build_tracer("validate") is None
