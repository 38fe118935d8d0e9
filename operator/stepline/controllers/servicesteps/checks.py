"""Health checks of external ServiceSteps (a `url`): at every reconcile, then every 30 s.

The periodic checks run in one background task of the operator, not in a kopf timer: kopf puts
a finalizer on every object a timer serves, and that finalizer blocks the deletion of the step
(and of its namespace) whenever the operator is not running. The task checks the steps that
reconciles registered in `Runtime.external_steps`, each on a schedule of its own spread over the
interval (jittered), not all at once: 1,000 url steps are some 33 checks a second, not 1,000
every 30 s. It reads each
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
import time

import httpx

from stepline.api import ServiceStep
from stepline.controllers.runtime import Runtime, write_status
from stepline.controllers.servicesteps.status import ExternalCheck, compute_external_step_status
from stepline.errors import KubeApiError

# How often an external step's URL is checked, and how long one check may take, in seconds.
EXTERNAL_CHECK_INTERVAL = 30.0
EXTERNAL_CHECK_TIMEOUT = 5.0
# The longest the checks' loop sleeps, so that it sees steps registered meanwhile.
REGISTRATION_POLL_SECONDS = 1.0

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
    """Checks every registered external step about once per `interval` seconds, each on a
    schedule of its own: a step registered is first checked at a random moment within the
    interval (so that steps registered together are spread over it), then every `interval`
    ±10%. Each check is a task of its own, so that a slow URL holds back no other check."""
    due: dict[tuple[str, str], float] = {}
    checks: set[asyncio.Task[None]] = set()
    try:
        while True:
            now, registered = time.monotonic(), runtime.servicesteps.external_steps
            for key in registered - due.keys():
                due[key] = now + random.uniform(0, interval)  # noqa: S311
            for key in due.keys() - registered:
                del due[key]
            for key in sorted(key for key, at in due.items() if at <= now):
                due[key] = now + interval * random.uniform(0.9, 1.1)  # noqa: S311
                namespace, name = key
                check = asyncio.create_task(
                    _recheck(runtime, namespace, name), name=f"check {namespace}/{name}"
                )
                checks.add(check)
                check.add_done_callback(checks.discard)
            # Awake at least every second: a step registered meanwhile gets its schedule.
            nearest = min(due.values(), default=now + REGISTRATION_POLL_SECONDS)
            await asyncio.sleep(min(max(nearest - now, 0.0), REGISTRATION_POLL_SECONDS))
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
