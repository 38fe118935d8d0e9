"""kopf handlers for ServiceSteps and the objects they own. Thin: parse, call, map errors.

Indexes keep the latest ServiceSteps and what their Deployments and HPAs report, so that
status follows those objects as they change (watched, never polled) without API reads.
"""

from __future__ import annotations

from typing import Any

import kopf

from stepline.api import GROUP, VERSION, InvalidObjectError, ServiceStep
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


def parse_step(body: kopf.Body) -> ServiceStep:
    try:
        return ServiceStep.from_body(body)
    except InvalidObjectError as exc:
        raise kopf.PermanentError(str(exc)) from exc


@kopf.index(GROUP, VERSION, "servicesteps")
def servicesteps(*, namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    try:
        return {(namespace, name): ServiceStep.from_body(body)}
    except InvalidObjectError:
        return {}


@kopf.index("apps", "v1", "deployments", labels=OWNED)
def step_deployments(
    *, namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[Any, Any]:
    return {(namespace, labels[STEP_LABEL]): DeploymentState.from_body(body)}


@kopf.index("autoscaling", "v2", "horizontalpodautoscalers", labels=OWNED)
def step_autoscalers(
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
    with runtime.reconciling("ServiceStep"):
        await reconcile_step(runtime, parse_step(body), _view(kwargs), attempt=retry)


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
