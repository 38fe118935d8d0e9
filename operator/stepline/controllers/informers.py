"""Informers of our own: a `Follower` lists, then watches, one kind in one namespace (or all) and
reports each event as it arrives; the kinds' own modules decide what to keep of it
(`servicesteps.owned`, `servicesteps.endpoints`, `workflowruns.watch`).

kopf is not used for these kinds. It keeps a memory for every object it has seen, and during a
burst it queues each event's whole body per object until a worker takes it; with thousands of
owned objects that was most of the operator's memory (bench/steps/RESULTS.md). Here each event is
reduced as it arrives to what the operator needs, then dropped.

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
from collections.abc import Callable
from typing import Any, NamedTuple

from stepline.controllers.backoff import backoff
from stepline.errors import KubeApiError
from stepline.kube import KubeApi

# Seconds before listing again after a failure; doubles up to the maximum, with jitter.
RETRY_DELAY = 1.0
MAX_RETRY_DELAY = 30.0

logger = logging.getLogger(__name__)


class WatchedKind(NamedTuple):
    api_version: str
    kind: str


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
        kind: WatchedKind,
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
        watch as deleted; the list's resourceVersion. Holds one page at a time: a relist of
        10,000 objects after a 410 costs a page's memory, not a second copy of them all
        (tests/integration/test_relist_at_size.py)."""
        kind = self.kind
        # What was known and has not been listed again: gone, once the last page is in.
        unseen = set(self._known)
        token: str | None = None
        while True:
            page = await self._kube.list_page(
                kind.api_version, kind.kind, self.namespace, label_selector=self._selector,
                continue_token=token,
            )  # fmt: skip
            metadata = page.get("metadata") or {}
            token, version = metadata.get("continue"), metadata.get("resourceVersion")
            items = page.get("items") or ()
            del page  # the page's objects go as they are reported
            for item in items:
                # A list's items carry no kind; observers may want whole objects.
                item.setdefault("apiVersion", kind.api_version)
                item.setdefault("kind", kind.kind)
                key = self._report("ADDED", item)
                if key is not None:
                    unseen.discard(key)
            del items
            if not token:
                break
        for key in [key for key in unseen if key in self._known]:
            self._report("DELETED", self._tombstone(*key, self._known[key]))
        return str(version or "")

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


async def follow_namespaces(
    kube: KubeApi,
    kind: WatchedKind,
    namespaces: tuple[str, ...],
    *,
    label_selector: str | None,
    timeout_seconds: int,
    observe: Observer,
    tombstone: Tombstone,
    on_listed: Callable[[], None] = lambda: None,
) -> None:
    """Follows `kind` with one `Follower` per watched namespace (none: one for all namespaces),
    until cancelled; `on_listed` is called once every one of them has listed."""
    scopes: tuple[str | None, ...] = namespaces or (None,)
    waiting = set(scopes)

    def listed(scope: str | None) -> None:
        waiting.discard(scope)
        if not waiting:
            on_listed()

    async with asyncio.TaskGroup() as group:
        for scope in scopes:
            follower = Follower(
                kube, kind, scope, label_selector=label_selector,
                timeout_seconds=timeout_seconds, observe=observe, tombstone=tombstone,
                on_listed=lambda scope=scope: listed(scope),  # type: ignore[misc]
            )  # fmt: skip
            where = scope or "all namespaces"
            group.create_task(follower.run(), name=f"watch {kind.kind}s in {where}")
