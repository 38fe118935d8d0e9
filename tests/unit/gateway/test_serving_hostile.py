"""The operator's HTTP server against hostile clients, on real sockets: request smuggling, slow
clients (slowloris, slow readers), oversized heads (beside test_serving's limits), and many idle
connections.

Time limits are configured short (a tenth of a second or so) so that no test waits long; an
elapsed time is never asserted, only that what must happen does, within a generous bound."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from stepline.gateway.serving import (
    KEEPALIVE_SECONDS,
    MAX_HEAD_BYTES,
    REQUEST_SECONDS,
    HttpServer,
    Request,
    Response,
)
from tests.unit.gateway.clients import HOST, Answer, RawClient, get, post
from tests.unit.gateway.conftest import MAX_BODY_BYTES, Recorder

SHORT = 0.1  # seconds: the configured limit under test
GENEROUS = 10.0  # seconds: how long a test waits for what must happen before it fails
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"


StartServer = Callable[..., Awaitable[HttpServer]]


@pytest.fixture
async def start_server(recorder: Recorder) -> AsyncIterator[StartServer]:
    """Starts a server on the recorder with the limits a test gives; closes it afterwards."""
    started: list[HttpServer] = []

    async def start(
        *, keepalive_seconds: float = KEEPALIVE_SECONDS, request_seconds: float = REQUEST_SECONDS
    ) -> HttpServer:
        server = HttpServer(
            recorder, max_body_bytes=MAX_BODY_BYTES, keepalive_seconds=keepalive_seconds,
            request_seconds=request_seconds,
        )  # fmt: skip
        await server.start(HOST, 0)
        started.append(server)
        return server

    yield start
    recorder.release.set()
    for server in started:
        await server.close(timeout=5)


async def closed_in_time(client: RawClient) -> bool:
    return await asyncio.wait_for(client.closed(), GENEROUS)


async def assert_refused(
    client: RawClient, answer: Answer, recorder: Recorder, *, status: int, reason: str
) -> None:
    """The answer refuses with `status` and `reason`, the connection closes, and the handler
    saw nothing."""
    assert (answer.status, answer.json()["error"]["reason"]) == (status, reason)
    assert answer.headers["connection"] == "close"
    assert await closed_in_time(client)
    assert recorder.requests == []


# request smuggling: the server and a proxy before it must never disagree on where a request ends


@pytest.mark.parametrize(
    "head",
    [
        b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
        b"Content-Length: 4\r\nContent-Length: 40\r\n",
        b"Content-Length: 4, 40\r\n",
        b"Transfer-Encoding : chunked\r\n",  # a space before the colon
        b"Transfer-Encoding:\r\n chunked\r\n",  # a folded line
        b"Transfer-Encoding: xchunked\r\n",
        b"Transfer-Encoding: chunked, identity\r\n",  # chunked not the last coding
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        b"Content-Length: +4\r\n",
        b"Content-Length: 0x4\r\n",
    ],
    ids=[
        "length-then-chunked", "chunked-then-length", "two-lengths", "length-list",
        "space-before-colon", "folded", "xchunked", "chunked-not-last", "chunked-twice",
        "plus-sign", "hex-length",
    ],
)  # fmt: skip
async def test_ambiguous_framing_is_answered_400_and_the_connection_closed_unread(
    server: HttpServer, recorder: Recorder, head: bytes
) -> None:
    client = await RawClient.connect(server.port)
    body = b"0\r\n\r\n" + SMUGGLED  # what a chunked reader and a length reader split differently

    await client.send(b"POST / HTTP/1.1\r\nHost: t\r\n" + head + b"\r\n" + body)
    answer = await client.answer()

    # Refused: neither the request nor the one hidden in its body reaches the handler.
    await assert_refused(client, answer, recorder, status=400, reason="BadRequest")


async def test_a_request_inside_a_body_stays_body(server: HttpServer, recorder: Recorder) -> None:
    client = await RawClient.connect(server.port)

    await client.send(post("/outer", SMUGGLED) + get("/next"))
    outer, following = await client.answer(), await client.answer()

    assert outer.json()["body"] == SMUGGLED.decode()
    assert following.json()["path"] == "/next"
    assert [request.path for request in recorder.requests] == ["/outer", "/next"]
    await client.close()


# slow clients: a client that sends or reads slowly holds a connection no longer than the limits


@pytest.mark.parametrize(
    "request_bytes",
    [
        get("/", headers="X-Padding: " + "p" * 200 + "\r\n"),
        post("/", b"b" * 200),
    ],
    ids=["head", "body"],
)
async def test_a_request_trickled_in_slower_than_request_seconds_is_answered_408_and_closed(
    start_server: StartServer, recorder: Recorder, request_bytes: bytes
) -> None:
    server = await start_server(request_seconds=SHORT)
    client = await RawClient.connect(server.port)
    # Each byte comes well within the limit; the whole request would take 20 times longer.
    one_by_one = [request_bytes[index : index + 1] for index in range(len(request_bytes))]
    sending = asyncio.create_task(client.trickle(one_by_one, pause=SHORT * 20 / 250))

    answer = await asyncio.wait_for(client.answer(), GENEROUS)

    await assert_refused(client, answer, recorder, status=408, reason="RequestTimeout")
    sending.cancel()


async def test_a_trickling_client_holds_up_nobody_else(
    start_server: StartServer,
) -> None:
    server = await start_server(request_seconds=GENEROUS)
    slow = await RawClient.connect(server.port)
    request_bytes = get("/" + "s" * 500)
    one_by_one = [request_bytes[index : index + 1] for index in range(len(request_bytes))]
    sending = asyncio.create_task(slow.trickle(one_by_one, pause=0.01))
    other = await RawClient.connect(server.port)

    answers = []
    for number in range(3):
        await other.send(get(f"/other-{number}"))
        answers.append(await asyncio.wait_for(other.answer(), GENEROUS))

    assert [answer.json()["path"] for answer in answers] == ["/other-0", "/other-1", "/other-2"]
    assert not sending.done()
    sending.cancel()
    await slow.close()
    await other.close()


async def test_a_client_that_does_not_read_its_answers_is_cut_off_after_request_seconds(
    recorder: Recorder,
) -> None:
    big = b"x" * (1 << 20)

    async def answer_big(request: Request) -> Response:
        return Response(200, big, content_type="application/octet-stream")

    server = HttpServer(answer_big, max_body_bytes=MAX_BODY_BYTES, request_seconds=SHORT)
    await server.start(HOST, 0)
    client = await RawClient.connect(server.port)
    # 64 MiB of answers asked for: more than the sockets' buffers hold while nobody reads.
    await client.send(get("/") * 64)

    await asyncio.sleep(SHORT * 5)  # reads nothing for five times the limit
    answers = 0
    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
        while answers < 64:
            await asyncio.wait_for(client.answer(), GENEROUS)
            answers += 1

    assert answers < 64
    assert await closed_in_time(client)
    other = await RawClient.connect(server.port)
    await other.send(get("/"))
    assert (await other.answer()).status == 200
    await other.close()
    await server.close()


# oversized heads: the limits hold however the head is sent, and count each request alone


@pytest.mark.parametrize(
    "start",
    [
        b"GET / HTTP/1.1\r\nHost: t\r\nX-Endless: ",
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1;endless=",
    ],
    ids=["header", "chunk-extension"],
)
async def test_a_head_or_chunk_framing_that_never_ends_is_answered_431_past_the_limit(
    server: HttpServer, recorder: Recorder, start: bytes
) -> None:
    client = await RawClient.connect(server.port)
    await client.send(start)

    # What never ends: at most 1 MiB of it, for the server must not wait for the end.
    sending = asyncio.create_task(client.trickle([b"e" * 1024] * 1024, pause=0.001))
    answer = await asyncio.wait_for(client.answer(), GENEROUS)

    await assert_refused(client, answer, recorder, status=431, reason="HeadersTooLarge")
    sending.cancel()


async def test_the_head_limit_counts_each_request_on_a_kept_connection_alone(
    server: HttpServer,
) -> None:
    client = await RawClient.connect(server.port)
    padding = f"X-Padding: {'p' * (MAX_HEAD_BYTES * 6 // 10)}\r\n"

    await client.send(b"".join(get(f"/{number}", headers=padding) for number in range(3)))
    answers = [await client.answer() for _ in range(3)]

    assert [answer.status for answer in answers] == [200, 200, 200]
    await client.close()


# many idle connections: closed after keepalive_seconds, while the server goes on answering


async def test_many_idle_connections_are_closed_after_the_keepalive_time_while_others_are_served(
    start_server: StartServer,
) -> None:
    # Two seconds: on a loaded machine a stalled loop must not make the busy connection look idle.
    server = await start_server(keepalive_seconds=SHORT * 20)
    idle: list[RawClient] = []
    for _ in range(10):  # in batches, within the listening socket's backlog
        idle += await asyncio.gather(*(RawClient.connect(server.port) for _ in range(50)))
    for client in idle[::2]:  # half idle after a request, half before their first
        await client.send(get("/once"))
        await client.answer()
    busy = await RawClient.connect(server.port)

    async def keep_busy() -> int:
        answered = 0
        for _ in range(int(GENEROUS / SHORT)):
            await busy.send(get("/busy"))
            answered += (await busy.answer()).status == 200
            await asyncio.sleep(SHORT / 2)  # well within the keep-alive time
        return answered

    busy_task = asyncio.create_task(keep_busy())
    closed = await asyncio.wait_for(asyncio.gather(*(c.closed() for c in idle)), GENEROUS)
    fresh = await RawClient.connect(server.port)
    await fresh.send(get("/fresh"))

    assert all(closed)
    assert (await fresh.answer()).status == 200
    assert not busy_task.done()  # the busy connection is still served, not closed as idle
    busy_task.cancel()
    await busy.close()
    await fresh.close()
