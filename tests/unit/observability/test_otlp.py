"""OTLP/JSON (`observability.otlp`): a span as the OTLP specification's JSON encoding has it (hex
ids, 64-bit integers as decimal strings, enums as numbers, status only when failed), and the
exporter's answers: a 2xx takes the batch, a refusal or no collector fails it. Against a real
HTTP server on loopback; the encoding against Jaeger is the integration tests'."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from stepline.observability.otlp import OtlpJsonExporter, encode_spans
from stepline.observability.tracing import SpanKind, TraceSpan

TRACE, RUN, CALL = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "a3ce929d0e0e4736"


def failed_call() -> TraceSpan:
    span = TraceSpan(
        TRACE, CALL, sampled=True, recorded=True, name="call order", kind=SpanKind.CLIENT,
        parent_span_id=RUN, attributes={"stepline.step": "order", "stepline.attempt": 2},
    )  # fmt: skip
    span.set({"http.response.status_code": 503, "stepline.compensation": False, "ratio": 0.5})
    span.fail("POST http://order/ returned 503")
    span.end_ns = span.start_ns + 1500
    return span


def test_a_span_is_encoded_as_otlp_json() -> None:
    span = failed_call()

    request = encode_spans([span], resource=[])

    (resource_spans,) = request["resourceSpans"]
    (scope_spans,) = resource_spans["scopeSpans"]
    (encoded,) = scope_spans["spans"]
    assert encoded == {
        "traceId": TRACE,
        "spanId": CALL,
        "parentSpanId": RUN,
        "name": "call order",
        "kind": 3,
        "startTimeUnixNano": str(span.start_ns),
        "endTimeUnixNano": str(span.start_ns + 1500),
        "attributes": [
            {"key": "stepline.step", "value": {"stringValue": "order"}},
            {"key": "stepline.attempt", "value": {"intValue": "2"}},
            {"key": "http.response.status_code", "value": {"intValue": "503"}},
            {"key": "stepline.compensation", "value": {"boolValue": False}},
            {"key": "ratio", "value": {"doubleValue": 0.5}},
        ],
        "status": {"code": 2, "message": "POST http://order/ returned 503"},
    }


class Collector(http.server.BaseHTTPRequestHandler):
    answers: ClassVar[list[int]] = []
    received: ClassVar[list[tuple[str, str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, self.headers["Content-Type"], json.loads(body)))
        self.send_response(self.answers.pop(0) if self.answers else 200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[str]:
    Collector.answers, Collector.received = [], []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    server.shutdown()
    server.server_close()


def test_a_collector_that_answers_2xx_takes_the_batch_on_one_kept_connection(
    collector: str,
) -> None:
    exporter = OtlpJsonExporter(collector, resource={"service.name": "stepline-operator"})

    assert exporter.export([failed_call()])
    assert exporter.export([failed_call(), failed_call()])
    exporter.shutdown()

    (path, kind, first), (_, _, second) = Collector.received
    assert (path, kind) == ("/v1/traces", "application/json")
    resource = first["resourceSpans"][0]["resource"]
    assert resource == {
        "attributes": [{"key": "service.name", "value": {"stringValue": "stepline-operator"}}]
    }
    assert len(second["resourceSpans"][0]["scopeSpans"][0]["spans"]) == 2


def test_a_refusal_or_no_collector_fails_the_batch(collector: str) -> None:
    Collector.answers = [503]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/v1/traces"

    assert not OtlpJsonExporter(collector).export([failed_call()])
    assert not OtlpJsonExporter(closed, timeout=1).export([failed_call()])


def test_an_endpoint_that_is_not_an_http_url_is_refused() -> None:
    with pytest.raises(ValueError, match="http"):
        OtlpJsonExporter("jaeger:4318")
