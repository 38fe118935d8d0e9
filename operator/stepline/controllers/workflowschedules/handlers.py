"""kopf's handler for WorkflowSchedules: it keeps each schedule's latest body in the
controller's memory, on every replica, and wakes the leader's scheduler for it. Thin: parse,
remember, wake.

An event handler only, no change handlers, so that kopf writes nothing to a schedule (no
diff-base or progress annotations) and a standby writes nothing at all, as for Workflows. The
scheduler is woken for a schedule seen for the first time or at a new generation (its spec
changed: its timer is set anew), not for the echo of its own status writes.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from stepline.api import GROUP, VERSION, InvalidObjectError, WorkflowSchedule
from stepline.controllers.runtime import runtime_of
from stepline.controllers.servicesteps.handlers import body_reference

logger = logging.getLogger(__name__)


@kopf.on.event(GROUP, VERSION, "workflowschedules")
async def follow_schedule(
    *, type: str, body: kopf.Body, namespace: str | None, name: str, memo: kopf.Memo, **_: Any
) -> None:
    runtime = runtime_of(memo)
    memory, key = runtime.schedules, (namespace or "", name)
    runtime.metrics.mark_watch_event(kind="WorkflowSchedule")
    if type == "DELETED":
        memory.forget(key)
        runtime.forget("WorkflowSchedule", *key)
        runtime.metrics.forget_schedule(namespace=key[0], schedule=name)
        memory.wake(key)  # its timer is cancelled
        return
    try:
        schedule = WorkflowSchedule.from_body(body)
    except InvalidObjectError as exc:  # the API server validated it: an older schema?
        memory.forget(key)
        memory.wake(key)
        runtime.events.warn(body_reference(body), reason="InvalidSpec", message=str(exc))
        return
    before = memory.schedules.get(key)
    memory.schedules[key] = schedule
    if before is None or _generation(before) != _generation(schedule):
        memory.wake(key)


def _generation(schedule: WorkflowSchedule) -> tuple[str, int]:
    return schedule.metadata.uid or "", schedule.metadata.generation or 0
