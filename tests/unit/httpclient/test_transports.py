"""Every transport against a real server: any status is a reply; no answer is a CallError."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from stepline.engine import (
    AiohttpTransport,
    CallConnectionError,
    CallTimeoutError,
    Http1Transport,
    HttpxTransport,
    InvalidReplyError,
    Transport,
    build_http_client,
)
from tests.unit.engine.stepservers import Answer, StepServer

HEADERS = {"Content-Type": "application/json"}


@pytest.fixture(params=["http1", "aiohttp", "httpx"])
async def any_transport(request: pytest.FixtureRequest) -> AsyncIterator[Transport]:
    if request.param == "http1":
        async with Http1Transport() as http1_transport:
            yield http1_transport
    elif request.param == "aiohttp":
        async with AiohttpTransport() as aiohttp_transport:
            yield aiohttp_transport
    else:
        async with build_http_client() as client:
            yield HttpxTransport(client)


async def test_a_post_sends_the_body_and_headers_and_returns_status_and_body(
    server: StepServer, any_transport: Transport
) -> None:
    server.answer("/echo", Answer(201, json={"ok": True}))

    reply = await any_transport.post(
        server.url("/echo"), b'{"a":1}', headers=HEADERS | {"X-Test": "1"}, timeout=2
    )

    assert reply.status == 201
    assert reply.body == b'{"ok": true}'
    (received,) = server.received
    assert received.body == {"a": 1}
    assert received.headers["X-Test"] == "1"


async def test_a_5xx_is_a_reply_not_an_error(server: StepServer, any_transport: Transport) -> None:
    server.answer("/fail", Answer(503, text="down"))

    reply = await any_transport.post(server.url("/fail"), b"{}", headers=HEADERS, timeout=2)

    assert (reply.status, reply.body) == (503, b"down")


async def test_no_answer_within_the_timeout_raises_call_timeout_error(
    server: StepServer, any_transport: Transport
) -> None:
    server.answer("/slow", Answer(json={}, delay=1))

    with pytest.raises(CallTimeoutError, match=r"no answer within 0\.1s"):
        await any_transport.post(server.url("/slow"), b"{}", headers=HEADERS, timeout=0.1)


async def test_a_refused_connection_raises_call_connection_error(any_transport: Transport) -> None:
    stopped = StepServer()
    await stopped.start()
    await stopped.stop()

    with pytest.raises(CallConnectionError) as refused:
        await any_transport.post(stopped.url("/"), b"{}", headers=HEADERS, timeout=2)

    assert refused.value.__cause__ is not None


async def test_a_reply_larger_than_the_limit_is_refused(server: StepServer) -> None:
    server.answer("/big", Answer(json={"blob": "x" * 2000}))

    async with AiohttpTransport(max_reply_bytes=1000) as transport:
        with pytest.raises(InvalidReplyError, match="more than the 1000 accepted"):
            await transport.post(server.url("/big"), b"{}", headers=HEADERS, timeout=2)


async def test_httpx_refuses_a_reply_larger_than_the_limit_as_it_arrives(
    server: StepServer,
) -> None:
    server.answer("/big", Answer(json={"blob": "x" * 2000}))

    async with build_http_client() as client:
        transport = HttpxTransport(client, max_reply_bytes=1000)
        with pytest.raises(InvalidReplyError, match="more bytes than the 1000 accepted"):
            await transport.post(server.url("/big"), b"{}", headers=HEADERS, timeout=2)


async def test_redirects_are_returned_not_followed(
    server: StepServer, transport: AiohttpTransport
) -> None:
    server.answer("/moved", Answer(307, text="elsewhere"))

    reply = await transport.post(server.url("/moved"), b"{}", headers=HEADERS, timeout=2)

    assert reply.status == 307
