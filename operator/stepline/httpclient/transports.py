"""How step calls travel: one POST of JSON bytes, behind a one-method `Transport` interface.

The `Transport` is the engine's seam to HTTP. It sends bytes and returns the status and body of
any answer; it knows nothing of retries, JSON or steps. It raises only `CallError`s
(`CallTimeoutError`, `CallConnectionError`, `InvalidReplyError`), chained to the library's error;
every HTTP status, 5xx included, is a `Reply`.

The operator's transport is `pooling.Http1Transport`: HTTP/1.1 on its own pooled connections for
`http://`, the measured hot path. Everything else goes through httpx: `HttpxTransport` carries
`https://` step calls (and URLs with credentials) over an `httpx.AsyncClient` from
`build_http_client`, which the operator shares with the health checks of external steps
(`controllers.servicesteps.checks`), so one kept client library serves all HTTP that is not the
hot path.
`AiohttpTransport` is no part of the operator: bench/overhead measures against it.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

import aiohttp
import httpx

from stepline.httpclient.errors import CallConnectionError, CallTimeoutError, InvalidReplyError

# Calls in flight at once, over all runs (idle keep-alive connections do not count). Matches the
# highest `concurrency` a Workflow may have; beyond it calls queue in the pool, and the wait
# counts against their timeout. 0 lifts the limit.
DEFAULT_POOL_SIZE = 1000
# A step's answer is a JSON document for the next step, not a file: refuse anything larger.
MAX_REPLY_BYTES = 16 * 1024 * 1024
# Below the 75 s keep-alive of most servers, so the client closes first.
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
    The operator does not use it (see the module docstring).

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


def build_http_client(
    *, pool_size: int = DEFAULT_POOL_SIZE, keepalive_seconds: float = KEEPALIVE_SECONDS
) -> httpx.AsyncClient:
    """The httpx client for the HTTP that is not a plain `http://` step call; no I/O until used.

    At most `pool_size` connections (0: no limit); a request beyond waits for one, within its own
    timeout. Every request passes its timeout, so the client has none of its own worth relying on.
    Certificates are checked against the system's trust store (the operator image's
    /etc/ssl/certs), not certifi's bundle; nothing is read from the environment (no proxy or
    certificate variables, no .netrc): what a step's URL says is what is called.
    """
    limit = pool_size or None
    return httpx.AsyncClient(
        verify=ssl.create_default_context(),
        trust_env=False,
        follow_redirects=False,
        limits=httpx.Limits(
            max_connections=limit,
            max_keepalive_connections=limit,
            keepalive_expiry=keepalive_seconds,
        ),
    )


class HttpxTransport:
    """Step calls through an `httpx.AsyncClient` that the caller opens and closes (for the
    operator, `build_http_client`'s). Answers above `max_reply_bytes` are refused as they arrive.
    """

    def __init__(
        self, client: httpx.AsyncClient, *, max_reply_bytes: int = MAX_REPLY_BYTES
    ) -> None:
        self._client = client
        self._max_reply_bytes = max_reply_bytes

    async def post(
        self, url: str, body: bytes, *, headers: Mapping[str, str], timeout: float
    ) -> Reply:
        try:
            async with asyncio.timeout(timeout):  # httpx's timeouts are per phase, not in total
                return await self._exchange(url, body, headers=headers, timeout=timeout)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise CallTimeoutError(f"no answer within {timeout:g}s") from exc
        except httpx.DecodingError as exc:
            raise InvalidReplyError(describe_error(exc)) from exc
        except httpx.RequestError as exc:
            raise CallConnectionError(describe_error(exc)) from exc

    async def _exchange(
        self, url: str, body: bytes, *, headers: Mapping[str, str], timeout: float
    ) -> Reply:
        request = self._client.stream("POST", url, content=body, headers=headers, timeout=timeout)
        async with request as response:
            status, limit = response.status_code, self._max_reply_bytes
            answer = bytearray()
            async for chunk in response.aiter_bytes():
                answer += chunk
                if len(answer) > limit:
                    raise InvalidReplyError(
                        f"answered {status} with more bytes than the {limit} accepted"
                    )
            retry_after = response.headers.get("Retry-After") if status >= 400 else None
            return Reply(status, bytes(answer), retry_after)


def describe_error(exc: BaseException) -> str:
    """An error for a message: its type, and its text if it has one."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
