"""Leadership: what the replica that holds the Lease does that the others do not, and the hand-over.

Every replica runs the same: kopf's indexes and the operator's own watches keep its caches warm,
and every replica serves invoke (it writes nothing to the API). Only the leader writes: it
reconciles ServiceSteps and Workflows, drives WorkflowRuns, keeps run history, checks url steps
and posts Events. The Lease (`election.LeaseElector`) says who leads and until when; the writers
ask `Runtime.leads()` before they start, and the API client refuses any write past the fence.

`lead_forever` runs the election and, each time this replica becomes the leader:

1. forgets what it wrote before (another replica may have written since) and resynchronises,
   level-triggered: every ServiceStep is reconciled, every Workflow's status refreshed, and every
   WorkflowRun listed and handed to the run supervisor, which resumes the unfinished ones from
   their checkpoints;
2. starts the leader's loops: url-step health checks, run retention, the schedules' timers
   (`workflowschedules.scheduler`) and the Approvals' judgments (`approvals.judging`).

When it stops leading (its fence passed without a renewal, or another replica holds the Lease),
it stops writing at once: the loops, the run tasks (their status untouched, for the new leader to
resume), the reconciles and status refreshes are cancelled and queued Events dropped. It goes on
serving invoke as a standby and tries to lead again.

At shutdown the operator cancels this task, flushes its Events while its fence still holds, and
then releases the Lease (`wiring.stop`), so that a standby takes over within a retry period
rather than a lease duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from stepline.api import API_VERSION, Workflow
from stepline.controllers.approvals.judging import judge_forever
from stepline.controllers.runtime import Runtime
from stepline.controllers.servicesteps.checks import check_external_steps_forever
from stepline.controllers.servicesteps.reconciler import StepView, reconcile_soon
from stepline.controllers.workflowruns.history import RunIndex, keep_runs_forever
from stepline.controllers.workflowruns.supervisor import RunSupervisor
from stepline.controllers.workflowruns.watch import wait_for_indexes
from stepline.controllers.workflows.handlers import refresh_workflow
from stepline.controllers.workflowschedules.scheduler import schedule_forever
from stepline.errors import KubeApiError, NotLeadingError

logger = logging.getLogger(__name__)
# Seconds between attempts to list the WorkflowRuns on taking over, while the API fails.
LIST_RETRY_SECONDS = 2.0


async def lead_forever(
    runtime: Runtime,
    *,
    supervisor: RunSupervisor,
    view: StepView,
    workflows: Mapping[Any, Any],
    runs: RunIndex,
) -> None:
    """The election, and the leader's work while this replica leads (module docstring); until
    cancelled."""
    elector = runtime.elector
    election = asyncio.create_task(elector.run(), name="leader election")
    try:
        while True:
            await elector.wait_leading()
            work = asyncio.create_task(
                lead(runtime, supervisor=supervisor, view=view, workflows=workflows, runs=runs),
                name="leader's work",
            )
            try:
                await elector.wait_lost()
            except asyncio.CancelledError:  # the operator stops: its Events are flushed
                await stop_leading(runtime, supervisor, work, drop_events=False)
                raise
            await stop_leading(runtime, supervisor, work, drop_events=True)
    finally:
        election.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await election


async def lead(
    runtime: Runtime,
    *,
    supervisor: RunSupervisor,
    view: StepView,
    workflows: Mapping[Any, Any],
    runs: RunIndex,
) -> None:
    """What the leader does from taking over until it stops leading."""
    runtime.forget_writes()
    loops = [
        asyncio.create_task(check_external_steps_forever(runtime), name="external step checks"),
        asyncio.create_task(
            keep_runs_forever(runtime, workflows=workflows, runs=runs), name="run retention"
        ),
        asyncio.create_task(schedule_forever(runtime, workflows=workflows), name="schedules"),
    ]
    if runtime.settings.approvals:
        loops.append(asyncio.create_task(judge_forever(runtime), name="Approval judgments"))
    try:
        await resync(runtime, supervisor=supervisor, view=view, workflows=workflows)
        await asyncio.gather(*loops)
    finally:
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)


async def resync(
    runtime: Runtime, *, supervisor: RunSupervisor, view: StepView, workflows: Mapping[Any, Any]
) -> None:
    """Everything written afresh, as if the operator had just started (module docstring)."""
    await wait_for_indexes(runtime)
    for key in list(view.steps.keys()):
        reconcile_soon(runtime, key, view)
    for store in list(workflows.values()):
        for workflow in list(store):
            if isinstance(workflow, Workflow):
                await _refresh(runtime, workflow, view)
    await hand_runs_to_supervisor(runtime, supervisor)
    logger.info("resynchronised as the leader: %d ServiceSteps, %d Workflows",
                len(view.steps), len(workflows))  # fmt: skip


async def _refresh(runtime: Runtime, workflow: Workflow, view: StepView) -> None:
    try:
        await refresh_workflow(runtime, workflow, view.steps)
    except NotLeadingError:
        raise
    except KubeApiError as exc:  # its next event, or the next leader, writes it
        namespace, name = workflow.metadata.namespace, workflow.metadata.name
        logger.warning("Workflow %s/%s: status not written: %s", namespace, name, exc)


async def hand_runs_to_supervisor(runtime: Runtime, supervisor: RunSupervisor) -> None:
    """Lists every WorkflowRun, page by page, into the supervisor: the unfinished ones without a
    task get one. (The run watch goes on feeding it; a run both show is started once.)"""
    for namespace in tuple(runtime.settings.namespaces) or (None,):
        token: str | None = None
        while True:
            try:
                page = await runtime.kube.list_page(
                    API_VERSION, "WorkflowRun", namespace, continue_token=token
                )
            except KubeApiError as exc:
                logger.warning("could not list WorkflowRuns: %s; again in %.0f s",
                               exc, LIST_RETRY_SECONDS)  # fmt: skip
                await asyncio.sleep(LIST_RETRY_SECONDS)
                continue
            for item in page.get("items") or ():
                supervisor.follow_event("ADDED", item)
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                break


async def stop_leading(
    runtime: Runtime, supervisor: RunSupervisor, work: asyncio.Task[None], *, drop_events: bool
) -> None:
    """Stops every writer of this replica (module docstring); `drop_events`: and its queued
    Events (kept when the operator stops: it flushes them before releasing the Lease)."""
    work.cancel()
    steps = runtime.servicesteps
    for task in (*steps.reconciles.values(), *steps.status_refreshes.values()):
        task.cancel()
    runtime.servicesteps.status_refreshes.clear()
    runtime.servicesteps.reconciles_due.clear()
    dropped = runtime.events.drop_queued() if drop_events else 0
    await supervisor.shutdown()
    await asyncio.gather(work, return_exceptions=True)
    if dropped:
        logger.info("%d Events dropped on stepping down: the new leader posts its own", dropped)
