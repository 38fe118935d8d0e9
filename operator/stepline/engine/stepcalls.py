"""Calling one step: finding its ServiceStep ready, building the call, its time limit. What the
executor, the forEach calls and the undoing share (`StepCaller`).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from enum import StrEnum

from stepline.api import Reason, ServiceStep, StepError
from stepline.engine.balancing import Balancer
from stepline.engine.calling import StepCall, StepClient
from stepline.engine.clocks import Clock, unless_cancelled
from stepline.engine.directories import StepDirectory, wait_for_ready_step
from stepline.engine.endpoints import NO_OVERRIDES, resolve_endpoint, resolve_route
from stepline.engine.errors import RunCancelledError, StepFailedError
from stepline.engine.loads import StepLoads
from stepline.engine.planning import PlannedStep
from stepline.engine.runstate import RunState, step_failure
from stepline.engine.tracing import build_idempotency_key
from stepline.httpclient.transports import Transport
from stepline.observability.tracing import DISABLED, Tracing


class Unready(StrEnum):
    """What to do when a step's ServiceStep has no ready replica."""

    WAIT = "Wait"  # wait until it is ready, at most the step's timeout (and the run's deadline)
    FAIL = "Fail"  # fail the step at once, reason NoReadyEndpoints


class StepCaller:
    """Finds, builds and makes step calls, for every run of the process (see `Executor`)."""

    def __init__(
        self,
        *,
        transport: Transport,
        directory: StepDirectory,
        overrides: Mapping[str, str] = NO_OVERRIDES,
        unready: Unready = Unready.WAIT,
        clock: Clock,
        jitter: Callable[[], float] = random.random,
        balancer: Balancer | None = None,
        loads: StepLoads | None = None,
        tracing: Tracing = DISABLED,
    ) -> None:
        self.client = StepClient(
            transport, clock=clock, jitter=jitter, balancer=balancer, loads=loads, tracing=tracing
        )
        self.directory = directory
        self._loads = loads
        self._overrides = overrides
        self._unready = unready
        self._clock = clock

    async def find_ready_step(
        self, run: RunState, step: PlannedStep, cancel: asyncio.Event | None
    ) -> ServiceStep:
        namespace = run.plan.namespace
        service = self.directory.find_step(namespace, step.step_ref)
        if service is None:
            message = f"step {step.name!r}: ServiceStep {namespace}/{step.step_ref} not found"
            raise step_failure(Reason.STEP_NOT_FOUND, message)
        if self.directory.is_step_ready(service):
            return service
        if self._unready is Unready.FAIL:
            message = (
                f"step {step.name!r}: ServiceStep {namespace}/{step.step_ref} has no ready "
                "endpoints; not calling it"
            )
            raise step_failure(Reason.NO_READY_ENDPOINTS, message)
        step_timeout = step.timeout_seconds or service.spec.timeout_seconds
        timeout = self.time_left(run, step_timeout)
        waiting = wait_for_ready_step(
            self.directory, namespace, step.step_ref, timeout=timeout, clock=self._clock
        )
        waited, ready = await unless_cancelled(waiting, cancel)
        if not waited:
            raise RunCancelledError(step=step.name, attempts=run.states[step.name].attempts)
        if ready is None:
            message = (
                f"step {step.name!r}: ServiceStep {namespace}/{step.step_ref} had no ready "
                f"endpoints within {timeout:.3g}s"
            )
            if timeout < step_timeout:  # the run's deadline, not the step's timeout, ended it
                error = StepError(reason=Reason.TIMEOUT, message=message + ", the run's time left")
                raise StepFailedError(error, attempts=0, timed_out=True)
            raise step_failure(Reason.NO_READY_ENDPOINTS, message)
        return ready

    def time_left(self, run: RunState, timeout: float) -> float:
        if run.deadline is None:
            return timeout
        return max(min(timeout, run.deadline - self._clock.monotonic()), 0.0)

    def build_call(
        self,
        run: RunState,
        step: PlannedStep,
        service: ServiceStep,
        body: bytes,
        *,
        first_attempt: int,
    ) -> StepCall:
        return StepCall(
            step=step.name,
            url=resolve_endpoint(service, overrides=self._overrides),
            body=body,
            idempotency_key=build_idempotency_key(run.key_uid, step.name),
            trace=run.span,
            timeout=step.timeout_seconds or self.step_timeout(service),
            retry=step.retry or service.spec.retry,
            deadline=run.deadline,
            first_attempt=first_attempt,
            route=resolve_route(service, overrides=self._overrides),
            load_key=(service.metadata.namespace or "", service.metadata.name or ""),
            may_call=run.request.may_call,
            span_attributes=call_span_attributes(run, step.name, service),
        )

    def step_timeout(self, service: ServiceStep) -> float:
        """The step's `timeoutSeconds`, or with an adaptive timeout and enough calls observed,
        `multiplier` x their p99, at least `floorSeconds` and at most `timeoutSeconds`."""
        limit = float(service.spec.timeout_seconds)
        adaptive = service.spec.adaptive_timeout
        if adaptive is None or self._loads is None:
            return limit
        key = (service.metadata.namespace or "", service.metadata.name or "")
        p99 = self._loads.p99(key)
        if p99 is None:
            return limit
        return min(limit, max(adaptive.floor_seconds, adaptive.multiplier * p99))


def call_span_attributes(run: RunState, step: str, service: ServiceStep) -> dict[str, str]:
    """What the spans of a step's calls say of it, besides the attempt. The namespace, the
    workflow and the run are on the run's span, their parent: each attribute costs every span
    (bench/overhead/RESULTS.md, section 13)."""
    return {"stepline.step": step, "stepline.step_ref": service.metadata.name or ""}
