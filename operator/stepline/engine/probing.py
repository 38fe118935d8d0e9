"""Health checks of external steps (a ServiceStep with a `url`).

A step answers when an HTTP GET of its URL gets any response below 500 within the timeout: a
404 or 405 still shows a live server (most step endpoints take only POST); a 5xx, a refused
connection or a timeout does not. The caller owns the schedule and the HTTP client.
"""

from __future__ import annotations

import httpx

from stepline.resources import ExternalCheck


async def probe_external_step(
    client: httpx.AsyncClient, url: str, *, timeout: float
) -> ExternalCheck:
    try:
        response = await client.get(url, timeout=timeout)
    except httpx.TimeoutException:
        return ExternalCheck(healthy=False, detail=f"GET {url}: no answer within {timeout:g}s")
    except httpx.HTTPError as exc:
        return ExternalCheck(healthy=False, detail=f"GET {url}: {type(exc).__name__}: {exc}")
    if response.status_code >= 500:
        return ExternalCheck(healthy=False, detail=f"GET {url} returned {response.status_code}")
    return ExternalCheck(healthy=True, detail=f"GET {url} answered {response.status_code}")
