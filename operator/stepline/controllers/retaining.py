"""Run retention and run statistics, for every Workflow, every 30 seconds (a setting).

One loop in the operator (not a kopf timer per Workflow: those need a finalizer on every
Workflow) reads the runs of each workflow from an index, deletes the finished runs that its
retention policy lets go (`engine.retention`), and writes the workflow's run statistics
(`engine.statistics`) to its status when they changed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kopf

from stepline.api import API_VERSION, GROUP, VERSION, InvalidObjectError, Workflow, WorkflowRun
from stepline.controllers.runtime import Runtime
from stepline.engine.retention import FinishedRun, select_expired_runs
from stepline.engine.statistics import RunSummary, compute_run_statistics
from stepline.errors import KubeApiError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunEntry:
    """What retention and statistics need of one run."""

    created: datetime | None
    finished: FinishedRun | None
    summary: RunSummary


@kopf.index(GROUP, VERSION, "workflowruns")
def runs_by_workflow(*, body: kopf.Body, namespace: str | None, **_: Any) -> dict[Any, Any]:
    try:
        run = WorkflowRun.from_body(body)
    except InvalidObjectError:
        return {}
    status, name = run.status, run.metadata.name or ""
    finished = None
    if status.phase.is_finished and status.finished_at is not None:
        finished = FinishedRun(name=name, phase=status.phase, finished_at=status.finished_at)
    steps = {
        record.name: record.duration_seconds
        for record in status.steps
        if record.phase == "Succeeded" and record.duration_seconds is not None
    }
    summary = RunSummary(name, status.phase, status.duration_seconds, steps)
    entry = RunEntry(created=run.metadata.creation_timestamp, finished=finished, summary=summary)
    return {(namespace, run.spec.workflow_ref): entry}


async def keep_runs_forever(
    runtime: Runtime, *, workflows: Mapping[Any, Any], runs: Mapping[Any, Any]
) -> None:
    while True:
        await asyncio.sleep(runtime.settings.retention_interval_seconds)
        for (namespace, name), store in list(workflows.items()):
            for workflow in list(store):
                entries = [e for e in runs.get((namespace, name), ()) if isinstance(e, RunEntry)]
                try:
                    await keep_runs(runtime, workflow, entries)
                except KubeApiError as exc:
                    logger.warning("retention of workflow %s/%s: %s", namespace, name, exc)


async def keep_runs(runtime: Runtime, workflow: Workflow, entries: list[RunEntry]) -> None:
    namespace = workflow.metadata.namespace or ""
    finished = [entry.finished for entry in entries if entry.finished is not None]
    retention = workflow.spec.retention
    for name in select_expired_runs(finished, retention, now=datetime.now(UTC)):
        await runtime.kube.delete(API_VERSION, "WorkflowRun", namespace, name)
    if not entries:
        return
    newest = max(entries, key=lambda e: e.created or datetime.min.replace(tzinfo=UTC))
    statistics = compute_run_statistics(
        [entry.summary for entry in entries], last_run_name=newest.summary.name
    ).to_wire()
    key = ("WorkflowRunStatistics", namespace, workflow.metadata.name or "")
    current = workflow.status.runs.to_wire() if workflow.status.runs else None
    if statistics not in (current, runtime.written_statuses.get(key)):
        await runtime.kube.patch_status(
            API_VERSION, "Workflow", namespace, workflow.metadata.name or "", {"runs": statistics}
        )
        runtime.written_statuses[key] = statistics
