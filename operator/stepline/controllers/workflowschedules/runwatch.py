"""The watch of scheduled runs: every WorkflowRun labelled `stepline.io/schedule`, followed in the
watched namespaces by a `Follower` of our own, into the run index (`runindex`). It runs on every
replica, so that a replica taking over the lead knows each schedule's active runs at once.

A run that starts, finishes or goes away wakes its schedule's reconcile on the leader (its
active list, `lastSuccessfulTime`, the history limits); a checkpoint of a run under way does not.
The run watch of `workflowruns` sees these runs too; this one is filtered by the API server to
the labelled runs, and keeps a few fields of each.
"""

from __future__ import annotations

from typing import Any

from stepline.api import API_VERSION
from stepline.controllers.informers import WatchedKind, follow_namespaces
from stepline.controllers.runtime import Runtime
from stepline.controllers.workflowschedules.runindex import SCHEDULE_LABEL

SCHEDULED_RUN = WatchedKind(API_VERSION, "WorkflowRun")


async def follow_scheduled_runs(runtime: Runtime) -> None:
    """Follows the labelled runs of every watched namespace (none: all) until cancelled."""
    memory = runtime.schedules

    def observe(event_type: str, body: dict[str, Any]) -> str | None:
        key = memory.runs.record(event_type, body)
        if key is not None:
            memory.wake(key)
        labels = (body.get("metadata") or {}).get("labels") or {}
        schedule = labels.get(SCHEDULE_LABEL)
        return schedule if isinstance(schedule, str) else None

    await follow_namespaces(
        runtime.kube, SCHEDULED_RUN, runtime.settings.namespaces, label_selector=SCHEDULE_LABEL,
        timeout_seconds=runtime.settings.watch_server_timeout_seconds, observe=observe,
        tombstone=_tombstone, on_listed=memory.runs_listed.set,
    )  # fmt: skip


def _tombstone(namespace: str, name: str, schedule: str) -> dict[str, Any]:
    return {
        "metadata": {"namespace": namespace, "name": name, "labels": {SCHEDULE_LABEL: schedule}}
    }
