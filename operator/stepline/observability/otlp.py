"""Spans to an OTLP/HTTP collector as OTLP/JSON (`OtlpJsonExporter`).

OTLP's JSON encoding (the OTLP specification's "JSON Protobuf Encoding": ids as hex, 64-bit
integers as decimal strings, enums as numbers), built as dicts and serialised by orjson, costs a
few µs a span; the OpenTelemetry SDK's protobuf exporter cost 34-38 µs a span here, and would
bring `requests` and `protobuf` into the operator (bench/overhead/RESULTS.md, section 13). Every
OTLP receiver takes it: Jaeger, the OpenTelemetry Collector, Tempo.

A batch is one POST to `<endpoint>` (`…/v1/traces`) with `Content-Type: application/json`, on a
connection kept between batches (reopened after a failure); the export thread calls it, never
the event loop. A 2xx is success; anything else, or no answer within `timeout`, fails the batch
(the caller counts its spans as dropped). No retry: the next batch goes on, and a collector that
is away costs one failed connection per batch, not a backlog.
"""

from __future__ import annotations

import http.client
import logging
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from stepline.observability.tracing import DISABLED, OnDrop, TraceSpan, Tracing

logger = logging.getLogger(__name__)


def build_tracing(
    endpoint: str,
    *,
    ratio: float,
    export_timeout: float,
    version: str,
    on_drop: OnDrop,
) -> Tracing:
    """Tracing to the OTLP/HTTP collector at `endpoint` (its base URL); off when it is empty."""
    if not endpoint:
        return DISABLED
    exporter = OtlpJsonExporter(
        endpoint.rstrip("/") + "/v1/traces",
        timeout=export_timeout,
        resource={"service.name": "stepline-operator", "service.version": version},
    )
    return Tracing(exporter, ratio=ratio, on_drop=on_drop)


class OtlpJsonExporter:
    """Sends batches of spans to `endpoint` (the full URL, `…/v1/traces`) as OTLP/JSON, from the
    process that `resource` describes (`service.name`, …)."""

    def __init__(
        self,
        endpoint: str,
        *,
        timeout: float = 5.0,
        resource: Mapping[str, str] | None = None,
    ) -> None:
        url = urllib.parse.urlsplit(endpoint)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"an OTLP/HTTP endpoint is an http(s) URL, not {endpoint!r}")
        self._url = url
        self._path = url.path or "/v1/traces"
        self._timeout = timeout
        self._resource = encode_attributes(resource or {"service.name": "stepline-operator"})
        self._connection: http.client.HTTPConnection | None = None

    def export(self, spans: Sequence[TraceSpan]) -> bool:
        """Whether the collector took the batch."""
        if not spans:
            return True
        body = orjson.dumps(encode_spans(spans, resource=self._resource))
        try:
            status = self._post(body)
        except (OSError, http.client.HTTPException) as exc:
            self._close()
            logger.debug("spans not sent to %s: %s", self._url.geturl(), exc)
            return False
        if 200 <= status < 300:
            return True
        logger.debug("spans refused by %s: HTTP %d", self._url.geturl(), status)
        return False

    def _post(self, body: bytes) -> int:
        connection = self._connection or self._connect()
        connection.request(
            "POST", self._path, body=body, headers={"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        response.read()
        if response.will_close:
            self._close()
        return response.status

    def _connect(self) -> http.client.HTTPConnection:
        host, port = self._url.hostname or "", self._url.port
        if self._url.scheme == "https":
            self._connection = http.client.HTTPSConnection(host, port, timeout=self._timeout)
        else:
            self._connection = http.client.HTTPConnection(host, port, timeout=self._timeout)
        return self._connection

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def shutdown(self) -> None:
        self._close()


def encode_spans(spans: Sequence[TraceSpan], *, resource: list[dict[str, Any]]) -> dict[str, Any]:
    """An OTLP `ExportTraceServiceRequest` as JSON: one resource (the operator) and scope."""
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": resource},
                "scopeSpans": [
                    {"scope": {"name": "stepline"}, "spans": [encode_span(span) for span in spans]}
                ],
            }
        ]
    }


def encode_span(span: TraceSpan) -> dict[str, Any]:
    encoded: dict[str, Any] = {
        "traceId": span.trace_id,
        "spanId": span.span_id,
        "name": span.name,
        "kind": int(span.kind),
        "startTimeUnixNano": str(span.start_ns),
        "endTimeUnixNano": str(span.end_ns),
        "attributes": encode_attributes(span.attributes),
    }
    if span.parent_span_id is not None:
        encoded["parentSpanId"] = span.parent_span_id
    if span.failure is not None:
        encoded["status"] = {"code": 2, "message": span.failure}  # STATUS_CODE_ERROR
    return encoded


def encode_attributes(attributes: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"key": key, "value": encode_value(value)} for key, value in attributes.items()]


def encode_value(value: Any) -> dict[str, Any]:
    """An OTLP AnyValue (by exact type: a bool is an int to isinstance)."""
    encoder = _ENCODERS.get(type(value))
    if encoder is not None:
        return encoder(value)
    if isinstance(value, Sequence) and not isinstance(value, str):
        return {"arrayValue": {"values": [encode_value(item) for item in value]}}
    return {"stringValue": str(value)}


_ENCODERS: dict[type, Callable[[Any], dict[str, Any]]] = {
    str: lambda value: {"stringValue": value},
    bool: lambda value: {"boolValue": value},
    int: lambda value: {"intValue": str(value)},
    float: lambda value: {"doubleValue": value},
}
