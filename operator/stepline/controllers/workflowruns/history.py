"""Run retention and run statistics, for every Workflow, every 30 seconds (a setting).

One loop in the operator (not a kopf timer per Workflow: those need a finalizer on every
Workflow) reads the runs of each workflow from the run index (`RunIndex`), deletes the finished
runs that its retention policy lets go (`retention`), and writes the workflow's run
statistics (`statistics`) to its status when they changed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stepline.api import API_VERSION, RunPhase, RunStatistics, StepPhase, Workflow
from stepline.controllers.runtime import Runtime
from stepline.controllers.workflowruns.prediction import DurationHistory, SuccessfulRun
from stepline.controllers.workflowruns.retention import FinishedRun, select_expired_runs
from stepline.controllers.workflowruns.statistics import RunSummary, compute_run_statistics
from stepline.errors import KubeApiError
from stepline.ui.catalog import RunRow

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunEntry:
    """What retention and statistics need of one run."""

    created: datetime | None
    finished: FinishedRun | None
    summary: RunSummary


class RunIndex:
    """What retention and statistics need of every run, by its workflow: kept by the run watch
    (`runs.RunWatch`) from each event's raw body, not a parsed WorkflowRun, as it sees every
    checkpoint of every run."""

    def __init__(self, histories: dict[tuple[str, str], DurationHistory] | None = None) -> None:
        self._by_workflow: dict[tuple[str, str], dict[str, RunEntry]] = {}
        # The last successful runs of each workflow, kept after retention deletes them; shared
        # with the run tasks, which estimate a running run's completion from them.
        self._histories = histories if histories is not None else {}

    def record(self, event_type: str, body: Mapping[str, Any]) -> None:
        try:
            metadata = body["metadata"]
            key = (metadata.get("namespace", ""), body["spec"]["workflowRef"])
            name = metadata["name"]
            entry = None if event_type == "DELETED" else run_entry(body)
        except (KeyError, TypeError, ValueError):  # not a WorkflowRun of this schema: skipped
            return
        if entry is not None:
            runs = self._by_workflow.setdefault(key, {})
            before = runs.get(name)
            runs[name] = entry
            if _newly_succeeded(before, entry):
                summary = entry.summary
                history = self._histories.setdefault(key, DurationHistory())
                history.add(SuccessfulRun(summary.duration_seconds or 0.0, summary.step_seconds))
            return
        runs = self._by_workflow.get(key, {})
        runs.pop(name, None)
        if not runs:
            self._by_workflow.pop(key, None)

    def entries(self, namespace: str, workflow: str) -> list[RunEntry]:
        return list(self._by_workflow.get((namespace, workflow), {}).values())

    def rows_in(self, namespace: str) -> Iterator[RunRow]:
        """Every run of `namespace`, for the web view's runs page (`ui.catalog.RunSource`)."""
        for (where, workflow), runs in self._by_workflow.items():
            if where != namespace:
                continue
            for entry in runs.values():
                summary = entry.summary
                yield RunRow(
                    summary.name, workflow, summary.phase, entry.created, summary.duration_seconds
                )

    def statistics(self, namespace: str, workflow: str) -> RunStatistics | None:
        """The workflow's run statistics as they are now: what retention writes to its status
        at its next round (the web view shows them at once)."""
        entries = self.entries(namespace, workflow)
        return run_statistics(entries, self.observations(namespace, workflow))

    def observations(self, namespace: str, workflow: str) -> list[SuccessfulRun]:
        """The workflow's last successful runs (DurationHistory), deleted ones included."""
        history = self._histories.get((namespace, workflow))
        return history.observations() if history is not None else []

    def forget_histories_except(self, workflows: set[tuple[str, str]]) -> None:
        """Drops the histories of workflows that no longer exist."""
        for key in [key for key in self._histories if key not in workflows]:
            del self._histories[key]


def run_statistics(
    entries: Sequence[RunEntry], observed: Sequence[SuccessfulRun]
) -> RunStatistics | None:
    """The statistics of a workflow's runs (None without any), the newest named last."""
    if not entries:
        return None
    newest = max(entries, key=lambda e: e.created or datetime.min.replace(tzinfo=UTC))
    return compute_run_statistics(
        [entry.summary for entry in entries],
        last_run_name=newest.summary.name,
        observed=observed or None,
    )


def _newly_succeeded(before: RunEntry | None, after: RunEntry) -> bool:
    """Whether this event shows the run succeeded for the first time (each run counts once,
    however often its body is seen again: relists, later patches)."""
    succeeded = after.summary.phase is RunPhase.SUCCEEDED
    return (
        succeeded
        and after.summary.duration_seconds is not None
        and (before is None or before.summary.phase is not RunPhase.SUCCEEDED)
    )


def run_entry(body: Mapping[str, Any]) -> RunEntry:
    """What retention and statistics need of a run's body; KeyError/TypeError/ValueError if it
    is not shaped like a WorkflowRun."""
    name, status = body["metadata"]["name"], body.get("status") or {}
    phase = RunPhase(status.get("phase") or RunPhase.PENDING)
    finished_at = _timestamp(status.get("finishedAt"))
    finished = None
    if phase.is_finished and finished_at is not None:
        finished = FinishedRun(name=name, phase=phase, finished_at=finished_at)
    steps = {
        record["name"]: float(record["durationSeconds"])
        for record in status.get("steps") or ()
        if record.get("phase") == StepPhase.SUCCEEDED and record.get("durationSeconds") is not None
    }
    duration = status.get("durationSeconds")
    summary = RunSummary(name, phase, None if duration is None else float(duration), steps)
    created = _timestamp(body["metadata"].get("creationTimestamp"))
    return RunEntry(created=created, finished=finished, summary=summary)


def _timestamp(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


async def keep_runs_forever(
    runtime: Runtime, *, workflows: Mapping[Any, Any], runs: RunIndex
) -> None:
    while True:
        await asyncio.sleep(runtime.settings.retention_interval_seconds)
        for (namespace, name), store in list(workflows.items()):
            for workflow in list(store):
                entries = runs.entries(namespace, name)
                observed = runs.observations(namespace, name)
                try:
                    await keep_runs(runtime, workflow, entries, observed=observed)
                except KubeApiError as exc:
                    logger.warning("retention of workflow %s/%s: %s", namespace, name, exc)
        runs.forget_histories_except({key for key, store in workflows.items() if store})


async def keep_runs(
    runtime: Runtime,
    workflow: Workflow,
    entries: list[RunEntry],
    *,
    observed: Sequence[SuccessfulRun] = (),
) -> None:
    namespace = workflow.metadata.namespace or ""
    finished = [entry.finished for entry in entries if entry.finished is not None]
    retention = workflow.spec.retention
    for name in select_expired_runs(finished, retention, now=datetime.now(UTC)):
        await runtime.kube.delete(API_VERSION, "WorkflowRun", namespace, name)
    computed = run_statistics(entries, observed)
    if computed is None:
        return
    statistics = computed.to_wire()
    key = ("WorkflowRunStatistics", namespace, workflow.metadata.name or "")
    current = workflow.status.runs.to_wire() if workflow.status.runs else None
    if statistics not in (current, runtime.statuses.last(*key)):
        await runtime.kube.patch_status(
            API_VERSION, "Workflow", namespace, workflow.metadata.name or "", {"runs": statistics}
        )
        runtime.statuses.remember(*key, statistics)
