"""kopf handlers for ServiceSteps. Thin: parse, call, map errors.

The `servicesteps` index keeps the latest ServiceSteps; each new one, and each new generation,
is reconciled in a task per step (`reconciler.reconcile_soon`). What their Deployments and HPAs
report comes from the operator's own watches of those kinds (`owned`), so that status
follows those objects as they change (watched, never polled) without API reads.
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
from stepline.controllers.runtime import runtime_of
from stepline.controllers.servicesteps.reconciler import indexed, reconcile_soon, step_view


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


@kopf.on.event(GROUP, VERSION, "servicesteps")
async def follow_step_spec(
    *, type: str, body: kopf.Body, namespace: str | None, name: str, memo: kopf.Memo, **kwargs: Any
) -> None:
    """Level-triggered: a step seen for the first time since the operator started, or at a new
    generation (its spec changed), is reconciled (`reconciler.reconcile_soon`). Not through
    kopf's change handlers: those keep a diff base in an annotation, a write of every step
    after every change, and an event of it for every watcher."""
    runtime, key = runtime_of(memo), (namespace or "", name)
    if type == "DELETED" or body.metadata.get("deletionTimestamp"):
        runtime.servicesteps.reconcile_asked.pop(key, None)
        return  # its objects go with it (garbage collection)
    asked = (body.metadata.uid or "", int(body.metadata.get("generation") or 0))
    if runtime.servicesteps.reconcile_asked.get(key) == asked:
        return  # a status or metadata change: the owned objects' events drive the status
    runtime.servicesteps.reconcile_asked[key] = asked
    if indexed_step(kwargs["servicesteps"], body) is None:
        try:
            read_step(body)
        except InvalidObjectError as exc:  # the API server validated it: an older schema?
            runtime.events.warn(body_reference(body), reason="InvalidSpec", message=str(exc))
            return
    reconcile_soon(runtime, key, step_view(runtime, kwargs["servicesteps"]))


def body_reference(body: kopf.Body) -> dict[str, Any]:
    """The object reference of an Event about the object in `body`."""
    metadata = body.metadata
    return {
        "apiVersion": body.get("apiVersion"), "kind": body.get("kind"),
        "namespace": metadata.namespace, "name": metadata.name, "uid": metadata.uid,
    }  # fmt: skip


def indexed_step(steps: Mapping[Any, Any], body: kopf.Body) -> ServiceStep | None:
    """The step as the `servicesteps` index parsed it from this very body (kopf indexes an event
    before it calls the handlers); None when the index holds another version, or nothing."""
    found = indexed(steps, body.metadata.namespace or "", body.metadata.name or "")
    if found is not None and found.metadata.resource_version == body.metadata.get(
        "resourceVersion"
    ):
        return found
    return None
