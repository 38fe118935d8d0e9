"""Step calls over pooled HTTP/1.1 connections: `Http1Transport`, the operator's transport.

Why not aiohttp's client for every call: a step call is the hot path of invoke, and most of
what aiohttp's `ClientSession` spends per call goes to building a `ClientRequest` and
`ClientResponse`, its connector and a writer task (measured in bench/overhead/RESULTS.md,
sections 3 and 5). A step call needs none of that: one POST with the engine's headers, and the
status, body and Retry-After of the answer. `Http1Transport` writes the request bytes itself and
parses the answer with httptools (`connections`); RESULTS.md section 6 has what it saves.

`https://` URLs go to an `HttpxTransport` (external steps may use TLS; httpx verifies
certificates), so the operator still builds one transport; so do URLs with credentials
(`http://user:password@host/`), which httpx turns into basic authentication.

The pool (`ConnectionPool`):

- at most `size` calls in flight over all origins (0: no limit); a call beyond waits for a
  slot, and the wait counts against its timeout, as with aiohttp's connector;
- per origin (host, port), up to `max_idle` idle connections, the most recently used taken
  first; each is closed after `keepalive_seconds` idle, by one timer for the whole pool;
- a connection goes back to the pool only after a whole answer that keeps it alive; one whose
  exchange failed, timed out or was cancelled is closed, never reused;
- a kept-alive connection that fails before any byte of the answer arrived (the server closed
  it while it was idle, and the request crossed its FIN or RST) is retried once on a new
  connection: what every HTTP client does, and safe for step calls, which carry an
  Idempotency-Key.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping

import httpx

from stepline.httpclient.connections import Connection, Target, build_request, parse_target
from stepline.httpclient.errors import CallConnectionError, CallTimeoutError
from stepline.httpclient.transports import (
    DEFAULT_POOL_SIZE,
    KEEPALIVE_SECONDS,
    MAX_REPLY_BYTES,
    AsyncClosable,
    HttpxTransport,
    Reply,
    Transport,
    build_http_client,
    describe_error,
)

# Idle connections kept per step service: bounds the file descriptors that a burst leaves open
# for `KEEPALIVE_SECONDS`. Past 256 calls at once to one service, the extra connections are
# closed when their calls end instead of being kept.
MAX_IDLE_PER_ORIGIN = 256

_Origin = tuple[str, int]


class ConnectionPool:
    """Connections by origin; see the module docstring for the rules."""

    def __init__(
        self,
        *,
        size: int = DEFAULT_POOL_SIZE,
        max_idle: int = MAX_IDLE_PER_ORIGIN,
        keepalive_seconds: float = KEEPALIVE_SECONDS,
        max_reply_bytes: int = MAX_REPLY_BYTES,
    ) -> None:
        self._slots = asyncio.Semaphore(size) if size else None
        self._max_idle = max_idle
        self._keepalive_seconds = keepalive_seconds
        self._max_reply_bytes = max_reply_bytes
        self._idle: dict[_Origin, deque[tuple[float, Connection]]] = {}  # (idle since, …)
        self._open: set[Connection] = set()
        self._sweeper: asyncio.TimerHandle | None = None

    async def send(self, target: Target, request: bytes) -> Reply:
        """Sends `request` (`connections.build_request`) to `target`'s origin; its answer."""
        if self._slots is None:
            return await self._send(target, request)
        async with self._slots:
            return await self._send(target, request)

    async def aclose(self) -> None:
        """Closes every connection, idle or busy (a busy one's call fails)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        self._idle.clear()
        for connection in list(self._open):
            connection.close()
        await asyncio.sleep(0)  # the loop closes the sockets in its next iteration

    async def _send(self, target: Target, request: bytes) -> Reply:
        origin = (target.host, target.port)
        connection = self._take_idle(origin)
        if connection is not None:
            try:
                return await self._exchange(origin, connection, request)
            except CallConnectionError:
                if connection.answered:
                    raise
                # Closed by the server while idle: the request reached no one. Once more, anew.
        connection = await self._connect(target)
        return await self._exchange(origin, connection, request)

    async def _exchange(self, origin: _Origin, connection: Connection, request: bytes) -> Reply:
        try:
            reply = await connection.exchange(request)
        except BaseException:  # a failure, a timeout, a cancellation: never reuse it
            connection.close()
            raise
        self._put_back(origin, connection)
        return reply

    async def _connect(self, target: Target) -> Connection:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_connection(
                self._new_connection, target.host, target.port
            )
        except OSError as exc:  # refused, unreachable, DNS (socket.gaierror), the OS's timeout
            where = f"{target.host}:{target.port}"
            raise CallConnectionError(f"cannot connect to {where}: {describe_error(exc)}") from exc
        return connection

    def _new_connection(self) -> Connection:
        connection = Connection(max_reply_bytes=self._max_reply_bytes, on_close=self._open.discard)
        self._open.add(connection)
        return connection

    def _take_idle(self, origin: _Origin) -> Connection | None:
        idle = self._idle.get(origin)
        while idle:
            _, connection = idle.pop()
            if connection.reusable:
                return connection
            connection.close()
        return None

    def _put_back(self, origin: _Origin, connection: Connection) -> None:
        if not connection.reusable:
            connection.close()
            return
        idle = self._idle.get(origin)
        if idle is None:
            idle = self._idle[origin] = deque()
        elif len(idle) >= self._max_idle:
            connection.close()
            return
        now = asyncio.get_running_loop().time()
        idle.append((now, connection))
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_at(
                now + self._keepalive_seconds, self._sweep
            )

    def _sweep(self) -> None:
        """Closes the connections idle for `keepalive_seconds`; comes back for the next one."""
        self._sweeper = None
        now = asyncio.get_running_loop().time()
        expired = now - self._keepalive_seconds
        next_expiry: float | None = None
        for origin, idle in list(self._idle.items()):
            while idle and (idle[0][0] <= expired or not idle[0][1].reusable):
                idle.popleft()[1].close()
            if not idle:
                del self._idle[origin]
                continue
            oldest = idle[0][0] + self._keepalive_seconds
            next_expiry = oldest if next_expiry is None else min(next_expiry, oldest)
        if next_expiry is not None:
            self._sweeper = asyncio.get_running_loop().call_at(next_expiry, self._sweep)


class Http1Transport(AsyncClosable):
    """The `Transport` for step calls: `http://` on pooled HTTP/1.1 connections, `https://` and
    URLs with credentials through `delegate`, which its owner closes (the operator's runtime
    passes one over its shared httpx client). Without one, the first such call opens a client
    of its own with the same limits, closed with the pool.

    Close it with `aclose()` (or use it as an async context manager) when the operator stops.
    `pool_size` bounds the calls in flight on each of the two.
    """

    def __init__(
        self,
        *,
        pool_size: int = DEFAULT_POOL_SIZE,
        max_idle_per_origin: int = MAX_IDLE_PER_ORIGIN,
        max_reply_bytes: int = MAX_REPLY_BYTES,
        keepalive_seconds: float = KEEPALIVE_SECONDS,
        delegate: Transport | None = None,
    ) -> None:
        self._pool = ConnectionPool(
            size=pool_size,
            max_idle=max_idle_per_origin,
            keepalive_seconds=keepalive_seconds,
            max_reply_bytes=max_reply_bytes,
        )
        self._delegate: Transport | None = delegate
        self._own_client: httpx.AsyncClient | None = None  # opened for `delegate` if not given
        self._pool_size, self._keepalive_seconds = pool_size, keepalive_seconds
        self._max_reply_bytes = max_reply_bytes

    async def post(
        self, url: str, body: bytes, *, headers: Mapping[str, str], timeout: float
    ) -> Reply:
        target = parse_target(url)
        if target.delegated:
            delegate = self._delegate or self._open_delegate()
            return await delegate.post(url, body, headers=headers, timeout=timeout)
        request = build_request(target, body, headers)
        try:
            async with asyncio.timeout(timeout):
                return await self._pool.send(target, request)
        except TimeoutError as exc:
            raise CallTimeoutError(f"no answer within {timeout:g}s") from exc

    def _open_delegate(self) -> Transport:
        self._own_client = build_http_client(
            pool_size=self._pool_size, keepalive_seconds=self._keepalive_seconds
        )
        self._delegate = HttpxTransport(self._own_client, max_reply_bytes=self._max_reply_bytes)
        return self._delegate

    async def aclose(self) -> None:
        await self._pool.aclose()
        if self._own_client is not None:
            await self._own_client.aclose()
            self._own_client = self._delegate = None
