"""The operator's HTTP/1.1 server: an asyncio `Protocol` per connection, requests parsed by
MagicStack's `httptools` (llhttp, in C) and checked strictly (`validating`), answered by one
async `Handler`. Python runs only for the headers, the body's pieces and the end of a message;
an answer is written in one `transport.write`.

Why our own rather than a kept server: measured in one run, serving the same routes behind
uvicorn (httptools, a plain ASGI app) or aiohttp.web cost more than a tenth of invoke's
throughput (bench/overhead/RESULTS.md, section 11, with the figures and what owning it takes).
What owning it means is below, and each point has a test over a real socket
(tests/unit/gateway/test_serving*.py) and a fuzz test of the parsing.

What a connection does:

- keep-alive (HTTP/1.1 by default) and pipelining: requests are read as they arrive and answered
  in order, one at a time; past `MAX_PIPELINED` waiting requests it stops reading until the
  handler catches up. An HTTP/1.0 request, or one saying `Connection: close`, is the last one
  read: its answer says `Connection: close`, and whatever the client sent after it is dropped;
- strict reading: llhttp's strict mode (CRLF line ends, no folded or malformed header lines, one
  Content-Length, never beside Transfer-Encoding) and `validating`'s rules (an HTTP/1.x
  version, a target in a served form, exactly one valid Host in HTTP/1.1, `chunked` as the only
  transfer coding). Header values lose the whitespace around them; trailer fields are read and
  dropped, never merged into the headers;
- limits: the request line and headers together at most `MAX_HEAD_BYTES` and `MAX_HEADERS`
  (else 431), counted as they arrive, so a head sent in pieces without end is cut off too; chunk
  framing and trailers at most as much again; the body at most `max_body_bytes`: a larger one
  is not read, the handler gets the request with `body_too_large` set (and `body_size`, when
  Content-Length declared it) so that it can say what the limit is, and the connection closes
  after that answer;
- `Expect: 100-continue` is answered with 100 Continue when the body is within the limit and no
  earlier request is still being answered (a client sends the body anyway after a short wait);
- a request that is not read is answered with the reason and the connection closed, after the
  requests before it are answered: 400 when it does not parse or breaks a rule above, 431 past
  a limit, 501 for a transfer coding other than chunked, 505 for another HTTP version, 405 for
  CONNECT. A request with `Upgrade` is answered as a plain one, and the connection closed after;
- time limits: `keepalive_seconds` idle before the first request and between requests (then
  closed silently), `request_seconds` from a request's first byte to its last however slowly
  it trickles in (then 408 and closed: a slow or stalled client holds no connection for long),
  and `request_seconds` for the client to take an answer off the socket buffers before the next
  one is written (else the connection is aborted);
- after an error answer it reads and drops what the client still sends for `LINGER_SECONDS`, so
  that closing does not reset the connection before the client has read the answer;
- a handler that raises is answered 500 (and logged); the handler's time is not limited here.

Not here: TLS (the Service is plain HTTP inside the cluster), HTTP/2, and a cap on connections
(idle ones close after `keepalive_seconds`; the pod's file limit is the cap).

`HttpServer.close()` stops listening, lets each connection finish the requests it has read
(the last answer says `Connection: close`), closes idle ones at once, and after `timeout`
cancels what is left. No routing here: that is the handler's (`server`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import cast

import httptools

from stepline.gateway import validating

logger = logging.getLogger(__name__)

MAX_HEAD_BYTES = 16 * 1024  # request line and headers: twice aiohttp's 8 KiB per line
MAX_HEADERS = 100
MAX_PIPELINED = 16  # requests read and waiting behind the one being answered
KEEPALIVE_SECONDS = 75.0  # aiohttp's default, which the operator had: longer than common LBs' 60
REQUEST_SECONDS = 30.0
LINGER_SECONDS = 2.0
SHUTDOWN_SECONDS = 30.0  # Kubernetes' default grace period: a pod is killed after it anyway
JSON = "application/json"


@dataclass(frozen=True, slots=True)
class Request:
    """One request. `path` is percent-decoded, without the query; `query` is the raw query
    (after `?`, not decoded); `headers` has lower-case names (a repeated header's values joined
    by ", ")."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    body_too_large: bool = False
    body_size: int | None = None  # when `body_too_large`: the declared Content-Length, if any
    query: str = ""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = field(default=())


Handler = Callable[[Request], Awaitable[Response]]


def json_error(status: int, reason: str, message: str) -> Response:
    """The operator's error body, `{"error": {"reason", "message"}}`."""
    body = json.dumps({"error": {"reason": reason, "message": message}}).encode()
    return Response(status, body)


class HttpServer:
    """Serves `handler` on one listening socket; `await start(host, port)`, `await close()`."""

    def __init__(
        self,
        handler: Handler,
        *,
        max_body_bytes: int,
        keepalive_seconds: float = KEEPALIVE_SECONDS,
        request_seconds: float = REQUEST_SECONDS,
    ) -> None:
        self.handler = handler
        self.max_body_bytes = max_body_bytes
        self.keepalive_seconds = keepalive_seconds
        self.request_seconds = request_seconds
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._all_closed = asyncio.Event()
        self._date = (0, "")

    @property
    def port(self) -> int:
        """The port it listens on (the one the OS chose, when started on port 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the server is not listening")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self.connection, host, port)

    def connection(self) -> asyncio.Protocol:
        """The protocol of one client connection: what the listening socket makes for each, and
        what a test can drive with a transport of its own."""
        return _Connection(self)

    async def close(self, *, timeout: float = SHUTDOWN_SECONDS) -> None:
        """Stops listening, finishes the requests already read, then closes every connection."""
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            connection.shut_down()
        if self._connections:
            try:
                await asyncio.wait_for(self._all_closed.wait(), timeout)
            except TimeoutError:
                for connection in list(self._connections):
                    connection.abort()
        await asyncio.sleep(0)  # the loop closes the sockets in its next iteration

    def date_line(self) -> str:
        """The Date header line, formatted once a second."""
        now = int(time.time())
        if now != self._date[0]:
            self._date = (now, f"Date: {formatdate(now, usegmt=True)}\r\n")
        return self._date[1]

    def connection_opened(self, connection: _Connection) -> None:
        self._connections.add(connection)
        self._all_closed.clear()

    def connection_closed(self, connection: _Connection) -> None:
        self._connections.discard(connection)
        if not self._connections:
            self._all_closed.set()


class _Stop(Exception):  # noqa: N818 (not a failure: the end of what is read)
    """Raised in a parser callback to stop parsing; `answer`, if any, is given after the
    answers to the requests read before."""

    def __init__(self, answer: Response | None) -> None:
        super().__init__(answer.status if answer else None)
        self.answer = answer


_PHRASES = {status.value: status.phrase for status in HTTPStatus}
_IDLE, _READING = "idle", "reading"  # what the connection's timer is for


class _Connection(asyncio.Protocol):
    """One client connection; see the module docstring for what it does."""

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._queue: deque[Request | Response] = deque()  # a Response: an error answer, the last
        self._worker: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_for = ""
        self._reading = True  # False once no more requests will be read
        self._in_message = False  # between a request's first byte and its last
        self._head_done = False  # the request's headers are complete: what follows is its body
        self._message_bytes = 0  # received since the request began (whole reads only)
        self._paused = False  # reading paused: too many requests waiting
        self._drained: asyncio.Future[None] | None = None  # while writing is paused
        # the request being read
        self._url: list[bytes] = []
        self._path = ""
        self._query = ""
        self._headers: dict[str, str] = {}
        self._head_bytes = 0
        self._body: list[bytes] = []
        self._size = 0
        self._keep_alive = True

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # a stream socket's
        self._server.connection_opened(self)
        self._arm(self._server.keepalive_seconds, self._close_idle, _IDLE)

    def connection_lost(self, exc: Exception | None) -> None:
        self._reading = False
        self._queue.clear()
        self._cancel_timer()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._server.connection_closed(self)

    def data_received(self, data: bytes) -> None:
        if not self._reading:  # lingering after an error answer, or shutting down: dropped
            return
        if self._timer_for == _IDLE:
            self._cancel_timer()
        if self._in_message:
            self._message_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except _Stop as stop:  # not wrapped when raised by feed_data's own code
            self._stop_reading(stop.answer)
        except httptools.HttpParserUpgrade:
            self._stop_reading(None)  # the requests before it are answered, then it closes
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, _Stop):
                self._stop_reading(cause.answer)
            else:
                self._stop_reading(json_error(400, "BadRequest", f"not valid HTTP/1.1: {exc}"))
        if self._in_message and self._reading:
            self._check_message_bytes()
        if not self._reading or self._timer is not None:
            return
        if self._in_message:  # a request's first bytes: the rest must come in time
            self._arm(self._server.request_seconds, self._time_out_request, _READING)
        elif self._worker is None:
            self._arm(self._server.keepalive_seconds, self._close_idle, _IDLE)

    def eof_received(self) -> bool:
        self._reading = False
        # Without answers to write, the transport closes itself; else the worker closes it.
        return self._worker is not None

    def pause_writing(self) -> None:
        self._drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None

    # httptools' callbacks, called from feed_data()

    def on_message_begin(self) -> None:
        self._in_message = True
        self._head_done = False
        self._message_bytes = 0
        self._url = []
        self._headers = {}
        self._head_bytes = 0
        self._body = []
        self._size = 0

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        self._url.append(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._head_done:  # a trailer field: never merged into the headers (RFC 9110 6.5.1)
            return
        self._count_head(len(name) + len(value) + 4)
        if len(self._headers) >= MAX_HEADERS:
            raise _Stop(json_error(431, "HeadersTooLarge", f"more than {MAX_HEADERS} headers"))
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1").rstrip(" \t")  # llhttp strips the leading whitespace
        known = self._headers.get(key)
        if known is None:
            self._headers[key] = text
        elif key == "host":
            raise _Stop(json_error(400, "BadRequest", "a request has one Host header"))
        elif text:  # an empty element of a list adds nothing (RFC 9110 5.6.1)
            self._headers[key] = f"{known}, {text}" if known else text

    def on_headers_complete(self) -> None:
        self._head_done = True
        parser = self._parser
        version = parser.get_http_version()
        self._keep_alive = parser.should_keep_alive() and version == "1.1"
        method = parser.get_method()
        if method == b"CONNECT":
            raise _Stop(json_error(405, "MethodNotAllowed", "CONNECT is not served here"))
        try:
            target = b"".join(self._url)
            self._path = validating.check_head(method, target, version, self._headers)
            self._query = validating.query_of(target)
        except validating.Refused as refused:
            raise _Stop(json_error(refused.status, refused.reason, refused.message)) from None
        declared = self._headers.get("content-length", "").strip()
        if declared.isdigit() and int(declared) > self._server.max_body_bytes:
            self._refuse_body(int(declared))
        expect = self._headers.get("expect")
        if expect is not None and expect.lower() == "100-continue" and self._worker is None:
            self._write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self._server.max_body_bytes:
            self._refuse_body(None)
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._in_message = False
        if self._timer_for == _READING:
            self._cancel_timer()
        self._enqueue(self._request(b"".join(self._body)))
        if not self._keep_alive:
            raise _Stop(None)  # its answer closes the connection: nothing after it is read

    # answering, in order

    def _request(self, body: bytes, *, too_large: bool = False, size: int | None = None) -> Request:
        return Request(
            method=self._parser.get_method().decode("ascii"),
            path=self._path,
            headers=self._headers,
            body=body,
            body_too_large=too_large,
            body_size=size,
            query=self._query,
        )

    def _enqueue(self, item: Request | Response) -> None:
        self._queue.append(item)
        if self._worker is None:
            self._cancel_timer()
            self._worker = asyncio.get_running_loop().create_task(self._work())
        elif len(self._queue) > MAX_PIPELINED and not self._paused and self._transport:
            self._paused = True
            self._transport.pause_reading()

    async def _work(self) -> None:
        """Answers the queue's requests one by one; ends when it is empty or the connection is."""
        try:
            while self._queue:
                if not await self._answer_next():
                    return
        finally:
            self._worker = None
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if not self._reading:
            transport.close()
        elif not self._in_message:
            self._arm(self._server.keepalive_seconds, self._close_idle, _IDLE)

    async def _answer_next(self) -> bool:
        """Answers the first request waiting; False when the connection is to close."""
        item = self._queue.popleft()
        if self._paused and len(self._queue) <= MAX_PIPELINED // 2 and self._transport:
            self._paused = False
            self._transport.resume_reading()
        if isinstance(item, Response):
            self._answer(item, head_only=False, close=True, linger=True)
            return False
        response = await self._handle(item)
        linger = item.body_too_large  # its body was not read: the client may be sending it
        close = linger or (not self._reading and not self._queue)
        self._answer(response, head_only=item.method == "HEAD", close=close, linger=linger)
        if close:
            return False
        return self._drained is None or await self._wait_drained()

    async def _handle(self, request: Request) -> Response:
        try:
            return await self._server.handler(request)
        except Exception:
            logger.exception("answering %s %s failed", request.method, request.path)
            return json_error(500, "InternalError", "the operator failed to answer; see its log")

    def _answer(self, response: Response, *, head_only: bool, close: bool, linger: bool) -> None:
        body = response.body
        lines = [
            f"HTTP/1.1 {response.status} {_PHRASES.get(response.status, '')}\r\n",
            self._server.date_line(),
            f"Content-Type: {response.content_type}\r\nContent-Length: {len(body)}\r\n",
        ]
        lines.extend(f"{name}: {value}\r\n" for name, value in response.headers)
        if close:
            lines.append("Connection: close\r\n")
        lines.append("\r\n")
        try:
            head = "".join(lines).encode("latin-1")
        except UnicodeEncodeError:  # a handler's header a head cannot carry: never logged whole
            logger.error(
                "an answer %d had a header that is not Latin-1; answered 500", response.status
            )
            failed = json_error(500, "InternalError", "the operator failed to answer; see its log")
            self._answer(failed, head_only=head_only, close=close, linger=linger)
            return
        self._write(head if head_only else head + body)
        if close:
            self._close(linger=linger)

    async def _wait_drained(self) -> bool:
        """Waits for the client to take what was written; False if it does not in time."""
        if self._drained is not None:
            try:
                await asyncio.wait_for(self._drained, self._server.request_seconds)
            except TimeoutError:
                self.abort()
                return False
        return self._transport is not None and not self._transport.is_closing()

    # closing

    def shut_down(self) -> None:
        """The server stops: finish what was read, answer it with `Connection: close`."""
        self._reading = False
        if self._worker is None and self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        if self._transport is not None:
            self._transport.abort()

    def _stop_reading(self, answer: Response | None) -> None:
        """No more requests from this connection; `answer` is given after those read."""
        self._reading = False
        self._in_message = False
        self._cancel_timer()
        if answer is not None:
            self._enqueue(answer)
        elif self._worker is None and self._transport is not None:
            self._transport.close()

    def _close(self, *, linger: bool) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        self._reading = False
        if linger and transport.can_write_eof():
            transport.write_eof()
            if self._paused:
                transport.resume_reading()
            self._arm(LINGER_SECONDS, transport.close, "linger")
        else:
            transport.close()

    def _close_idle(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _time_out_request(self) -> None:
        self._cancel_timer()
        seconds = self._server.request_seconds
        self._stop_reading(json_error(408, "RequestTimeout", f"no whole request in {seconds:g}s"))

    # pieces

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _arm(self, seconds: float, callback: Callable[[], object], kind: str) -> None:
        self._cancel_timer()
        self._timer = asyncio.get_running_loop().call_later(seconds, callback)
        self._timer_for = kind

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_for = ""

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES:
            message = f"the request line and headers pass {MAX_HEAD_BYTES} bytes"
            raise _Stop(json_error(431, "HeadersTooLarge", message))

    def _check_message_bytes(self) -> None:
        """Bounds what the parser holds of a request still being read: httptools gathers a
        header's pieces until its end, so a head sent in pieces without end would grow without
        bound. Only reads that began inside the request are counted, so the count never exceeds
        the request's bytes; past the head, what exceeds the body's cap is chunk framing and
        trailer fields, allowed as much as a head."""
        if not self._head_done:
            limit, what = MAX_HEAD_BYTES, "the request line and headers"
        else:
            limit = 2 * MAX_HEAD_BYTES + self._server.max_body_bytes
            what = "chunk framing and trailers"
        if self._message_bytes > limit:
            message = f"{what} pass {MAX_HEAD_BYTES} bytes"
            self._stop_reading(json_error(431, "HeadersTooLarge", message))

    def _refuse_body(self, declared: int | None) -> None:
        """A body over the limit is not read: the handler answers from what is known (its size,
        when declared), and the connection closes."""
        self._enqueue(self._request(b"", too_large=True, size=declared))
        raise _Stop(None)
