"""Traces: one span per run and one per step call attempt, exported over OTLP/HTTP (as OTLP/JSON,
`otlp`), and the W3C `traceparent` each step call carries.

`Tracing.span()` opens a span as a context manager and yields a `TraceSpan`: its trace id, its
span id, whether it is sampled and recorded, and `header()`, the `traceparent` a call made under
it sends. The parent is a `TraceSpan` of ours, a caller's `TraceParent` (an invoke request's
header, a WorkflowRun's annotation), or nothing, in which case the span starts the trace
`trace_id` names: a WorkflowRun's trace id is derived from its uid (`engine.tracing`), so a run
resumed after a restart continues its trace.

Sampling is OpenTelemetry's parent-based ratio, with its rule: a child follows its parent (one of
ours, or a caller's sampled flag); a new trace is kept when the low 64 bits of its id fall under
`ratio` x 2^64, so every resumption of a run decides alike and a collector sampling by the same
rule agrees. An unrecorded span costs an id and an object.

Why not the OpenTelemetry SDK's spans: measured on this hot path, a span of the SDK cost the run
about 60 µs of CPU (its context, attribute cleaning under locks, processors) and its protobuf
export 34-38 µs more, 0.11-0.19 ms per step against the issue's 0.1 ms; these spans and their
OTLP/JSON cost a fraction of it (bench/overhead/RESULTS.md, section 13). What goes on the wire
is standard: W3C Trace Context and OTLP, read by Jaeger, Tempo and the OpenTelemetry Collector.

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
from enum import IntEnum
from typing import Protocol

from stepline.observability.labelvalues import SpanDropReasonLabel

__all__ = [
    "CURRENT_TRACE_ID",
    "DISABLED",
    "SpanExporter",
    "SpanKind",
    "SpanShipper",
    "TraceIdLogFilter",
    "TraceParent",
    "TraceSpan",
    "Tracing",
    "logging_trace",
]

logger = logging.getLogger(__name__)

# version-traceid-parentid-flags; a later version may append fields after a dash (W3C 3.2.4).
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16
_ids = random.Random()  # noqa: S311 (span ids need to be unique, not unpredictable)
_RATIO_SCALE = 2**64

# The trace id of the run being executed in this task, for its log lines (`TraceIdLogFilter`).
CURRENT_TRACE_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "stepline_trace_id", default=None
)

OnDrop = Callable[[SpanDropReasonLabel, int], None]
Attributes = Mapping[str, str | int | float | bool]


class SpanKind(IntEnum):
    """OTLP's span kinds, by their numbers on the wire."""

    INTERNAL = 1
    SERVER = 2
    CLIENT = 3


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
    """A span. Recorded ones (tracing on, sampled) keep what is exported: their name, kind,
    parent, times (Unix ns), attributes and failure; the others only their ids."""

    __slots__ = (
        "attributes", "end_ns", "failure", "kind", "name", "parent_span_id", "recorded",
        "sampled", "span_id", "start_ns", "trace_id",
    )  # fmt: skip

    def __init__(
        self,
        trace_id: str,
        span_id: str,
        *,
        sampled: bool,
        recorded: bool = False,
        name: str = "",
        kind: SpanKind = SpanKind.INTERNAL,
        parent_span_id: str | None = None,
        attributes: Attributes | None = None,
    ) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.sampled = sampled
        self.recorded = recorded
        self.name = name
        self.kind = kind
        self.parent_span_id = parent_span_id
        self.attributes: dict[str, str | int | float | bool] = dict(attributes or {})
        self.failure: str | None = None
        self.start_ns = time.time_ns() if recorded else 0
        self.end_ns = 0

    def header(self) -> str:
        """The `traceparent` of a call made under this span."""
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"

    def set(self, attributes: Attributes) -> None:
        if self.recorded:
            self.attributes.update(attributes)

    def fail(self, message: str) -> None:
        """Marks the span failed (status ERROR), `message` saying why."""
        if self.recorded:
            self.failure = message


class SpanExporter(Protocol):
    """Sends a batch of ended, recorded spans; whether the collector took them."""

    def export(self, spans: Sequence[TraceSpan]) -> bool: ...

    def shutdown(self) -> None: ...


class Tracing:
    """Makes spans, and exports them when given an exporter (module docstring)."""

    def __init__(
        self,
        exporter: SpanExporter | None = None,
        *,
        ratio: float = 1.0,
        on_drop: OnDrop | None = None,
        queue_size: int = 4096,
        batch_size: int = 512,
        delay: float = 1.0,
    ) -> None:
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"the sampling ratio must be between 0 and 1, not {ratio}")
        self._bound = round(ratio * _RATIO_SCALE)
        self._shipper: SpanShipper | None = None
        if exporter is not None:
            self._shipper = SpanShipper(
                exporter, on_drop=on_drop or _ignore, queue_size=queue_size,
                batch_size=batch_size, delay=delay,
            )  # fmt: skip

    @property
    def enabled(self) -> bool:
        return self._shipper is not None

    @contextlib.contextmanager
    def span(
        self,
        name: str,
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        parent: TraceSpan | TraceParent | None = None,
        trace_id: str | None = None,
        attributes: Attributes | None = None,
    ) -> Iterator[TraceSpan]:
        """A span from here to the end of the `with` block (module docstring). An exception
        leaving the block marks it failed with the exception's type, unless `fail` said why."""
        shipper = self._shipper
        if shipper is None or not self._records(parent, trace_id):
            yield _untraced(parent, trace_id, sampled=shipper is None)
            return
        span = TraceSpan(
            parent.trace_id if parent is not None else trace_id or _new_trace_id(),
            _new_span_id(), sampled=True, recorded=True, name=name, kind=kind,
            parent_span_id=parent.span_id if parent is not None else None, attributes=attributes,
        )  # fmt: skip
        try:
            yield span
        except BaseException as exc:
            if span.failure is None:
                span.failure = type(exc).__name__
            raise
        finally:
            span.end_ns = time.time_ns()
            shipper.add(span)

    def _records(self, parent: TraceSpan | TraceParent | None, trace_id: str | None) -> bool:
        """Parent-based ratio sampling (module docstring)."""
        if isinstance(parent, TraceSpan):
            return parent.recorded
        if parent is not None:
            return parent.sampled
        return trace_id is None or int(trace_id[16:], 16) < self._bound

    def shutdown(self, timeout: float = 5.0) -> None:
        """Sends what is queued (within `timeout`) and stops the export thread."""
        if self._shipper is not None:
            self._shipper.stop(timeout)

    def flush(self, timeout: float = 5.0) -> bool:
        """Sends what is queued now; whether the queue emptied within `timeout`."""
        return self._shipper.flush(timeout) if self._shipper is not None else True


DISABLED = Tracing()


def _new_span_id() -> str:
    return format(_ids.getrandbits(64) or 1, "016x")


def _new_trace_id() -> str:
    return format(_ids.getrandbits(128) or 1, "032x")


def _untraced(
    parent: TraceSpan | TraceParent | None, trace_id: str | None, *, sampled: bool
) -> TraceSpan:
    """A span that records nothing: the parent's trace and flag, else `trace_id` (or a new one)
    and `sampled` (with tracing off, what calls carried before tracing existed: sampled)."""
    if parent is not None:
        return TraceSpan(parent.trace_id, _new_span_id(), sampled=parent.sampled)
    return TraceSpan(trace_id or _new_trace_id(), _new_span_id(), sampled=sampled)


def _ignore(reason: SpanDropReasonLabel, count: int) -> None:
    """Drops counted nowhere."""


class SpanShipper:
    """Ended, recorded spans into a bounded queue; a thread sends them in batches of
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
        self._queue: collections.deque[TraceSpan] = collections.deque()
        self._queue_size, self._batch_size, self._delay = queue_size, batch_size, delay
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._stopping = False
        self._thread = threading.Thread(target=self._work, name="span export", daemon=True)
        self._thread.start()

    def add(self, span: TraceSpan) -> None:
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
                sent = self._exporter.export(batch)
            except Exception:  # an exporter's defect must not end the thread
                logger.exception("span export failed")
                sent = False
            if not sent:
                self._on_drop(SpanDropReasonLabel.EXPORT_FAILED, len(batch))

    def _take(self, count: int) -> list[TraceSpan]:
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

    def stop(self, timeout: float) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        self._exporter.shutdown()


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
