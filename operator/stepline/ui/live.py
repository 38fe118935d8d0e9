"""The latest body of each run someone looks at, kept from the operator's run watch, so that a
run page follows its run without asking the API server (docs/ui.md).

A page that shows a run `follow`s it with the body it was rendered from; the run watch hands
every event to `observe`, which keeps the body only of followed runs (one dict look-up for the
others). A viewer's update request `wait_newer`s for a version other than the one it shows; it
is answered at once when the feed already has one, else at the next event of that run, else
after `timeout` with nothing new. A run nobody has asked after for `keep_seconds` is forgotten.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

KEEP_SECONDS = 60.0
SWEEP_SECONDS = 10.0

Key = tuple[str, str]


@dataclass
class _Followed:
    body: Mapping[str, Any] | None  # None: deleted
    version: str
    asked: float
    changed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True)
class RunUpdate:
    """What the feed knows of a run: its body (None: deleted) and its resourceVersion."""

    body: Mapping[str, Any] | None
    version: str


def version_of(body: Mapping[str, Any]) -> str:
    return str((body.get("metadata") or {}).get("resourceVersion") or "")


def _newer(version: str, than: str) -> bool:
    """Whether `version` is later than `than`. Kubernetes calls resource versions opaque; for
    one object from etcd they grow as integers, and anything else counts as newer."""
    if version.isdigit() and than.isdigit():
        return int(version) > int(than)
    return version != than


class RunFeed:
    def __init__(
        self, *, keep_seconds: float = KEEP_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._followed: dict[Key, _Followed] = {}
        self._keep_seconds = keep_seconds
        self._clock = clock
        self._swept = clock()

    def __len__(self) -> int:
        return len(self._followed)

    def follow(self, namespace: str, name: str, body: Mapping[str, Any]) -> None:
        """A page shows `body` of this run: keep it, and what the watch says of it from now on
        (unless the watch already gave a later body)."""
        self._sweep()
        key, version = (namespace, name), version_of(body)
        known = self._followed.get(key)
        if known is None:
            self._followed[key] = _Followed(body, version, self._clock())
            return
        known.asked = self._clock()
        if known.body is not None and _newer(version, known.version):
            self._change(known, body, version)

    def observe(self, event_type: str, body: Mapping[str, Any]) -> None:
        """One event of the run watch (raw body, only looked at)."""
        if not self._followed:
            return
        metadata = body.get("metadata") or {}
        known = self._followed.get((metadata.get("namespace", ""), metadata.get("name", "")))
        if known is None:
            return
        if event_type == "DELETED":
            self._change(known, None, known.version)
        else:
            self._change(known, body, version_of(body))

    def latest(self, namespace: str, name: str) -> RunUpdate | None:
        known = self._followed.get((namespace, name))
        return None if known is None else RunUpdate(known.body, known.version)

    async def wait_newer(
        self, namespace: str, name: str, version: str, *, timeout: float
    ) -> RunUpdate | None:
        """The run once the feed has another version than `version` (or knows it deleted); None
        after `timeout` without one. KeyError when the run is not followed (the caller reads
        it and `follow`s it)."""
        self._sweep()
        known = self._followed[(namespace, name)]
        known.asked = self._clock()
        if known.body is None or known.version != version:
            return RunUpdate(known.body, known.version)
        try:
            async with asyncio.timeout(timeout):
                await known.changed.wait()
        except TimeoutError:
            return None
        known.asked = self._clock()
        return RunUpdate(known.body, known.version)

    def wake_all(self) -> None:
        """Answers every waiting viewer now (the server is stopping)."""
        for known in self._followed.values():
            known.changed.set()

    def _change(self, known: _Followed, body: Mapping[str, Any] | None, version: str) -> None:
        known.body, known.version = body, version
        changed, known.changed = known.changed, asyncio.Event()
        changed.set()

    def _sweep(self) -> None:
        now = self._clock()
        if now - self._swept < SWEEP_SECONDS:
            return
        self._swept = now
        for key in [k for k, v in self._followed.items() if now - v.asked > self._keep_seconds]:
            del self._followed[key]
