"""Fixtures of the engine's tests: real HTTP servers on loopback, started per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from stepline.engine import AiohttpTransport
from tests.unit.engine.stepservers import FakeClock, StepServer


@pytest.fixture
async def server() -> AsyncIterator[StepServer]:
    step_server = StepServer()
    await step_server.start()
    yield step_server
    await step_server.stop()


@pytest.fixture
async def transport() -> AsyncIterator[AiohttpTransport]:
    async with AiohttpTransport() as opened:
        yield opened


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
