"""Fixtures of the engine's tests: real HTTP servers on loopback, started per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from stepline.engine import Http1Transport
from tests.unit.engine.rawservers import RawServer
from tests.unit.engine.stepservers import FakeClock


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
