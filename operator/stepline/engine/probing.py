"""Health checks of external steps (a ServiceStep with a `url`).

A step answers when an HTTP GET of its URL gets any response below 500 within the timeout: a
404 or 405 still shows a live server (most step endpoints take only POST), and so does a
redirect, which is not followed; a 5xx, a refused connection or a timeout does not. The caller
owns the schedule and the HTTP session (aiohttp's, which the operator has anyway through kopf:
httpx would add 5 MiB of imports to the operator for one GET a minute per external step).
"""

from __future__ import annotations

import aiohttp

from stepline.resources import ExternalCheck


async def probe_external_step(
    session: aiohttp.ClientSession, url: str, *, timeout: float
) -> ExternalCheck:
    try:
        async with session.get(
            url, timeout=aiohttp.ClientTimeout(total=timeout), allow_redirects=False
        ) as response:
            status = response.status
    except TimeoutError:
        return ExternalCheck(healthy=False, detail=f"GET {url}: no answer within {timeout:g}s")
    except aiohttp.ClientError as exc:
        return ExternalCheck(healthy=False, detail=f"GET {url}: {type(exc).__name__}: {exc}")
    if status >= 500:
        return ExternalCheck(healthy=False, detail=f"GET {url} returned {status}")
    return ExternalCheck(healthy=True, detail=f"GET {url} answered {status}")
