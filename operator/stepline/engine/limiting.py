"""Run slots: at most `concurrency` runs of one workflow at once, in this process.

A run holds a slot of its workflow while it executes:

    async with slots.hold(plan.key, limit=plan.concurrency, wait=False):  # invoke: 429 if full
        outcome = await executor.execute(plan, request)

Over the limit, `hold()` either waits for a slot, first come first served (`wait=True`, what
WorkflowRuns do, Pending meanwhile), or raises `RunRefusedError` at once (`wait=False`, what
invoke does, answering 429). The limit is read on every `hold()`, so a Workflow whose
`concurrency` changed takes effect for the next run. No I/O; one event loop.
"""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType

from stepline.engine.errors import RunRefusedError


class _Gate:
    """The slots of one workflow: how many are held, and who waits for one."""

    __slots__ = ("held", "limit", "waiters")

    def __init__(self, limit: int) -> None:
        self.held = 0
        self.limit = limit
        self.waiters: deque[asyncio.Future[None]] = deque()


class RunSlots:
    """Slots of every workflow, by key (`namespace/name`)."""

    def __init__(self) -> None:
        self._gates: dict[str, _Gate] = {}

    def hold(self, key: str, *, limit: int, wait: bool = True) -> _Slot:
        """An async context manager holding one of `key`'s `limit` slots while it is entered."""
        return _Slot(self, key, limit=limit, wait=wait)

    def held(self, key: str) -> int:
        """Slots of `key` held now."""
        gate = self._gates.get(key)
        return gate.held if gate else 0

    def waiting(self, key: str) -> int:
        """Runs of `key` waiting for a slot now."""
        gate = self._gates.get(key)
        return len(gate.waiters) if gate else 0

    async def _acquire(self, key: str, *, limit: int, wait: bool) -> None:
        gate = self._gates.get(key)
        if gate is None:
            gate = self._gates[key] = _Gate(limit)
        gate.limit = limit
        if gate.held < limit and not gate.waiters:
            gate.held += 1
            return
        if not wait:
            self._forget_if_idle(key, gate)
            raise RunRefusedError(workflow=key, limit=limit)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        gate.waiters.append(waiter)
        try:
            await waiter  # _release() counts the slot as held before it wakes us
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._release(key)  # granted, but we were cancelled before we could run
            else:
                if waiter in gate.waiters:  # _release() may have dropped it already
                    gate.waiters.remove(waiter)
                self._forget_if_idle(key, gate)
            raise

    def _release(self, key: str) -> None:
        gate = self._gates[key]
        gate.held -= 1
        while gate.waiters and gate.held < gate.limit:
            waiter = gate.waiters.popleft()
            if not waiter.done():
                gate.held += 1
                waiter.set_result(None)
        self._forget_if_idle(key, gate)

    def _forget_if_idle(self, key: str, gate: _Gate) -> None:
        if gate.held == 0 and not gate.waiters:
            del self._gates[key]


class _Slot:
    __slots__ = ("_key", "_limit", "_slots", "_wait")

    def __init__(self, slots: RunSlots, key: str, *, limit: int, wait: bool) -> None:
        self._slots = slots
        self._key = key
        self._limit = limit
        self._wait = wait

    async def __aenter__(self) -> None:
        await self._slots._acquire(self._key, limit=self._limit, wait=self._wait)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._slots._release(self._key)
