"""kopf handlers for WorkflowRuns. Thin: every event goes to the run supervisor
(`running.RunSupervisor`), which owns the run tasks. The engine's step directory is fed from
the ServiceStep watch here, so a run waiting for a step to become Ready wakes when it does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from stepline.api import GROUP, VERSION, InvalidObjectError, ServiceStep, WorkflowRun
from stepline.controllers.runtime import Runtime, runtime_of
from stepline.controllers.servicesteps import indexed_step, read_step


@kopf.on.event(GROUP, VERSION, "workflowruns")
async def follow_run(
    *, type: str, body: kopf.Body, memo: kopf.Memo, logger: Any, **kwargs: Any
) -> None:
    runtime = runtime_of(memo)
    runtime.metrics.mark_watch_event(kind="WorkflowRun")
    fill_step_directory_once(runtime, kwargs["servicesteps"])
    try:
        runtime.runs.follow_event(type, body, lambda: WorkflowRun.from_body(body))
    except InvalidObjectError as exc:  # the API server validated it; an older schema, perhaps
        logger.error("ignoring an invalid WorkflowRun: %s", exc)


def fill_step_directory_once(runtime: Runtime, index: Mapping[Any, Any]) -> None:
    """Runs resumed at start-up may be seen before the ServiceStep events that fill the engine's
    directory; kopf's index is complete by then (it is filled before handlers run), so copy it."""
    if runtime.step_directory_filled:
        return
    for store in index.values():
        for step in store:
            if not isinstance(step, ServiceStep):
                continue
            namespace, name = step.metadata.namespace or "", step.metadata.name or ""
            if runtime.steps.find_step(namespace, name) is None:
                runtime.steps.put(step)
    runtime.step_directory_filled = True


@kopf.on.event(GROUP, VERSION, "servicesteps")
async def follow_step_for_runs(
    *, type: str, body: kopf.Body, namespace: str | None, name: str, memo: kopf.Memo, **kwargs: Any
) -> None:
    """The engine's directory shares the step the `servicesteps` index parsed from this body:
    no second parse per event, no second copy per step."""
    steps = runtime_of(memo).steps
    if type == "DELETED":
        steps.remove(namespace or "", name)
        return
    try:
        steps.put(indexed_step(kwargs["servicesteps"], body) or read_step(body))
    except InvalidObjectError:
        steps.remove(namespace or "", name)
