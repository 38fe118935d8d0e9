"""Traces: one span per run and one per step call attempt, exported with the OpenTelemetry SDK
over OTLP/HTTP, and the W3C `traceparent` each step call carries.

`Tracing.span()` opens a span as a context manager and yields a `TraceSpan`: its trace id, its
span id, whether it is sampled, and `header()`, the `traceparent` a call made under it sends.
The parent is a `TraceSpan` of ours, a caller's `TraceParent` (an invoke request's header, a
WorkflowRun's annotation), or nothing, in which case the span starts the trace `trace_id` names:
a WorkflowRun's trace id is derived from its uid (`engine.tracing`), so a run resumed after a
restart continues its trace. Sampling is OpenTelemetry's parent-based ratio: a caller's decision
is followed, a new trace is kept with probability `ratio`, decided on its trace id (so every
resumption of a run decides alike).

Export never blocks a run. Ended spans go to a bounded queue (`SpanShipper`) that a thread of
its own sends in batches; when the queue is full, or a batch cannot be sent (the collector is
slow, away, or refuses it), spans are dropped and counted (`on_drop`, the metric
`stepline_spans_dropped_total{reason}`). With no exporter, tracing is off: `span()` records
nothing, and the `traceparent` sent is as before tracing existed: the trace id, a fresh span id,
and the caller's sampled flag (sampled when there is no caller).

A leaf like the rest of `observability`: it imports nothing else of Stepline's.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

from stepline.observability.labelvalues import SpanDropReasonLabel

__all__ = [  # SpanKind too: the kinds callers pass
    "CURRENT_TRACE_ID",
    "DISABLED",
    "SpanKind",
    "SpanShipper",
    "TraceIdLogFilter",
    "TraceParent",
    "TraceSpan",
    "Tracing",
    "build_tracing",
    "logging_trace",
]

logger = logging.getLogger(__name__)

# version-traceid-parentid-flags; a later version may append fields after a dash (W3C 3.2.4).
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16
_span_ids = random.Random()  # noqa: S311 (span ids need to be unique, not unpredictable)

# The trace id a root span is to get (`_RunIdGenerator`), while it is started.
_NEXT_TRACE_ID: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "stepline_next_trace_id", default=None
)
# The trace id of the run being executed in this task, for its log lines (`TraceIdLogFilter`).
CURRENT_TRACE_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "stepline_trace_id", default=None
)

OnDrop = Callable[[SpanDropReasonLabel, int], None]


@dataclass(frozen=True, slots=True)
class TraceParent:
    """A W3C trace context: the trace, the parent span, and whether it is sampled."""

    trace_id: str
    span_id: str
    sampled: bool

    @classmethod
    def parse(cls, header: str | None) -> TraceParent | None:
        """The context in a `traceparent` header; None for a missing or invalid one (W3C: the
        receiver then starts a new trace)."""
        if not header:
            return None
        found = _TRACEPARENT.fullmatch(header.strip())
        if found is None:
            return None
        version, trace_id, span_id, flags, rest = found.groups()
        if version == "ff" or (version == "00" and rest):
            return None
        if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
            return None
        return cls(trace_id, span_id, sampled=bool(int(flags, 16) & 1))

    def header(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"


class TraceSpan:
    """A span: exported when `sampled` and tracing is on; otherwise ids and a header only."""

    __slots__ = ("_span", "sampled", "span_id", "trace_id")

    def __init__(
        self, trace_id: str, span_id: str, *, sampled: bool, span: trace.Span | None = None
    ) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.sampled = sampled
        self._span = span

    @property
    def recorded(self) -> bool:
        """The span is exported: tracing is on and it is sampled."""
        return self._span is not None and self.sampled

    def header(self) -> str:
        """The `traceparent` of a call made under this span."""
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"

    def set(self, attributes: Mapping[str, str | int | float | bool]) -> None:
        if self._span is not None and self.sampled:
            self._span.set_attributes(attributes)

    def fail(self, message: str) -> None:
        """Marks the span failed, `message` saying why."""
        if self._span is not None and self.sampled:
            self._span.set_status(Status(StatusCode.ERROR, message))


class Tracing:
    """Makes spans, and exports them when given an exporter (module docstring)."""

    def __init__(
        self,
        exporter: SpanExporter | None = None,
        *,
        ratio: float = 1.0,
        service: str = "stepline-operator",
        version: str = "",
        on_drop: OnDrop | None = None,
        queue_size: int = 4096,
        batch_size: int = 512,
        delay: float = 1.0,
    ) -> None:
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"the sampling ratio must be between 0 and 1, not {ratio}")
        self._shipper: SpanShipper | None = None
        self._tracer: trace.Tracer | None = None
        if exporter is None:
            return
        self._shipper = SpanShipper(
            exporter, on_drop=on_drop or _ignore, queue_size=queue_size, batch_size=batch_size,
            delay=delay,
        )  # fmt: skip
        provider = TracerProvider(
            sampler=ParentBased(root=TraceIdRatioBased(ratio)),
            resource=Resource.create({"service.name": service, "service.version": version}),
            id_generator=_RunIdGenerator(),
        )
        provider.add_span_processor(self._shipper)
        self._provider = provider
        self._tracer = provider.get_tracer("stepline")

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    @contextlib.contextmanager
    def span(
        self,
        name: str,
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        parent: TraceSpan | TraceParent | None = None,
        trace_id: str | None = None,
        attributes: Mapping[str, str | int | float | bool] | None = None,
    ) -> Iterator[TraceSpan]:
        """A span from here to the end of the `with` block (module docstring). An exception
        leaving the block marks it failed with the exception's type, unless `fail` said why."""
        if self._tracer is None:
            yield _untraced(parent, trace_id)
            return
        span = self._start(name, kind, parent, trace_id, attributes)
        context = span.get_span_context()
        ours = TraceSpan(
            format(context.trace_id, "032x"), format(context.span_id, "016x"),
            sampled=context.trace_flags.sampled, span=span,
        )  # fmt: skip
        try:
            yield ours
        except BaseException as exc:
            if span.is_recording() and not _has_status(span):
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            span.end()

    def _start(
        self,
        name: str,
        kind: SpanKind,
        parent: TraceSpan | TraceParent | None,
        trace_id: str | None,
        attributes: Mapping[str, str | int | float | bool] | None,
    ) -> trace.Span:
        assert self._tracer is not None  # noqa: S101 (span() checked)
        context = None
        if isinstance(parent, TraceSpan) and parent._span is not None:
            context = trace.set_span_in_context(parent._span)
        elif parent is not None:
            remote = SpanContext(
                int(parent.trace_id, 16), int(parent.span_id, 16), is_remote=True,
                trace_flags=TraceFlags(TraceFlags.SAMPLED if parent.sampled else 0),
            )  # fmt: skip
            context = trace.set_span_in_context(NonRecordingSpan(remote))
        token = _NEXT_TRACE_ID.set(int(trace_id, 16) if trace_id and context is None else None)
        try:
            return self._tracer.start_span(name, context=context, kind=kind, attributes=attributes)
        finally:
            _NEXT_TRACE_ID.reset(token)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Sends what is queued (within `timeout`) and stops the export thread."""
        if self._shipper is not None:
            self._shipper.stop(timeout)

    def flush(self, timeout: float = 5.0) -> bool:
        """Sends what is queued now; whether the queue emptied within `timeout`."""
        return self._shipper.flush(timeout) if self._shipper is not None else True


DISABLED = Tracing()


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
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter,  # loads only when tracing is on
    )

    exporter = OTLPSpanExporter(
        endpoint=endpoint.rstrip("/") + "/v1/traces", timeout=export_timeout
    )
    return Tracing(exporter, ratio=ratio, version=version, on_drop=on_drop)


def _untraced(parent: TraceSpan | TraceParent | None, trace_id: str | None) -> TraceSpan:
    span_id = format(_span_ids.getrandbits(64) or 1, "016x")
    if parent is not None:
        return TraceSpan(parent.trace_id, span_id, sampled=parent.sampled)
    return TraceSpan(trace_id or format(_span_ids.getrandbits(128) or 1, "032x"), span_id,
                     sampled=True)  # fmt: skip


def _has_status(span: trace.Span) -> bool:
    status = getattr(span, "status", None)
    return status is not None and status.status_code is not StatusCode.UNSET


def _ignore(reason: SpanDropReasonLabel, count: int) -> None:
    """Drops counted nowhere."""


class _RunIdGenerator(RandomIdGenerator):
    """Random ids, but for a root span started with a trace id to continue (a run's)."""

    def generate_trace_id(self) -> int:
        wanted = _NEXT_TRACE_ID.get()
        return wanted if wanted else super().generate_trace_id()


class SpanShipper(SpanProcessor):
    """Ended, sampled spans into a bounded queue; a thread sends them in batches of
    `batch_size`, when a batch is full or `delay` seconds after the last send. A span that
    finds the queue full, or whose batch the exporter does not take, is dropped and counted."""

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        on_drop: OnDrop,
        queue_size: int,
        batch_size: int,
        delay: float,
    ) -> None:
        self._exporter = exporter
        self._on_drop = on_drop
        self._queue: collections.deque[ReadableSpan] = collections.deque()
        self._queue_size, self._batch_size, self._delay = queue_size, batch_size, delay
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._stopping = False
        self._thread = threading.Thread(target=self._work, name="span export", daemon=True)
        self._thread.start()

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        """Nothing: spans are looked at when they end."""

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None or not context.trace_flags.sampled:
            return
        if len(self._queue) >= self._queue_size:
            self._on_drop(SpanDropReasonLabel.QUEUE_FULL, 1)
            return
        self._queue.append(span)
        if len(self._queue) >= self._batch_size:
            self._wake.set()

    def _work(self) -> None:
        while True:
            self._wake.wait(self._delay)
            self._wake.clear()
            self._idle.clear()
            self._send_all()
            self._idle.set()
            if self._stopping:
                return

    def _send_all(self) -> None:
        while self._queue:
            batch = self._take(self._batch_size)
            try:
                result = self._exporter.export(batch)
            except Exception:  # an exporter's defect must not end the thread
                logger.exception("span export failed")
                result = SpanExportResult.FAILURE
            if result is not SpanExportResult.SUCCESS:
                self._on_drop(SpanDropReasonLabel.EXPORT_FAILED, len(batch))

    def _take(self, count: int) -> Sequence[ReadableSpan]:
        batch = []
        with contextlib.suppress(IndexError):
            for _ in range(count):
                batch.append(self._queue.popleft())
        return batch

    def flush(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        self._wake.set()
        while (self._queue or not self._idle.is_set()) and time.monotonic() < deadline:
            time.sleep(0.01)
            self._wake.set()
        return not self._queue

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.flush(timeout_millis / 1000)

    def stop(self, timeout: float) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        self._exporter.shutdown()

    def shutdown(self) -> None:
        if not self._stopping:
            self.stop(5.0)


class TraceIdLogFilter(logging.Filter):
    """Appends ` [trace_id=…]` to the log lines written while a run executes in the task, so
    that a run's log lines lead to its trace."""

    def filter(self, record: logging.LogRecord) -> bool:
        trace_id = CURRENT_TRACE_ID.get()
        if trace_id is not None and not getattr(record, "stepline_traced", False):
            record.msg = f"{record.msg} [trace_id={trace_id}]"
            record.stepline_traced = True
        return True


@contextlib.contextmanager
def logging_trace(trace_id: str) -> Iterator[None]:
    """Log lines written within the block (in this task and those it starts) carry `trace_id`."""
    token = CURRENT_TRACE_ID.set(trace_id)
    try:
        yield
    finally:
        CURRENT_TRACE_ID.reset(token)
