"""One step call, retried as its policy says: POST the JSON input, return the JSON output.

`StepClient.call()` makes attempts until one succeeds (a 2xx with a JSON body the engine
accepts, `encoding.decode_json`, or no body: null) or the failure is final (an answer that is
not such JSON is one, reason InvalidResponse, saying why), and raises `StepFailedError` with the
api `StepError` (reason, HTTP status, the beginning of the body, and a message such as
`step 'validate': POST http://user-validation.shop.svc:8080/validate returned 503 after 3
attempts`). Between attempts it waits the backoff (`retrying`; longer if the step said so in a
`Retry-After`) through the clock it was given, and gives up early when the wait would outlast
the run's deadline. Each attempt's timeout is the
step's timeout cut to what is left of the run's deadline. The retry limit counts the attempts
of this call; attempt numbers go on from `first_attempt` (a resumed step continues its count).

A call with a `route` (a deployed step) goes, attempt by attempt, to the replica the balancer
picks (`balancing.Balancer`: ready endpoints from the step's EndpointSlices, the less loaded of
two), or to `url` (its Service) when none is known; error messages name the URL of the last
attempt.

With `loads`, every attempt is counted in flight to its ServiceStep (`StepCall.load_key`) while
it lasts: the load the step's autoscaler may follow (`loads`); a successful one's duration is
recorded for the step's adaptive timeout.

A call with `may_call` (a WorkflowRun's, on the leader) asks it before every attempt, and makes
none when it says no: `NotLeadingError` (the replica stopped leading; the new leader resumes the
run, with the same Idempotency-Key).

A cancel event is honoured between attempts, never during one: `RunCancelledError`. No JSON
encoding of the input here: the caller sends bytes, so it encodes once for all attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from stepline.api import Reason, RetryPolicy, StepError
from stepline.api.workflowruns import BODY_EXCERPT_CHARACTERS
from stepline.engine.balancing import Balancer, Route
from stepline.engine.clocks import SYSTEM_CLOCK, Clock, unless_cancelled
from stepline.engine.encoding import InvalidJsonError, decode_json
from stepline.engine.errors import CallError, RunCancelledError, StepFailedError
from stepline.engine.loads import StepKey, StepLoads
from stepline.engine.retrying import (
    RETRYABLE,
    classify_status,
    compute_backoff,
    is_retried,
    parse_retry_after,
    wait_before_retry,
)
from stepline.engine.tracing import build_call_headers
from stepline.errors import NotLeadingError
from stepline.httpclient.transports import Transport
from stepline.observability.tracing import DISABLED, SpanKind, TraceSpan, Tracing

MAX_MESSAGE_CHARACTERS = 4096  # StepError.message's bound


@dataclass(frozen=True, slots=True)
class StepCall:
    """What to call, with what, and how patiently. `deadline` is the clock's `monotonic()` time
    by which the run must end (None: no run deadline); `timeout` bounds one attempt."""

    step: str
    url: str
    body: bytes
    idempotency_key: str
    trace: TraceSpan  # the run's span: each attempt's span is its child
    timeout: float
    retry: RetryPolicy
    deadline: float | None = None
    first_attempt: int = 1
    route: Route | None = None  # None: always `url`
    load_key: StepKey | None = None  # the ServiceStep (namespace, name) whose load it counts
    may_call: Callable[[], bool] | None = None  # asked before each attempt (module docstring)
    # What the attempts' spans say besides the attempt: namespace, workflow, run, step.
    span_attributes: Mapping[str, str | int | bool] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CallResult:
    """A successful call: the step's output, the number of its last attempt, its HTTP status."""

    output: Any
    attempts: int
    http_status: int


@dataclass(frozen=True, slots=True)
class _Failure:
    """One failed attempt. `detail` continues `POST <url>`: ' returned 503', ': no answer …'."""

    reason: Reason
    url: str
    detail: str
    http_status: int | None = None
    body: str | None = None
    retry_after: float | None = None  # seconds the step asked to wait (Retry-After)


class StepClient:
    """Calls steps through one transport; see the module docstring for the rules."""

    def __init__(
        self,
        transport: Transport,
        *,
        clock: Clock = SYSTEM_CLOCK,
        jitter: Callable[[], float] = random.random,
        balancer: Balancer | None = None,
        loads: StepLoads | None = None,
        tracing: Tracing = DISABLED,
    ) -> None:
        self._transport = transport
        self._tracing = tracing
        self._clock = clock
        self._jitter = jitter
        self._balancer = balancer
        self._loads = loads

    async def call(self, call: StepCall, *, cancel: asyncio.Event | None = None) -> CallResult:
        tries = 0
        while True:
            attempt = call.first_attempt + tries
            timeout = self._attempt_timeout(call, attempt)
            tries += 1
            result = await self._attempt(call, attempt, timeout)
            if isinstance(result, CallResult):
                return result
            if tries > call.retry.limit or not is_retried(result.reason, call.retry):
                raise _give_up(call, result, attempt, why=_why_not_retried(result, call))
            backoff = call.retry.backoff
            delay = wait_before_retry(
                backoff, compute_backoff(backoff, tries, jitter=self._jitter), result.retry_after
            )
            if call.deadline is not None and self._clock.monotonic() + delay >= call.deadline:
                why = "; the run's deadline leaves no time for another attempt"
                raise _give_up(call, result, attempt, why=why, out_of_time=True)
            slept, _ = await unless_cancelled(self._clock.sleep(delay), cancel)
            if not slept:
                raise RunCancelledError(step=call.step, attempts=attempt)

    def _attempt_timeout(self, call: StepCall, attempt: int) -> float:
        if call.deadline is None:
            return call.timeout
        left = call.deadline - self._clock.monotonic()
        if left <= 0:
            message = f"step {call.step!r}: the run's deadline passed before POST {call.url}"
            error = StepError(reason=Reason.TIMEOUT, message=message)
            raise StepFailedError(error, attempts=attempt - 1, timed_out=True)
        return min(call.timeout, left)

    async def _attempt(self, call: StepCall, attempt: int, timeout: float) -> CallResult | _Failure:
        if call.may_call is not None and not call.may_call():
            raise NotLeadingError(f"step {call.step!r}: not called, this replica does not lead")
        # Only when spans are kept: with tracing off an attempt builds nothing for them.
        attributes = (
            {**call.span_attributes, "stepline.attempt": attempt} if self._tracing.enabled else None
        )
        with self._tracing.span(
            f"call {call.step}", kind=SpanKind.CLIENT, parent=call.trace, attributes=attributes
        ) as span:
            result = await self._send(call, attempt, timeout, span.header())
            if span.recorded:
                describe_attempt(span, result)
            return result

    async def _send(
        self, call: StepCall, attempt: int, timeout: float, traceparent: str
    ) -> CallResult | _Failure:
        headers = build_call_headers(
            idempotency_key=call.idempotency_key,
            attempt=attempt,
            timeout=timeout,
            traceparent=traceparent,
        )
        url: str = call.url
        lease: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
        if call.route is not None and self._balancer is not None:
            address = self._balancer.pick(call.route.namespace, call.route.service)
            if address is not None:
                url, lease = address.base + call.route.path, self._balancer.lease(address)
        counted: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
        if self._loads is not None and call.load_key is not None:
            counted = self._loads.call(call.load_key)
        began = self._clock.monotonic()
        try:
            with lease, counted:
                reply = await self._transport.post(url, call.body, headers=headers, timeout=timeout)
        except CallError as exc:
            return _Failure(exc.reason, url, f": {exc.detail},")
        took = self._clock.monotonic() - began
        reason = classify_status(reply.status)
        if reason is None:
            try:
                output = decode_json(reply.body) if reply.body else None
            except InvalidJsonError as exc:
                reason = Reason.INVALID_RESPONSE
                detail = f" returned {reply.status} with an answer that is not usable JSON ({exc})"
            else:
                if self._loads is not None and call.load_key is not None:
                    self._loads.record_duration(call.load_key, took)
                return CallResult(output=output, attempts=attempt, http_status=reply.status)
        else:
            detail = f" returned {reply.status}"
        excerpt = reply.body[:BODY_EXCERPT_CHARACTERS].decode(errors="replace")
        retry_after = parse_retry_after(reply.retry_after, now=self._clock.now())
        return _Failure(
            reason, url, detail, http_status=reply.status, body=excerpt or None,
            retry_after=retry_after,
        )  # fmt: skip


def describe_attempt(span: TraceSpan, result: CallResult | _Failure) -> None:
    """What an attempt's span records of how it ended: the HTTP status, or the failure."""
    if isinstance(result, CallResult):
        span.set({"http.response.status_code": result.http_status})
        return
    attributes: dict[str, str | int] = {"error.type": result.reason, "url.full": result.url}
    if result.http_status is not None:
        attributes["http.response.status_code"] = result.http_status
    span.set(attributes)
    span.fail(f"POST {result.url}{result.detail}".rstrip(","))


def _why_not_retried(failure: _Failure, call: StepCall) -> str:
    if failure.reason is Reason.CLIENT_ERROR:
        return " (a 4xx is not retried: the step refused the request itself)"
    if failure.reason not in RETRYABLE:
        return " (not retried)"
    if not is_retried(failure.reason, call.retry):
        return f" (not retried: {failure.reason} is not in the step's retry.retryOn)"
    return ""


def _give_up(
    call: StepCall, failure: _Failure, attempt: int, *, why: str, out_of_time: bool = False
) -> StepFailedError:
    plural = "s" if attempt != 1 else ""
    message = (
        f"step {call.step!r}: POST {failure.url}{failure.detail} after {attempt} attempt{plural}"
    )
    error = StepError(
        reason=failure.reason,
        message=(message + why)[:MAX_MESSAGE_CHARACTERS],
        http_status=failure.http_status,
        body=failure.body,
    )
    timed_out = out_of_time or failure.reason is Reason.TIMEOUT
    return StepFailedError(error, attempts=attempt, timed_out=timed_out)
