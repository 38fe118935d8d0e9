"""The objects a ServiceStep owns (Deployment, Service, HPA), followed with `informers.Follower`:
`OwnedStates` keeps what each step's Deployment and HPA report, and every event is handed to the
reconciler, which decides whether the object drifted from what was applied.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stepline.controllers.informers import Follower, WatchedKind
from stepline.controllers.servicesteps.status import AutoscalerState, DeploymentState
from stepline.kube import KubeApi
from stepline.resources import MANAGED_BY_LABEL, MANAGER, STEP_LABEL

# What the operator applies, and nothing else: its label and the step's.
SELECTOR = f"{MANAGED_BY_LABEL}={MANAGER},{STEP_LABEL}"

logger = logging.getLogger(__name__)


DEPLOYMENT = WatchedKind("apps/v1", "Deployment")
SERVICE = WatchedKind("v1", "Service")
AUTOSCALER = WatchedKind("autoscaling/v2", "HorizontalPodAutoscaler")
FOLLOWED_KINDS = (DEPLOYMENT, SERVICE, AUTOSCALER)

# Called with the kind, the event type (ADDED, MODIFIED, DELETED), the object's body and the
# name of its step, once the states are updated. It must not keep the body.
Reaction = Callable[[str, str, Mapping[str, Any], str], None]
# On every object the operator applies: a digest of the manifest applied (`manifest_digest`).
APPLIED_ANNOTATION = "stepline.io/applied"


def manifest_digest(manifest: Mapping[str, Any]) -> str:
    """A digest of a manifest as the operator builds it, to recognise it applied already."""
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:32]


def spec_digest(body: Mapping[str, Any]) -> str:
    """A digest of an object's spec as the API server holds it, without `replicas`: the HPA
    writes that one, and scaling is no drift."""
    spec = {key: value for key, value in (body.get("spec") or {}).items() if key != "replicas"}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class AsApplied:
    """An owned object as the operator's last apply left it: its spec set by the operator's
    field manager alone (no one else's edit since), the manifest it was given (its
    annotation), and the generation and spec digest it has."""

    manifest: str
    generation: int
    spec_digest: str


@dataclass
class OwnedStates:
    """What each step's Deployment and HPA report, by (namespace, step name)."""

    deployments: dict[tuple[str, str], DeploymentState] = field(default_factory=dict)
    autoscalers: dict[tuple[str, str], AutoscalerState] = field(default_factory=dict)
    # The steps that have a Service.
    services: set[tuple[str, str]] = field(default_factory=set)
    # (kind, namespace, name) → the owned objects as the operator's last apply left them: a new
    # operator need not apply those again (1,500 server-side applies, 30 s of an API server's
    # time, at the start of an operator with 500 image steps: bench/scale/RESULTS.md).
    as_applied: dict[tuple[str, str, str], AsApplied] = field(default_factory=dict)
    # The operator's field manager (STEPLINE_FIELD_MANAGER).
    manager: str = "stepline"
    # Set once every kind has been listed in every watched namespace.
    synced: asyncio.Event = field(default_factory=asyncio.Event)

    def deployment(self, namespace: str, name: str) -> DeploymentState | None:
        return self.deployments.get((namespace, name))

    def autoscaler(self, namespace: str, name: str) -> AutoscalerState | None:
        return self.autoscalers.get((namespace, name))

    def record(self, kind: str, event_type: str, body: Mapping[str, Any], step: str) -> None:
        namespace = body["metadata"].get("namespace", "")
        key = (namespace, step)
        self._record_as_applied(kind, event_type, body)
        if kind == DEPLOYMENT.kind:
            if event_type == "DELETED":
                self.deployments.pop(key, None)
            else:
                self.deployments[key] = DeploymentState.from_body(body)
        elif kind == AUTOSCALER.kind:
            if event_type == "DELETED":
                self.autoscalers.pop(key, None)
            else:
                self.autoscalers[key] = AutoscalerState.from_body(body)
        elif kind == SERVICE.kind:
            if event_type == "DELETED":
                self.services.discard(key)
            else:
                self.services.add(key)

    def record_apply(self, kind: str, body: Mapping[str, Any]) -> None:
        """Records what an apply of ours answered, as its watch event will: a reconcile asked
        for again before that event arrives (at start-up, by both the takeover and the step's
        own event) then knows the object applied and does not apply it twice."""
        self._record_as_applied(kind, "APPLIED", body)

    def _record_as_applied(self, kind: str, event_type: str, body: Mapping[str, Any]) -> None:
        metadata = body["metadata"]
        key = (kind, metadata.get("namespace", ""), metadata.get("name", ""))
        applied = (metadata.get("annotations") or {}).get(APPLIED_ANNOTATION)
        if event_type == "DELETED" or not applied or not self._spec_is_ours(metadata):
            self.as_applied.pop(key, None)
            return
        generation = int(metadata.get("generation") or 0)
        self.as_applied[key] = AsApplied(applied, generation, spec_digest(body))

    def _spec_is_ours(self, metadata: Mapping[str, Any]) -> bool:
        """No field manager but ours has set a field of the spec (the HPA's writes of
        `replicas` go through the scale subresource, the controllers' through status)."""
        for entry in metadata.get("managedFields") or ():
            if entry.get("subresource") or entry.get("manager") == self.manager:
                continue
            if "f:spec" in (entry.get("fieldsV1") or {}):
                return False
        return True

    def owns_nothing(self, namespace: str, name: str) -> bool:
        """Every kind has been listed, and the step has none of the three objects."""
        key = (namespace, name)
        return (
            self.synced.is_set()
            and key not in self.deployments
            and key not in self.autoscalers
            and key not in self.services
        )


class OwnedObjectWatch:
    """Keeps `states` current for the watched namespaces (none: all) and calls `react` for
    every event of an owned object."""

    def __init__(
        self,
        kube: KubeApi,
        *,
        states: OwnedStates,
        namespaces: Sequence[str],
        react: Reaction,
        timeout_seconds: int,
        on_event: Callable[[str], None] = lambda kind: None,
    ) -> None:
        self.states = states
        self._react = react
        self._on_event = on_event
        scopes: tuple[str | None, ...] = tuple(namespaces) or (None,)
        self._unlisted = len(FOLLOWED_KINDS) * len(scopes)
        self._followers = {
            (kind, namespace): Follower(
                kube,
                kind,
                namespace,
                label_selector=SELECTOR,
                timeout_seconds=timeout_seconds,
                observe=functools.partial(self._observe, kind.kind),
                tombstone=owned_tombstone,
                on_listed=self._listed,
            )
            for kind in FOLLOWED_KINDS
            for namespace in scopes
        }

    async def run(self) -> None:
        """Follows every kind in every scope until cancelled."""
        async with asyncio.TaskGroup() as group:
            for (kind, namespace), follower in self._followers.items():
                where = namespace or "all namespaces"
                group.create_task(follower.run(), name=f"watch {kind.kind} in {where}")

    async def list_once(self, kind: WatchedKind, namespace: str | None) -> str:
        return await self._followers[kind, namespace].list_once()

    async def watch_once(self, kind: WatchedKind, namespace: str | None, version: str) -> str:
        return await self._followers[kind, namespace].watch_once(version)

    def _observe(self, kind: str, event_type: str, body: dict[str, Any]) -> str | None:
        metadata = body.get("metadata") or {}
        step = (metadata.get("labels") or {}).get(STEP_LABEL)
        if not step:
            return None  # the selector asks for the label: not from this API server
        self._on_event(kind)
        self.states.record(kind, event_type, body, step)
        try:
            self._react(kind, event_type, body, step)
        except Exception:  # a bug in a reaction must not end the watch of every object
            key = (metadata.get("namespace", ""), metadata.get("name", ""))
            logger.exception("%s %s/%s: reacting to %s failed", kind, *key, event_type)
        return str(step)

    def _listed(self) -> None:
        self._unlisted -= 1
        if not self._unlisted:
            self.states.synced.set()


def owned_tombstone(namespace: str, name: str, step: str) -> dict[str, Any]:
    return {"metadata": {"namespace": namespace, "name": name, "labels": {STEP_LABEL: step}}}
