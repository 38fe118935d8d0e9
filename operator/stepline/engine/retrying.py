"""Which failed calls are retried, and how long to wait before the next attempt. Pure.

A failure has a reason (an api `Reason`): Timeout, ConnectionError, ServerError (5xx),
TooManyRequests (429) may be retried, if the step's `RetryPolicy.retryOn` lists them; ClientError
(any other 4xx), InvalidResponse and everything else never are — a 4xx says the request itself
is wrong, and sending it again cannot help.

Backoff is exponential, and what a policy says is what it guarantees: before retry n (1-based)
the wait is at least d(n) = min(maxSeconds, initialSeconds * factor^(n-1)), so the first retry
comes no sooner than `initialSeconds` after the failure, and a step is given at least the sum of
d(1..limit) to recover before the call gives up. Jitter only lengthens a wait, by up to
`JITTER_FRACTION` of d(n), never past `maxSeconds`: the retries of many runs that failed
together (a step restarting under load) spread out instead of coming back in one wave, and the
spread carries over to the waits at the cap. (Full jitter, a uniform wait in [0, d(n)], spreads
better but breaks the guarantee: with `initialSeconds: 1` a retry came after 0.2 s.)

A step that answers 429 or 5xx with `Retry-After` (seconds, or an HTTP date) is not called again
sooner than it asked, up to the policy's `maxSeconds`: the wait is the larger of the backoff and
that (`wait_before_retry`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from email.utils import parsedate_to_datetime

from stepline.api import Backoff, Reason, RetryOn, RetryPolicy

# Jitter lengthens a wait by up to this fraction of it (module docstring).
JITTER_FRACTION = 0.2

RETRYABLE: dict[Reason, RetryOn] = {
    Reason.TIMEOUT: RetryOn.TIMEOUT,
    Reason.CONNECTION_ERROR: RetryOn.CONNECTION_ERROR,
    Reason.SERVER_ERROR: RetryOn.SERVER_ERROR,
    Reason.TOO_MANY_REQUESTS: RetryOn.TOO_MANY_REQUESTS,
}


def classify_status(status: int) -> Reason | None:
    """The failure an HTTP status means; None for success (2xx)."""
    if 200 <= status < 300:
        return None
    if status == 429:
        return Reason.TOO_MANY_REQUESTS
    if 400 <= status < 500:
        return Reason.CLIENT_ERROR
    if status >= 500:
        return Reason.SERVER_ERROR
    return Reason.INVALID_RESPONSE  # 1xx or 3xx: redirects are not followed


def is_retried(reason: Reason, policy: RetryPolicy) -> bool:
    """Whether a failure for `reason` may be retried under `policy` (limit aside)."""
    kind = RETRYABLE.get(reason)
    return kind is not None and kind in policy.retry_on


def compute_backoff(backoff: Backoff, retry: int, *, jitter: Callable[[], float]) -> float:
    """Seconds to wait before retry `retry` (1-based), within [d(n), min(maxSeconds,
    d(n) * (1 + JITTER_FRACTION))] (module docstring); `jitter()` returns a float in [0, 1)."""
    least = minimum_backoff(backoff, retry)
    return min(backoff.max_seconds, least * (1 + JITTER_FRACTION * jitter()))


def minimum_backoff(backoff: Backoff, retry: int) -> float:
    """d(n): the shortest wait before retry `retry` (1-based) that the policy guarantees."""
    return min(backoff.max_seconds, backoff.initial_seconds * backoff.factor ** (retry - 1))


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds a `Retry-After` header asks to wait (RFC 9110: delay-seconds or an HTTP date);
    None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max((when - now).total_seconds(), 0.0)


def wait_before_retry(backoff: Backoff, backoff_wait: float, retry_after: float | None) -> float:
    """The backoff's wait, or longer when the step asked for longer (up to `maxSeconds`)."""
    if retry_after is None:
        return backoff_wait
    return max(backoff_wait, min(retry_after, backoff.max_seconds))
