"""Health checks of external steps, against a real HTTP server on loopback."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import httpx
import pytest

from stepline.controllers.servicesteps.checks import probe_external_step
from stepline.engine import build_http_client
from tests.unit.engine.stepservers import Answer, StepServer


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
