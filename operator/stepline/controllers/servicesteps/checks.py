"""Health checks of external ServiceSteps (a `url`): at every reconcile, then every 30 s.

The periodic checks run in one background task of the operator, not in a kopf timer: kopf puts
a finalizer on every object a timer serves, and that finalizer blocks the deletion of the step
(and of its namespace) whenever the operator is not running. The task checks the steps that
reconciles registered in `Runtime.external_steps`, spread evenly over the interval (jittered),
not all at once: 1,000 url steps are some 33 checks a second, not 1,000 every 30 s. It reads each
step from the engine's step directory, which the ServiceStep watch keeps current, not from the
API server: a deleted step, or one switched to an image, drops out, and a check that finds the
step as it was writes nothing (`write_status` skips an unchanged status). At rest, the checks
cost the API server no request at all.

A step answers (`probe_external_step`) when an HTTP GET of its URL gets any response below 500
within the timeout: a 404 or 405 still shows a live server (most step endpoints take only POST),
and so does a redirect, which is not followed; a 5xx, a refused connection or a timeout does not.
Only the status is read, never the body, with the operator's shared HTTP client
(`httpclient.transports.build_http_client`, which also carries `https://` step calls).
"""

from __future__ import annotations

import asyncio
import logging
import random

import httpx

from stepline.api import ServiceStep
from stepline.controllers.runtime import Runtime, write_status
from stepline.controllers.servicesteps.status import ExternalCheck, compute_external_step_status
from stepline.errors import KubeApiError

# How often an external step's URL is checked, and how long one check may take, in seconds.
EXTERNAL_CHECK_INTERVAL = 30.0
EXTERNAL_CHECK_TIMEOUT = 5.0

logger = logging.getLogger(__name__)


async def check_external_step(runtime: Runtime, step: ServiceStep) -> None:
    """Probes the step's URL and writes its status; remembers it for the periodic checks."""
    namespace, name, url = step.metadata.namespace or "", step.metadata.name or "", step.spec.url
    if not url:
        runtime.servicesteps.external_steps.discard((namespace, name))
        return
    runtime.servicesteps.external_steps.add((namespace, name))
    check = await probe_external_step(runtime.http, url, timeout=EXTERNAL_CHECK_TIMEOUT)
    await write_status(runtime, step, compute_external_step_status(step, check=check).to_wire())


async def check_external_steps_forever(
    runtime: Runtime, *, interval: float = EXTERNAL_CHECK_INTERVAL
) -> None:
    """Checks every registered external step about once per `interval` seconds, one after
    another at even gaps (each gap jittered by ±20%), each check a task of its own so that a
    slow URL does not hold back the others' turns."""
    checks: set[asyncio.Task[None]] = set()
    try:
        while True:
            steps = sorted(runtime.servicesteps.external_steps)
            if not steps:
                await asyncio.sleep(interval)
                continue
            gap = interval / len(steps)
            for namespace, name in steps:
                await asyncio.sleep(gap * random.uniform(0.8, 1.2))  # noqa: S311
                check = asyncio.create_task(
                    _recheck(runtime, namespace, name), name=f"check {namespace}/{name}"
                )
                checks.add(check)
                check.add_done_callback(checks.discard)
    finally:
        for check in checks:
            check.cancel()


async def _recheck(runtime: Runtime, namespace: str, name: str) -> None:
    if (namespace, name) not in runtime.servicesteps.external_steps:
        return  # deleted, or switched to an image, since the round began
    step = runtime.steps.find_step(namespace, name)
    if step is None:
        runtime.servicesteps.external_steps.discard((namespace, name))
        return
    try:
        await check_external_step(runtime, step)
    except KubeApiError as exc:
        # The next round tries again; one failing step must not stop the others' checks.
        logger.warning("ServiceStep %s/%s: health check not done: %s", namespace, name, exc)


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
