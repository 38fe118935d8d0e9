"""Fakes for driving the controllers' timers and API calls in unit tests, without waiting and
without a cluster.

The controllers take no clock: they call `asyncio.sleep` and `time.monotonic` themselves.
`VirtualClock.install()` swaps the module's names `asyncio` and `time` for ones whose `sleep` and
`monotonic` are the clock's (everything else is the real module), for one test. Time then moves
only when the test calls `advance()`.

`FakeKube` answers the few `KubeApi` methods the controllers call from scripts the test writes.
"""

from __future__ import annotations

import asyncio
import copy
import heapq
import itertools
import time
import types
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

# Turns of the event loop `settle()` gives: enough for a few tasks to pass awaits that do not
# wait (a fake API call, a lock that is free) and reach their next real wait.
SETTLE_TURNS = 50


async def settle() -> None:
    """Lets every task that can go on do so, up to its next wait."""
    for _ in range(SETTLE_TURNS):
        await asyncio.sleep(0)


class VirtualClock:
    """Time that moves only when the test says: `sleep()` parks its caller until `advance()`
    passes its deadline; `sleeps` records every wait asked for, in seconds."""

    def __init__(self) -> None:
        self.time = 1000.0
        self.sleeps: list[float] = []
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.time + seconds, next(self._order), future))
        await future

    async def advance(self, seconds: float) -> None:
        """Moves time on by `seconds`: wakes each sleeper at its deadline, earliest first, and
        lets what it wakes run (and sleep again) before time moves further."""
        until = self.time + seconds
        await settle()
        while self._sleepers and self._sleepers[0][0] <= until:
            deadline, _, future = heapq.heappop(self._sleepers)
            self.time = max(self.time, deadline)
            if not future.done():  # not cancelled meanwhile
                future.set_result(None)
            await settle()
        self.time = until

    def install(self, monkeypatch: pytest.MonkeyPatch, module: types.ModuleType) -> None:
        """`module` sleeps and reads monotonic time on this clock for the rest of the test."""
        fake_asyncio = types.SimpleNamespace(**vars(asyncio))
        fake_asyncio.sleep = self.sleep
        monkeypatch.setattr(module, "asyncio", fake_asyncio)
        if hasattr(module, "time"):
            fake_time = types.SimpleNamespace(**vars(time))
            fake_time.monotonic = self.monotonic
            monkeypatch.setattr(module, "time", fake_time)


class RecordedEvents:
    """The `EventPoster` methods the controllers call; `posted` is (type, reason, message)."""

    def __init__(self) -> None:
        self.posted: list[tuple[str, str, str]] = []

    def info(self, involved: Mapping[str, Any], *, reason: str, message: str) -> None:
        self.posted.append(("Normal", reason, message))

    def warn(self, involved: Mapping[str, Any], *, reason: str, message: str) -> None:
        self.posted.append(("Warning", reason, message))


class FakeKube:
    """The `KubeApi` methods the controllers call, answered from `answers[method]` in order: an
    exception is raised, anything else returned. When a method's script is used up, `get` and
    `patch_status` answer as an API server that has the object would, while `list_page` and
    `watch` wait until the test ends (so a list-and-watch loop stops where its script does).
    `calls` records (method, arguments) of every call; a watch's script is a list of events,
    an exception among them breaks the watch off there."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.answers: dict[str, list[Any]] = defaultdict(list)
        # The resourceVersion each status write was guarded by (None: none).
        self.versions_written: list[str | None] = []

    def called(self, method: str) -> list[tuple[Any, ...]]:
        return [arguments for name, arguments in self.calls if name == method]

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        return await self._answer("get", (kind, namespace, name), default={})

    async def patch_status(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        *,
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        self.versions_written.append(resource_version)
        answer = await self._answer(
            "patch_status", (kind, namespace, name, dict(status)), default={}
        )
        return dict(answer)

    async def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Answers as an API server would: the object, generation 1, its spec set by us."""
        kind, metadata = manifest["kind"], manifest["metadata"]
        stored = copy.deepcopy(dict(manifest))
        stored["metadata"]["generation"] = 1
        stored["metadata"]["managedFields"] = [
            {"manager": "stepline", "operation": "Apply", "fieldsV1": {"f:spec": {}}}
        ]
        answer = await self._answer(
            "apply", (kind, metadata["namespace"], metadata["name"]), default=stored
        )
        return dict(answer)

    async def list_page(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        continue_token: str | None = None,
        limit: int = 500,
    ) -> dict[str, Any]:
        answer = await self._answer("list_page", (kind, namespace, continue_token), default=None)
        if answer is None:
            await asyncio.Event().wait()
        return dict(answer)

    async def watch(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        resource_version: str,
        timeout_seconds: int,
    ) -> AsyncIterator[dict[str, Any]]:
        events = await self._answer("watch", (kind, namespace, resource_version), default=None)
        if events is None:
            await asyncio.Event().wait()
        for event in events:
            if isinstance(event, BaseException):
                raise event
            yield event

    async def _answer(self, method: str, arguments: tuple[Any, ...], default: Any) -> Any:
        self.calls.append((method, arguments))
        await asyncio.sleep(0)  # an API call is a wait: other tasks may run meanwhile
        script = self.answers[method]
        answer = script.pop(0) if script else default
        if isinstance(answer, BaseException):
            raise answer
        return answer
