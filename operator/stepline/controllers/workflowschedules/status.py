"""A WorkflowSchedule's status, computed from the schedule, its runs and what was done now. Pure.

Ready says whether the schedule can start runs: it parses, its zone exists and its Workflow
exists (reasons InvalidSchedule, InvalidTimeZone, WorkflowNotFound when not; Suspended or
Scheduled when it can). `lastSuccessfulTime` never moves back, though the run that set it may
have been deleted since by a history limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from stepline.api import (
    ActiveRun,
    ConditionStatus,
    ConditionType,
    Reason,
    RunPhase,
    ScheduleSkip,
    WorkflowSchedule,
    WorkflowScheduleStatus,
    set_condition,
)
from stepline.api.schedules import MAX_ACTIVE_LISTED
from stepline.controllers.workflowschedules.runindex import ScheduledRun
from stepline.controllers.workflowschedules.timing import ScheduleError


@dataclass(frozen=True)
class Observation:
    """What the controller saw and did at one reconcile."""

    runs: Sequence[ScheduledRun]
    problem: ScheduleError | None
    workflow_exists: bool
    started: datetime | None = None  # the schedule time a run was started for now
    skipped: ScheduleSkip | None = None  # the schedule time skipped now
    next_time: datetime | None = None


def compute_schedule_status(
    schedule: WorkflowSchedule,
    base: WorkflowScheduleStatus,
    seen: Observation,
    *,
    now: datetime,
) -> WorkflowScheduleStatus:
    """The status to write: `base` (the last written) moved on by what was seen and done."""
    status, reason, message = _readiness(schedule, seen)
    generation = schedule.metadata.generation
    active = [run for run in seen.runs if run.is_active]
    return WorkflowScheduleStatus(
        observed_generation=generation,
        conditions=set_condition(
            base.conditions,
            condition_type=ConditionType.READY,
            status=status,
            reason=reason,
            message=message,
            observed_generation=generation,
            now=now,
        ),
        last_schedule_time=seen.started or base.last_schedule_time,
        last_successful_time=_last_success(base.last_successful_time, seen.runs),
        next_schedule_time=seen.next_time,
        last_skip=seen.skipped or base.last_skip,
        active_count=len(active),
        active=[ActiveRun(name=run.name, uid=run.uid) for run in active[:MAX_ACTIVE_LISTED]],
    )


def _readiness(
    schedule: WorkflowSchedule, seen: Observation
) -> tuple[ConditionStatus, Reason, str]:
    spec = schedule.spec
    if seen.problem is not None:
        return ConditionStatus.FALSE, seen.problem.reason, f"{seen.problem}; no run starts"
    if not seen.workflow_exists:
        return (
            ConditionStatus.FALSE,
            Reason.WORKFLOW_NOT_FOUND,
            f"spec.workflowRef: Workflow {spec.workflow_ref!r} not found in namespace "
            f"{schedule.metadata.namespace!r}; its times are skipped until it exists",
        )
    if spec.suspend:
        return ConditionStatus.TRUE, Reason.SUSPENDED, "suspended: no new runs start"
    return (
        ConditionStatus.TRUE,
        Reason.SCHEDULED,
        f"runs {spec.workflow_ref} at {spec.schedule!r} in {spec.time_zone}",
    )


def _last_success(before: datetime | None, runs: Sequence[ScheduledRun]) -> datetime | None:
    times = [run.finished_at for run in runs if run.phase is RunPhase.SUCCEEDED]
    candidates = [t for t in (before, *times) if t is not None]
    return max(candidates) if candidates else None
