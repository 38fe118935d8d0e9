"""What every finance step service shares: a JSON POST endpoint that honours Idempotency-Key,
GET /healthz, GET /metrics (its own request counts and durations, for Prometheus), and a command
line with --host/--port.

A replica's capacity is a knob, for seeing a HorizontalPodAutoscaler (or the operator's load
figures) follow a step's load: `--cpu-ms-per-call` makes each call spend that much CPU time on
busy work (a CPU-heavy step); `--wait-ms-per-call` makes it wait that long without using CPU (a
step waiting on a database, which CPU scaling never sees); `--concurrency N` handles at most N
calls at once and queues the rest. `step_requests_in_flight` counts the calls being answered or
queued.

Traces: with `OTEL_EXPORTER_OTLP_ENDPOINT` set (OpenTelemetry's standard variable, e.g.
`http://jaeger:4318`), each call is a SERVER span continuing the caller's W3C `traceparent`, so
a run's trace shows the service's span under the operator's call span; `OTEL_SERVICE_NAME` names
it (default: the step's path). Without the variable nothing is traced.

A step is a pure function `decide(body, idempotency_key) -> (status, answer)`; this module turns
it into an aiohttp application. A request that is not a JSON object is answered 400 before the
function sees it. Answers are remembered by Idempotency-Key in a bounded in-memory map (the least
recently used key goes first): the same key gets the same answer, marked `Idempotent-Replayed:
true`, and the same key with a different body gets 422 — a client bug, not a retry. The map
lives in one process: replicas of a step do not share it, which is enough for an example whose
answers are deterministic anyway; a real service keeps the keys in a shared store.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

Decide = Callable[[dict[str, Any], str | None], tuple[int, Any]]
IDEMPOTENCY_ENTRIES = 10_000
MAX_REQUEST_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Remembered:
    request_digest: str
    status: int
    body: bytes


class IdempotencyCache:
    """Answers by Idempotency-Key, at most `entries` of them, least recently used out first."""

    def __init__(self, entries: int = IDEMPOTENCY_ENTRIES) -> None:
        self._entries = entries
        self._answers: OrderedDict[str, Remembered] = OrderedDict()

    def __len__(self) -> int:
        return len(self._answers)

    def recall(self, key: str) -> Remembered | None:
        remembered = self._answers.get(key)
        if remembered is not None:
            self._answers.move_to_end(key)
        return remembered

    def remember(self, key: str, answer: Remembered) -> None:
        self._answers[key] = answer
        self._answers.move_to_end(key)
        while len(self._answers) > self._entries:
            self._answers.popitem(last=False)


def spend_cpu(milliseconds: float) -> None:
    """Busy work until this thread has used `milliseconds` more of CPU time."""
    until = time.thread_time() + milliseconds / 1000
    block = bytes(4096)
    while time.thread_time() < until:
        for _ in range(16):  # a few hashes between clock reads: the reads are not free either
            hashlib.sha256(block).digest()


def build_step_app(
    path: str,
    decide: Decide,
    *,
    idempotency_entries: int = IDEMPOTENCY_ENTRIES,
    cpu_ms_per_call: float = 0,
    wait_ms_per_call: float = 0,
    concurrency: int = 0,
    tracer: trace.Tracer | None = None,
) -> web.Application:
    """An application serving `decide` at POST `path`, and GET /healthz. Its capacity, for
    demonstrating scaling: each call that reaches `decide` first spends `cpu_ms_per_call` of CPU
    time and waits `wait_ms_per_call` without using CPU (a database, another service); at most
    `concurrency` calls are handled at once (0: no limit), the others queue. With a `tracer`,
    each call is a span in its caller's trace (module docstring)."""
    if cpu_ms_per_call > 0:
        decide = _costing(decide, cpu_ms_per_call)
    limit = asyncio.Semaphore(concurrency) if concurrency > 0 else None
    cache = IdempotencyCache(idempotency_entries)
    registry = CollectorRegistry()
    requests = Counter(
        "step_requests", "Requests to the step's endpoint, by HTTP status.", ["code"],
        registry=registry,
    )  # fmt: skip
    durations = Histogram(
        "step_request_duration_seconds", "Time to answer a request to the step's endpoint.",
        registry=registry,
        buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    )  # fmt: skip

    in_flight = Gauge(
        "step_requests_in_flight", "Requests to the step's endpoint being answered or queued.",
        registry=registry,
    )  # fmt: skip

    async def step(request: web.Request) -> web.Response:
        with (
            durations.time(),
            in_flight.track_inprogress(),
            server_span(tracer, request, path) as span,
        ):
            if limit is None:
                response = await answer_request(request)
            else:
                async with limit:
                    response = await answer_request(request)
            if span is not None:
                span.set_attribute("http.response.status_code", response.status)
                if response.status >= 500:
                    span.set_status(trace.StatusCode.ERROR)
        requests.labels(code=str(response.status)).inc()
        return response

    async def metrics(_: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def answer_request(request: web.Request) -> web.Response:
        raw = await request.read()
        if wait_ms_per_call > 0:
            await asyncio.sleep(wait_ms_per_call / 1000)
        key = request.headers.get("Idempotency-Key")
        if key is None:
            status, body = answer(decide, raw, key)
            return _json_response(status, body)
        digest = hashlib.sha256(raw).hexdigest()
        remembered = cache.recall(key)
        if remembered is None:
            status, body = answer(decide, raw, key)
            cache.remember(key, Remembered(digest, status, body))
            return _json_response(status, body)
        if remembered.request_digest != digest:
            message = {"error": f"Idempotency-Key {key!r} was used for a different request"}
            return _json_response(422, json.dumps(message).encode())
        response = _json_response(remembered.status, remembered.body)
        response.headers["Idempotent-Replayed"] = "true"
        return response

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    app.router.add_post(path, step)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app


@contextlib.contextmanager
def server_span(
    tracer: trace.Tracer | None, request: web.Request, path: str
) -> Iterator[trace.Span | None]:
    """The call's span, child of the caller's `traceparent` (none: a trace of its own)."""
    if tracer is None:
        yield None
        return
    context = TraceContextTextMapPropagator().extract(dict(request.headers))
    attributes = {
        "http.request.method": "POST",
        "url.path": path,
        "stepline.attempt": request.headers.get("Stepline-Attempt", ""),
        "stepline.idempotency_key": request.headers.get("Idempotency-Key", ""),
    }
    with tracer.start_as_current_span(
        f"POST {path}", context=context, kind=trace.SpanKind.SERVER, attributes=attributes
    ) as span:
        yield span


def build_tracer(service: str) -> trace.Tracer | None:
    """A tracer exporting to `OTEL_EXPORTER_OTLP_ENDPOINT` over OTLP/HTTP, named
    `OTEL_SERVICE_NAME` or `service`; None when the variable is not set."""
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return None
    name = os.environ.get("OTEL_SERVICE_NAME") or service
    # The provider sends what is queued when the process exits (its atexit hook).
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider.get_tracer("stepline-examples")


def _costing(decide: Decide, cpu_ms: float) -> Decide:
    def costly(body: dict[str, Any], key: str | None) -> tuple[int, Any]:
        spend_cpu(cpu_ms)
        return decide(body, key)

    return costly


def answer(decide: Decide, raw: bytes, key: str | None) -> tuple[int, bytes]:
    """The status and JSON body for a raw request: 400 unless it is a JSON object."""
    try:
        body = json.loads(raw)
    except ValueError:
        return 400, json.dumps({"error": "the request body must be JSON"}).encode()
    if not isinstance(body, dict):
        return 400, json.dumps({"error": "the request body must be a JSON object"}).encode()
    status, result = decide(body, key)
    return status, json.dumps(result, separators=(",", ":")).encode()


def _json_response(status: int, body: bytes) -> web.Response:
    return web.Response(status=status, body=body, content_type="application/json")


def build_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on")  # noqa: S104
    parser.add_argument("--port", type=int, default=8080, help="port to listen on")
    parser.add_argument(
        "--idempotency-entries",
        type=int,
        default=IDEMPOTENCY_ENTRIES,
        help="answers remembered by Idempotency-Key",
    )
    parser.add_argument(
        "--cpu-ms-per-call",
        type=float,
        default=0,
        help="CPU time each call spends on busy work, in milliseconds (to demonstrate scaling)",
    )
    parser.add_argument(
        "--wait-ms-per-call",
        type=float,
        default=0,
        help="time each call waits without using CPU, in milliseconds (a database, say)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=0,
        help="calls handled at once by this replica; the others queue (0: no limit)",
    )
    return parser


def serve_step(path: str, decide: Decide, args: argparse.Namespace) -> None:
    """Serves `decide` at POST `path` as the command line (`build_parser`) says."""
    tracer = build_tracer(path.strip("/") or "step")
    app = build_step_app(
        path,
        decide,
        idempotency_entries=args.idempotency_entries,
        cpu_ms_per_call=args.cpu_ms_per_call,
        wait_ms_per_call=args.wait_ms_per_call,
        concurrency=args.concurrency,
        tracer=tracer,
    )
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None)
