"""The leader's scheduler: one timer per schedule, and one reconcile at a time per schedule.

`schedule_forever` (`Scheduler.run()`) is one of the leader's loops (`leadership.lead`): it
starts once the runs of every schedule are listed (a Forbid must see the active run), reconciles
every schedule known, and from then on reconciles one whenever kopf shows it changed, a run of
it starts or finishes (`memory.wake`), or its timer rings. Each reconcile sets the schedule's
timer for its next time (`alarms`). When the replica stops leading, the task is cancelled: every
timer and every reconcile under way is cancelled with it, so a standby holds none.

A reconcile asked for while one of the same schedule runs is done once more after it, never
beside it. A reconcile that fails (the API server away) is tried again after a backoff of 1 s
doubling to a minute; one refused because this replica no longer leads is not.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from stepline.api import Workflow
from stepline.controllers.backoff import backoff
from stepline.controllers.runtime import Runtime
from stepline.controllers.workflowschedules.alarms import Alarms
from stepline.controllers.workflowschedules.memory import asleep
from stepline.controllers.workflowschedules.reconciler import reconcile_schedule
from stepline.controllers.workflowschedules.runindex import ScheduleKey
from stepline.errors import KubeApiError, NotLeadingError

logger = logging.getLogger(__name__)
RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 60.0


async def schedule_forever(runtime: Runtime, *, workflows: Mapping[Any, Any]) -> None:
    """The leader's scheduling (module docstring), until cancelled; `workflows` is kopf's index
    of Workflows (a schedule whose Workflow is missing skips its times)."""
    await Scheduler(runtime, workflows=workflows).run()


class Scheduler:
    """The schedules' timers and reconciles, while this replica leads (module docstring)."""

    def __init__(self, runtime: Runtime, *, workflows: Mapping[Any, Any]) -> None:
        self._runtime = runtime
        self._workflows = workflows
        self._memory = runtime.schedules
        self.alarms = Alarms(ring=self.reconcile_soon, clock=self._memory.clock)
        self._tasks: dict[ScheduleKey, asyncio.Task[None]] = {}
        self._again: set[ScheduleKey] = set()
        self._failures: dict[ScheduleKey, int] = {}

    async def run(self) -> None:
        """Schedules until cancelled."""
        await self._memory.runs_listed.wait()
        self._memory.wake = self.reconcile_soon
        try:
            for key in list(self._memory.schedules):
                self.reconcile_soon(key)
            await asyncio.Future()  # until cancelled: the timers do the rest
        finally:
            self._memory.wake = asleep
            self.alarms.cancel_all()
            tasks = list(self._tasks.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def reconcile_soon(self, key: ScheduleKey) -> None:
        """Reconciles the schedule now, or once more after the reconcile of it under way."""
        if not self._runtime.leads():
            return
        running = self._tasks.get(key)
        if running is not None and not running.done():
            # It looks at `_again` once more before it ends: no ring is lost.
            self._again.add(key)
            return
        task = asyncio.create_task(self._reconcile(key), name=f"WorkflowSchedule {key}")
        self._tasks[key] = task
        task.add_done_callback(lambda done: self._forget_task(key, done))

    def _forget_task(self, key: ScheduleKey, task: asyncio.Task[None]) -> None:
        # A task that has ended but whose callback has not run yet no longer counts as running
        # (`reconcile_soon` starts another): only the task still registered is forgotten.
        if self._tasks.get(key) is task:
            del self._tasks[key]

    async def _reconcile(self, key: ScheduleKey) -> None:
        while True:
            self._again.discard(key)
            await self._reconcile_once(key)
            if key not in self._again:
                return

    async def _reconcile_once(self, key: ScheduleKey) -> None:
        try:
            with self._runtime.reconciling("WorkflowSchedule"):
                upcoming = await reconcile_schedule(
                    self._runtime, key, workflow_exists=self._workflow_exists
                )
        except NotLeadingError:
            return  # the new leader schedules it
        except (KubeApiError, ValueError) as exc:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
            delay = backoff(RETRY_SECONDS, failures, maximum=MAX_RETRY_SECONDS)
            logger.warning("WorkflowSchedule %s/%s: %s; again in %.0f s", *key, exc, delay)
            self._retry_later(key, delay)
            return
        self._failures.pop(key, None)
        if upcoming is None:
            self.alarms.cancel(key)
        else:
            self.alarms.set(key, upcoming)

    def _retry_later(self, key: ScheduleKey, delay: float) -> None:
        # Through the schedule's timer, so that leaving the lead cancels the retry too.
        self.alarms.set(key, self._memory.clock() + timedelta(seconds=delay))

    def _workflow_exists(self, namespace: str, name: str) -> bool:
        found = next(iter(self._workflows.get((namespace, name), ())), None)
        return isinstance(found, Workflow)
