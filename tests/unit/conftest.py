"""Fixtures shared by the unit tests that call steps: a real step server on loopback and the
aiohttp transport, started per test; a raw HTTP server and the operator's own HTTP/1.1 transport
for the HTTP client's tests; a virtual clock. (The gateway's tests have a `server` of their own: the
operator's HTTP server.)"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from stepline.engine import AiohttpTransport, Http1Transport
from tests.unit.engine.rawservers import RawServer
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
async def raw_server() -> AsyncIterator[RawServer]:
    started = RawServer()
    await started.start()
    yield started
    await started.stop()


@pytest.fixture
async def http1() -> AsyncIterator[Http1Transport]:
    async with Http1Transport() as opened:
        yield opened


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
