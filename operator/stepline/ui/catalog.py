"""What the web view reads, handed to it by the operator's wiring (`controllers.wiring`): the
Workflows and ServiceSteps of kopf's indexes, the runs of the run watch's index, the feed of
followed runs, and one read of a run from the API server. The view itself keeps nothing of its
own but the feed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from stepline.api import RunPhase, RunStatistics, ServiceStep, Workflow
from stepline.ui.live import RunFeed


@dataclass(frozen=True, slots=True)
class RunRow:
    """One run as the runs page lists it."""

    name: str
    workflow: str
    phase: RunPhase
    created: datetime | None
    duration_seconds: float | None


class RunSource(Protocol):
    def rows_in(self, namespace: str) -> Iterable[RunRow]:
        """Every run of the namespace the run watch has seen, in no order."""
        ...

    def statistics(self, namespace: str, workflow: str) -> RunStatistics | None:
        """The workflow's run statistics now (its status has them up to 30 s later)."""
        ...


@dataclass(frozen=True)
class Catalog:
    workflows: Callable[[], Iterable[Workflow]]  # every Workflow the operator watches
    workflow: Callable[[str, str], Workflow | None]  # (namespace, name)
    service_step: Callable[[str, str], ServiceStep | None]  # (namespace, name)
    runs: RunSource
    read_run: Callable[[str, str], Awaitable[dict[str, Any] | None]]  # None: not found
    feed: RunFeed
    caches_warm: Callable[[], bool]
    watched_namespaces: tuple[str, ...]  # empty: all
