"""Idempotency keys and W3C trace context of step calls."""

from __future__ import annotations

from stepline.engine.tracing import (
    build_call_headers,
    build_idempotency_key,
    derive_trace_id,
    is_trace_id,
)


def test_the_idempotency_key_is_the_run_uid_and_the_step_name() -> None:
    assert build_idempotency_key("3f1c-uid", "validate") == "3f1c-uid/validate"


def test_a_runs_trace_id_is_derived_from_its_uid_so_a_resumed_run_keeps_it() -> None:
    first = derive_trace_id("7d9e3b2a-uid")

    assert first == derive_trace_id("7d9e3b2a-uid")
    assert first != derive_trace_id("another-uid")
    assert is_trace_id(first)


def test_the_call_carries_the_traceparent_of_its_attempt() -> None:
    traceparent = f"00-{'ab' * 16}-{'cd' * 8}-01"

    headers = build_call_headers(
        idempotency_key="k", attempt=1, timeout=1.5, traceparent=traceparent
    )

    assert headers["traceparent"] == traceparent
    assert headers["Idempotency-Key"] == "k"


def test_the_deadline_header_is_seconds_with_millisecond_precision() -> None:
    traceparent = f"00-{'ab' * 16}-{'cd' * 8}-01"
    headers = build_call_headers(
        idempotency_key="k", attempt=2, timeout=4.25, traceparent=traceparent
    )

    assert headers["Stepline-Deadline"] == "4.250"
    assert headers["Stepline-Attempt"] == "2"


def test_only_32_lowercase_hex_digits_not_all_zero_make_a_trace_id() -> None:
    assert not is_trace_id("0" * 32)
    assert not is_trace_id("AB" * 16)
    assert not is_trace_id("ab" * 15)
