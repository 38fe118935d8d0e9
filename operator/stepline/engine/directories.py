"""How the engine learns about ServiceSteps: a `StepDirectory` the caller implements.

The engine never reads the cluster. It asks a directory for a ServiceStep by namespace and name,
and whether that step is ready (has ready replicas; for an external step, answers its health
check). The operator's directory is its in-memory index of ServiceSteps, fed by watch events;
tests and benchmarks use `StepIndex`, an in-memory directory anyone can fill.

A directory that can also wait for a step to become ready implements `ReadinessWaiter`; for one
that cannot, `wait_for_ready_step()` polls it through the engine's clock. No method here may
block: the directory is read on every step of every run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from stepline.api import ServiceStep, is_step_ready
from stepline.engine.clocks import Clock

# How often a directory that cannot wait is asked again: small next to a step's timeout (1 s or
# more), large next to the cost of asking (a dictionary look-up).
POLL_SECONDS = 0.1


class StepDirectory(Protocol):
    def find_step(self, namespace: str, name: str) -> ServiceStep | None:
        """The ServiceStep `namespace/name`, or None when there is none."""
        ...

    def is_step_ready(self, step: ServiceStep) -> bool:
        """Whether calls to `step` can be served now."""
        ...


@runtime_checkable
class ReadinessWaiter(Protocol):
    async def wait_for_ready_step(
        self, namespace: str, name: str, *, timeout: float
    ) -> ServiceStep | None:
        """The step once it exists and is ready; None if it is not within `timeout` seconds."""
        ...


async def wait_for_ready_step(
    directory: StepDirectory,
    namespace: str,
    name: str,
    *,
    timeout: float,
    clock: Clock,
    poll_seconds: float = POLL_SECONDS,
) -> ServiceStep | None:
    """Waits for `namespace/name` to be ready: through the directory if it can wait, else by
    asking it every `poll_seconds` of `clock`. None when `timeout` passes first."""
    if isinstance(directory, ReadinessWaiter):
        return await directory.wait_for_ready_step(namespace, name, timeout=timeout)
    until = clock.monotonic() + timeout
    while True:
        step = directory.find_step(namespace, name)
        if step is not None and directory.is_step_ready(step):
            return step
        left = until - clock.monotonic()
        if left <= 0:
            return None
        await clock.sleep(min(poll_seconds, left))


class StepIndex:
    """An in-memory `StepDirectory` (and `ReadinessWaiter`): ServiceSteps by namespace and name.

    A step is ready when its Ready condition is True, or always with `assume_ready=True` (for
    local runs against step programs that have no status). `put()` replaces a step and wakes
    whoever waits for it to become ready.
    """

    def __init__(self, steps: Iterable[ServiceStep] = (), *, assume_ready: bool = False) -> None:
        self._steps: dict[tuple[str, str], ServiceStep] = {}
        # Readiness of each stored step, computed once when it is put: the executor asks on
        # every call. Keyed by id(); the step is kept in the value, so its id stays unique.
        self._readiness: dict[int, tuple[ServiceStep, bool]] = {}
        self._waiters: dict[tuple[str, str], list[asyncio.Future[ServiceStep]]] = {}
        self._assume_ready = assume_ready
        for step in steps:
            self.put(step)

    def put(self, step: ServiceStep) -> None:
        key = (step.metadata.namespace or "", step.metadata.name or "")
        self._forget(self._steps.get(key))
        self._steps[key] = step
        ready = self._assume_ready or is_step_ready(step)
        self._readiness[id(step)] = (step, ready)
        if ready:
            for waiter in self._waiters.pop(key, []):
                if not waiter.done():
                    waiter.set_result(step)

    def remove(self, namespace: str, name: str) -> None:
        self._forget(self._steps.pop((namespace, name), None))

    def _forget(self, step: ServiceStep | None) -> None:
        if step is not None:
            self._readiness.pop(id(step), None)

    def find_step(self, namespace: str, name: str) -> ServiceStep | None:
        return self._steps.get((namespace, name))

    def is_step_ready(self, step: ServiceStep) -> bool:
        known = self._readiness.get(id(step))
        if known is not None and known[0] is step:
            return known[1]
        return self._assume_ready or is_step_ready(step)

    async def wait_for_ready_step(
        self, namespace: str, name: str, *, timeout: float
    ) -> ServiceStep | None:
        step = self.find_step(namespace, name)
        if step is not None and self.is_step_ready(step):
            return step
        waiter: asyncio.Future[ServiceStep] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault((namespace, name), [])
        waiters.append(waiter)
        try:
            return await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            return None
        finally:
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters and self._waiters.get((namespace, name)) is waiters:
                del self._waiters[(namespace, name)]
