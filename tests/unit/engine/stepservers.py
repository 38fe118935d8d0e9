"""A small programmable HTTP server on 127.0.0.1 standing in for step services, and builders of
the objects the engine is given (ServiceSteps, Workflows, a fake clock).

Each path answers from a script: `answer(path, *answers)` queues answers, the last one repeats;
an answer is an `Answer` or a function of the received JSON (its result is sent back with 200).
A path without a script echoes its input. Every request is kept in `received`; `most_in_flight`
is the most requests it held at once, `most_in_flight_at` the same per path.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from stepline.api import (
    Condition,
    ConditionStatus,
    ConditionType,
    Reason,
    ServiceStep,
    Workflow,
)

HOST = "127.0.0.1"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Answer:
    status: int = 200
    json: Any = None
    text: str | None = None
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: Any
    at: float = field(default_factory=time.monotonic)  # when the request was read


Script = Answer | Callable[[Any], Any]


@dataclass
class StepServer:
    received: list[Received] = field(default_factory=list)
    _scripts: dict[str, list[Script]] = field(default_factory=dict)
    _runner: web.AppRunner | None = None
    port: int = 0  # 0: any free port, known once started
    host: str = HOST
    in_flight: int = 0
    most_in_flight: int = 0
    _in_flight_at: dict[str, int] = field(default_factory=dict)
    most_in_flight_at: dict[str, int] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.base_url + path

    def answer(self, path: str, *answers: Script) -> None:
        self._scripts[path] = list(answers)

    def calls(self, path: str) -> list[Received]:
        return [request for request in self.received if request.path == path]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # Handlers still sleeping (answers scripted to be late) are cut short at teardown.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self._in_flight_at[path] = at_path = self._in_flight_at.get(path, 0) + 1
        self.most_in_flight_at[path] = max(self.most_in_flight_at.get(path, 0), at_path)
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1
            self._in_flight_at[path] -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw) if raw else None
        self.received.append(Received(request.path, dict(request.headers), body))
        script = self._next(request.path)
        if script is None:
            return web.json_response(body)
        if not isinstance(script, Answer):
            return web.json_response(script(body))
        if script.delay:
            await asyncio.sleep(script.delay)
        if script.text is not None:
            return web.Response(status=script.status, text=script.text, headers=script.headers)
        return web.json_response(script.json, status=script.status, headers=script.headers)

    def _next(self, path: str) -> Script | None:
        queue = self._scripts.get(path)
        if not queue:
            return None
        return queue.pop(0) if len(queue) > 1 else queue[0]


class FakeClock:
    """A clock whose sleeps return at once and move time forward; `sleeps` records them."""

    def __init__(self) -> None:
        self.time = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.time

    def now(self) -> datetime:
        return T0 + timedelta(seconds=self.time)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.time += seconds
        await asyncio.sleep(0)


def build_service_step(
    name: str,
    *,
    namespace: str = "shop",
    path: str = "/",
    url: str | None = None,
    ready: bool = True,
    timeout_seconds: int = 5,
    retry: dict[str, Any] | None = None,
    **extra: Any,
) -> ServiceStep:
    """A deployed step (image) at `path`, or an external one at `url`; Ready as told; `extra`
    are more spec fields, as on the wire."""
    spec: dict[str, Any] = {"timeoutSeconds": timeout_seconds, **extra}
    spec |= {"url": url} if url else {"image": f"example/{name}:1", "path": path}
    if retry is not None:
        spec["retry"] = retry
    step = ServiceStep.from_body(
        {"metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}"}, "spec": spec}
    )
    status = ConditionStatus.TRUE if ready else ConditionStatus.FALSE
    condition = Condition(
        type=ConditionType.READY,
        status=status,
        reason=Reason.AVAILABLE if ready else Reason.REPLICAS_UNAVAILABLE,
        message="test",
        last_transition_time=T0,
    )
    step.status.conditions = [condition]
    return step


def build_workflow(
    steps: list[dict[str, Any]], *, output: str | None = None, namespace: str = "shop"
) -> Workflow:
    spec: dict[str, Any] = {"steps": steps}
    if output is not None:
        spec["output"] = output
    return Workflow.from_body(
        {"metadata": {"name": "trade", "namespace": namespace, "generation": 1}, "spec": spec}
    )
