"""Deploying a ServiceStep: server-side apply of its Deployment, Service and HPA, and its status.

Level-triggered and idempotent: `reconcile_step` builds the manifests from the spec and applies
all three every time (an unchanged object is a no-op for the API server). The status is computed
from what the owned objects report (through the operator's indexes) and written when it changed:
a failed apply at once, anything else a moment later (`STATUS_DELAY`), so that one write covers
the burst of events the objects send as they roll out.
`notice_owned_object` reacts to an owned object's events (`owned` watches them): a
deletion or an edit by someone else (its spec, `replicas` aside, differs from what our last apply
returned) is corrected by reconciling again, in a task of its own per step; anything else, the
HPA's scaling included, only refreshes the status.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stepline.api import ScalingStatus, ServiceStep, ServiceStepStatus
from stepline.controllers.background import detached
from stepline.controllers.backoff import backoff
from stepline.controllers.runtime import Runtime, involved_object, write_status
from stepline.controllers.servicesteps.checks import check_external_step
from stepline.controllers.servicesteps.memory import AppliedObject
from stepline.controllers.servicesteps.owned import (
    APPLIED_ANNOTATION,
    OwnedStates,
    manifest_digest,
    spec_digest,
)
from stepline.controllers.servicesteps.scaling import ScalingFigure, scale_forever
from stepline.controllers.servicesteps.status import (
    METRICS_GRACE_SECONDS,
    METRICS_UNAVAILABLE,
    AutoscalerState,
    DeploymentState,
    compute_step_status,
)
from stepline.engine.loads import StepKey
from stepline.errors import KubeApiError
from stepline.resources import build_autoscaler, build_deployment, build_service

OWNED_KINDS = (
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
)
# Seconds before the first new apply after the API server failed to answer, and after it
# refused (a quota, an admission policy, a full Service IP range: somebody must change something
# other than the step); each further attempt waits twice as long, up to the maximum.
RETRY_DELAY = 5.0
REFUSED_RETRY_DELAY = 30.0
MAX_RETRY_DELAY = 300.0
# Seconds a status refresh waits for more events of the step's objects, which it then covers
# too. A Deployment reports its rollout in a few status updates moments apart (and the HPA its
# own); written one by one, each is a write of the ServiceStep and an event for every watcher
# of ServiceSteps, the operator first.
STATUS_DELAY = 0.25

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepView:
    """What the operator knows, kept live: the ServiceStep index (kopf's) and what each owned
    object reports (our watches')."""

    steps: Mapping[tuple[str, str], Any]
    owned: OwnedStates

    def step(self, namespace: str, name: str) -> ServiceStep | None:
        return indexed(self.steps, namespace, name)

    def deployment(self, namespace: str, name: str) -> DeploymentState | None:
        return self.owned.deployment(namespace, name)

    def autoscaler(self, namespace: str, name: str) -> AutoscalerState | None:
        return self.owned.autoscaler(namespace, name)


def step_view(runtime: Runtime, steps: Mapping[tuple[str, str], Any]) -> StepView:
    """The view over kopf's `servicesteps` index (as handlers receive it) and our watches."""
    return StepView(steps=steps, owned=runtime.servicesteps.owned)


def indexed(steps: Mapping[tuple[str, str], Any], namespace: str, name: str) -> ServiceStep | None:
    """The step kopf's `servicesteps` index holds (one value in a store per key), or None."""
    found = next(iter(steps.get((namespace, name), ())), None)
    return found if isinstance(found, ServiceStep) else None


class RetryLater(Exception):  # noqa: N818 (an instruction, not an error of ours)
    """The step's objects could not be applied: try again in `delay` seconds."""

    def __init__(self, message: str, *, delay: float) -> None:
        super().__init__(message)
        self.delay = delay


async def reconcile_step(
    runtime: Runtime, step: ServiceStep, view: StepView, *, attempt: int = 0
) -> None:
    """Converges the step's owned objects on its spec and writes its status. `attempt` counts
    the failed applies before this one: it spaces retries out and keeps them from repeating
    the Warning Event. Raises RetryLater when an apply fails, KubeApiError when a status
    write does."""
    key = ("ServiceStep", step.metadata.namespace or "", step.metadata.name or "")
    if step.spec.url:
        runtime.servicesteps.apply_errors.pop(key, None)
        await _remove_owned_objects(runtime, step)
        await check_external_step(runtime, step)
        return
    runtime.servicesteps.external_steps.discard(key[1:])
    error = await _apply_owned_objects(runtime, step)
    if error is None:
        runtime.servicesteps.apply_errors.pop(key, None)
        # The objects' own events follow within moments: one status for them all.
        schedule_status_refresh(runtime, step, view)
    else:
        # Kept until an apply succeeds: a status refreshed meanwhile still tells why.
        runtime.servicesteps.apply_errors[key] = str(error)
        await refresh_step_status(runtime, step, view)
        if attempt == 0:
            runtime.events.warn(involved_object(step), reason="ApplyFailed", message=str(error))
        raise RetryLater(str(error), delay=retry_delay(error, attempt)) from error
    if step.status.observed_generation != step.metadata.generation:
        runtime.events.info(
            involved_object(step),
            reason="Applied",
            message="Deployment, Service and HorizontalPodAutoscaler applied",
        )


async def _apply_owned_objects(runtime: Runtime, step: ServiceStep) -> KubeApiError | None:
    """Applies the three objects at once (they do not depend on each other: each names the step
    as its owner); the first failure, if any."""
    manifests = (build_deployment(step), build_service(step), build_autoscaler(step))
    errors = await asyncio.gather(*(_apply(runtime, manifest) for manifest in manifests))
    return next((error for error in errors if error is not None), None)


async def _apply(runtime: Runtime, manifest: dict[str, Any]) -> KubeApiError | None:
    """Applies the manifest, unless the object is as our last apply of this very manifest left
    it (its annotation says which, and no one else has set its spec since)."""
    key = (manifest["kind"], manifest["metadata"]["namespace"], manifest["metadata"]["name"])
    digest = manifest_digest(manifest)
    manifest["metadata"].setdefault("annotations", {})[APPLIED_ANNOTATION] = digest
    as_applied = runtime.servicesteps.owned.as_applied.get(key)
    if as_applied is not None and as_applied.manifest == digest:
        known = AppliedObject(as_applied.generation, as_applied.spec_digest)
        runtime.servicesteps.applied_objects[key] = known
        return None
    # The watch event of this apply can be handled before its response is: while it is in
    # flight, a change of the object is ours, not a drift to correct.
    runtime.servicesteps.applies_in_flight[key] = (
        runtime.servicesteps.applies_in_flight.get(key, 0) + 1
    )
    try:
        applied = await runtime.kube.apply(manifest)
    except KubeApiError as exc:
        return exc
    finally:
        runtime.servicesteps.applies_in_flight[key] -= 1
        if not runtime.servicesteps.applies_in_flight[key]:
            del runtime.servicesteps.applies_in_flight[key]
    runtime.servicesteps.applied_objects[key] = AppliedObject(
        _generation(applied), spec_digest(applied)
    )
    runtime.servicesteps.owned.record_apply(manifest["kind"], applied)
    return None


async def _remove_owned_objects(runtime: Runtime, step: ServiceStep) -> None:
    """A step switched from `image` to `url` deploys nothing: remove what it deployed before.
    Nothing is asked of the API server when the owned objects' watches show none and this
    process applied none (a url step from the start: 3 DELETEs answered 404 per step and
    reconcile, 1,500 for 500 url steps at every start, before)."""
    namespace, name = step.metadata.namespace or "", step.metadata.name or ""
    applied = runtime.servicesteps.applied_objects
    if runtime.servicesteps.owned.owns_nothing(namespace, name) and not any(
        (kind, namespace, name) in applied for _, kind in OWNED_KINDS
    ):
        return
    for api_version, kind in OWNED_KINDS:
        if await runtime.kube.delete(api_version, kind, namespace, name):
            message = f"{kind} {name} removed: url step"
            runtime.events.info(involved_object(step), reason="Removed", message=message)
        runtime.servicesteps.applied_objects.pop((kind, namespace, name), None)


def schedule_status_refresh(
    runtime: Runtime, step: ServiceStep, view: StepView, *, delay: float = STATUS_DELAY
) -> None:
    """Refreshes the step's status `delay` seconds from now, unless a refresh is already due:
    that one covers this change too, as it computes from the indexes as they are then."""
    key = (step.metadata.namespace or "", step.metadata.name or "")
    if key not in runtime.servicesteps.status_refreshes and runtime.leads():
        refresh = _refresh_later(runtime, key, view, delay=delay)
        runtime.servicesteps.status_refreshes[key] = detached(refresh, name=f"status of {key}")


async def _refresh_later(
    runtime: Runtime, key: tuple[str, str], view: StepView, *, delay: float
) -> None:
    await asyncio.sleep(delay)
    # Behind the applies queued meanwhile (a burst of new steps): what they start is then
    # reported in the same write, often Ready at once instead of Progressing, then Ready.
    await runtime.kube.after_queued_requests()
    runtime.servicesteps.status_refreshes.pop(
        key, None
    )  # a change from now on is for the next refresh
    step = view.step(*key)
    if step is None or step.spec.url:
        return  # deleted, or switched to a url, since
    try:
        await refresh_step_status(runtime, step, view)
    except KubeApiError as exc:
        if exc.status == 404:
            return
        # No handler to retry this one: try again later, as kopf would.
        logger.warning("ServiceStep %s/%s: status not written: %s", *key, exc)
        schedule_status_refresh(runtime, step, view, delay=RETRY_DELAY)


async def refresh_step_status(runtime: Runtime, step: ServiceStep, view: StepView) -> None:
    namespace, name = step.metadata.namespace or "", step.metadata.name or ""
    # Computed inside the lock, from the indexes as they are then (kopf keeps them live), and
    # from the status last written: the step's own may not have come back yet, and conditions
    # computed from an older one would move their transition times (another write, for nothing).
    async with runtime.statuses.lock("ServiceStep", namespace, name):
        written = runtime.statuses.last("ServiceStep", namespace, name)
        previous = ServiceStepStatus.model_validate(written) if written else step.status
        autoscaler = view.autoscaler(namespace, name)
        now = datetime.now(UTC)  # one reading, for the status and the recheck below
        status = compute_step_status(
            step,
            deployment=view.deployment(namespace, name),
            autoscaler=autoscaler,
            apply_error=runtime.servicesteps.apply_errors.get(("ServiceStep", namespace, name)),
            previous=previous,
            scaling=runtime.servicesteps.scalers.status((namespace, name)),
            now=now,
        )
        if await write_status(runtime, step, status.to_wire()):
            _announce_scaling(runtime, step, before=previous.scaling, after=status.scaling)
    runtime.metrics.set_step_replicas(
        namespace=namespace,
        step=name,
        ready=status.ready_replicas or 0,
        desired=status.desired_replicas or 0,
    )
    if autoscaler is not None:
        problem = autoscaler.lasting_problem(now)
        runtime.metrics.set_step_autoscaler_active(
            namespace=namespace, step=name, active=problem is None
        )
        if autoscaler.problem is not None and problem is None:  # look again once it lasted
            wait = METRICS_GRACE_SECONDS - autoscaler.problem_age(now) + 1
            detached(
                _refresh_after(runtime, step, view, wait), name=f"recheck of {namespace}/{name}"
            )


async def _refresh_after(runtime: Runtime, step: ServiceStep, view: StepView, wait: float) -> None:
    """A status refresh `wait` seconds from now, without holding back those due sooner."""
    await asyncio.sleep(wait)
    schedule_status_refresh(runtime, step, view)


def _announce_scaling(
    runtime: Runtime,
    step: ServiceStep,
    *,
    before: ScalingStatus | None,
    after: ScalingStatus | None,
) -> None:
    """An Event when the autoscaler can no longer read its metrics, and when it can again."""
    was = before is not None and before.reason == METRICS_UNAVAILABLE
    if after is not None and after.reason == METRICS_UNAVAILABLE and not was:
        runtime.events.warn(
            involved_object(step), reason="ScalingMetricsUnavailable", message=after.message
        )
    elif was and (after is None or after.reason != METRICS_UNAVAILABLE):
        message = "the autoscaler reads its metrics again"
        runtime.events.info(
            involved_object(step), reason="ScalingMetricsAvailable", message=message
        )


async def scale_steps_forever(runtime: Runtime, view: StepView) -> None:
    """Feeds the autoscalers of the steps that scale on their load (`scaling.py`) until the
    operator stops."""

    def steps() -> Iterator[ServiceStep]:
        for key in list(view.steps.keys()):
            step = view.step(*key)
            if step is not None:
                yield step

    def export(key: StepKey, figures: list[ScalingFigure], lead: float) -> None:
        namespace, name = key
        for f in figures:
            runtime.metrics.set_step_load(
                namespace=namespace, step=name, metric=f.metric, load=f.load,
                forecast=f.forecast, error_ratio=f.error_ratio, value=f.value,
            )  # fmt: skip
        if any(f.forecast is not None for f in figures):
            runtime.metrics.set_step_scaling_lead(namespace=namespace, step=name, seconds=lead)

    def forget(key: StepKey) -> None:
        runtime.metrics.forget_step_scaling(namespace=key[0], step=key[1])

    def status_changed(key: StepKey) -> None:
        step = view.step(*key)
        if step is not None and step.spec.url is None:
            schedule_status_refresh(runtime, step, view)

    await scale_forever(
        runtime.servicesteps.scalers,
        sample=runtime.loads.sample,
        steps=steps,
        export=export,
        forget=forget,
        status_changed=status_changed,
    )


def retry_delay(error: KubeApiError, attempt: int) -> float:
    """Seconds before applying again: exponential backoff from a base that depends on the error."""
    base = RETRY_DELAY if error.retryable else REFUSED_RETRY_DELAY
    return backoff(base, attempt, maximum=MAX_RETRY_DELAY)


def notice_owned_object(
    runtime: Runtime,
    *,
    kind: str,
    event_type: str,
    body: Mapping[str, Any],
    step_name: str,
    view: StepView,
) -> None:
    """Corrects a deleted or hand-edited owned object; otherwise refreshes the step's status.
    Called for every watch event of an owned object, with the body only for the call."""
    namespace = body.get("metadata", {}).get("namespace", "")
    step = view.step(namespace, step_name)
    if step is None or step.spec.url:
        return
    if kind == "Deployment" and event_type != "DELETED":
        deployment = view.deployment(namespace, step_name)
        if deployment is not None:
            runtime.servicesteps.scalers.leads.observe(
                (namespace, step_name), desired=deployment.desired, available=deployment.available
            )
    key = (kind, namespace, step_name)
    drifted = key not in runtime.servicesteps.applies_in_flight and is_drifted(
        runtime.servicesteps.applied_objects.get(key), body
    )
    if event_type == "DELETED" or drifted:
        # To a watch by label, an object that lost Stepline's labels is gone too.
        what = (
            "deleted, or lost Stepline's labels"
            if event_type == "DELETED"
            else "changed by someone else"
        )
        reconcile_soon(runtime, (namespace, step_name), view, why=f"{kind} {step_name} was {what}")
        return
    schedule_status_refresh(runtime, step, view)


def reconcile_soon(
    runtime: Runtime, key: tuple[str, str], view: StepView, *, why: str | None = None
) -> None:
    """Reconciles the step (namespace, name) in a task of its own: one per step at a time,
    which runs once more when asked again meanwhile (its objects are applied together), and
    tries again, backing off, until it succeeds. `why` says that an owned object was deleted or
    changed by someone else: posted as a `Corrected` Event once the step is known to exist.
    Only the leader reconciles: on a standby it does nothing (the leader reconciles every step
    when it takes over)."""
    if not runtime.leads():
        return
    reasons = runtime.servicesteps.reconciles_due.setdefault(key, [])
    if why and why not in reasons:
        reasons.append(why)
    if key not in runtime.servicesteps.reconciles:
        reconcile = _reconcile_while_due(runtime, key, view)
        runtime.servicesteps.reconciles[key] = detached(reconcile, name=f"reconcile of {key}")


async def _reconcile_while_due(runtime: Runtime, key: tuple[str, str], view: StepView) -> None:
    attempt = 0  # failures in a row
    try:
        # At start-up, the status needs what the objects of every step report.
        await runtime.servicesteps.owned.synced.wait()
        while key in runtime.servicesteps.reconciles_due or attempt:
            reasons = runtime.servicesteps.reconciles_due.pop(key, [])
            step = view.step(*key)
            if step is None:
                return  # deleted since
            try:
                if reasons and not await _confirm_correction(runtime, step, reasons):
                    continue
                async with runtime.servicesteps.reconcile_slots:
                    step = view.step(*key) or step  # the latest, after the wait
                    with runtime.reconciling("ServiceStep"):
                        await reconcile_step(runtime, step, view, attempt=attempt)
                attempt = 0
            except (RetryLater, KubeApiError) as exc:
                # The apply failed (the status and a Warning say why) or the API server did
                # not answer: again later, backing off.
                delay = exc.delay if isinstance(exc, RetryLater) else retry_delay(exc, attempt)
                logger.warning("ServiceStep %s/%s: %s; again in %.0f s", *key, exc, delay)
                attempt += 1
                await asyncio.sleep(delay)
            except Exception:  # a bug: logged, and tried again later all the same
                logger.exception("ServiceStep %s/%s: reconcile failed", *key)
                attempt += 1
                await asyncio.sleep(backoff(RETRY_DELAY, attempt, maximum=MAX_RETRY_DELAY))
    finally:
        del runtime.servicesteps.reconciles[key]


async def _confirm_correction(runtime: Runtime, step: ServiceStep, reasons: list[str]) -> bool:
    """Whether an owned object's deletion or edit is to be corrected; if so, says why in Events.
    Not when the step went away (the index can lag behind: the API server is asked) or deploys
    nothing (a url step)."""
    if step.spec.url or not await _still_exists(runtime, step):
        return False
    for why in reasons:
        runtime.events.info(involved_object(step), reason="Corrected", message=why)
    return True


def is_drifted(applied: AppliedObject | None, body: Mapping[str, Any]) -> bool:
    """Whether somebody else changed the spec since our last apply. An event no newer than
    that apply (by generation) is our own or older; a Service has no generation, so only its
    spec tells."""
    if applied is None:
        return False
    generation = _generation(body)
    if generation and generation <= applied.generation:
        return False
    return spec_digest(body) != applied.spec_digest


def _generation(body: Mapping[str, Any]) -> int:
    return int((body.get("metadata") or {}).get("generation") or 0)


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
