"""The headers every step call carries, and the trace a run belongs to. Pure, but for the random
span ids.

    Idempotency-Key    `<run uid>/<step name>`: the same for every attempt at a step and across
                       operator restarts, so a step that remembers it can answer a repeated
                       call with its first answer instead of acting twice
    Stepline-Attempt   1 for the first call of a step, 2 for the first retry, …
    Stepline-Deadline  seconds (decimal, millisecond precision) the step has to answer, counted
                       from when the request is sent: this attempt's timeout, already cut to the
                       run's deadline. Relative, like gRPC's grpc-timeout, so that clocks that
                       disagree between the operator and the step do not matter
    traceparent        W3C Trace Context, version 00: the run's trace id and the span id of
                       this attempt's span (`observability.tracing`), with its sampled flag

A run's trace id is derived from its uid (the first 128 bits of its SHA-256), so a run resumed
after a restart continues the same trace; a caller may pass another (the `traceparent` of an
incoming invoke request, or a WorkflowRun's `stepline.io/traceparent` annotation).
"""

from __future__ import annotations

import hashlib
import re

_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_ZERO_TRACE_ID = "0" * 32


def derive_trace_id(run_uid: str) -> str:
    """The W3C trace id of a run: 32 lowercase hex digits, never all zeros."""
    trace_id = hashlib.sha256(run_uid.encode()).hexdigest()[:32]
    return trace_id if trace_id != _ZERO_TRACE_ID else "0" * 31 + "1"


def is_trace_id(value: str) -> bool:
    return bool(_TRACE_ID.match(value)) and value != _ZERO_TRACE_ID


def build_idempotency_key(run_uid: str, step: str) -> str:
    return f"{run_uid}/{step}"


def build_call_headers(
    *, idempotency_key: str, attempt: int, timeout: float, traceparent: str
) -> dict[str, str]:
    """The headers of one attempt at a step call."""
    return {
        "Content-Type": "application/json",
        "Idempotency-Key": idempotency_key,
        "Stepline-Attempt": str(attempt),
        "Stepline-Deadline": f"{timeout:.3f}",
        "traceparent": traceparent,
    }
