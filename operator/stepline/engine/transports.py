"""How step calls travel: one POST of JSON bytes, behind a one-method `Transport` interface.

The `Transport` is the engine's seam to HTTP. It sends bytes and returns the status and body of
any answer; it knows nothing of retries, JSON or steps. It raises only `CallError`s
(`CallTimeoutError`, `CallConnectionError`, `InvalidReplyError`), chained to the library's error;
every HTTP status, 5xx included, is a `Reply`.

The operator's transport is `pooling.Http1Transport`: HTTP/1.1 on its own pooled connections for
`http://`, and this module's `AiohttpTransport` for `https://`. `AiohttpTransport` is one pooled
`aiohttp.ClientSession` for every run. On this project's machines it carried a 3-step loopback
chain about 1.5x faster than httpx on the `httpx-aiohttp` transport and 2.6x faster than plain
httpx at one run at a time, and 2.3x and 70x faster with 32 runs at once; `Http1Transport` is
faster again (bench/overhead/RESULTS.md, sections 1 and 6). `HttpxTransport` adapts an
`httpx.AsyncClient` the caller owns, for callers who need httpx's features more than its speed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self

import aiohttp

from stepline.engine.errors import CallConnectionError, CallTimeoutError, InvalidReplyError

if TYPE_CHECKING:  # imported where used: the operator, which does not use httpx, is spared it
    import httpx

# Calls in flight at once, over all runs (idle keep-alive connections do not count). Matches the
# highest `concurrency` a Workflow may have; beyond it calls queue in the pool, and the wait
# counts against their timeout. 0 lifts the limit.
DEFAULT_POOL_SIZE = 1000
# A step's answer is a JSON document for the next step, not a file: refuse anything larger.
MAX_REPLY_BYTES = 16 * 1024 * 1024
# Below the 75 s keep-alive of aiohttp.web and most servers, so the client closes first.
KEEPALIVE_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer: its status, its whole body, and its Retry-After header if it failed."""

    status: int
    body: bytes
    retry_after: str | None = None


class Transport(Protocol):
    async def post(
        self, url: str, body: bytes, *, headers: Mapping[str, str], timeout: float
    ) -> Reply:
        """POSTs `body` to `url`; a `Reply` for any status, a `CallError` when there is none.

        `timeout` bounds the whole exchange, connecting included, in seconds.
        """
        ...


class AsyncClosable:
    """A base for what owns connections: `async with` closes it with `aclose()` on the way out."""

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


class AiohttpTransport(AsyncClosable):
    """One pooled aiohttp session for all step calls; created in the running loop on first use.

    Close it with `aclose()` (or use it as an async context manager) when the operator stops.
    """

    def __init__(
        self,
        *,
        pool_size: int = DEFAULT_POOL_SIZE,
        max_reply_bytes: int = MAX_REPLY_BYTES,
        keepalive_seconds: float = KEEPALIVE_SECONDS,
    ) -> None:
        self._pool_size = pool_size
        self._max_reply_bytes = max_reply_bytes
        self._keepalive_seconds = keepalive_seconds
        self._session: aiohttp.ClientSession | None = None

    async def post(
        self, url: str, body: bytes, *, headers: Mapping[str, str], timeout: float
    ) -> Reply:
        session = self._session or self._open()
        try:
            async with session.post(
                url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            ) as response:
                length = response.content_length
                if length is not None and length > self._max_reply_bytes:
                    raise InvalidReplyError(
                        f"answered {response.status} with {length} bytes, more than the "
                        f"{self._max_reply_bytes} accepted"
                    )
                status = response.status
                retry_after = response.headers.get("Retry-After") if status >= 400 else None
                return Reply(status, await response.read(), retry_after)
        except TimeoutError as exc:
            raise CallTimeoutError(f"no answer within {timeout:g}s") from exc
        except aiohttp.ClientError as exc:
            raise CallConnectionError(describe_error(exc)) from exc

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._pool_size, keepalive_timeout=self._keepalive_seconds
        )
        self._session = aiohttp.ClientSession(
            connector=connector, trust_env=False, raise_for_status=False
        )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class HttpxTransport:
    """Step calls through an `httpx.AsyncClient` that the caller opens and closes."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def post(
        self, url: str, body: bytes, *, headers: Mapping[str, str], timeout: float
    ) -> Reply:
        import httpx  # noqa: PLC0415 (see the TYPE_CHECKING import)

        try:
            response = await self._client.post(
                url, content=body, headers=headers, timeout=timeout, follow_redirects=False
            )
        except httpx.TimeoutException as exc:
            raise CallTimeoutError(f"no answer within {timeout:g}s") from exc
        except httpx.TransportError as exc:
            raise CallConnectionError(describe_error(exc)) from exc
        retry_after = response.headers.get("Retry-After") if response.status_code >= 400 else None
        return Reply(response.status_code, response.content, retry_after)


def describe_error(exc: BaseException) -> str:
    """An error for a message: its type, and its text if it has one."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
