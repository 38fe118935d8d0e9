"""The leader's judgments against a scripted API: the run read afresh, an ownerReference to it,
the Accepted condition written once, the Event, the metric and the run woken; a failed judgment
tried again after a backoff, none while this replica does not lead."""

from __future__ import annotations

import asyncio
import contextlib
import types
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from stepline.api import ConditionStatus
from stepline.controllers.approvals import judging
from stepline.controllers.approvals.judging import Judge, judge_approvals
from stepline.controllers.approvals.memory import ApprovalMemory
from stepline.errors import KubeApiError, NotLeadingError
from stepline.observability import Metrics
from tests.unit.controllers.approvals.samples import (
    NAMESPACE,
    RUN,
    STEP,
    WORKFLOW,
    approval,
    waiting_run,
)
from tests.unit.controllers.fakes import FakeKube, RecordedEvents, settle

KEY = (NAMESPACE, RUN, STEP)


class ApprovalKube(FakeKube):
    """FakeKube, with the server-side applies the judge makes."""

    async def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        return dict(await self._answer("apply", (dict(manifest),), default=dict(manifest)))


class World:
    def __init__(self, *, verified: bool = True, leads: bool = True) -> None:
        self.kube = ApprovalKube()
        self.events = RecordedEvents()
        self.metrics = Metrics()
        self.memory = ApprovalMemory()
        self.memory.index.verified = verified
        self.memory.problem = "" if verified else "ValidatingAdmissionPolicy x is missing"
        self.decisions: list[tuple[str, str]] = []
        self.memory.on_decision = lambda namespace, run: self.decisions.append((namespace, run))
        self.leading = leads
        self.runtime = types.SimpleNamespace(
            approvals=self.memory, kube=self.kube, events=self.events, metrics=self.metrics,
            leads=lambda: self.leading, reconciling=lambda kind: contextlib.nullcontext(),
        )  # fmt: skip

    def add(self, body: dict[str, Any]) -> None:
        self.memory.index.record("ADDED", body)

    def status_written(self) -> list[tuple[str, dict[str, Any]]]:
        return [(args[2], args[3]) for args in self.kube.called("patch_status")]

    def applied(self) -> list[dict[str, Any]]:
        return [args[0] for args in self.kube.called("apply")]

    def approvals_counted(self, decision: str) -> float | None:
        return self.metrics.registry.get_sample_value(
            "stepline_approvals_total",
            {"namespace": NAMESPACE, "workflow": WORKFLOW, "decision": decision},
        )

    async def judge(self) -> None:
        await judge_approvals(self.runtime, KEY)  # type: ignore[arg-type]


def condition(status: dict[str, Any]) -> dict[str, Any]:
    (found,) = status["conditions"]
    return dict(found)


async def test_a_recorded_approval_gets_its_owner_its_condition_an_event_and_wakes_the_run() -> (
    None
):
    world = World()
    world.add(approval("a"))
    world.kube.answers["get"] = [waiting_run()]

    await world.judge()

    assert world.kube.called("get") == [("WorkflowRun", NAMESPACE, RUN)]
    (owner,) = world.applied()
    assert owner["metadata"]["ownerReferences"] == [{
        "apiVersion": "stepline.io/v1alpha1", "kind": "WorkflowRun", "name": RUN,
        "uid": "uid-run",
    }]  # fmt: skip
    ((name, status),) = world.status_written()
    assert name == "a"
    written = condition(status)
    assert (written["type"], written["status"], written["reason"]) == (
        "Accepted", "True", "Recorded",
    )  # fmt: skip
    assert status["observedGeneration"] == 1
    assert world.events.posted == [("Normal", "Approved", written["message"])]
    assert world.approvals_counted("approved") == 1
    assert world.decisions == [(NAMESPACE, RUN)]
    assert world.memory.index.of_step(KEY)[0].recorded


async def test_a_recorded_rejection_is_a_warning_with_its_reason_and_counted_rejected() -> None:
    world = World()
    world.add(approval("no", decision="Reject", reason="batch 3 is short of steel"))
    world.kube.answers["get"] = [waiting_run()]

    await world.judge()

    ((kind, reason, message),) = world.events.posted
    assert (kind, reason) == ("Warning", "Rejected")
    assert message.endswith("rejected by system:serviceaccount:factory:lead: batch 3 is short of "
                            "steel")  # fmt: skip
    assert world.approvals_counted("rejected") == 1
    assert world.decisions == [(NAMESPACE, RUN)]


async def test_a_refused_approval_gets_a_warning_named_for_its_reason_and_wakes_nothing() -> None:
    world = World()
    world.add(approval("a", workflow="cheap"))
    world.kube.answers["get"] = [waiting_run()]

    await world.judge()

    ((_, status),) = world.status_written()
    assert condition(status)["reason"] == "WorkflowMismatch"
    assert [(kind, reason) for kind, reason, _ in world.events.posted] == [
        ("Warning", "WorkflowMismatch")
    ]
    assert len(world.applied()) == 1  # owned by the run all the same: it goes with it
    assert world.decisions == []
    assert world.approvals_counted("approved") is None


async def test_an_approval_of_a_missing_run_is_run_not_found_and_owned_by_nothing() -> None:
    world = World()
    world.add(approval("a"))
    world.kube.answers["get"] = [None]

    await world.judge()

    assert world.applied() == []
    assert condition(world.status_written()[0][1])["reason"] == "RunNotFound"


async def test_unverified_approvals_are_refused_without_reading_the_run() -> None:
    world = World(verified=False)
    world.add(approval("a"))

    await world.judge()

    assert world.kube.called("get") == []
    written = condition(world.status_written()[0][1])
    assert (written["status"], written["reason"]) == (ConditionStatus.FALSE, "Unverified")
    assert "ValidatingAdmissionPolicy x is missing" in written["message"]


async def test_only_approvals_without_a_condition_are_judged() -> None:
    world = World()
    world.add(approval("done", accepted=("False", "NotWaiting")))

    await world.judge()

    assert world.kube.calls == []


async def test_a_status_that_could_not_be_written_leaves_the_approval_unjudged() -> None:
    world = World()
    world.add(approval("a"))
    world.kube.answers["get"] = [waiting_run()]
    world.kube.answers["patch_status"] = [KubeApiError("no answer", status=0)]

    with pytest.raises(KubeApiError):
        await world.judge()

    assert not world.memory.index.of_step(KEY)[0].judged
    assert world.decisions == []


@pytest.fixture
async def judge_task(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[World, Judge]]:
    world = World()
    world.memory.listed.set()
    world.memory.checked.set()
    judge = Judge(world.runtime)  # type: ignore[arg-type]
    task = asyncio.create_task(judge.run())
    yield world, judge
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_the_judge_waits_for_the_list_and_the_first_check_then_judges_what_is_pending() -> (
    None
):
    world = World()
    world.add(approval("a"))
    world.kube.answers["get"] = [waiting_run()]
    task = asyncio.create_task(Judge(world.runtime).run())  # type: ignore[arg-type]
    try:
        world.memory.listed.set()
        await settle()
        assert world.kube.calls == []  # the policies are not checked yet
        world.memory.checked.set()
        await settle()
        assert [name for name, _ in world.status_written()] == ["a"]
        assert world.memory.wake != judging.asleep
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert world.memory.wake == judging.asleep


async def test_a_judgment_that_fails_is_tried_again_after_a_backoff(
    judge_task: tuple[World, Judge], monkeypatch: pytest.MonkeyPatch
) -> None:
    world, _ = judge_task
    await settle()
    delays: list[float] = []
    loop = asyncio.get_running_loop()
    monkeypatch.setattr(loop, "call_later", lambda delay, callback, *args: delays.append(delay)
                        or loop.call_soon(callback, *args))  # fmt: skip
    world.add(approval("a"))
    world.kube.answers["get"] = [KubeApiError("no answer", status=0), waiting_run()]

    world.memory.wake(KEY)
    await settle()

    assert delays == [1.0]
    assert [name for name, _ in world.status_written()] == ["a"]


async def test_a_replica_that_does_not_lead_judges_nothing(
    judge_task: tuple[World, Judge],
) -> None:
    world, _ = judge_task
    await settle()
    world.leading = False
    world.add(approval("a"))

    world.memory.wake(KEY)
    await settle()

    assert world.kube.calls == []


async def test_a_judgment_refused_at_the_fence_is_left_to_the_new_leader(
    judge_task: tuple[World, Judge],
) -> None:
    world, _ = judge_task
    await settle()
    world.add(approval("a"))
    world.kube.answers["get"] = [NotLeadingError("past the fence")]

    world.memory.wake(KEY)
    await settle()

    assert world.status_written() == []
    assert world.kube.called("get") == [("WorkflowRun", NAMESPACE, RUN)]
