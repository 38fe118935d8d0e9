"""The `jaeger` fixture end to end: spans sent as the operator will send them come back whole.

Two spans, a parent and its child with attributes, go to the fixture's Jaeger through the
OpenTelemetry SDK's OTLP/HTTP (protobuf) exporter under a service name of this test's own, and
are read back through the query API: by trace id, by service name, and in the service list. An
unknown trace id is reported as `TraceNotFoundError`, the answer later tests can wait on. No cluster
is needed.
"""

from __future__ import annotations

import secrets
import uuid

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import format_span_id, format_trace_id

from tests.integration.jaeger import (
    JaegerServer,
    TraceNotFoundError,
    parent_span_id,
    service_of,
    span_named,
    tags_of,
)

pytestmark = pytest.mark.integration


def send_parent_and_child(jaeger: JaegerServer, service: str) -> tuple[str, str]:
    """Sends `reconcile` with a child `call step`; returns (trace id, parent span id) in hex."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporter = OTLPSpanExporter(endpoint=f"{jaeger.otlp_http_endpoint}/v1/traces", timeout=10)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests.integration.test_jaeger")
    try:
        with (
            tracer.start_as_current_span("reconcile", attributes={"stepline.run": "r-1"}) as root,
            tracer.start_as_current_span("call step", attributes={"stepline.attempt": 2}),
        ):
            pass
        context = root.get_span_context()
    finally:
        provider.shutdown()
    return format_trace_id(context.trace_id), format_span_id(context.span_id)


@pytest.fixture
def service() -> str:
    return f"jaeger-fixture-{uuid.uuid4().hex[:8]}"


def test_a_parent_and_child_sent_over_otlp_http_come_back_as_one_trace(
    jaeger: JaegerServer, service: str
) -> None:
    trace_id, parent_id = send_parent_and_child(jaeger, service)

    trace = jaeger.wait_for_trace(trace_id, spans=2, timeout=30)

    assert int(trace["traceID"], 16) == int(trace_id, 16)
    parent, child = span_named(trace, "reconcile"), span_named(trace, "call step")
    assert int(parent["spanID"], 16) == int(parent_id, 16)
    assert parent_span_id(parent) is None
    assert parent_span_id(child) == parent["spanID"]
    assert service_of(trace, parent) == service_of(trace, child) == service
    assert tags_of(parent)["stepline.run"] == "r-1"
    assert tags_of(child)["stepline.attempt"] == 2


def test_a_service_and_its_traces_are_found_by_name(jaeger: JaegerServer, service: str) -> None:
    trace_id, _ = send_parent_and_child(jaeger, service)
    jaeger.wait_for_trace(trace_id, spans=2)

    assert service in jaeger.services()
    [found] = jaeger.traces(service, limit=5, lookback=300)
    assert int(found["traceID"], 16) == int(trace_id, 16)
    assert jaeger.traces(f"{service}-never-sent") == []


def test_an_unknown_trace_id_is_reported_as_not_found(jaeger: JaegerServer) -> None:
    unknown = secrets.token_hex(16)

    with pytest.raises(TraceNotFoundError, match=unknown):
        jaeger.trace(unknown)
