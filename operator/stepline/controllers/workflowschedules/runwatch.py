"""The watch of scheduled runs: every WorkflowRun labelled `stepline.io/schedule`, followed in the
watched namespaces by a `Follower` of our own, into the run index (`runindex`). It runs on every
replica, so that a replica taking over the lead knows each schedule's active runs at once.

A run that starts, finishes or goes away wakes its schedule's reconcile on the leader (its
active list, `lastSuccessfulTime`, the history limits); a checkpoint of a run under way does not.
The run watch of `workflowruns` sees these runs too; this one is filtered by the API server to
the labelled runs, and keeps a few fields of each.
"""

from __future__ import annotations

import asyncio
from typing import Any

from stepline.api import API_VERSION
from stepline.controllers.informers import Follower, WatchedKind
from stepline.controllers.runtime import Runtime
from stepline.controllers.workflowschedules.runindex import SCHEDULE_LABEL

SCHEDULED_RUN = WatchedKind(API_VERSION, "WorkflowRun")


async def follow_scheduled_runs(runtime: Runtime) -> None:
    """Follows the labelled runs of every watched namespace (none: all) until cancelled."""
    memory = runtime.schedules
    scopes: tuple[str | None, ...] = tuple(runtime.settings.namespaces) or (None,)
    waiting = set(scopes)

    def observe(event_type: str, body: dict[str, Any]) -> str | None:
        key = memory.runs.record(event_type, body)
        if key is not None:
            memory.wake(key)
        labels = (body.get("metadata") or {}).get("labels") or {}
        schedule = labels.get(SCHEDULE_LABEL)
        return schedule if isinstance(schedule, str) else None

    def listed(scope: str | None) -> None:
        waiting.discard(scope)
        if not waiting:
            memory.runs_listed.set()

    followers = [
        Follower(
            runtime.kube,
            SCHEDULED_RUN,
            scope,
            label_selector=SCHEDULE_LABEL,
            timeout_seconds=runtime.settings.watch_server_timeout_seconds,
            observe=observe,
            tombstone=_tombstone,
            on_listed=lambda scope=scope: listed(scope),  # type: ignore[misc]
        )
        for scope in scopes
    ]
    async with asyncio.TaskGroup() as group:
        for follower in followers:
            where = follower.namespace or "all namespaces"
            group.create_task(follower.run(), name=f"watch scheduled WorkflowRuns in {where}")


def _tombstone(namespace: str, name: str, schedule: str) -> dict[str, Any]:
    return {
        "metadata": {"namespace": namespace, "name": name, "labels": {SCHEDULE_LABEL: schedule}}
    }
