"""One reconcile of a WorkflowSchedule, on the leader: level-triggered, for a spec change, a run
of it that started or finished, and its timer alike.

It reads the schedule (as kopf last showed it, with the status this process last wrote), its
runs (`runindex`), whether its Workflow exists, and the wall clock; decides (`decisions`); acts:
creates the run (idempotent by its name), cancels the active runs first for Replace, or records
the skipped time; deletes finished runs past the history limits; writes the status; posts
Events and records metrics. It returns when to look again: the schedule's next time.

Events: RunStarted, RunReplaced, RunSkipped (Forbid, or no Workflow), MissedSchedule (past the
starting deadline, a Warning), and on the Ready condition turning False, InvalidSchedule (the
schedule or its zone; no run starts) or WorkflowNotFound.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from stepline.api import (
    API_VERSION,
    ConditionType,
    Reason,
    Retention,
    ScheduleSkip,
    SkipReason,
    WorkflowSchedule,
    WorkflowScheduleStatus,
    find_condition,
)
from stepline.controllers.runtime import Runtime, involved_object, write_status
from stepline.controllers.workflowruns.retention import FinishedRun, select_expired_runs
from stepline.controllers.workflowschedules import decisions, manifests
from stepline.controllers.workflowschedules.runindex import ScheduledRun, ScheduleKey
from stepline.controllers.workflowschedules.status import Observation, compute_schedule_status
from stepline.controllers.workflowschedules.timing import ScheduleError, parse_schedule
from stepline.errors import KubeConflictError
from stepline.observability import ScheduleOutcomeLabel

logger = logging.getLogger(__name__)
KIND = "WorkflowSchedule"

WorkflowExists = Callable[[str, str], bool]


async def reconcile_schedule(
    runtime: Runtime, key: ScheduleKey, *, workflow_exists: WorkflowExists
) -> datetime | None:
    """Converges one schedule (module docstring); when to reconcile it again, if ever."""
    memory = runtime.schedules
    schedule = memory.schedules.get(key)
    if schedule is None:
        return None
    namespace, name = key
    async with runtime.statuses.lock(KIND, namespace, name):
        schedule = memory.schedules.get(key)
        if schedule is None:
            return None  # deleted while this waited
        base = _last_status(runtime, schedule)
        runs = memory.runs.of(namespace, name, uid=schedule.metadata.uid or "")
        now = memory.clock()
        exists = workflow_exists(namespace, schedule.spec.workflow_ref)
        try:
            cron = parse_schedule(schedule.spec.schedule, schedule.spec.time_zone)
        except ScheduleError as problem:
            seen = Observation(runs=runs, problem=problem, workflow_exists=exists)
        else:
            state = _state(schedule, base, runs, workflow_exists=exists)
            decision = decisions.decide(cron, state, now=now)
            seen = await _act(runtime, schedule, decision, runs, workflow_exists=exists)
        await _keep_history(runtime, schedule, runs)
        status = compute_schedule_status(schedule, base, seen, now=now)
        if await write_status(runtime, schedule, status.to_wire()):
            _announce_readiness(runtime, schedule, before=base, after=status)
        at = seen.next_time.timestamp() if seen.next_time is not None else None
        runtime.metrics.set_schedule_next_run(namespace=namespace, schedule=name, at=at)
        return seen.next_time


def _last_status(runtime: Runtime, schedule: WorkflowSchedule) -> WorkflowScheduleStatus:
    """What this process last wrote, else what the object shows: the body kopf last showed may
    not carry our last write yet, and a time dealt with must not be dealt with twice."""
    written = runtime.statuses.last(
        KIND, schedule.metadata.namespace or "", schedule.metadata.name or ""
    )
    if written is None:
        return schedule.status
    return WorkflowScheduleStatus.model_validate(written)


def _state(
    schedule: WorkflowSchedule,
    base: WorkflowScheduleStatus,
    runs: Sequence[ScheduledRun],
    *,
    workflow_exists: bool,
) -> decisions.ScheduleState:
    spec = schedule.spec
    created = schedule.metadata.creation_timestamp
    if created is None:
        raise ValueError(f"WorkflowSchedule {schedule.metadata.name} has no creationTimestamp")
    return decisions.ScheduleState(
        created=created,
        last_schedule_time=base.last_schedule_time,
        last_skip_time=base.last_skip.time if base.last_skip else None,
        suspend=spec.suspend,
        starting_deadline_seconds=spec.starting_deadline_seconds,
        concurrency_policy=spec.concurrency_policy,
        active_runs=[run.name for run in runs if run.is_active],
        workflow_exists=workflow_exists,
    )


async def _act(
    runtime: Runtime,
    schedule: WorkflowSchedule,
    decision: decisions.Decision,
    runs: Sequence[ScheduledRun],
    *,
    workflow_exists: bool,
) -> Observation:
    """Does what `decision` says; what was done, for the status."""
    started: datetime | None = None
    skipped: ScheduleSkip | None = None
    due, reason = decision.time, decision.skip_reason
    if due is not None and decision.action is decisions.Action.SKIP and reason is not None:
        _record_skip(runtime, schedule, due, reason, runs)
        skipped = ScheduleSkip(time=due, reason=reason)
    elif due is not None and decision.action in _STARTING:
        replaced = []
        if decision.action is decisions.Action.REPLACE:
            replaced = [run.name for run in runs if run.is_active]
            for run_name in replaced:
                namespace = schedule.metadata.namespace or ""
                await runtime.kube.apply(manifests.build_cancellation(namespace, run_name))
        await _start_run(runtime, schedule, due, replaced=replaced)
        started = due
    return Observation(
        runs=runs, problem=None, workflow_exists=workflow_exists, started=started,
        skipped=skipped, next_time=decision.next_time,
    )  # fmt: skip


_STARTING = frozenset({decisions.Action.START, decisions.Action.REPLACE})


async def _start_run(
    runtime: Runtime, schedule: WorkflowSchedule, scheduled: datetime, *, replaced: list[str]
) -> None:
    """Creates the run of `scheduled`; a run of that name already there is the one an earlier
    try created (the time is then counted once, by that try)."""
    manifest = manifests.build_scheduled_run(schedule, scheduled)
    run_name = manifest["metadata"]["name"]
    try:
        await runtime.kube.create(manifest)
    except KubeConflictError:
        logger.info("WorkflowSchedule %s/%s: run %s exists already",
                    schedule.metadata.namespace, schedule.metadata.name, run_name)  # fmt: skip
        return
    namespace, name = schedule.metadata.namespace or "", schedule.metadata.name or ""
    at = manifests.format_time(scheduled)
    involved = involved_object(schedule)
    if replaced:
        runtime.events.info(
            involved, reason="RunReplaced",
            message=f"cancelled {', '.join(replaced)} (concurrencyPolicy Replace) and started "
            f"run {run_name} for {at}",
        )  # fmt: skip
        outcome = ScheduleOutcomeLabel.REPLACED
    else:
        runtime.events.info(
            involved, reason="RunStarted", message=f"started run {run_name} for {at}"
        )
        outcome = ScheduleOutcomeLabel.STARTED
    runtime.metrics.record_schedule_run(namespace=namespace, schedule=name, outcome=outcome)


def _record_skip(
    runtime: Runtime,
    schedule: WorkflowSchedule,
    scheduled: datetime,
    reason: SkipReason,
    runs: Sequence[ScheduledRun],
) -> None:
    namespace, name = schedule.metadata.namespace or "", schedule.metadata.name or ""
    at = manifests.format_time(scheduled)
    involved = involved_object(schedule)
    if reason is SkipReason.DEADLINE_EXCEEDED:
        deadline = schedule.spec.starting_deadline_seconds
        runtime.events.warn(
            involved, reason="MissedSchedule",
            message=f"no run for {at}: noticed more than startingDeadlineSeconds ({deadline}) "
            "late (the operator was down, or the schedule suspended)",
        )  # fmt: skip
        outcome = ScheduleOutcomeLabel.MISSED
    elif reason is SkipReason.FORBID:
        active = ", ".join(run.name for run in runs if run.is_active)
        runtime.events.info(
            involved, reason="RunSkipped",
            message=f"no run for {at}: {active} still active (concurrencyPolicy Forbid)",
        )  # fmt: skip
        outcome = ScheduleOutcomeLabel.SKIPPED
    else:
        runtime.events.warn(
            involved, reason="RunSkipped",
            message=f"no run for {at}: Workflow {schedule.spec.workflow_ref!r} not found",
        )  # fmt: skip
        outcome = ScheduleOutcomeLabel.SKIPPED
    runtime.metrics.record_schedule_run(namespace=namespace, schedule=name, outcome=outcome)


async def _keep_history(
    runtime: Runtime, schedule: WorkflowSchedule, runs: Sequence[ScheduledRun]
) -> None:
    """Deletes the finished runs past the schedule's history limits, oldest first."""
    finished = [
        FinishedRun(run.name, run.phase, run.finished_at or run.scheduled_time or _EPOCH)
        for run in runs
        if not run.is_active
    ]
    if not finished:
        return
    limits = Retention(
        successful_runs=schedule.spec.successful_runs_history_limit,
        failed_runs=schedule.spec.failed_runs_history_limit,
    )
    namespace = schedule.metadata.namespace or ""
    for run_name in select_expired_runs(finished, limits, now=runtime.schedules.clock()):
        await runtime.kube.delete(API_VERSION, "WorkflowRun", namespace, run_name)


def _announce_readiness(
    runtime: Runtime,
    schedule: WorkflowSchedule,
    *,
    before: WorkflowScheduleStatus,
    after: WorkflowScheduleStatus,
) -> None:
    old = find_condition(before.conditions, ConditionType.READY)
    new = find_condition(after.conditions, ConditionType.READY)
    if new is None or new.status == "True":
        return
    if old is not None and (old.status, old.reason, old.message) == (
        new.status,
        new.reason,
        new.message,
    ):
        return
    invalid = new.reason in {Reason.INVALID_SCHEDULE, Reason.INVALID_TIME_ZONE}
    reason = "InvalidSchedule" if invalid else new.reason
    runtime.events.warn(involved_object(schedule), reason=reason, message=new.message)


_EPOCH = datetime.fromtimestamp(0, UTC)
