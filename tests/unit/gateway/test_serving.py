"""The operator's HTTP/1.1 server on real sockets: keep-alive, pipelining, limits, malformed and
slow requests, and a graceful close. Requests are exact bytes (`clients.RawClient`)."""

from __future__ import annotations

import asyncio

import pytest

from stepline.gateway.serving import MAX_HEAD_BYTES, MAX_HEADERS, HttpServer
from tests.unit.gateway.clients import HOST, RawClient, get, post
from tests.unit.gateway.conftest import MAX_BODY_BYTES, Recorder

LONG_HEADERS = MAX_HEAD_BYTES // 400 + 1  # of 400 bytes each: past the bytes, under the count


async def test_a_request_is_answered_and_the_connection_kept_for_the_next(
    server: HttpServer,
) -> None:
    client = await RawClient.connect(server.port)

    await client.send(post("/first?x=1", b'{"a": 1}', headers="Content-Type: application/json\r\n"))
    first = await client.answer()
    await client.send(get("/second"))
    second = await client.answer()

    assert first.status == 200
    assert first.headers["content-type"] == "application/json"
    assert "date" in first.headers
    assert "connection" not in first.headers
    assert first.json()["method"] == "POST"
    assert first.json()["path"] == "/first"
    assert first.json()["body"] == '{"a": 1}'
    assert second.json()["path"] == "/second"
    await client.close()


async def test_pipelined_requests_are_answered_in_the_order_they_came(
    server: HttpServer, recorder: Recorder
) -> None:
    client = await RawClient.connect(server.port)

    await client.send(get("/hold") + post("/two", b"2") + get("/three"))
    await recorder.holding.wait()
    recorder.release.set()
    answers = [await client.answer() for _ in range(3)]

    assert [answer.json()["path"] for answer in answers] == ["/hold", "/two", "/three"]
    assert answers[1].json()["body"] == "2"
    await client.close()


@pytest.mark.parametrize(
    "request_bytes",
    [get("/", headers="Connection: close\r\n"), get("/", version="1.0")],
    ids=["connection-close", "http-1.0"],
)
async def test_connection_close_and_http_1_0_end_the_connection_after_the_answer(
    server: HttpServer, request_bytes: bytes
) -> None:
    client = await RawClient.connect(server.port)

    await client.send(request_bytes)
    answer = await client.answer()

    assert answer.status == 200
    assert answer.headers["connection"] == "close"
    assert await client.closed()


async def test_a_chunked_body_within_the_limit_is_read_whole(server: HttpServer) -> None:
    client = await RawClient.connect(server.port)
    chunked = b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"

    await client.send(chunked + b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    answer = await client.answer()

    assert answer.json()["body"] == "abcde"
    await client.close()


async def test_a_declared_body_over_the_limit_is_not_read_and_the_handler_is_told_its_size(
    server: HttpServer, recorder: Recorder
) -> None:
    client = await RawClient.connect(server.port)

    await client.send(post("/big", b"x" * (MAX_BODY_BYTES + 1)))
    answer = await client.answer()

    assert answer.json() == {
        "method": "POST", "path": "/big", "body": "", "tooLarge": True, "size": MAX_BODY_BYTES + 1,
        "query": "",
    }  # fmt: skip
    assert answer.headers["connection"] == "close"
    assert await client.closed()


async def test_a_chunked_body_over_the_limit_is_cut_short_and_its_size_left_unknown(
    server: HttpServer,
) -> None:
    client = await RawClient.connect(server.port)
    chunk = b"%x\r\n" % 600 + b"y" * 600 + b"\r\n"

    await client.send(
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 2
    )
    answer = await client.answer()

    assert (answer.json()["tooLarge"], answer.json()["size"]) == (True, None)
    assert await client.closed()


async def test_expect_100_continue_is_answered_before_the_body_is_sent(
    server: HttpServer,
) -> None:
    client = await RawClient.connect(server.port)
    head = b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"

    await client.send(head)
    interim = await client.answer(head_only=True)
    await client.send(b"ok")
    answer = await client.answer()

    assert interim.status == 100
    assert answer.json()["body"] == "ok"
    await client.close()


async def test_expect_100_continue_with_a_body_over_the_limit_is_answered_at_once(
    server: HttpServer,
) -> None:
    client = await RawClient.connect(server.port)
    size = MAX_BODY_BYTES * 10
    head = f"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: {size}\r\n\r\n"

    await client.send(head.encode())
    answer = await client.answer()

    assert answer.status == 200
    assert (answer.json()["tooLarge"], answer.json()["size"]) == (True, size)
    assert await client.closed()


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"this is not HTTP\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
    ids=["garbage", "tls", "header-without-colon", "bad-chunk"],
)
async def test_a_malformed_request_is_answered_400_and_the_connection_closed(
    server: HttpServer, recorder: Recorder, request_bytes: bytes
) -> None:
    client = await RawClient.connect(server.port)

    await client.send(request_bytes)
    answer = await client.answer()

    assert answer.status == 400
    assert answer.json()["error"]["reason"] == "BadRequest"
    assert answer.headers["connection"] == "close"
    assert await client.closed()
    assert recorder.requests == []


async def test_requests_before_a_malformed_one_are_answered_first(server: HttpServer) -> None:
    client = await RawClient.connect(server.port)

    await client.send(get("/fine") + b"NOT HTTP AT ALL\r\n\r\n")
    fine, refused = await client.answer(), await client.answer()

    assert (fine.status, fine.json()["path"]) == (200, "/fine")
    assert "connection" not in fine.headers
    assert refused.status == 400
    assert await client.closed()


@pytest.mark.parametrize(
    "request_bytes",
    [
        get("/", headers=f"X-Big: {'a' * MAX_HEAD_BYTES}\r\n"),
        get("/", headers="".join(f"X-{number}: v\r\n" for number in range(MAX_HEADERS + 1))),
        get("/", headers="".join(f"X-{n}: {'v' * 400}\r\n" for n in range(LONG_HEADERS))),
        get("/" + "u" * MAX_HEAD_BYTES),
    ],
    ids=["too-long", "too-many", "long-ones-under-the-count", "long-target"],
)
async def test_heads_over_the_limits_are_answered_431_and_the_connection_closed(
    server: HttpServer, recorder: Recorder, request_bytes: bytes
) -> None:
    client = await RawClient.connect(server.port)

    await client.send(request_bytes)
    answer = await client.answer()

    assert answer.status == 431
    assert answer.json()["error"]["reason"] == "HeadersTooLarge"
    assert await client.closed()
    assert recorder.requests == []


async def test_a_handler_that_raises_is_answered_500_and_the_connection_still_serves(
    server: HttpServer,
) -> None:
    client = await RawClient.connect(server.port)

    await client.send(get("/fail") + get("/after"))
    failed, after = await client.answer(), await client.answer()

    assert failed.status == 500
    assert failed.json()["error"]["reason"] == "InternalError"
    assert after.json()["path"] == "/after"
    await client.close()


async def test_an_answer_with_a_header_no_head_can_carry_is_answered_500_and_never_logged(
    server: HttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = await RawClient.connect(server.port)

    await client.send(get("/snowman") + get("/after"))
    failed, after = await client.answer(), await client.answer()

    assert failed.status == 500
    assert after.json()["path"] == "/after"
    assert "\u2603" not in caplog.text
    await client.close()


async def test_the_query_reaches_the_handler_raw_and_apart_from_the_path(
    server: HttpServer,
) -> None:
    client = await RawClient.connect(server.port)

    await client.send(get("/runs?phase=Failed&q=%3Cb%3E") + get("/plain"))
    queried, plain = await client.answer(), await client.answer()

    assert (queried.json()["path"], queried.json()["query"]) == ("/runs", "phase=Failed&q=%3Cb%3E")
    assert plain.json()["query"] == ""
    await client.close()


async def test_head_is_answered_with_the_length_of_the_body_it_leaves_out(
    server: HttpServer,
) -> None:
    client = await RawClient.connect(server.port)

    await client.send(get("/x", method="HEAD") + get("/x"))
    head = await client.answer(head_only=True)
    full = await client.answer()

    assert head.status == 200
    # The recorder's body names the method: "HEAD" is a letter longer than "GET".
    assert int(head.headers["content-length"]) == len(full.body) + 1
    assert full.json()["method"] == "GET"
    await client.close()


async def test_connect_is_refused_405_and_the_connection_closed(server: HttpServer) -> None:
    client = await RawClient.connect(server.port)

    await client.send(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
    answer = await client.answer()

    assert answer.status == 405
    assert await client.closed()


async def test_an_upgrade_request_is_answered_as_a_plain_one_and_the_connection_closed(
    server: HttpServer,
) -> None:
    client = await RawClient.connect(server.port)

    await client.send(get("/ws", headers="Connection: Upgrade\r\nUpgrade: websocket\r\n"))
    answer = await client.answer()

    assert answer.json()["path"] == "/ws"
    assert answer.headers["connection"] == "close"
    assert await client.closed()


async def test_an_absolute_form_target_and_percent_escapes_give_the_decoded_path(
    server: HttpServer,
) -> None:
    client = await RawClient.connect(server.port)

    await client.send(get("http://operator:8080/a%20b/c?q=1"))
    answer = await client.answer()

    assert answer.json()["path"] == "/a b/c"
    await client.close()


async def test_a_request_not_sent_whole_in_time_is_answered_408_and_closed(
    recorder: Recorder,
) -> None:
    server = HttpServer(recorder, max_body_bytes=MAX_BODY_BYTES, request_seconds=0.05)
    await server.start(HOST, 0)
    client = await RawClient.connect(server.port)

    await client.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
    answer = await client.answer()

    assert answer.status == 408
    assert answer.json()["error"]["reason"] == "RequestTimeout"
    assert await client.closed()
    assert recorder.requests == []
    await server.close()


async def test_an_idle_connection_is_closed_after_the_keepalive_time(recorder: Recorder) -> None:
    server = HttpServer(recorder, max_body_bytes=MAX_BODY_BYTES, keepalive_seconds=0.05)
    await server.start(HOST, 0)
    client = await RawClient.connect(server.port)

    await client.send(get("/"))
    await client.answer()

    assert await client.closed()
    await server.close()


async def test_closing_finishes_the_request_in_flight_and_refuses_new_connections(
    server: HttpServer, recorder: Recorder
) -> None:
    client = await RawClient.connect(server.port)
    idle = await RawClient.connect(server.port)
    await client.send(get("/hold"))
    await recorder.holding.wait()
    port = server.port

    closing = asyncio.create_task(server.close())
    assert await idle.closed()
    recorder.release.set()
    answer = await client.answer()
    await closing

    assert (answer.status, answer.headers["connection"]) == (200, "close")
    assert await client.closed()
    with pytest.raises(ConnectionRefusedError):
        await RawClient.connect(port)


async def test_closing_cancels_a_request_that_outlasts_the_timeout(
    server: HttpServer, recorder: Recorder
) -> None:
    client = await RawClient.connect(server.port)
    await client.send(get("/hold"))
    await recorder.holding.wait()

    await server.close(timeout=0.01)

    assert await client.closed()


async def test_a_client_that_hangs_up_mid_request_leaves_the_server_serving(
    server: HttpServer,
) -> None:
    gone = await RawClient.connect(server.port)
    await gone.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc")
    await gone.close()
    client = await RawClient.connect(server.port)

    await client.send(get("/still"))
    answer = await client.answer()

    assert answer.json()["path"] == "/still"
    await client.close()
