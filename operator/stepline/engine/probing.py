"""Health checks of external steps (a ServiceStep with a `url`).

A step answers when an HTTP GET of its URL gets any response below 500 within the timeout: a
404 or 405 still shows a live server (most step endpoints take only POST), and so does a
redirect, which is not followed; a 5xx, a refused connection or a timeout does not. Only the
status is read, never the body. The caller owns the schedule and the HTTP client (the operator's
`transports.build_http_client`, shared with `https://` step calls).
"""

from __future__ import annotations

import asyncio

import httpx

from stepline.resources import ExternalCheck


async def probe_external_step(
    client: httpx.AsyncClient, url: str, *, timeout: float
) -> ExternalCheck:
    try:
        async with (
            asyncio.timeout(timeout),  # httpx's timeouts are per phase, not in total
            client.stream("GET", url, timeout=timeout, follow_redirects=False) as response,
        ):
            status = response.status_code
    except (TimeoutError, httpx.TimeoutException):
        return ExternalCheck(healthy=False, detail=f"GET {url}: no answer within {timeout:g}s")
    except (httpx.RequestError, httpx.InvalidURL) as exc:
        return ExternalCheck(healthy=False, detail=f"GET {url}: {type(exc).__name__}: {exc}")
    if status >= 500:
        return ExternalCheck(healthy=False, detail=f"GET {url} returned {status}")
    return ExternalCheck(healthy=True, detail=f"GET {url} answered {status}")
