"""kopf handlers for Workflows: readiness of the chain, re-evaluated whenever a referenced
ServiceStep changes. Thin: parse, call, map errors.

Two indexes make "which workflows use this step?" a dictionary lookup instead of a list call per
event: Workflows by name, and Workflow names by the ServiceStep they reference.
"""

from __future__ import annotations

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
from stepline.controllers.runtime import Runtime, involved_object, runtime_of, write_status
from stepline.engine.readiness import compute_workflow_status


def parse_workflow(body: kopf.Body) -> Workflow:
    try:
        return Workflow.from_body(body)
    except InvalidObjectError as exc:
        raise kopf.PermanentError(str(exc)) from exc


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
    refs = {step.get("stepRef") for step in spec.get("steps", []) if isinstance(step, Mapping)}
    return {(namespace, ref): name for ref in refs if isinstance(ref, str)}


async def refresh_workflow(
    runtime: Runtime, workflow: Workflow, steps_index: Mapping[tuple[str, str], Any]
) -> None:
    """Computes the workflow's readiness from the steps it references and writes it."""
    namespace = workflow.metadata.namespace or ""
    refs = {step.step_ref for step in workflow.spec.steps}
    expressions = runtime.expressions_of(workflow)
    async with runtime.status_lock("Workflow", namespace, workflow.metadata.name or ""):
        steps: dict[str, ServiceStep | None] = {
            ref: next(iter(steps_index.get((namespace, ref), ())), None) for ref in refs
        }
        status = compute_workflow_status(
            workflow, steps=steps, expression_problems=expressions.problems
        )
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


@kopf.on.resume(GROUP, VERSION, "workflows")
@kopf.on.create(GROUP, VERSION, "workflows")
@kopf.on.update(GROUP, VERSION, "workflows")
async def reconcile_workflow(*, body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    runtime = runtime_of(memo)
    with runtime.reconciling("Workflow"):
        await refresh_workflow(runtime, parse_workflow(body), kwargs["servicesteps"])


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
