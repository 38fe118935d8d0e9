"""Idempotency keys and W3C trace context of step calls."""

from __future__ import annotations

import re

from stepline.engine.tracing import (
    build_call_headers,
    build_idempotency_key,
    derive_trace_id,
    is_trace_id,
)

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-01$")


def test_the_idempotency_key_is_the_run_uid_and_the_step_name() -> None:
    assert build_idempotency_key("3f1c-uid", "validate") == "3f1c-uid/validate"


def test_a_runs_trace_id_is_derived_from_its_uid_so_a_resumed_run_keeps_it() -> None:
    first = derive_trace_id("7d9e3b2a-uid")

    assert first == derive_trace_id("7d9e3b2a-uid")
    assert first != derive_trace_id("another-uid")
    assert is_trace_id(first)


def test_traceparent_is_w3c_version_00_sampled_with_a_new_span_per_call() -> None:
    headers = [
        build_call_headers(idempotency_key="k", attempt=1, timeout=1.5, trace_id="ab" * 16)
        for _ in range(50)
    ]

    parents = [TRACEPARENT.match(h["traceparent"]) for h in headers]
    assert all(parents)
    assert {match[1] for match in parents if match} == {"ab" * 16}
    spans = {match[2] for match in parents if match}
    assert len(spans) == 50
    assert "0" * 16 not in spans


def test_the_deadline_header_is_seconds_with_millisecond_precision() -> None:
    headers = build_call_headers(idempotency_key="k", attempt=2, timeout=4.25, trace_id="ab" * 16)

    assert headers["Stepline-Deadline"] == "4.250"
    assert headers["Stepline-Attempt"] == "2"


def test_only_32_lowercase_hex_digits_not_all_zero_make_a_trace_id() -> None:
    assert not is_trace_id("0" * 32)
    assert not is_trace_id("AB" * 16)
    assert not is_trace_id("ab" * 15)
