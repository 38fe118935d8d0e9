"""Fixtures shared by the unit tests that call steps: a real step server on loopback and the
aiohttp transport, started per test. (The gateway's tests have a `server` of their own: the
operator's HTTP server.)"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from stepline.engine import AiohttpTransport
from tests.unit.engine.stepservers import StepServer


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
