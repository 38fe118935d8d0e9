"""What is retried, and the backoff between attempts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stepline.api import Backoff, Reason, RetryPolicy
from stepline.engine.retrying import (
    JITTER_FRACTION,
    classify_status,
    compute_backoff,
    is_retried,
)


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (200, None),
        (204, None),
        (301, Reason.INVALID_RESPONSE),
        (400, Reason.CLIENT_ERROR),
        (404, Reason.CLIENT_ERROR),
        (429, Reason.TOO_MANY_REQUESTS),
        (500, Reason.SERVER_ERROR),
        (503, Reason.SERVER_ERROR),
    ],
)
def test_each_http_status_means_one_failure_reason(status: int, reason: Reason | None) -> None:
    assert classify_status(status) == reason


def test_client_errors_and_invalid_responses_are_never_retried_whatever_the_policy() -> None:
    policy = RetryPolicy(limit=10)

    assert not is_retried(Reason.CLIENT_ERROR, policy)
    assert not is_retried(Reason.INVALID_RESPONSE, policy)
    assert not is_retried(Reason.EXPRESSION_ERROR, policy)


def test_by_default_timeouts_connection_errors_5xx_and_429_are_retried() -> None:
    policy = RetryPolicy()

    for reason in (
        Reason.TIMEOUT, Reason.CONNECTION_ERROR, Reason.SERVER_ERROR, Reason.TOO_MANY_REQUESTS,
    ):  # fmt: skip
        assert is_retried(reason, policy)


def test_retry_on_narrows_what_is_retried() -> None:
    policy = RetryPolicy.model_validate({"retryOn": ["ConnectionError", "TooManyRequests"]})

    assert is_retried(Reason.CONNECTION_ERROR, policy)
    assert not is_retried(Reason.SERVER_ERROR, policy)
    assert not is_retried(Reason.TIMEOUT, policy)


def test_the_shortest_waits_grow_by_the_factor_and_stop_at_the_max() -> None:
    backoff = Backoff(initial_seconds=0.5, factor=3, max_seconds=10)

    waits = [compute_backoff(backoff, retry, jitter=lambda: 0.0) for retry in range(1, 6)]

    assert waits == [0.5, 1.5, 4.5, 10, 10]


def test_jitter_adds_at_most_a_fifth_and_never_passes_the_max() -> None:
    backoff = Backoff(initial_seconds=2, factor=2, max_seconds=9)

    assert compute_backoff(backoff, 2, jitter=lambda: 0.5) == pytest.approx(4.4)
    assert compute_backoff(backoff, 3, jitter=lambda: 0.99) == 9


@settings(max_examples=300, deadline=None)
@given(
    initial=st.floats(0, 60),
    factor=st.floats(1, 10),
    extra=st.floats(0, 600),
    retry=st.integers(1, 11),
    draw=st.floats(0, 1, exclude_max=True),
)
def test_no_wait_is_shorter_than_the_policy_promises_or_longer_than_its_max(
    initial: float, factor: float, extra: float, retry: int, draw: float
) -> None:
    backoff = Backoff(initial_seconds=initial, factor=factor, max_seconds=initial + extra)
    promised = min(backoff.max_seconds, initial * factor ** (retry - 1))

    wait = compute_backoff(backoff, retry, jitter=lambda: draw)

    assert promised <= wait <= backoff.max_seconds
    assert wait <= promised * (1 + JITTER_FRACTION) + 1e-9
    if retry == 1:
        assert wait >= initial  # the first retry never comes before initialSeconds
