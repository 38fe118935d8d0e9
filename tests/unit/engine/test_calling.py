"""The step client: attempts, retries, backoff on a fake clock, headers and error messages,
against a real server on loopback."""

from __future__ import annotations

import asyncio

import pytest

from stepline.api import Reason, RetryPolicy
from stepline.engine import AiohttpTransport, RunCancelledError, StepFailedError
from stepline.engine.calling import StepCall, StepClient
from stepline.observability.tracing import TraceSpan
from tests.unit.engine.stepservers import Answer, FakeClock, StepServer


def build_call(server: StepServer, **changes: object) -> StepCall:
    fields: dict[str, object] = {
        "step": "validate",
        "url": server.url("/validate"),
        "body": b'{"user":"u-1"}',
        "idempotency_key": "run-1/validate",
        "trace": TraceSpan("ab" * 16, "cd" * 8, sampled=True),
        "timeout": 2.0,
        "retry": RetryPolicy.model_validate(
            {"limit": 3, "backoff": {"initialSeconds": 1, "factor": 2, "maxSeconds": 3}}
        ),
    }
    return StepCall(**(fields | changes))  # type: ignore[arg-type]


def build_client(transport: AiohttpTransport, clock: FakeClock, jitter: float = 0.0) -> StepClient:
    return StepClient(transport, clock=clock, jitter=lambda: jitter)


async def test_a_500_then_200_succeeds_on_the_second_attempt(
    server: StepServer, transport: AiohttpTransport, clock: FakeClock
) -> None:
    server.answer("/validate", Answer(500), Answer(json={"approved": True}))

    result = await build_client(transport, clock).call(build_call(server))

    assert result.output == {"approved": True}
    assert result.attempts == 2
    assert result.http_status == 200


async def test_backoff_grows_by_its_factor_up_to_its_max_without_really_sleeping(
    server: StepServer, transport: AiohttpTransport, clock: FakeClock
) -> None:
    server.answer("/validate", Answer(503), Answer(503), Answer(503), Answer(json={}))

    await build_client(transport, clock).call(build_call(server))

    assert clock.sleeps == [1.0, 2.0, 3.0]


async def test_jitter_only_lengthens_each_wait_and_never_past_the_max(
    server: StepServer, transport: AiohttpTransport, clock: FakeClock
) -> None:
    server.answer("/validate", Answer(503), Answer(503), Answer(503), Answer(json={}))

    await build_client(transport, clock, jitter=0.5).call(build_call(server))

    assert clock.sleeps == [1.1, 2.2, 3.0]


async def test_retries_stop_at_the_limit_and_the_message_counts_the_attempts(
    server: StepServer, transport: AiohttpTransport, clock: FakeClock
) -> None:
    server.answer("/validate", Answer(503, text="overloaded"))

    with pytest.raises(StepFailedError) as failed:
        await build_client(transport, clock).call(build_call(server))

    assert failed.value.attempts == 4
    assert failed.value.timed_out is False
    error = failed.value.error
    assert error.reason == Reason.SERVER_ERROR
    assert error.http_status == 503
    assert error.body == "overloaded"
    assert (
        error.message
        == f"step 'validate': POST {server.url('/validate')} returned 503 after 4 attempts"
    )
    assert len(server.calls("/validate")) == 4


@pytest.mark.parametrize("status", [400, 401, 404, 409, 422])
async def test_a_4xx_is_never_retried(
    server: StepServer, transport: AiohttpTransport, clock: FakeClock, status: int
) -> None:
    server.answer("/validate", Answer(status, json={"error": "bad"}))

    with pytest.raises(StepFailedError) as failed:
        await build_client(transport, clock).call(build_call(server))

    assert failed.value.error.reason == Reason.CLIENT_ERROR
    assert failed.value.attempts == 1
    assert "a 4xx is not retried" in failed.value.error.message
    assert clock.sleeps == []


async def test_429_is_retried_as_too_many_requests(
    server: StepServer, transport: AiohttpTransport, clock: FakeClock
) -> None:
    server.answer("/validate", Answer(429), Answer(json={}))

    result = await build_client(transport, clock).call(build_call(server))

    assert result.attempts == 2


@pytest.mark.parametrize(
    ("retry_after", "waits"),
    [
        ("2", [2.0]),  # longer than the backoff's 1 s: the step's wish
        ("0", [1.0]),  # shorter: the backoff's
        ("3600", [3.0]),  # longer than maxSeconds: capped there
        ("Thu, 01 Jan 2026 00:16:42 GMT", [2.0]),  # an HTTP date: 2 s after the fake clock's now
        ("soon", [1.0]),  # unreadable: ignored
    ],
)
async def test_a_retry_after_is_honoured_up_to_the_policys_max_wait(
    server: StepServer,
    transport: AiohttpTransport,
    clock: FakeClock,
    retry_after: str,
    waits: list[float],
) -> None:
    busy = Answer(503, json={"error": "busy"}, headers={"Retry-After": retry_after})
    server.answer("/validate", busy, Answer(json={"ok": True}))

    result = await build_client(transport, clock).call(build_call(server))

    assert (result.attempts, result.output) == (2, {"ok": True})
    assert clock.sleeps == waits


async def test_a_failure_missing_from_retry_on_is_not_retried(
    server: StepServer, transport: AiohttpTransport, clock: FakeClock
) -> None:
    server.answer("/validate", Answer(500))
    only_connections = RetryPolicy.model_validate({"limit": 3, "retryOn": ["ConnectionError"]})

    with pytest.raises(StepFailedError) as failed:
        await build_client(transport, clock).call(build_call(server, retry=only_connections))

    assert failed.value.attempts == 1
    assert "ServerError is not in the step's retry.retryOn" in failed.value.error.message


async def test_every_attempt_carries_the_same_key_and_its_own_attempt_number_and_span(
    server: StepServer, transport: AiohttpTransport, clock: FakeClock
) -> None:
    server.answer("/validate", Answer(502), Answer(502), Answer(json={}))

    await build_client(transport, clock).call(build_call(server, first_attempt=1))

    headers = [request.headers for request in server.calls("/validate")]
    assert [h["Idempotency-Key"] for h in headers] == ["run-1/validate"] * 3
    assert [h["Stepline-Attempt"] for h in headers] == ["1", "2", "3"]
    assert [h["Stepline-Deadline"] for h in headers] == ["2.000"] * 3
    assert all(h["Content-Type"] == "application/json" for h in headers)
    parents = [h["traceparent"].split("-") for h in headers]
    assert {(version, trace, flags) for version, trace, _, flags in parents} == {
        ("00", "ab" * 16, "01")
    }
    assert len({span for _, _, span, _ in parents}) == 3


async def test_a_2xx_whose_body_is_not_json_is_an_invalid_response_and_not_retried(
    server: StepServer, transport: AiohttpTransport, clock: FakeClock
) -> None:
    server.answer("/validate", Answer(200, text="<html>ok</html>"))

    with pytest.raises(StepFailedError) as failed:
        await build_client(transport, clock).call(build_call(server))

    assert failed.value.error.reason == Reason.INVALID_RESPONSE
    assert failed.value.attempts == 1


async def test_an_empty_2xx_body_is_a_null_output(
    server: StepServer, transport: AiohttpTransport, clock: FakeClock
) -> None:
    server.answer("/validate", Answer(204))

    result = await build_client(transport, clock).call(build_call(server))

    assert result.output is None


async def test_a_backoff_that_would_outlast_the_run_deadline_gives_up_as_timed_out(
    server: StepServer, transport: AiohttpTransport, clock: FakeClock
) -> None:
    server.answer("/validate", Answer(503))
    call = build_call(server, deadline=clock.monotonic() + 2.5)

    with pytest.raises(StepFailedError) as failed:
        await build_client(transport, clock).call(call)

    assert failed.value.timed_out is True
    assert failed.value.attempts == 2  # waited 1 s, then 2 s more would pass the deadline
    assert clock.sleeps == [1.0]
    assert failed.value.error.reason == Reason.SERVER_ERROR
    assert "no time for another attempt" in failed.value.error.message


async def test_a_passed_deadline_fails_before_calling(
    server: StepServer, transport: AiohttpTransport, clock: FakeClock
) -> None:
    call = build_call(server, deadline=clock.monotonic())

    with pytest.raises(StepFailedError) as failed:
        await build_client(transport, clock).call(call)

    assert failed.value.timed_out is True
    assert failed.value.error.reason == Reason.TIMEOUT
    assert server.received == []


async def test_a_resumed_step_numbers_its_attempts_from_where_it_stopped(
    server: StepServer, transport: AiohttpTransport, clock: FakeClock
) -> None:
    result = await build_client(transport, clock).call(build_call(server, first_attempt=3))

    assert server.calls("/validate")[0].headers["Stepline-Attempt"] == "3"
    assert result.attempts == 3


async def test_a_connection_refused_is_retried_and_reported_as_a_connection_error(
    transport: AiohttpTransport, clock: FakeClock
) -> None:
    stopped = StepServer()
    await stopped.start()
    await stopped.stop()  # nothing listens on its port any more

    with pytest.raises(StepFailedError) as failed:
        await build_client(transport, clock).call(build_call(stopped))

    assert failed.value.error.reason == Reason.CONNECTION_ERROR
    assert failed.value.attempts == 4
    assert failed.value.error.http_status is None


async def test_a_set_cancel_event_stops_the_retries(
    server: StepServer, transport: AiohttpTransport, clock: FakeClock
) -> None:
    server.answer("/validate", Answer(503))
    cancel = asyncio.Event()
    cancel.set()

    with pytest.raises(RunCancelledError) as cancelled:
        await build_client(transport, clock).call(build_call(server), cancel=cancel)

    assert cancelled.value.attempts == 1
    assert len(server.received) == 1
