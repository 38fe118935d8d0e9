"""Whether the admission policies that vouch for an Approval are in place: checked at start and
every `settings.approval_policy_check_seconds` (60 s by default), on every replica.

Without the MutatingAdmissionPolicy anyone could write any `decidedBy`; without the
ValidatingAdmissionPolicy anyone allowed to create Approvals could decide any run. So both
policies and both bindings must exist (api/admission.py names them), each binding must bind its
policy, and the validating one must Deny. Until that holds, no Approval is honoured
(`ApprovalIndex.decision_for` answers None) and the leader judges new ones Unverified. A policy
the operator may not read counts as missing: it cannot vouch for what it cannot see. An API
server that does not answer changes nothing: the last verdict stands, and the check is tried
again sooner.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from stepline.api.admission import ADMISSION_API_VERSION, REQUIRED_OBJECTS
from stepline.controllers.runtime import Runtime
from stepline.errors import KubeApiError
from stepline.kube import KubeApi

logger = logging.getLogger(__name__)
# Seconds before checking again when the API server did not answer.
RETRY_SECONDS = 5.0


async def verify_policies_forever(runtime: Runtime) -> None:
    """Checks the policies now and then every interval, until cancelled (module docstring)."""
    memory = runtime.approvals
    interval = runtime.settings.approval_policy_check_seconds
    while True:
        try:
            problem = await find_policy_problem(runtime.kube)
        except KubeApiError as exc:
            logger.warning("could not check the Approval admission policies: %s", exc)
            await asyncio.sleep(min(RETRY_SECONDS, interval))
            continue
        verified = problem is None
        changed = memory.index.verified is not verified
        memory.index.verified, memory.problem = verified, problem or ""
        memory.checked.set()
        if changed:
            _announce(verified, problem)
            for key in memory.index.unjudged_steps():
                memory.wake(key)
        await asyncio.sleep(interval)


async def find_policy_problem(kube: KubeApi) -> str | None:
    """What is missing or wrong with the policies and bindings, or None when all is in place.
    KubeApiError when the API server does not answer (status 0, or 5xx)."""
    problems = []
    for kind, name in REQUIRED_OBJECTS.items():
        try:
            found = await kube.get(ADMISSION_API_VERSION, kind, None, name)
        except KubeApiError as exc:
            if exc.status in {0, 429} or exc.status >= 500:
                raise
            problems.append(f"{kind} {name} cannot be read: {exc}")
            continue
        problem = describe_problem(kind, name, found)
        if problem:
            problems.append(problem)
    return "; ".join(problems) or None


def describe_problem(kind: str, name: str, found: Mapping[str, Any] | None) -> str | None:
    """What is wrong with one of the four objects as read (None: missing), if anything."""
    if found is None:
        return f"{kind} {name} is missing"
    spec = found.get("spec") or {}
    if kind.endswith("Binding") and spec.get("policyName") != name:
        return f"{kind} {name} binds {spec.get('policyName')!r}, not {name!r}"
    actions = spec.get("validationActions") or ()
    if kind == "ValidatingAdmissionPolicyBinding" and "Deny" not in actions:
        return f"{kind} {name} does not Deny (validationActions: {list(actions)})"
    return None


def _announce(verified: bool, problem: str | None) -> None:
    if verified:
        logger.info("the Approval admission policies are in place: Approvals are honoured")
    else:
        logger.warning("Approvals are not honoured: %s", problem)
