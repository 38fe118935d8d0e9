"""The leader's judge: it writes each Approval's Accepted condition, once, and tells the run.

`judge_forever` (`Judge.run()`) is one of the leader's loops (`leadership.lead`). It starts once
the Approval watch has listed every namespace and the admission policies were checked once, then
judges every step that has an Approval without a condition, and from then on each step the watch
or the policy check wakes. One step at a time per step, the Approvals of a step together
(`acceptance.judge_step`): it reads the run from the API server (not a cache: the engine has
just written that it waits), adds an ownerReference to the run on each Approval whose run
exists (so that deleting the run deletes them), writes the condition, posts an Event (Approved,
Rejected, or the refusal's reason as a Warning), counts a recorded decision in
`stepline_approvals_total`, and calls `on_decision` so that the waiting run wakes.

A judgment that fails (the API server away) is tried again after a backoff of 1 s doubling to a
minute; one refused because this replica no longer leads is not. Leaving the lead cancels the
loop, its judgments under way and its retries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from stepline.api import API_VERSION, ConditionType, set_condition
from stepline.controllers.approvals.acceptance import Acceptance, judge_step
from stepline.controllers.approvals.index import ApprovalEntry, StepKey
from stepline.controllers.approvals.memory import asleep
from stepline.controllers.backoff import backoff
from stepline.controllers.runtime import Runtime
from stepline.errors import KubeApiError, NotLeadingError
from stepline.observability import ApprovalDecisionLabel

logger = logging.getLogger(__name__)
KIND = "Approval"
RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 60.0


async def judge_forever(runtime: Runtime) -> None:
    """The leader's judging (module docstring), until cancelled."""
    await Judge(runtime).run()


class Judge:
    """The judgments of Approvals, while this replica leads (module docstring)."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._memory = runtime.approvals
        self._tasks: dict[StepKey, asyncio.Task[None]] = {}
        self._again: set[StepKey] = set()
        self._failures: dict[StepKey, int] = {}
        self._retries: dict[StepKey, asyncio.TimerHandle] = {}

    async def run(self) -> None:
        """Judges until cancelled."""
        await self._memory.listed.wait()
        await self._memory.checked.wait()
        self._memory.wake = self.judge_soon
        try:
            for key in self._memory.index.unjudged_steps():
                self.judge_soon(key)
            await asyncio.Future()  # until cancelled: the watch and the checks wake it
        finally:
            self._memory.wake = asleep
            for handle in self._retries.values():
                handle.cancel()
            tasks = list(self._tasks.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def judge_soon(self, key: StepKey) -> None:
        """Judges the step's Approvals now, or once more after the judgment under way."""
        if not self._runtime.leads():
            return
        if key in self._tasks:
            self._again.add(key)
            return
        self._tasks[key] = asyncio.create_task(self._judge(key), name=f"Approvals of {key}")

    async def _judge(self, key: StepKey) -> None:
        try:
            while True:
                self._again.discard(key)
                await self._judge_once(key)
                if key not in self._again:
                    return
        finally:  # at once, not in a done callback: a wake after the last look starts anew
            self._tasks.pop(key, None)

    async def _judge_once(self, key: StepKey) -> None:
        try:
            with self._runtime.reconciling(KIND):
                await judge_approvals(self._runtime, key)
        except NotLeadingError:
            return  # the new leader judges them
        except KubeApiError as exc:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
            delay = backoff(RETRY_SECONDS, failures, maximum=MAX_RETRY_SECONDS)
            logger.warning("Approvals of %s/%s step %s: %s; again in %.0f s", *key, exc, delay)
            loop = asyncio.get_running_loop()
            self._retries[key] = loop.call_later(delay, self._retry, key)
            return
        self._failures.pop(key, None)

    def _retry(self, key: StepKey) -> None:
        self._retries.pop(key, None)
        self.judge_soon(key)


async def judge_approvals(runtime: Runtime, key: StepKey) -> None:
    """Judges the Approvals of one step that have no Accepted condition yet (module docstring)."""
    memory = runtime.approvals
    if not any(not entry.judged for entry in memory.index.of_step(key)):
        return
    namespace, run_name, _ = key
    verified = memory.index.verified is True
    run = None
    if verified:  # an unverified Approval is refused whatever its run says
        run = await runtime.kube.get(API_VERSION, "WorkflowRun", namespace, run_name)
    entries = memory.index.of_step(key)  # again: the watch may have added one meanwhile
    judged = judge_step(entries, run, verified=verified, problem=memory.problem)
    for entry in entries:
        acceptance = judged.get(entry.name)
        if acceptance is not None:
            await _write(runtime, entry, acceptance, run)


async def _write(
    runtime: Runtime, entry: ApprovalEntry, acceptance: Acceptance, run: Mapping[str, Any] | None
) -> None:
    """Writes one Approval's ownerReference (its run exists) and Accepted condition, then tells."""
    if run is not None:
        await runtime.kube.apply(build_owner_reference(entry, run))
    conditions = set_condition(
        [], condition_type=ConditionType.ACCEPTED, status=acceptance.status,
        reason=acceptance.reason, message=acceptance.message, observed_generation=1,
    )  # fmt: skip
    status = {"observedGeneration": 1, "conditions": [c.to_wire() for c in conditions]}
    await runtime.kube.patch_status(API_VERSION, KIND, entry.namespace, entry.name, status)
    memory = runtime.approvals
    marked = memory.index.mark(entry, accepted=acceptance.status, reason=acceptance.reason)
    involved = {"apiVersion": API_VERSION, "kind": KIND, "namespace": entry.namespace,
                "name": entry.name, "uid": entry.uid}  # fmt: skip
    if not acceptance.recorded:
        runtime.events.warn(involved, reason=acceptance.reason, message=acceptance.message)
        return
    workflow = str(((run or {}).get("spec") or {}).get("workflowRef") or entry.workflow)
    if marked.approve:
        runtime.events.info(involved, reason="Approved", message=acceptance.message)
        decision = ApprovalDecisionLabel.APPROVED
    else:
        message = f"{acceptance.message}: {marked.reason}"
        runtime.events.warn(involved, reason="Rejected", message=message)
        decision = ApprovalDecisionLabel.REJECTED
    runtime.metrics.record_approval(namespace=entry.namespace, workflow=workflow, decision=decision)
    memory.on_decision(entry.namespace, entry.run)


def build_owner_reference(entry: ApprovalEntry, run: Mapping[str, Any]) -> dict[str, Any]:
    """The server-side apply that makes the run an owner of the Approval: the operator owns that
    one entry. Not a controller, and no blockOwnerDeletion: the run does not wait for it."""
    metadata = run.get("metadata") or {}
    reference = {
        "apiVersion": API_VERSION,
        "kind": "WorkflowRun",
        "name": str(metadata.get("name") or entry.run),
        "uid": str(metadata.get("uid") or ""),
    }
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": entry.name, "namespace": entry.namespace, "ownerReferences": [reference],
        },
    }  # fmt: skip
