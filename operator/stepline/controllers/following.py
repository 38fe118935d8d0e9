"""Watches of our own: `Follower` lists and watches one kind; `OwnedObjectWatch` follows the objects
ServiceSteps own (Deployments, Services, HPAs) with it, and `runs.RunWatch` the WorkflowRuns.

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
import functools
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from stepline.controllers.pacing import backoff
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


# Called with an event's type (ADDED, MODIFIED, DELETED) and the object's body, once per
# event; returns what to remember of the object (the name of its step, say: something small,
# kept for every object), or None for an object it does not follow. It must not keep the body.
Observer = Callable[[str, dict[str, Any]], Any]
# The body to report as DELETED for an object that went away while nobody watched, from its
# namespace, its name and what its observer remembered of it.
Tombstone = Callable[[str, str, Any], dict[str, Any]]


class Follower:
    """Lists, then watches, one kind's objects in one namespace (None: all), and reports every
    event to `observe` (see the module docstring for how it recovers)."""

    def __init__(
        self,
        kube: KubeApi,
        kind: OwnedKind,
        namespace: str | None,
        *,
        label_selector: str | None,
        timeout_seconds: int,
        observe: Observer,
        tombstone: Tombstone,
        on_listed: Callable[[], None] = lambda: None,
    ) -> None:
        self.kind = kind
        self.namespace = namespace
        self._kube = kube
        self._selector = label_selector
        self._timeout = timeout_seconds
        self._observe = observe
        self._tombstone = tombstone
        self._on_listed = on_listed
        # (namespace, name) → what the observer remembered of each object last seen.
        self._known: dict[tuple[str, str], Any] = {}

    async def run(self) -> None:
        """Follows the kind until cancelled."""
        failures = 0
        listed = False
        while True:
            try:
                version = await self.list_once()
                if not listed:
                    listed = True
                    self._on_listed()
                while True:  # reopened where it left off until the version is gone
                    version = await self.watch_once(version)
                    failures = 0  # the server ended it: all is well
            except KubeApiError as exc:
                failures += 1
                if exc.status == 410 and failures == 1:
                    continue  # the version is gone: list again at once
                delay = backoff(RETRY_DELAY, failures - 1, maximum=MAX_RETRY_DELAY)
                logger.warning("%s; listing again in %.0f s", exc, delay)
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))  # noqa: S311
            except Exception:  # a defect must not end the watch for good, and silently
                failures += 1
                delay = backoff(RETRY_DELAY, failures - 1, maximum=MAX_RETRY_DELAY)
                kind = self.kind.kind
                logger.exception("following %s failed; listing again in %.0f s", kind, delay)
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))  # noqa: S311

    async def list_once(self) -> str:
        """Lists the objects page by page, reports each, and those gone since the last list or
        watch as deleted; the list's resourceVersion."""
        kind = self.kind
        seen: set[tuple[str, str]] = set()
        token: str | None = None
        while True:
            page = await self._kube.list_page(
                kind.api_version, kind.kind, self.namespace, label_selector=self._selector,
                continue_token=token,
            )  # fmt: skip
            for item in page.get("items") or ():
                # A list's items carry no kind; observers may want whole objects.
                item.setdefault("apiVersion", kind.api_version)
                item.setdefault("kind", kind.kind)
                key = self._report("ADDED", item)
                if key is not None:
                    seen.add(key)
            metadata = page.get("metadata") or {}
            token = metadata.get("continue")
            if not token:
                break
        for key in [key for key in self._known if key not in seen]:
            self._report("DELETED", self._tombstone(*key, self._known[key]))
        return str(metadata.get("resourceVersion") or "")

    async def watch_once(self, version: str) -> str:
        """Follows one watch from `version` until the server ends it; the last
        resourceVersion seen (KubeApiError with status 410 when `version` is gone)."""
        events = self._kube.watch(
            self.kind.api_version, self.kind.kind, self.namespace,
            label_selector=self._selector, resource_version=version,
            timeout_seconds=self._timeout,
        )  # fmt: skip
        async with contextlib.aclosing(events):
            async for event in events:
                body = event.get("object")
                if not isinstance(body, dict):
                    continue
                version = str(body.get("metadata", {}).get("resourceVersion") or version)
                event_type = str(event.get("type"))
                if event_type in {"ADDED", "MODIFIED", "DELETED"}:
                    self._report(event_type, body)
        return version

    def _report(self, event_type: str, body: dict[str, Any]) -> tuple[str, str] | None:
        metadata = body.get("metadata") or {}
        key = (metadata.get("namespace", ""), metadata.get("name", ""))
        try:
            remembered = self._observe(event_type, body)
        except Exception:  # a bug in an observer must not end the watch of every object
            logger.exception("%s %s/%s: observing %s failed", self.kind.kind, *key, event_type)
            # It exists all the same: a relist must not report it deleted. What was known of
            # it stays as it was.
            return key if event_type != "DELETED" else None
        if remembered is None:
            return None
        if event_type == "DELETED":
            self._known.pop(key, None)
        else:
            self._known[key] = remembered
        return key


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

    async def list_once(self, kind: OwnedKind, namespace: str | None) -> str:
        return await self._followers[kind, namespace].list_once()

    async def watch_once(self, kind: OwnedKind, namespace: str | None, version: str) -> str:
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
