"""Following WorkflowRuns: a watch of our own (`RunWatch`), not kopf, feeds every event to the run
supervisor (`supervisor.RunSupervisor`, which owns the run tasks) and to the run index that
retention and statistics read (`history.RunIndex`).

Why not kopf: every checkpoint of a run is a status write whose watch event comes back, three or
more per run. kopf handles each in a worker task per object, with its memories, its diff base
and its index machinery, for events that are nearly all our own writes coming back: most of the
operator's CPU per durable run (bench/runs/RESULTS.md). Here an event costs a look at its raw
body.

The watch starts once kopf has filled its indexes of Workflows and ServiceSteps, so that a run
resumed at start-up finds its Workflow and its steps (a run that started before them would say
its Workflow is missing). kopf calls no handler before its indexes are complete, so the first
call of a Workflow or ServiceStep handler marks it (`indexes_ready`); when neither kind has an
object, there is nothing to wait for.

The engine's step directory is fed from kopf's ServiceStep events here, so that a run waiting
for a step to become Ready wakes when it does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

import kopf

from stepline.api import API_VERSION, GROUP, VERSION, InvalidObjectError, ServiceStep
from stepline.controllers.informers import Follower, WatchedKind
from stepline.controllers.runtime import Runtime, runtime_of
from stepline.controllers.servicesteps.handlers import indexed_step, read_step
from stepline.controllers.workflowruns.history import RunIndex
from stepline.controllers.workflowruns.supervisor import RunSupervisor
from stepline.errors import KubeApiError

logger = logging.getLogger(__name__)

WORKFLOW_RUN = WatchedKind(API_VERSION, "WorkflowRun")
# Seconds the run watch waits for kopf's indexes when objects exist that kopf has not shown to a
# handler yet (it never does if they are all deleted meanwhile); it starts anyway after that.
INDEX_WAIT_SECONDS = 60.0
# Seconds between attempts to learn whether any Workflow or ServiceStep exists.
PROBE_RETRY_SECONDS = 2.0


class RunWatch:
    """Follows the WorkflowRuns of the watched namespaces (none: all)."""

    def __init__(
        self,
        runtime: Runtime,
        supervisor: RunSupervisor,
        *,
        index: RunIndex,
        also: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self._runtime = runtime
        self._supervisor = supervisor
        self._index = index
        self._also = also  # the web view's feed of followed runs, when it is on
        scopes: tuple[str | None, ...] = tuple(runtime.settings.namespaces) or (None,)
        self._followers = [
            Follower(
                runtime.kube,
                WORKFLOW_RUN,
                namespace,
                label_selector=None,
                timeout_seconds=runtime.settings.watch_server_timeout_seconds,
                observe=self.observe,
                tombstone=_run_tombstone,
            )
            for namespace in scopes
        ]

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for follower in self._followers:
                where = follower.namespace or "all namespaces"
                group.create_task(follower.run(), name=f"watch WorkflowRun in {where}")

    def observe(self, event_type: str, body: dict[str, Any]) -> tuple[str, str]:
        """One event of a run: to the index and to the supervisor. The raw body is only looked
        at; a WorkflowRun is parsed only when a task is to start for it."""
        self._runtime.metrics.mark_watch_event(kind="WorkflowRun")
        metadata = body.get("metadata") or {}
        self._index.record(event_type, body)
        self._supervisor.follow_event(event_type, body)
        if self._also is not None:
            self._also(event_type, body)
        return metadata.get("uid", ""), (body.get("spec") or {}).get("workflowRef", "")


def _run_tombstone(namespace: str, name: str, remembered: tuple[str, str]) -> dict[str, Any]:
    uid, workflow = remembered
    return {
        "metadata": {"namespace": namespace, "name": name, "uid": uid},
        "spec": {"workflowRef": workflow},
    }


async def follow_runs(
    runtime: Runtime,
    supervisor: RunSupervisor,
    *,
    index: RunIndex,
    steps: Mapping[Any, Any],
    also: Callable[[str, dict[str, Any]], None] | None = None,
) -> None:
    """Follows the runs once kopf's indexes are filled (module docstring), until cancelled.
    `also`: told of every event after the index and the supervisor."""
    await wait_for_indexes(runtime)
    fill_step_directory(runtime, steps)
    runtime.caches_warm.set()
    await RunWatch(runtime, supervisor, index=index, also=also).run()


async def wait_for_indexes(runtime: Runtime) -> None:
    """Returns once kopf's indexes of Workflows and ServiceSteps are filled (module docstring),
    or after `INDEX_WAIT_SECONDS` at most."""
    while True:
        try:
            if not await _any_exist(runtime, ("Workflow", "ServiceStep")):
                return
            break
        except KubeApiError as exc:
            logger.warning("could not list Workflows and ServiceSteps: %s", exc)
            await asyncio.sleep(PROBE_RETRY_SECONDS)
    try:
        await asyncio.wait_for(runtime.indexes_ready.wait(), INDEX_WAIT_SECONDS)
    except TimeoutError:
        logger.warning(
            "following WorkflowRuns before kopf showed any Workflow or ServiceStep to a handler"
        )


async def _any_exist(runtime: Runtime, kinds: tuple[str, ...]) -> bool:
    for namespace in tuple(runtime.settings.namespaces) or (None,):
        for kind in kinds:
            page = await runtime.kube.list_page(API_VERSION, kind, namespace, limit=1)
            if page.get("items"):
                return True
    return False


def fill_step_directory(runtime: Runtime, index: Mapping[Any, Any]) -> None:
    """The steps kopf indexed before the run watch started, for the runs it resumes first."""
    for store in index.values():
        for step in store:
            if not isinstance(step, ServiceStep):
                continue
            namespace, name = step.metadata.namespace or "", step.metadata.name or ""
            if runtime.steps.find_step(namespace, name) is None:
                runtime.steps.put(step)


@kopf.on.event(GROUP, VERSION, "servicesteps")
async def follow_step_for_runs(
    *, type: str, body: kopf.Body, namespace: str | None, name: str, memo: kopf.Memo, **kwargs: Any
) -> None:
    """The engine's directory shares the step the `servicesteps` index parsed from this body:
    no second parse per event, no second copy per step."""
    runtime = runtime_of(memo)
    runtime.indexes_ready.set()  # kopf calls handlers once its indexes are filled
    steps = runtime.steps
    if type == "DELETED":
        steps.remove(namespace or "", name)
        return
    try:
        steps.put(indexed_step(kwargs["servicesteps"], body) or read_step(body))
    except InvalidObjectError:
        steps.remove(namespace or "", name)
