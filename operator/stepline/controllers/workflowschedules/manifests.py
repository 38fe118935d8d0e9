"""The objects a WorkflowSchedule writes: its runs, and the request to cancel one. Pure: plain
manifests, no I/O.

A run is named `<schedule>-<scheduled time in Unix minutes>`, as CronJob names its Jobs: the name
makes creation idempotent (an operator that dies between creating a run and writing the
schedule's status gets AlreadyExists on its next try, and moves on). It carries the label
`stepline.io/schedule` (the runs of a schedule are listed by it), the annotation
`stepline.io/scheduled-time`, and a controller ownerReference to the schedule, so that deleting
the schedule deletes its runs and `kubectl get` shows who made them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from stepline.api import API_VERSION, WorkflowSchedule
from stepline.controllers.workflowschedules.runindex import (
    SCHEDULE_LABEL,
    SCHEDULED_TIME_ANNOTATION,
)
from stepline.controllers.workflowschedules.timing import run_minutes


def build_run_name(schedule_name: str, scheduled: datetime) -> str:
    return f"{schedule_name}-{run_minutes(scheduled)}"


def build_scheduled_run(schedule: WorkflowSchedule, scheduled: datetime) -> dict[str, Any]:
    """The WorkflowRun of `schedule` for its time `scheduled`."""
    name = schedule.metadata.name or ""
    return {
        "apiVersion": API_VERSION,
        "kind": "WorkflowRun",
        "metadata": {
            "name": build_run_name(name, scheduled),
            "namespace": schedule.metadata.namespace,
            "labels": {SCHEDULE_LABEL: name},
            "annotations": {SCHEDULED_TIME_ANNOTATION: format_time(scheduled)},
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "WorkflowSchedule",
                    "name": name,
                    "uid": schedule.metadata.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {"workflowRef": schedule.spec.workflow_ref, "input": schedule.spec.input},
    }


def build_cancellation(namespace: str, run_name: str) -> dict[str, Any]:
    """The server-side apply that sets `spec.cancel` on a run (Replace): the operator owns that
    one field, and every other stays with whoever set it."""
    return {
        "apiVersion": API_VERSION,
        "kind": "WorkflowRun",
        "metadata": {"name": run_name, "namespace": namespace},
        "spec": {"cancel": True},
    }


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC to the second, as metav1.Time is written."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
