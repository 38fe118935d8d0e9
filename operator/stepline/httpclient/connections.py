"""One HTTP/1.1 client connection: the request bytes it writes and the answer it reads.

A `Connection` is an asyncio `Protocol` with one exchange at a time (no pipelining): `exchange()`
writes a whole request in one `write` and waits for the answer, which MagicStack's `httptools`
(llhttp, the parser behind uvicorn) parses in C as the bytes arrive; Python runs only for the
headers Stepline reads, the body's pieces and the end of the message. An answer is framed by
Content-Length, by chunks, or, without either, by the end of the connection. 1xx answers
(100 Continue, 103 Early Hints) are skipped: the one after them is the answer.

What ends an exchange without a `Reply`, each a `CallError` chained to its cause:

- an answer that does not parse, or a body over `max_reply_bytes`: `InvalidReplyError`;
- the connection closing before the answer is complete: `CallConnectionError`. `answered`
  then says whether any byte of it arrived: a kept-alive connection that the server had closed
  while idle fails before that, and its caller may safely send again on a new one.

A connection may be used again only if it says `reusable`: the last exchange ended with a whole
answer that keeps the connection alive. Anything else (a failure, a cancelled or timed-out
exchange, an answer with `Connection: close` or HTTP/1.0) is the caller's cue to `close()` it.
No pooling and no timeouts here (`pooling`); `build_request()` is pure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import cast
from urllib.parse import quote, urlsplit

import httptools

from stepline.httpclient.errors import CallConnectionError, CallError, InvalidReplyError
from stepline.httpclient.transports import Reply, describe_error

# What may stay as it is in a request target: RFC 3986's path and query characters, and "%" so
# that a URL already percent-encoded is not encoded twice.
_TARGET_SAFE = "/?=&;:@!$'()*+,~%-._"


@dataclass(frozen=True, slots=True)
class Target:
    """Where a URL's requests go: its origin (`host`, `port`) and the start of each request."""

    delegated: bool  # https://, or credentials in the URL: for httpx's client to send
    host: str
    port: int
    request_line: str  # "POST /path?query HTTP/1.1\r\n"
    host_line: str  # "Host: name:port\r\n", the port left out when it is 80


@lru_cache(maxsize=1024)  # a step's URL is the same on every call: parse it once
def parse_target(url: str) -> Target:
    """The target of an `http://` or `https://` URL; `CallConnectionError` for any other."""
    parts = urlsplit(url)
    try:
        host, port = parts.hostname, parts.port
    except ValueError as exc:  # a port that is not a number, or out of range
        raise CallConnectionError(f"invalid URL {url!r}: {exc}") from exc
    if parts.scheme not in ("http", "https") or not host:
        raise CallConnectionError(f"invalid URL {url!r}: not http:// or https:// with a host")
    tls = parts.scheme == "https"
    port = port or (443 if tls else 80)
    delegated = tls or parts.username is not None
    path = quote(parts.path or "/", safe=_TARGET_SAFE)
    if parts.query:
        path += "?" + quote(parts.query, safe=_TARGET_SAFE)
    name = f"[{host}]" if ":" in host else host  # an IPv6 address
    authority = name if port == 80 else f"{name}:{port}"
    return Target(delegated, host, port, f"POST {path} HTTP/1.1\r\n", f"Host: {authority}\r\n")


def build_request(target: Target, body: bytes, headers: Mapping[str, str]) -> bytes:
    """The bytes of a POST of `body` with the caller's `headers`, plus Host (unless given) and
    Content-Length (always the body's: a caller's own would only be a chance to get it wrong)."""
    lines = [target.request_line, target.host_line]
    for name, value in headers.items():
        lowered = name.lower()
        if lowered == "host":
            lines[1] = ""
        elif lowered == "content-length":
            continue
        lines.append(f"{name}: {value}\r\n")
    lines.append(f"Content-Length: {len(body)}\r\n\r\n")
    head = "".join(lines)
    breaks = len(lines) + 1 - (not lines[1])  # one per line, and the blank line's
    if head.count("\n") != breaks or head.count("\r") != breaks:
        raise CallConnectionError("a header name or value contains a line break; not sent")
    return head.encode() + body


class Connection(asyncio.Protocol):
    """One HTTP/1.1 connection; open it with `loop.create_connection(lambda: Connection(…))`.

    `on_close` is called once, when the connection is lost, whoever closed it.
    """

    def __init__(self, *, max_reply_bytes: int, on_close: Callable[[Connection], None]) -> None:
        self._max_reply_bytes = max_reply_bytes
        self._on_close = on_close
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[Reply] | None = None
        self._fault: CallError | None = None
        self._status = 0
        self._body: list[bytes] = []
        self._size = 0
        self._retry_after: bytes | None = None
        self._framed = False  # by Content-Length or chunks, rather than by the connection's end
        self._keep_alive = False
        self.answered = False  # a byte of the current exchange's answer arrived

    @property
    def reusable(self) -> bool:
        """The last answer was whole and keeps the connection alive, and the request was all
        sent (a server may answer before it has read the whole request)."""
        transport = self._transport
        return (
            self._keep_alive
            and self._waiter is None
            and transport is not None
            and not transport.is_closing()
            and not transport.get_write_buffer_size()
        )

    async def exchange(self, request: bytes) -> Reply:
        """Writes `request` and returns the answer; see the module docstring for the failures."""
        self.answered = self._keep_alive = False
        transport = self._transport
        if transport is None or transport.is_closing():
            raise CallConnectionError("the connection was closed before the request was sent")
        self._fault = None
        self._status = 0
        waiter: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        transport.write(request)
        return await waiter

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # a stream socket's

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # nothing was asked: a server that talks out of turn
            self.close()
            return
        self.answered = True
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._fail(self._fault or _chained(InvalidReplyError(_invalid(exc)), exc))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._keep_alive = False
        self._on_close(self)
        if self._waiter is None:
            return
        if exc is None and self._status >= 200 and not self._framed:
            self._finish()  # a body that ends with the connection, and it did
            return
        why = "before the answer was complete" if self.answered else "before answering"
        detail = f"the connection closed {why}"
        if exc is not None:
            detail += f" ({describe_error(exc)})"
        self._fail(_chained(CallConnectionError(detail), exc))

    # httptools' callbacks, called from feed_data()

    def on_message_begin(self) -> None:
        if self._waiter is None:  # bytes after the answer, in the same read
            raise self._refuse(InvalidReplyError("answered more than once"))
        self._status = self._size = 0
        self._body = []
        self._retry_after = None
        self._framed = False

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"retry-after":
            self._retry_after = value
        elif name == b"content-length":
            self._framed = True
            if value.strip().isdigit() and int(value) > self._max_reply_bytes:
                raise self._refuse(self._too_large(f"{int(value)} bytes, more than the"))
        elif name == b"transfer-encoding":
            self._framed = b"chunked" in value.lower()

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        self._keep_alive = self._parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self._max_reply_bytes:
            raise self._refuse(self._too_large("more bytes than the"))
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._status >= 200:  # not 100 Continue or another 1xx: the answer itself
            self._finish()

    # the end of an exchange

    def _finish(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is None or waiter.done():  # cancelled, or timed out: not to be reused
            self._keep_alive = False
            return
        status, retry_after = self._status, self._retry_after
        if retry_after is None or status < 400:
            waiter.set_result(Reply(status, b"".join(self._body)))
        else:
            waiter.set_result(Reply(status, b"".join(self._body), retry_after.decode("latin-1")))

    def _fail(self, error: CallError) -> None:
        waiter, self._waiter = self._waiter, None
        self._keep_alive = False
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def _refuse(self, error: CallError) -> CallError:
        """Keeps `error` as the exchange's fault; raised in a callback, it stops the parser."""
        self._fault = error
        return error

    def _too_large(self, size: str) -> InvalidReplyError:
        """Says, for example: answered 200 with 2000 bytes, more than the 1000 accepted."""
        status = self._parser.get_status_code()
        return InvalidReplyError(f"answered {status} with {size} {self._max_reply_bytes} accepted")


def _invalid(exc: Exception) -> str:
    return f"not a valid HTTP/1.1 answer ({describe_error(exc)})"


def _chained(error: CallError, cause: BaseException | None) -> CallError:
    """`error` as `raise error from cause` would leave it, for an error set on a future."""
    error.__cause__ = cause
    error.__suppress_context__ = True
    return error
