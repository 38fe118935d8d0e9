"""Deploying a ServiceStep: server-side apply of its Deployment, Service and HPA, and its status.

Level-triggered and idempotent: `reconcile_step` builds the manifests from the spec and applies
all three every time (an unchanged object is a no-op for the API server), then computes the status
from what the owned objects report (through the operator's indexes) and writes it if it changed.
`follow_owned_object` reacts to an owned object's events: a deletion or an edit by someone else
(its generation moved past the one we applied) is corrected by reconciling again; anything else
only refreshes the status.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from stepline.api import ServiceStep
from stepline.controllers.runtime import Runtime, object_ref, write_status
from stepline.engine.probing import probe_external_step
from stepline.errors import KubeApiError
from stepline.resources import (
    AutoscalerState,
    DeploymentState,
    ExternalCheck,
    build_autoscaler,
    build_deployment,
    build_service,
    compute_external_step_status,
    compute_step_status,
)

OWNED_KINDS = (
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
)
# How long an external step's health check may take, in seconds.
EXTERNAL_CHECK_TIMEOUT = 5.0


@dataclass(frozen=True)
class StepView:
    """The operator's indexes, as the handlers received them: what each owned object reports."""

    steps: Mapping[tuple[str, str], Any]
    deployments: Mapping[tuple[str, str], Any]
    autoscalers: Mapping[tuple[str, str], Any]

    def step(self, namespace: str, name: str) -> ServiceStep | None:
        found = _only(self.steps, (namespace, name))
        return found if isinstance(found, ServiceStep) else None

    def deployment(self, namespace: str, name: str) -> DeploymentState | None:
        found = _only(self.deployments, (namespace, name))
        return found if isinstance(found, DeploymentState) else None

    def autoscaler(self, namespace: str, name: str) -> AutoscalerState | None:
        found = _only(self.autoscalers, (namespace, name))
        return found if isinstance(found, AutoscalerState) else None


def _only(index: Mapping[tuple[str, str], Any], key: tuple[str, str]) -> Any:
    """The one value an index holds for `key` (kopf keeps a store per key), or None."""
    return next(iter(index.get(key, ())), None)


async def reconcile_step(runtime: Runtime, step: ServiceStep, view: StepView) -> None:
    """Converges the step's owned objects on its spec and writes its status."""
    if step.spec.url:
        await _remove_owned_objects(runtime, step)
        check = await probe_external_step(
            runtime.http, step.spec.url, timeout=EXTERNAL_CHECK_TIMEOUT
        )
        await refresh_external_step(runtime, step, check)
        return
    error = await _apply_owned_objects(runtime, step)
    await refresh_step_status(runtime, step, view, apply_error=str(error) if error else None)
    if error is not None:
        kopf.warn(object_ref(step), reason="ApplyFailed", message=str(error))
        if error.retryable:
            raise kopf.TemporaryError(str(error), delay=5) from error
        raise kopf.PermanentError(str(error)) from error
    if step.status.observed_generation != step.metadata.generation:
        kopf.info(
            object_ref(step),
            reason="Applied",
            message="Deployment, Service and HorizontalPodAutoscaler applied",
        )


async def _apply_owned_objects(runtime: Runtime, step: ServiceStep) -> KubeApiError | None:
    namespace = step.metadata.namespace or ""
    for manifest in (build_deployment(step), build_service(step), build_autoscaler(step)):
        try:
            applied = await runtime.kube.apply(manifest)
        except KubeApiError as exc:
            return exc
        key = (manifest["kind"], namespace, manifest["metadata"]["name"])
        runtime.applied_generations[key] = int(applied.get("metadata", {}).get("generation", 0))
    return None


async def _remove_owned_objects(runtime: Runtime, step: ServiceStep) -> None:
    """A step switched from `image` to `url` deploys nothing: remove what it deployed before."""
    namespace, name = step.metadata.namespace or "", step.metadata.name or ""
    for api_version, kind in OWNED_KINDS:
        if await runtime.kube.delete(api_version, kind, namespace, name):
            kopf.info(
                object_ref(step), reason="Removed", message=f"{kind} {name} removed: url step"
            )
        runtime.applied_generations.pop((kind, namespace, name), None)


async def refresh_step_status(
    runtime: Runtime, step: ServiceStep, view: StepView, *, apply_error: str | None = None
) -> None:
    namespace, name = step.metadata.namespace or "", step.metadata.name or ""
    status = compute_step_status(
        step,
        deployment=view.deployment(namespace, name),
        autoscaler=view.autoscaler(namespace, name),
        apply_error=apply_error,
    )
    await write_status(runtime, step, status.to_wire())


async def refresh_external_step(runtime: Runtime, step: ServiceStep, check: ExternalCheck) -> None:
    await write_status(runtime, step, compute_external_step_status(step, check=check).to_wire())


async def follow_owned_object(
    runtime: Runtime,
    *,
    kind: str,
    event_type: str | None,
    body: Mapping[str, Any],
    step_name: str,
    view: StepView,
) -> None:
    """Corrects a deleted or hand-edited owned object; otherwise refreshes the step's status."""
    namespace = body.get("metadata", {}).get("namespace", "")
    step = view.step(namespace, step_name)
    if step is None or step.spec.url:
        return
    applied = runtime.applied_generations.get((kind, namespace, step_name))
    generation = int(body.get("metadata", {}).get("generation") or 0)
    drifted = applied is not None and generation > applied
    if event_type == "DELETED" or drifted:
        if await _still_exists(runtime, step):
            what = "deleted" if event_type == "DELETED" else "changed by someone else"
            kopf.info(
                object_ref(step), reason="Corrected", message=f"{kind} {step_name} was {what}"
            )
            await reconcile_step(runtime, step, view)
        return
    await refresh_step_status(runtime, step, view)


async def _still_exists(runtime: Runtime, step: ServiceStep) -> bool:
    """The index can lag behind a deletion: ask the API server before re-creating objects."""
    current = await runtime.kube.get(
        step.api_version, "ServiceStep", step.metadata.namespace or "", step.metadata.name or ""
    )
    return (
        current is not None
        and current.get("metadata", {}).get("uid") == step.metadata.uid
        and ("deletionTimestamp" not in current.get("metadata", {}))
    )
