"""kopf handlers for ServiceSteps and the objects they own. Thin: parse, call, map errors.

Indexes keep the latest ServiceSteps and what their Deployments and HPAs report, so that
status follows those objects as they change (watched, never polled) without API reads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import kopf
from pydantic import ValidationError

from stepline.api import (
    GROUP,
    VERSION,
    InvalidObjectError,
    ObjectMeta,
    ServiceStep,
    ServiceStepStatus,
)
from stepline.controllers.deploying import StepView, follow_owned_object, reconcile_step
from stepline.controllers.runtime import runtime_of
from stepline.resources import (
    MANAGED_BY_LABEL,
    MANAGER,
    STEP_LABEL,
    AutoscalerState,
    DeploymentState,
)

OWNED: dict[str, Any] = {
    MANAGED_BY_LABEL: MANAGER,
    STEP_LABEL: kopf.PRESENT,
}


def parse_step(body: Mapping[str, Any]) -> ServiceStep:
    try:
        return read_step(body)
    except InvalidObjectError as exc:
        raise kopf.PermanentError(str(exc)) from exc


def read_step(body: Mapping[str, Any], *, known: ServiceStep | None = None) -> ServiceStep:
    """The step in `body`, without `metadata.managedFields` (the model has no place for them,
    and they are most of the body). When `known` is the same object at the same generation (its
    spec unchanged: an event of its status or metadata, mostly our own status writes), only
    metadata and status are parsed: the spec, with its validation rules, is most of the work."""
    metadata = dict(body.get("metadata") or {})
    metadata.pop("managedFields", None)
    if known is not None and _same_generation(known, metadata):
        try:
            return known.model_copy(
                update={
                    "metadata": ObjectMeta.model_validate_json(_json(metadata), strict=True),
                    "status": ServiceStepStatus.model_validate_json(
                        _json(body.get("status") or {}), strict=True
                    ),
                }
            )
        except ValidationError:
            pass  # parsed in full below, which names the problem
    return ServiceStep.from_body({**body, "metadata": metadata})


def _same_generation(step: ServiceStep, metadata: Mapping[str, Any]) -> bool:
    """For a custom resource, the generation moves with every change of the spec."""
    uid, generation = metadata.get("uid"), metadata.get("generation")
    return (
        uid is not None
        and generation is not None
        and (step.metadata.uid, step.metadata.generation) == (uid, generation)
    )


def _json(value: Any) -> str:
    return json.dumps(value, default=dict)  # kopf may hand out mapping views: plain dicts


# The indexes are coroutines though they do no I/O: kopf runs a plain function in a thread of
# its executor, a hop that costs more than the function itself, on every event of the kind.
@kopf.index(GROUP, VERSION, "servicesteps")
async def servicesteps(
    *, namespace: str | None, name: str, body: kopf.Body, **kwargs: Any
) -> dict[Any, Any]:
    known = next(iter(kwargs["servicesteps"].get((namespace, name), ())), None)
    try:
        return {(namespace, name): read_step(body, known=known)}
    except InvalidObjectError:
        return {}


@kopf.index("apps", "v1", "deployments", labels=OWNED)
async def step_deployments(
    *, namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[Any, Any]:
    return {(namespace, labels[STEP_LABEL]): DeploymentState.from_body(body)}


@kopf.index("autoscaling", "v2", "horizontalpodautoscalers", labels=OWNED)
async def step_autoscalers(
    *, namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[Any, Any]:
    return {(namespace, labels[STEP_LABEL]): AutoscalerState.from_body(body)}


def _view(kwargs: dict[str, Any]) -> StepView:
    return StepView(
        steps=kwargs["servicesteps"],
        deployments=kwargs["step_deployments"],
        autoscalers=kwargs["step_autoscalers"],
    )


@kopf.on.resume(GROUP, VERSION, "servicesteps")
@kopf.on.create(GROUP, VERSION, "servicesteps")
@kopf.on.update(GROUP, VERSION, "servicesteps")
async def reconcile_service_step(
    *, body: kopf.Body, memo: kopf.Memo, retry: int, **kwargs: Any
) -> None:
    runtime = runtime_of(memo)
    view = _view(kwargs)
    with runtime.reconciling("ServiceStep"):
        await reconcile_step(runtime, _step_of(body, view), view, attempt=retry)


def _step_of(body: kopf.Body, view: StepView) -> ServiceStep:
    """The step as the index parsed it from this very body, or, when the index has nothing for
    it (an invalid body), parsed here."""
    return indexed_step(view, body) or parse_step(body)


def indexed_step(view: StepView, body: kopf.Body) -> ServiceStep | None:
    """The step as the `servicesteps` index parsed it from this very body (kopf indexes an event
    before it calls the handlers); None when the index holds another version, or nothing."""
    indexed = view.step(body.metadata.namespace or "", body.metadata.name or "")
    if indexed is not None and indexed.metadata.resource_version == body.metadata.get(
        "resourceVersion"
    ):
        return indexed
    return None


@kopf.on.event("apps", "v1", "deployments", labels=OWNED)
async def follow_deployment(
    *, type: str, body: kopf.Body, labels: kopf.Labels, memo: kopf.Memo, **kwargs: Any
) -> None:
    runtime = runtime_of(memo)
    runtime.metrics.mark_watch_event(kind="Deployment")
    await follow_owned_object(
        runtime, kind="Deployment", event_type=type, body=body,
        step_name=labels[STEP_LABEL], view=_view(kwargs),
    )  # fmt: skip


@kopf.on.event("autoscaling", "v2", "horizontalpodautoscalers", labels=OWNED)
async def follow_autoscaler(
    *, type: str, body: kopf.Body, labels: kopf.Labels, memo: kopf.Memo, **kwargs: Any
) -> None:
    runtime = runtime_of(memo)
    runtime.metrics.mark_watch_event(kind="HorizontalPodAutoscaler")
    await follow_owned_object(
        runtime, kind="HorizontalPodAutoscaler", event_type=type, body=body,
        step_name=labels[STEP_LABEL], view=_view(kwargs),
    )  # fmt: skip


@kopf.on.event("v1", "services", labels=OWNED)
async def follow_service(
    *, type: str, body: kopf.Body, labels: kopf.Labels, memo: kopf.Memo, **kwargs: Any
) -> None:
    runtime = runtime_of(memo)
    runtime.metrics.mark_watch_event(kind="Service")
    await follow_owned_object(
        runtime, kind="Service", event_type=type, body=body,
        step_name=labels[STEP_LABEL], view=_view(kwargs),
    )  # fmt: skip
