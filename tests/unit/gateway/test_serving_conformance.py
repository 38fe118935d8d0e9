"""The operator's HTTP server reads requests as RFC 9112 says, strictly: the version, the target,
Host, framing, header values and trailers (`validating`), and what ends a connection. Real
sockets, exact bytes (`clients.RawClient`); each refusal is checked for its status, its reason,
the connection's close, and that the handler never saw the request."""

from __future__ import annotations

import asyncio

import pytest

from stepline.gateway.serving import HttpServer
from tests.unit.gateway.clients import RawClient, get, post
from tests.unit.gateway.conftest import Recorder


async def refused(server: HttpServer, request_bytes: bytes) -> tuple[int, str]:
    """Sends one request that must be refused; its status and reason, once closed."""
    client = await RawClient.connect(server.port)
    await client.send(request_bytes)
    answer = await client.answer()
    assert answer.headers["connection"] == "close"
    assert await asyncio.wait_for(client.closed(), 10)
    return answer.status, answer.json()["error"]["reason"]


async def served(server: HttpServer, request_bytes: bytes) -> dict[str, object]:
    """Sends one request that must be served; what the handler was given."""
    client = await RawClient.connect(server.port)
    await client.send(request_bytes)
    answer = await client.answer()
    await client.close()
    assert answer.status == 200, answer.body
    got: dict[str, object] = answer.json()
    return got


# the request line's version


@pytest.mark.parametrize(
    ("request_bytes", "status", "reason"),
    [
        (b"GET /\r\n\r\n", 400, "BadRequest"),
        (b"GET /\r\nHost: t\r\n\r\n", 400, "BadRequest"),
        (b"GET / HTTP/0.9\r\nHost: t\r\n\r\n", 400, "BadRequest"),
        (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505, "HttpVersionNotSupported"),
        (b"GET / HTTP/1.2\r\nHost: t\r\n\r\n", 400, "BadRequest"),
        (b"GET / http/1.1\r\nHost: t\r\n\r\n", 400, "BadRequest"),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, "BadRequest"),  # HTTP/2's preface
    ],
    ids=["no-version", "no-version-with-headers", "0.9", "2.0", "1.2", "lower-case", "h2-preface"],
)
async def test_a_request_line_without_http_1_x_is_refused(
    server: HttpServer, recorder: Recorder, request_bytes: bytes, status: int, reason: str
) -> None:
    assert await refused(server, request_bytes) == (status, reason)
    assert recorder.requests == []


@pytest.mark.parametrize(
    "request_bytes",
    [
        get("/first", version="1.0"),
        get("/first", version="1.0", headers="Connection: keep-alive\r\n"),
    ],
    ids=["plain", "asking-keep-alive"],
)
async def test_an_http_1_0_request_is_answered_and_its_connection_closed_unread_after(
    server: HttpServer, recorder: Recorder, request_bytes: bytes
) -> None:
    client = await RawClient.connect(server.port)

    await client.send(request_bytes + get("/after"))
    answer = await client.answer()

    assert (answer.status, answer.headers["connection"]) == (200, "close")
    assert await client.closed()  # no second answer: neither /after nor a 400 for it
    assert [request.path for request in recorder.requests] == ["/first"]


async def test_connection_close_leaves_what_follows_unread(
    server: HttpServer, recorder: Recorder
) -> None:
    client = await RawClient.connect(server.port)

    await client.send(get("/first", headers="Connection: close\r\n") + b"NOT HTTP\r\n\r\n")
    answer = await client.answer()

    assert (answer.status, answer.headers["connection"]) == (200, "close")
    assert await client.closed()
    assert len(recorder.requests) == 1


# the request target


@pytest.mark.parametrize(
    "target",
    [b"*", b"/a#fragment", b"ftp://host/a", b"http://user@host/a", b"/%zz", b"/a%2", b"/%00",
     b"/%7F", b"/%ff"],
    ids=["star-for-get", "fragment", "ftp", "userinfo", "bad-escape", "cut-escape", "nul",
         "delete", "not-utf-8"],
)  # fmt: skip
async def test_a_target_outside_origin_absolute_or_asterisk_form_is_answered_400(
    server: HttpServer, recorder: Recorder, target: bytes
) -> None:
    request_bytes = b"GET " + target + b" HTTP/1.1\r\nHost: t\r\n\r\n"

    assert await refused(server, request_bytes) == (400, "BadRequest")
    assert recorder.requests == []


@pytest.mark.parametrize(
    ("method", "target", "path"),
    [
        ("GET", "/a%20b/%C3%A9?q=%zz", "/a b/é"),  # the query is the handler's to read
        ("GET", "HTTP://operator:8080/a?b", "/a"),
        ("GET", "https://operator", "/"),
        ("OPTIONS", "*", "*"),
        ("GET", "//double", "//double"),
    ],
    ids=["escapes", "absolute", "absolute-without-path", "options-star", "empty-segment"],
)
async def test_a_target_in_a_served_form_gives_its_decoded_path(
    server: HttpServer, method: str, target: str, path: str
) -> None:
    assert (await served(server, get(target, method=method)))["path"] == path


# Host


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
    ],
    ids=["missing", "two", "two-alike", "a-path", "a-space"],
)
async def test_an_http_1_1_request_without_exactly_one_valid_host_is_answered_400(
    server: HttpServer, recorder: Recorder, request_bytes: bytes
) -> None:
    assert await refused(server, request_bytes) == (400, "BadRequest")
    assert recorder.requests == []


@pytest.mark.parametrize(
    "host", ["operator.stepline.svc:8080", "10.0.0.1", "[::1]:80", ""], ids=str
)
async def test_a_host_and_port_or_an_empty_host_are_served(server: HttpServer, host: str) -> None:
    request_bytes = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()

    assert (await served(server, request_bytes))["path"] == "/"


async def test_an_http_1_0_request_needs_no_host(server: HttpServer) -> None:
    assert (await served(server, b"GET /old HTTP/1.0\r\n\r\n"))["path"] == "/old"


# framing (the cases that smuggle a request, and endless framing, are in test_serving_hostile)


@pytest.mark.parametrize(
    ("request_bytes", "status", "reason"),
    [
        (
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            400, "BadRequest",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            501, "NotImplemented",
        ),
        (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\nabc", 400, "BadRequest"),
    ],
    ids=["chunked-in-1.0", "gzip-then-chunked", "gzip"],
)  # fmt: skip
async def test_transfer_codings_other_than_chunked_alone_are_refused(
    server: HttpServer, recorder: Recorder, request_bytes: bytes, status: int, reason: str
) -> None:
    assert await refused(server, request_bytes) == (status, reason)
    assert recorder.requests == []


async def test_chunked_is_read_whatever_its_case_and_chunk_extensions(server: HttpServer) -> None:
    head = b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: Chunked\r\n\r\n"

    got = await served(server, head + b"3;name=value\r\nabc\r\n0\r\n\r\n")

    assert got["body"] == "abc"


async def test_trailer_fields_are_never_merged_into_the_headers(
    server: HttpServer, recorder: Recorder
) -> None:
    head = b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    trailers = b"0\r\nAuthorization: Bearer smuggled\r\nHost: evil\r\n\r\n"

    got = await served(server, head + b"3\r\nabc\r\n" + trailers)

    assert got["body"] == "abc"
    headers = recorder.requests[0].headers
    assert "authorization" not in headers
    assert headers["host"] == "t"


# header values


async def test_header_values_lose_the_whitespace_around_them_and_repeats_are_joined(
    server: HttpServer, recorder: Recorder
) -> None:
    headers = "X-Padded:  \t value \t \r\nX-Twice: one\r\nX-Twice: two\r\nX-Empty:\r\n"

    await served(server, post("/", b"", headers=headers))

    got = recorder.requests[0].headers
    assert (got["x-padded"], got["x-twice"], got["x-empty"]) == ("value", "one, two", "")


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\x00b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\rb\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\nX-A:\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\nX A: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\n: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\nX-A : b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\n X-A: b\r\n\r\n",
        b"GET / HTTP/1.1\nHost: t\n\n",
        b"GET / HTTP/1.1\r\nHost: t\n\r\n",
        b"get / HTTP/1.1\r\nHost: t\r\n\r\n",
    ],
    ids=["nul", "bare-cr", "folded", "space-in-name", "no-name", "space-before-colon",
         "leading-space", "bare-lf", "bare-lf-in-headers", "lower-case-method"],
)  # fmt: skip
async def test_a_malformed_line_is_answered_400(
    server: HttpServer, recorder: Recorder, request_bytes: bytes
) -> None:
    assert await refused(server, request_bytes) == (400, "BadRequest")
    assert recorder.requests == []
