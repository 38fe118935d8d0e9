"""Following the objects ServiceSteps own (Deployments, Services, HPAs) with watches of our own.

kopf is not used for these kinds. It keeps a memory for every object it has seen, and during a
burst it queues each event's whole body per object until a worker takes it: with 1,000 steps,
3,000 objects and their rollouts, most of the operator's memory, which the allocator then keeps
(bench/steps/RESULTS.md). Here each event is reduced as it arrives to what the operator needs (a
Deployment's and an HPA's readiness numbers in `OwnedStates`, and, for `react`, the body while
it decides whether the object drifted), then dropped.

One loop per kind and watched namespace (or one per kind cluster-wide): list (paginated), then
watch from the list's resourceVersion with bookmarks; a watch the server ends is reopened where
it left off, a 410 (the version is gone) and any failure lead to a new list after a pause. A
list reports the objects that went away while nobody watched as deletions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from stepline.errors import KubeApiError
from stepline.kube import KubeApi
from stepline.resources import (
    MANAGED_BY_LABEL,
    MANAGER,
    STEP_LABEL,
    AutoscalerState,
    DeploymentState,
)

# What the operator applies, and nothing else: its label and the step's.
SELECTOR = f"{MANAGED_BY_LABEL}={MANAGER},{STEP_LABEL}"
# Seconds before listing again after a failure; doubles up to the maximum, with jitter.
RETRY_DELAY = 1.0
MAX_RETRY_DELAY = 30.0

logger = logging.getLogger(__name__)


class OwnedKind(NamedTuple):
    api_version: str
    kind: str


DEPLOYMENT = OwnedKind("apps/v1", "Deployment")
SERVICE = OwnedKind("v1", "Service")
AUTOSCALER = OwnedKind("autoscaling/v2", "HorizontalPodAutoscaler")
FOLLOWED_KINDS = (DEPLOYMENT, SERVICE, AUTOSCALER)

# Called with the kind, the event type (ADDED, MODIFIED, DELETED), the object's body and the
# name of its step, once the states are updated. It must not keep the body.
Reaction = Callable[[str, str, Mapping[str, Any], str], None]


@dataclass
class OwnedStates:
    """What each step's Deployment and HPA report, by (namespace, step name)."""

    deployments: dict[tuple[str, str], DeploymentState] = field(default_factory=dict)
    autoscalers: dict[tuple[str, str], AutoscalerState] = field(default_factory=dict)
    # Set once every kind has been listed in every watched namespace.
    synced: asyncio.Event = field(default_factory=asyncio.Event)

    def deployment(self, namespace: str, name: str) -> DeploymentState | None:
        return self.deployments.get((namespace, name))

    def autoscaler(self, namespace: str, name: str) -> AutoscalerState | None:
        return self.autoscalers.get((namespace, name))

    def record(self, kind: str, event_type: str, body: Mapping[str, Any], step: str) -> None:
        namespace = body["metadata"].get("namespace", "")
        key = (namespace, step)
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
        self._kube = kube
        self._scopes: tuple[str | None, ...] = tuple(namespaces) or (None,)
        self._react = react
        self._timeout = timeout_seconds
        self._on_event = on_event
        self._unlisted = len(FOLLOWED_KINDS) * len(self._scopes)
        # (kind, scope) → (namespace, name) → step name of every object last seen there.
        self._known: dict[tuple[str, str | None], dict[tuple[str, str], str]] = {}

    async def run(self) -> None:
        """Follows every kind in every scope until cancelled."""
        async with asyncio.TaskGroup() as group:
            for kind in FOLLOWED_KINDS:
                for namespace in self._scopes:
                    where = namespace or "all namespaces"
                    group.create_task(
                        self._follow(kind, namespace), name=f"watch {kind.kind} in {where}"
                    )

    async def _follow(self, kind: OwnedKind, namespace: str | None) -> None:
        failures = 0
        listed = False
        while True:
            try:
                version = await self.list_once(kind, namespace)
                if not listed:
                    listed = True
                    self._listed()
                while True:  # reopened where it left off until the version is gone
                    version = await self.watch_once(kind, namespace, version)
                    failures = 0  # the server ended it: all is well
            except KubeApiError as exc:
                failures += 1
                if exc.status == 410 and failures == 1:
                    continue  # the version is gone: list again at once
                delay = min(RETRY_DELAY * 2 ** min(failures - 1, 8), MAX_RETRY_DELAY)
                logger.warning("%s; listing again in %.0f s", exc, delay)
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))  # noqa: S311

    async def list_once(self, kind: OwnedKind, namespace: str | None) -> str:
        """Lists the kind's objects in the scope page by page, reports each, and those gone
        since the last list or watch as deleted; the list's resourceVersion."""
        known = self._known.setdefault((kind.kind, namespace), {})
        seen: set[tuple[str, str]] = set()
        token: str | None = None
        while True:
            page = await self._kube.list_page(
                kind.api_version, kind.kind, namespace, label_selector=SELECTOR,
                continue_token=token,
            )  # fmt: skip
            for item in page.get("items") or ():
                # A list's items carry no kind; the reaction wants whole objects.
                item.setdefault("apiVersion", kind.api_version)
                item.setdefault("kind", kind.kind)
                key = self._observe(kind.kind, "ADDED", item, known)
                if key is not None:
                    seen.add(key)
            metadata = page.get("metadata") or {}
            token = metadata.get("continue")
            if not token:
                break
        for key in [key for key in known if key not in seen]:
            body = {"metadata": {"namespace": key[0], "name": key[1]}}
            self._observe(kind.kind, "DELETED", body, known, step=known[key])
        return str(metadata.get("resourceVersion") or "")

    async def watch_once(self, kind: OwnedKind, namespace: str | None, version: str) -> str:
        """Follows one watch from `version` until the server ends it; the last
        resourceVersion seen (KubeApiError with status 410 when `version` is gone)."""
        known = self._known.setdefault((kind.kind, namespace), {})
        events = self._kube.watch(
            kind.api_version, kind.kind, namespace, label_selector=SELECTOR,
            resource_version=version, timeout_seconds=self._timeout,
        )  # fmt: skip
        async with contextlib.aclosing(events):
            async for event in events:
                body = event.get("object")
                if not isinstance(body, dict):
                    continue
                version = str(body.get("metadata", {}).get("resourceVersion") or version)
                event_type = str(event.get("type"))
                if event_type in {"ADDED", "MODIFIED", "DELETED"}:
                    self._observe(kind.kind, event_type, body, known)
        return version

    def _observe(
        self,
        kind: str,
        event_type: str,
        body: dict[str, Any],
        known: dict[tuple[str, str], str],
        *,
        step: str | None = None,
    ) -> tuple[str, str] | None:
        metadata = body.get("metadata") or {}
        key = (metadata.get("namespace", ""), metadata.get("name", ""))
        step = step or (metadata.get("labels") or {}).get(STEP_LABEL)
        if not step:
            return None  # the selector asks for the label: not from this API server
        if event_type == "DELETED":
            known.pop(key, None)
        else:
            known[key] = step
        self._on_event(kind)
        self.states.record(kind, event_type, body, step)
        try:
            self._react(kind, event_type, body, step)
        except Exception:  # a bug in a reaction must not end the watch of every object
            logger.exception("%s %s/%s: reacting to %s failed", kind, *key, event_type)
        return key

    def _listed(self) -> None:
        self._unlisted -= 1
        if not self._unlisted:
            self.states.synced.set()
