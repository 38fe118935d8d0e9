"""Health checks of external ServiceSteps (a `url`): at every reconcile, then every 30 s.

The periodic checks run in one background task of the operator, not in a kopf timer: kopf puts
a finalizer on every object a timer serves, and that finalizer blocks the deletion of the step
(and of its namespace) whenever the operator is not running. The task checks the steps that
reconciles registered in `Runtime.external_steps`; it reads each step fresh from the API, so a
deleted step, or one switched to an image, drops out.
"""

from __future__ import annotations

import asyncio
import logging

from stepline.api import API_VERSION, InvalidObjectError, ServiceStep
from stepline.controllers.runtime import Runtime, write_status
from stepline.engine.probing import probe_external_step
from stepline.errors import KubeApiError
from stepline.resources import compute_external_step_status

# How often an external step's URL is checked, and how long one check may take, in seconds.
EXTERNAL_CHECK_INTERVAL = 30.0
EXTERNAL_CHECK_TIMEOUT = 5.0

logger = logging.getLogger(__name__)


async def check_external_step(runtime: Runtime, step: ServiceStep) -> None:
    """Probes the step's URL and writes its status; remembers it for the periodic checks."""
    namespace, name, url = step.metadata.namespace or "", step.metadata.name or "", step.spec.url
    if not url:
        runtime.external_steps.discard((namespace, name))
        return
    runtime.external_steps.add((namespace, name))
    check = await probe_external_step(runtime.http, url, timeout=EXTERNAL_CHECK_TIMEOUT)
    await write_status(runtime, step, compute_external_step_status(step, check=check).to_wire())


async def check_external_steps_forever(
    runtime: Runtime, *, interval: float = EXTERNAL_CHECK_INTERVAL
) -> None:
    """Every `interval` seconds, checks every registered external step, all at once."""
    while True:
        await asyncio.sleep(interval)
        steps = sorted(runtime.external_steps)
        await asyncio.gather(*(_recheck(runtime, namespace, name) for namespace, name in steps))


async def _recheck(runtime: Runtime, namespace: str, name: str) -> None:
    try:
        body = await runtime.kube.get(API_VERSION, "ServiceStep", namespace, name)
        step = ServiceStep.from_body(body) if body is not None else None
        if step is None:
            runtime.external_steps.discard((namespace, name))
            return
        await check_external_step(runtime, step)
    except (KubeApiError, InvalidObjectError) as exc:
        # The next round tries again; one failing step must not stop the others' checks.
        logger.warning("ServiceStep %s/%s: health check not done: %s", namespace, name, exc)
