"""kopf handlers for Workflows: readiness of the chain, re-evaluated whenever a referenced
ServiceStep changes. Thin: parse, call, map errors.

Event handlers only, no change handlers (create/update/resume): kopf then writes nothing to a
Workflow (no diff-base or progress annotations), so that a standby replica, whose kopf keeps the
same indexes, writes nothing at all. A Workflow seen for the first time, or at a new generation,
is refreshed by the leader; on taking over, the leader refreshes them all (`leading`).

Two indexes make "which workflows use this step?" a dictionary lookup instead of a list call per
event: Workflows by name, and Workflow names by the ServiceStep they reference.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from stepline.api import (
    GROUP,
    VERSION,
    ConditionType,
    InvalidObjectError,
    ServiceStep,
    Workflow,
    find_condition,
)
from stepline.controllers.background import detached
from stepline.controllers.backoff import backoff
from stepline.controllers.runtime import Runtime, involved_object, runtime_of, write_status
from stepline.controllers.servicesteps.handlers import body_reference
from stepline.controllers.workflows.status import compute_workflow_status
from stepline.errors import KubeApiError, NotLeadingError

logger = logging.getLogger(__name__)
# Seconds before a status that could not be written is tried again; doubles up to the maximum.
RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 30.0


# Coroutines though they do no I/O: kopf would run plain functions in its executor's threads.
@kopf.index(GROUP, VERSION, "workflows")
async def workflows(
    *, namespace: str | None, name: str, body: kopf.Body, **_: Any
) -> dict[Any, Any]:
    try:
        return {(namespace, name): Workflow.from_body(body)}
    except InvalidObjectError:
        return {}


@kopf.index(GROUP, VERSION, "workflows")
async def workflows_by_step(
    *, namespace: str | None, name: str, spec: kopf.Spec, **_: Any
) -> dict[Any, Any]:
    refs = set()
    for step in spec.get("steps", []):
        if isinstance(step, Mapping):
            refs.add(step.get("stepRef"))
            undo = step.get("compensation")
            refs.add(undo.get("stepRef") if isinstance(undo, Mapping) else None)
    return {(namespace, ref): name for ref in refs if isinstance(ref, str)}


async def refresh_workflow(
    runtime: Runtime, workflow: Workflow, steps_index: Mapping[tuple[str, str], Any]
) -> None:
    """Computes the workflow's readiness from the steps it references and writes it (the
    leader only)."""
    if not runtime.leads():
        return
    namespace = workflow.metadata.namespace or ""
    refs = {step.step_ref for step in workflow.spec.steps if step.step_ref} | {
        step.compensation.step_ref for step in workflow.spec.steps if step.compensation
    }
    expressions = runtime.workflows.expressions_of(workflow)
    async with runtime.statuses.lock("Workflow", namespace, workflow.metadata.name or ""):
        steps: dict[str, ServiceStep | None] = {
            ref: next(iter(steps_index.get((namespace, ref), ())), None) for ref in refs
        }
        approvals = runtime.approvals
        status = compute_workflow_status(
            workflow, steps=steps, expression_problems=expressions.problems,
            approvals_problem=None if approvals.available else approvals.problem or "unavailable",
        )  # fmt: skip
        if await write_status(runtime, workflow, status.to_wire()):
            _announce_readiness(
                runtime, workflow, before=workflow.status.conditions, after=status.conditions
            )


def _announce_readiness(runtime: Runtime, workflow: Workflow, *, before: Any, after: Any) -> None:
    old = find_condition(before, ConditionType.READY)
    new = find_condition(after, ConditionType.READY)
    if new is None or (old is not None and (old.status, old.reason) == (new.status, new.reason)):
        return
    post = runtime.events.info if new.status == "True" else runtime.events.warn
    post(involved_object(workflow), reason=new.reason, message=new.message)


@kopf.on.event(GROUP, VERSION, "workflows")
async def reconcile_workflow(
    *, type: str, body: kopf.Body, namespace: str | None, name: str, memo: kopf.Memo, **kwargs: Any
) -> None:
    """Level-triggered, as `servicesteps.follow_step_spec`: a Workflow seen for the first time
    since this replica leads, or at a new generation, has its status refreshed."""
    runtime, key = runtime_of(memo), (namespace or "", name)
    if type == "DELETED" or not runtime.leads():
        runtime.workflows.refreshed.pop(key, None)
        return
    seen = (body.metadata.uid or "", int(body.metadata.get("generation") or 0))
    if runtime.workflows.refreshed.get(key) == seen:
        return  # its status, or its metadata: nothing to re-evaluate
    workflow = next(iter(kwargs["workflows"].get(key, ())), None)
    if workflow is None or workflow.metadata.resource_version != body.metadata.get(
        "resourceVersion"
    ):
        try:
            workflow = Workflow.from_body(body)
        except InvalidObjectError as exc:  # the API server validated it: an older schema?
            runtime.workflows.refreshed[key] = seen
            runtime.events.warn(body_reference(body), reason="InvalidSpec", message=str(exc))
            return
    runtime.workflows.refreshed[key] = seen
    try:
        with runtime.reconciling("Workflow"):
            await refresh_workflow(runtime, workflow, kwargs["servicesteps"])
    except KubeApiError as exc:
        if exc.retryable:  # no later event may come: try again, with the indexes as they are then
            logger.warning("Workflow %s/%s: status not written (%s); again in %.0f s", *key, exc,
                           RETRY_SECONDS)  # fmt: skip
            detached(
                _refresh_later(runtime, key, kwargs["workflows"], kwargs["servicesteps"]),
                name=f"status of Workflow {key}",
            )
        elif not isinstance(exc, NotLeadingError):
            logger.warning("Workflow %s/%s: status not written: %s", *key, exc)


async def _refresh_later(
    runtime: Runtime,
    key: tuple[str, str],
    workflows: Mapping[Any, Any],
    steps: Mapping[tuple[str, str], Any],
) -> None:
    failures = 0
    while True:
        await asyncio.sleep(backoff(RETRY_SECONDS, failures, maximum=MAX_RETRY_SECONDS))
        workflow = next(iter(workflows.get(key, ())), None)
        if workflow is None or not runtime.leads():
            return  # deleted since, or the new leader refreshes it
        try:
            await refresh_workflow(runtime, workflow, steps)
            return
        except KubeApiError as exc:
            if not exc.retryable:
                logger.warning("Workflow %s/%s: status not written: %s", *key, exc)
                return
            failures += 1


@kopf.on.event(GROUP, VERSION, "servicesteps")
async def follow_service_step(
    *, type: str, namespace: str | None, name: str, memo: kopf.Memo, **kwargs: Any
) -> None:
    """A ServiceStep appeared, changed or went away: re-evaluate the workflows that use it."""
    runtime, namespace = runtime_of(memo), namespace or ""
    runtime.metrics.mark_watch_event(kind="ServiceStep")
    if type == "DELETED":
        runtime.forget("ServiceStep", namespace, name)
        runtime.metrics.forget_step(namespace=namespace, step=name)
        runtime.loads.forget((namespace, name))
    for workflow_name in set(kwargs["workflows_by_step"].get((namespace, name), ())):
        for workflow in kwargs["workflows"].get((namespace, workflow_name), ()):
            await refresh_workflow(runtime, workflow, kwargs["servicesteps"])


@kopf.on.event(GROUP, VERSION, "workflows")
async def forget_deleted_workflow(
    *, type: str, namespace: str | None, name: str, memo: kopf.Memo, **_: Any
) -> None:
    runtime = runtime_of(memo)
    runtime.indexes_ready.set()  # kopf calls handlers once its indexes are filled
    runtime.metrics.mark_watch_event(kind="Workflow")
    if type == "DELETED":
        runtime.forget("Workflow", namespace or "", name)
        runtime.metrics.forget_workflow(namespace=namespace or "", workflow=name)
