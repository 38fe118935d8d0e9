"""Health checks of external steps, against a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from stepline.api import ServiceStep
from stepline.controllers.servicesteps import checks
from stepline.controllers.servicesteps.checks import probe_external_step
from stepline.engine import StepIndex, build_http_client
from tests.unit.controllers.fakes import VirtualClock
from tests.unit.engine.stepservers import Answer, StepServer
from tests.unit.resources.samples import NAMESPACE, make_step


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with build_http_client() as opened:
        yield opened


async def test_a_step_answering_404_is_healthy(
    server: StepServer, client: httpx.AsyncClient
) -> None:
    server.answer("/score", Answer(status=404, text="no GET here"))

    check = await probe_external_step(client, server.url("/score"), timeout=2)

    assert check.healthy
    assert check.detail == f"GET {server.url('/score')} answered 404"


async def test_a_redirect_is_healthy_and_not_followed(
    server: StepServer, client: httpx.AsyncClient
) -> None:
    server.answer("/old", Answer(status=302, text="", headers={"Location": "/elsewhere"}))

    check = await probe_external_step(client, server.url("/old"), timeout=2)

    assert check.healthy
    assert [call.path for call in server.received] == ["/old"]


async def test_a_step_answering_503_is_unhealthy(
    server: StepServer, client: httpx.AsyncClient
) -> None:
    server.answer("/score", Answer(status=503, text="overloaded"))

    check = await probe_external_step(client, server.url("/score"), timeout=2)

    assert not check.healthy
    assert check.detail == f"GET {server.url('/score')} returned 503"


async def test_a_step_that_does_not_answer_in_time_is_unhealthy(
    server: StepServer, client: httpx.AsyncClient
) -> None:
    server.answer("/slow", Answer(delay=2.0))

    check = await probe_external_step(client, server.url("/slow"), timeout=0.2)

    assert not check.healthy
    assert check.detail == f"GET {server.url('/slow')}: no answer within 0.2s"


async def test_a_refused_connection_is_unhealthy_and_says_why(
    client: httpx.AsyncClient,
) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{unused.getsockname()[1]}/score"

    check = await probe_external_step(client, url, timeout=2)

    assert not check.healthy
    assert check.detail.startswith(f"GET {url}: ConnectError")


class TestPeriodicChecks:
    """`check_external_steps_forever` on a virtual clock: each registered step once per
    interval, at even jittered gaps, read from the step directory (no API request)."""

    INTERVAL = 30.0
    STEPS = 10

    @pytest.fixture
    def checked(
        self, monkeypatch: pytest.MonkeyPatch, clock: VirtualClock
    ) -> list[tuple[float, str]]:
        seen: list[tuple[float, str]] = []

        async def record(runtime: Any, step: ServiceStep) -> None:
            seen.append((clock.time, step.metadata.name or ""))

        monkeypatch.setattr(checks, "check_external_step", record)
        clock.install(monkeypatch, checks)
        return seen

    @pytest.fixture
    def clock(self) -> VirtualClock:
        return VirtualClock()

    @pytest.fixture
    def runtime(self) -> SimpleNamespace:
        steps = [make_step(f"s{i}", url=f"http://x.example/{i}") for i in range(self.STEPS)]
        return SimpleNamespace(
            steps=StepIndex(steps),
            servicesteps=SimpleNamespace(
                external_steps={(NAMESPACE, s.metadata.name) for s in steps}
            ),
        )

    async def test_each_step_is_checked_once_per_interval_spread_over_it(
        self, runtime: SimpleNamespace, clock: VirtualClock, checked: list[tuple[float, str]]
    ) -> None:
        started = clock.time
        loop = asyncio.create_task(checks.check_external_steps_forever(runtime))  # type: ignore[arg-type]
        try:
            await clock.advance(self.INTERVAL)
            first_round = list(checked)
            await clock.advance(2 * self.INTERVAL)
        finally:
            loop.cancel()
        firsts = {name: moment for moment, name in reversed(first_round)}
        assert sorted(firsts) == sorted(f"s{i}" for i in range(10))  # each within the interval
        assert len(set(firsts.values())) >= self.STEPS // 2  # spread, not at once
        assert all(moment - started < self.INTERVAL for moment in firsts.values())
        for index in range(self.STEPS):  # about once per interval from then on
            moments = [moment for moment, name in checked if name == f"s{index}"]
            gaps = [later - earlier for earlier, later in itertools.pairwise(moments)]
            assert 2 <= len(moments) <= 4, moments
            assert all(
                0.9 * self.INTERVAL - 1.01 <= gap <= 1.1 * self.INTERVAL + 1.01 for gap in gaps
            )

    async def test_a_step_registered_later_is_checked_within_an_interval(
        self, runtime: SimpleNamespace, clock: VirtualClock, checked: list[tuple[float, str]]
    ) -> None:
        loop = asyncio.create_task(checks.check_external_steps_forever(runtime))  # type: ignore[arg-type]
        try:
            await clock.advance(self.INTERVAL * 1.5)
            runtime.steps.put(make_step("late", url="http://x.example/late"))
            runtime.servicesteps.external_steps.add((NAMESPACE, "late"))
            registered = clock.time
            await clock.advance(self.INTERVAL + 1.5)
        finally:
            loop.cancel()
        late = [moment for moment, name in checked if name == "late"]
        assert late
        assert late[0] - registered <= self.INTERVAL + 1.01

    async def test_a_step_gone_from_the_directory_is_dropped(
        self, runtime: SimpleNamespace, clock: VirtualClock, checked: list[tuple[float, str]]
    ) -> None:
        runtime.steps.remove(NAMESPACE, "s3")
        loop = asyncio.create_task(checks.check_external_steps_forever(runtime))  # type: ignore[arg-type]
        try:
            await clock.advance(self.INTERVAL * 1.2)
        finally:
            loop.cancel()
        assert "s3" not in {name for _, name in checked}
        assert (NAMESPACE, "s3") not in runtime.servicesteps.external_steps
        assert len({name for _, name in checked}) == self.STEPS - 1
