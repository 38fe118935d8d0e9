"""Http1Transport's pool against real servers on loopback: which connections are reused, which
are closed, what a call waits for, and where https:// goes."""

from __future__ import annotations

import asyncio
import base64

import httpx
import pytest

from stepline.engine import (
    CallConnectionError,
    CallTimeoutError,
    Http1Transport,
    HttpxTransport,
    Reply,
    build_http_client,
)
from tests.unit.engine.rawservers import Raw, RawServer, ok
from tests.unit.engine.stepservers import Answer, StepServer

HEADERS = {"Content-Type": "application/json"}


async def _post(transport: Http1Transport, server: RawServer, *, timeout: float = 2) -> Reply:
    return await transport.post(server.url("/"), b"{}", headers=HEADERS, timeout=timeout)


async def _eventually(condition: object, what: str) -> None:
    for _ in range(100):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not within a second: {what}")


async def test_sequential_calls_to_one_origin_share_one_connection(
    raw_server: RawServer, http1: Http1Transport
) -> None:
    for _ in range(3):
        assert await _post(http1, raw_server) == Reply(200, b"{}")

    assert raw_server.connections == 1


async def test_concurrent_calls_to_one_origin_use_a_connection_each(
    raw_server: RawServer, http1: Http1Transport
) -> None:
    raw_server.answer(Raw(ok().parts, delay=0.2))

    replies = await asyncio.gather(*(_post(http1, raw_server) for _ in range(4)))

    assert replies == [Reply(200, b"{}")] * 4
    assert raw_server.connections == 4
    await asyncio.gather(*(_post(http1, raw_server) for _ in range(4)))
    assert raw_server.connections == 4  # all four were kept for the next burst


async def test_an_idle_connection_closed_by_the_server_is_replaced(
    raw_server: RawServer, http1: Http1Transport
) -> None:
    raw_server.answer(Raw(ok().parts, close=True), ok())
    await _post(http1, raw_server)
    await asyncio.sleep(0.05)  # the client reads the server's FIN while the connection is idle

    assert await _post(http1, raw_server) == Reply(200, b"{}")
    assert raw_server.connections == 2


async def test_a_request_that_crosses_the_servers_close_is_sent_again_on_a_new_connection(
    raw_server: RawServer, http1: Http1Transport
) -> None:
    raw_server.answer(ok(b"1"), Raw(close=True), ok(b"2"))  # the second request: closed unread
    await _post(http1, raw_server)

    assert await _post(http1, raw_server) == Reply(200, b"2")
    assert raw_server.connections == 2
    assert len(raw_server.requests) == 3


async def test_a_new_connection_closed_before_answering_is_not_tried_again(
    raw_server: RawServer, http1: Http1Transport
) -> None:
    raw_server.answer(Raw(close=True), ok())

    with pytest.raises(CallConnectionError, match="closed before answering"):
        await _post(http1, raw_server)

    assert len(raw_server.requests) == 1


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n",
    ],
    ids=["connection-close", "http-1.0"],
)
async def test_a_connection_the_answer_does_not_keep_alive_is_not_reused(
    raw_server: RawServer, http1: Http1Transport, head: bytes
) -> None:
    raw_server.answer(Raw((head + b"{}",)))

    assert await _post(http1, raw_server) == Reply(200, b"{}")
    assert await _post(http1, raw_server) == Reply(200, b"{}")

    assert raw_server.connections == 2
    await _eventually(lambda: raw_server.hung_up == 2, "the client closes both")


async def test_a_timed_out_call_closes_its_connection_and_its_late_answer_is_nobodys(
    raw_server: RawServer, http1: Http1Transport
) -> None:
    raw_server.answer(Raw(ok(b"late").parts, delay=0.3), ok(b"on time"))

    with pytest.raises(CallTimeoutError, match=r"no answer within 0\.1s"):
        await _post(http1, raw_server, timeout=0.1)

    await _eventually(lambda: raw_server.hung_up == 1, "the client closes the connection")
    assert await _post(http1, raw_server) == Reply(200, b"on time")
    assert raw_server.connections == 2


async def test_the_timeout_bounds_the_wait_for_a_slot_in_the_pool(raw_server: RawServer) -> None:
    raw_server.answer(Raw(ok(b"slow").parts, delay=0.5), ok())

    async with Http1Transport(pool_size=1) as transport:
        slow = asyncio.create_task(_post(transport, raw_server))
        await asyncio.sleep(0.05)
        with pytest.raises(CallTimeoutError):
            await _post(transport, raw_server, timeout=0.1)
        assert await slow == Reply(200, b"slow")

    assert raw_server.connections == 1


async def test_a_cancelled_call_closes_its_connection_and_is_cancelled(
    raw_server: RawServer, http1: Http1Transport
) -> None:
    raw_server.answer(Raw(ok().parts, delay=5))
    call = asyncio.create_task(_post(http1, raw_server))
    await _eventually(lambda: raw_server.requests, "the request arrives")

    call.cancel()

    with pytest.raises(asyncio.CancelledError):
        await call
    await _eventually(lambda: raw_server.hung_up == 1, "the client closes the connection")


async def test_idle_connections_are_closed_after_the_keepalive_time(
    raw_server: RawServer,
) -> None:
    async with Http1Transport(keepalive_seconds=0.1) as transport:
        await _post(transport, raw_server)
        await _eventually(lambda: raw_server.hung_up == 1, "the idle connection is closed")

        assert await _post(transport, raw_server) == Reply(200, b"{}")

    assert raw_server.connections == 2


async def test_idle_connections_beyond_the_limit_per_origin_are_closed(
    raw_server: RawServer,
) -> None:
    raw_server.answer(Raw(ok().parts, delay=0.1))

    async with Http1Transport(max_idle_per_origin=1) as transport:
        await asyncio.gather(*(_post(transport, raw_server) for _ in range(3)))
        await _eventually(lambda: raw_server.hung_up == 2, "two of three are closed")


async def test_closing_the_transport_closes_its_idle_connections(raw_server: RawServer) -> None:
    async with Http1Transport() as transport:
        await _post(transport, raw_server)

    await _eventually(lambda: raw_server.hung_up == 1, "the client closes the connection")


async def test_a_refused_connection_is_a_connection_error_caused_by_the_os(
    http1: Http1Transport,
) -> None:
    stopped = StepServer()
    await stopped.start()
    await stopped.stop()

    with pytest.raises(CallConnectionError, match=r"cannot connect to 127\.0\.0\.1") as refused:
        await http1.post(stopped.url("/"), b"{}", headers=HEADERS, timeout=2)

    assert isinstance(refused.value.__cause__, ConnectionRefusedError)


async def test_https_urls_are_sent_through_httpx(http1: Http1Transport) -> None:
    stopped = StepServer()
    await stopped.start()
    await stopped.stop()
    url = stopped.url("/").replace("http://", "https://")

    with pytest.raises(CallConnectionError) as refused:
        await http1.post(url, b"{}", headers=HEADERS, timeout=2)

    assert isinstance(refused.value.__cause__, httpx.ConnectError)


async def test_credentials_in_a_url_are_sent_by_httpx_as_basic_authentication(
    server: StepServer, http1: Http1Transport
) -> None:
    url = server.url("/validate").replace("http://", "http://user:secret@")

    reply = await http1.post(url, b"{}", headers=HEADERS, timeout=2)

    assert reply.status == 200
    (received,) = server.received
    assert received.headers["Authorization"] == "Basic " + base64.b64encode(b"user:secret").decode()


async def test_a_given_delegate_carries_the_delegated_calls_and_is_left_open(
    server: StepServer,
) -> None:
    server.answer("/validate", Answer(json={"valid": True}))
    async with build_http_client() as client:
        async with Http1Transport(delegate=HttpxTransport(client)) as transport:
            url = server.url("/validate").replace("http://", "http://user:secret@")
            reply = await transport.post(url, b"{}", headers=HEADERS, timeout=2)

        assert reply == Reply(200, b'{"valid": true}')
        assert not client.is_closed


async def test_a_json_round_trip_through_aiohttp_web_keeps_one_connection(
    server: StepServer, http1: Http1Transport
) -> None:
    server.answer("/validate", Answer(json={"valid": True}), lambda body: body)

    first = await http1.post(server.url("/validate"), b'{"a":1}', headers=HEADERS, timeout=2)
    second = await http1.post(server.url("/validate"), b'{"b":2}', headers=HEADERS, timeout=2)

    assert (first, second) == (Reply(200, b'{"valid": true}'), Reply(200, b'{"b": 2}'))
    ports = {request.headers["Host"] for request in server.received}
    assert ports == {f"127.0.0.1:{server.port}"}
