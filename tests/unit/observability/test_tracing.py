"""Spans and trace context (`observability.tracing`): W3C traceparent parsing, a run's span in
the trace its id names or its caller's, sampling by ratio (as the OpenTelemetry SDK decides) and
by the caller's flag, the headers of calls made under a span with tracing on and off, and an
export that never blocks and counts what it drops. Exported into a list: the spans as a
collector gets them."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Sequence

import pytest
from opentelemetry.sdk.trace.sampling import Decision, TraceIdRatioBased

from stepline.observability import Metrics, SpanDropReasonLabel
from stepline.observability.tracing import (
    DISABLED,
    SpanKind,
    TraceIdLogFilter,
    TraceParent,
    TraceSpan,
    Tracing,
    logging_trace,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"00-{TRACE}-{PARENT}-01", TraceParent(TRACE, PARENT, sampled=True)),
        (f"00-{TRACE}-{PARENT}-00", TraceParent(TRACE, PARENT, sampled=False)),
        (f" 00-{TRACE}-{PARENT}-09 ", TraceParent(TRACE, PARENT, sampled=True)),
        (f"01-{TRACE}-{PARENT}-01-later-fields", TraceParent(TRACE, PARENT, sampled=True)),
    ],
)
def test_a_valid_traceparent_is_read(header: str, expected: TraceParent) -> None:
    assert TraceParent.parse(header) == expected


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        f"00-{TRACE.upper()}-{PARENT}-01",  # uppercase
        f"00-{'0' * 32}-{PARENT}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"ff-{TRACE}-{PARENT}-01",  # the forbidden version
        f"00-{TRACE}-{PARENT}-01-extra",  # version 00 has exactly four fields
        f"00-{TRACE[:-1]}-{PARENT}-01",
    ],
)
def test_an_invalid_traceparent_is_ignored(header: str | None) -> None:
    assert TraceParent.parse(header) is None


class Collected:
    """An exporter that keeps what it is sent."""

    def __init__(self) -> None:
        self.spans: list[TraceSpan] = []

    def export(self, spans: Sequence[TraceSpan]) -> bool:
        self.spans.extend(spans)
        return True

    def shutdown(self) -> None:
        pass


def exported(exporter: Collected, tracing: Tracing) -> dict[str, TraceSpan]:
    assert tracing.flush(5)
    return {span.name: span for span in exporter.spans}


def tracer(ratio: float = 1.0) -> tuple[Tracing, Collected]:
    exporter = Collected()
    return Tracing(exporter, ratio=ratio, delay=0.01), exporter


def test_a_run_span_starts_the_trace_its_id_names_and_calls_are_its_children() -> None:
    tracing, exporter = tracer()
    with (
        tracing.span("run trade", trace_id=TRACE, attributes={"stepline.run": "t-1"}) as run,
        tracing.span("call validate", kind=SpanKind.CLIENT, parent=run) as call,
    ):
        header = call.header()
    tracing.shutdown()

    spans = exported(exporter, tracing)
    root, child = spans["run trade"], spans["call validate"]
    assert root.parent_span_id is None
    assert root.trace_id == TRACE == run.trace_id
    assert child.trace_id == TRACE
    assert child.parent_span_id == root.span_id
    assert header == f"00-{TRACE}-{child.span_id}-01"
    assert root.attributes == {"stepline.run": "t-1"}
    assert child.kind is SpanKind.CLIENT
    assert root.start_ns <= child.start_ns <= child.end_ns <= root.end_ns


def test_a_callers_traceparent_is_continued_and_its_sampling_followed() -> None:
    tracing, exporter = tracer(ratio=0.0)  # a new trace would be dropped: the caller decides
    caller = TraceParent(TRACE, PARENT, sampled=True)
    with tracing.span("run trade", parent=caller) as run:
        pass
    unsampled = TraceParent(TRACE, "1" * 16, sampled=False)
    with tracing.span("run quiet", parent=unsampled) as quiet:
        header = quiet.header()

    spans = exported(exporter, tracing)
    assert list(spans) == ["run trade"]
    assert spans["run trade"].parent_span_id == PARENT
    assert run.recorded
    assert not quiet.recorded
    assert header.startswith(f"00-{TRACE}-")
    assert header.endswith("-00")


def test_the_ratio_keeps_new_traces_by_their_id_so_every_resumption_decides_alike() -> None:
    tracing, exporter = tracer(ratio=0.5)
    kept = []
    for number in range(200):
        trace_id = hashlib.sha256(str(number).encode()).hexdigest()[:32]
        with tracing.span("run", trace_id=trace_id) as first:
            pass
        with tracing.span("run", trace_id=trace_id) as again:
            pass
        assert first.sampled == again.sampled
        kept.append(first.sampled)

    assert 40 < sum(kept) < 160
    assert tracing.flush(5)
    assert len(exporter.spans) == 2 * sum(kept)


def test_the_ratio_decides_as_the_opentelemetry_sdks_trace_id_ratio_sampler() -> None:
    for ratio in (0.0, 0.1, 0.5, 0.9, 1.0):
        tracing, sdk = Tracing(Collected(), ratio=ratio), TraceIdRatioBased(ratio)
        for number in range(300):
            trace_id = hashlib.sha256(f"{ratio}/{number}".encode()).hexdigest()[:32]
            with tracing.span("run", trace_id=trace_id) as span:
                pass
            decided = sdk.should_sample(None, int(trace_id, 16), "run").decision
            assert span.recorded == (decided is Decision.RECORD_AND_SAMPLE), (ratio, trace_id)
        tracing.shutdown()


def test_with_tracing_off_calls_carry_the_runs_trace_and_the_callers_flag() -> None:
    with (
        DISABLED.span("run", trace_id=TRACE) as run,
        DISABLED.span("call", parent=run) as first,
        DISABLED.span("call", parent=run) as again,
    ):
        pass
    with DISABLED.span("run", parent=TraceParent(TRACE, PARENT, sampled=False)) as unsampled:
        pass

    assert not DISABLED.enabled
    assert not run.recorded
    assert first.header().startswith(f"00-{TRACE}-")
    assert first.header().endswith("-01")
    assert first.span_id != again.span_id
    assert unsampled.header().endswith("-00")


def test_a_failure_and_an_exception_leaving_the_span_mark_it_failed() -> None:
    tracing, exporter = tracer()
    with tracing.span("run refused", trace_id=TRACE) as run:
        run.fail("step 'validate': POST … returned 503 after 3 attempts")
    with pytest.raises(RuntimeError), tracing.span("run broken", trace_id=TRACE):
        raise RuntimeError("boom")

    spans = exported(exporter, tracing)
    assert "returned 503" in (spans["run refused"].failure or "")
    assert spans["run broken"].failure == "RuntimeError"


class StuckExporter:
    """A collector that takes `seconds` to refuse every batch."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.batches = 0

    def export(self, spans: Sequence[TraceSpan]) -> bool:
        self.batches += 1
        time.sleep(self.seconds)
        return False

    def shutdown(self) -> None:
        pass


def test_a_stuck_collector_never_slows_a_span_and_every_span_lost_is_counted() -> None:
    metrics = Metrics()
    exporter = StuckExporter(seconds=0.5)
    tracing = Tracing(
        exporter, on_drop=metrics.record_spans_dropped, queue_size=10, batch_size=5, delay=0.01
    )

    began = time.perf_counter()
    for _ in range(40):
        with tracing.span("run", trace_id=TRACE):
            pass
    took = time.perf_counter() - began
    tracing.shutdown(timeout=5)

    def dropped(reason: SpanDropReasonLabel) -> float:
        value = metrics.registry.get_sample_value(
            "stepline_spans_dropped_total", {"reason": reason.value}
        )
        return value or 0.0

    assert took < 0.2  # 40 spans while the exporter sat 0.5 s on its first batch
    full, failed = (
        dropped(SpanDropReasonLabel.QUEUE_FULL),
        dropped(SpanDropReasonLabel.EXPORT_FAILED),
    )
    assert full > 0
    assert full + failed == 40  # every span: refused by the collector, or never queued


def test_the_export_thread_sends_what_is_queued_at_shutdown() -> None:
    def exporting() -> int:
        return sum(thread.name == "span export" for thread in threading.enumerate())

    before = exporting()
    exporter = Collected()
    tracing = Tracing(exporter, delay=60)  # no timed send: only the shutdown's
    with tracing.span("run", trace_id=TRACE):
        pass
    assert exporting() == before + 1

    tracing.shutdown(timeout=5)

    assert [span.name for span in exporter.spans] == ["run"]
    assert exporting() == before


def test_a_ratio_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        Tracing(Collected(), ratio=1.5)


def test_log_lines_written_during_a_run_carry_its_trace_id() -> None:
    record = logging.LogRecord("stepline", logging.INFO, __file__, 1, "run %s failed", ("t",), None)
    outside = logging.LogRecord("stepline", logging.INFO, __file__, 1, "idle", (), None)

    with logging_trace(TRACE):
        TraceIdLogFilter().filter(record)
        TraceIdLogFilter().filter(record)  # a second handler's filter: marked once
    TraceIdLogFilter().filter(outside)

    assert record.getMessage() == f"run t failed [trace_id={TRACE}]"
    assert outside.getMessage() == "idle"
