"""HTTP/1.1 on the wire: the request bytes `build_request()` makes, and how answers of every
framing are read, through `Http1Transport` against a server that writes exact bytes."""

from __future__ import annotations

import pytest

from stepline.engine import (
    CallConnectionError,
    Http1Transport,
    InvalidReplyError,
    Reply,
)
from stepline.httpclient.connections import build_request, parse_target
from tests.unit.engine.rawservers import Raw, RawServer, ok

HEADERS = {"Content-Type": "application/json"}


def test_a_request_is_a_post_with_host_the_callers_headers_and_the_body_length() -> None:
    request = build_request(
        parse_target("http://validate.shop.svc:8080/check?fast=1"),
        b'{"a":1}',
        {"Content-Type": "application/json", "Idempotency-Key": "run/validate"},
    )

    assert request == (
        b"POST /check?fast=1 HTTP/1.1\r\n"
        b"Host: validate.shop.svc:8080\r\n"
        b"Content-Type: application/json\r\n"
        b"Idempotency-Key: run/validate\r\n"
        b"Content-Length: 7\r\n"
        b"\r\n"
        b'{"a":1}'
    )


def test_the_host_header_leaves_out_port_80_and_brackets_an_ipv6_address() -> None:
    assert parse_target("http://validate/").host_line == "Host: validate\r\n"
    assert parse_target("http://[::1]:8080").host_line == "Host: [::1]:8080\r\n"
    assert parse_target("http://[::1]:8080").host == "::1"


def test_https_urls_and_urls_with_credentials_are_left_to_httpx() -> None:
    assert parse_target("https://validate.example/").delegated
    assert parse_target("http://user:secret@validate/").delegated
    assert not parse_target("http://validate/").delegated


def test_a_url_without_a_path_posts_to_the_root() -> None:
    assert parse_target("http://validate:8080").request_line == "POST / HTTP/1.1\r\n"


def test_a_path_with_spaces_or_other_letters_is_percent_encoded_once() -> None:
    target = parse_target("http://validate/a b/%C3%A9/é")

    assert target.request_line == "POST /a%20b/%C3%A9/%C3%A9 HTTP/1.1\r\n"


def test_host_and_content_length_given_by_the_caller_are_not_sent_twice() -> None:
    request = build_request(
        parse_target("http://10.0.0.1:8080/"),
        b"{}",
        {"host": "validate.example", "content-length": "999"},
    )

    head = request.decode().lower()
    assert head.count("host:") == 1
    assert "host: validate.example\r\n" in head
    assert head.count("content-length:") == 1
    assert "content-length: 2\r\n" in head


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a\nb", "a\rb"])
def test_a_header_value_with_a_line_break_is_refused_before_sending(value: str) -> None:
    with pytest.raises(CallConnectionError, match="line break"):
        build_request(parse_target("http://validate/"), b"{}", {"X-Test": value})


@pytest.mark.parametrize(
    "url", ["ftp://validate/", "http:///no-host", "http://validate:port/", "validate/"]
)
def test_a_url_that_is_not_http_with_a_host_is_a_connection_error(url: str) -> None:
    with pytest.raises(CallConnectionError, match="invalid URL"):
        parse_target(url)


async def _post(transport: Http1Transport, server: RawServer) -> Reply:
    return await transport.post(server.url("/"), b"{}", headers=HEADERS, timeout=2)


async def test_an_answer_with_a_content_length_read_in_several_pieces_is_whole(
    raw_server: RawServer, http1: Http1Transport
) -> None:
    pieces = (b"HTTP/1.1 201 Created\r\nContent-Le", b'ngth: 10\r\n\r\n{"a":', b"true}")
    raw_server.answer(Raw(pieces))

    assert await _post(http1, raw_server) == Reply(201, b'{"a":true}')


async def test_a_chunked_answer_is_read_whole(raw_server: RawServer, http1: Http1Transport) -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    raw_server.answer(Raw((head + b'4\r\n{"a"\r\n', b"5\r\n:true\r\n1\r\n}\r\n", b"0\r\n\r\n")))

    assert await _post(http1, raw_server) == Reply(200, b'{"a":true}')
    assert await _post(http1, raw_server) == Reply(200, b'{"a":true}')
    assert raw_server.connections == 1


async def test_an_answer_framed_by_the_end_of_the_connection_is_read_to_the_end(
    raw_server: RawServer, http1: Http1Transport
) -> None:
    raw_server.answer(Raw((b'HTTP/1.1 200 OK\r\n\r\n{"a":', b"true}"), close=True))

    assert await _post(http1, raw_server) == Reply(200, b'{"a":true}')


async def test_retry_after_is_kept_for_a_failure_only(
    raw_server: RawServer, http1: Http1Transport
) -> None:
    raw_server.answer(
        ok(b"up", headers="Retry-After: 5\r\n"),
        Raw((b"HTTP/1.1 503 Unavailable\r\nretry-after: 7\r\nContent-Length: 4\r\n\r\ndown",)),
    )

    assert await _post(http1, raw_server) == Reply(200, b"up")
    assert await _post(http1, raw_server) == Reply(503, b"down", "7")


async def test_informational_answers_before_the_answer_are_skipped(
    raw_server: RawServer, http1: Http1Transport
) -> None:
    early = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    final = b"HTTP/1.1 422 Unprocessable\r\nRetry-After: 1\r\nContent-Length: 2\r\n\r\nno"
    raw_server.answer(Raw((early, final)))

    assert await _post(http1, raw_server) == Reply(422, b"no", "1")


async def test_an_answer_that_is_not_http_is_invalid_and_its_connection_closed(
    raw_server: RawServer, http1: Http1Transport
) -> None:
    raw_server.answer(Raw((b"SSH-2.0-OpenSSH_9.6\r\n",)), ok())

    with pytest.raises(InvalidReplyError, match=r"not a valid HTTP/1\.1 answer") as invalid:
        await _post(http1, raw_server)

    assert invalid.value.__cause__ is not None
    assert await _post(http1, raw_server) == Reply(200, b"{}")
    assert raw_server.connections == 2


async def test_an_answer_switching_protocols_is_invalid(
    raw_server: RawServer, http1: Http1Transport
) -> None:
    switch = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
    raw_server.answer(Raw((switch,)))

    with pytest.raises(InvalidReplyError):
        await _post(http1, raw_server)


async def test_a_body_over_the_limit_announced_by_its_length_is_refused(
    raw_server: RawServer,
) -> None:
    raw_server.answer(ok(b"x" * 2000), ok())

    async with Http1Transport(max_reply_bytes=1000) as transport:
        with pytest.raises(InvalidReplyError, match="with 2000 bytes, more than the 1000 accepted"):
            await _post(transport, raw_server)
        assert await _post(transport, raw_server) == Reply(200, b"{}")

    assert raw_server.connections == 2


async def test_a_chunked_body_over_the_limit_is_refused_as_it_grows(
    raw_server: RawServer,
) -> None:
    chunk = b"258\r\n" + b"x" * 600 + b"\r\n"
    raw_server.answer(Raw((b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", chunk, chunk)))

    async with Http1Transport(max_reply_bytes=1000) as transport:
        with pytest.raises(InvalidReplyError, match="with more bytes than the 1000 accepted"):
            await _post(transport, raw_server)


async def test_a_connection_closed_in_the_middle_of_an_answer_is_a_connection_error(
    raw_server: RawServer, http1: Http1Transport
) -> None:
    partial = Raw((b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{",), close=True)
    raw_server.answer(ok(), partial)
    await _post(http1, raw_server)

    with pytest.raises(CallConnectionError, match="before the answer was complete"):
        await _post(http1, raw_server)

    assert len(raw_server.requests) == 2  # a started answer is not asked for again


async def test_bytes_after_the_answer_leave_the_answer_but_not_the_connection(
    raw_server: RawServer, http1: Http1Transport
) -> None:
    (twice,) = ok(b"1").parts
    raw_server.answer(Raw((twice + twice,)), ok(b"2"))

    assert await _post(http1, raw_server) == Reply(200, b"1")
    assert await _post(http1, raw_server) == Reply(200, b"2")
    assert raw_server.connections == 2
