"""The Approval watch, fed a scripted list and watch: every Approval into the index, the judge
woken for one without a condition, the run woken once when one turns Recorded, the list marked
complete, and a body that is not an Approval left out."""

from __future__ import annotations

import asyncio
import types
from typing import Any

from stepline.controllers.approvals.memory import ApprovalMemory
from stepline.controllers.approvals.watch import follow_approvals
from stepline.observability import Metrics
from tests.unit.controllers.approvals.samples import NAMESPACE, RUN, STEP, approval
from tests.unit.controllers.fakes import FakeKube, settle

RECORDED = ("True", "Recorded")


class Followed:
    """What the watch did: the memory it filled, the steps it woke, the runs it told."""

    def __init__(self) -> None:
        self.memory = ApprovalMemory()
        self.woken: list[tuple[str, str, str]] = []
        self.decided: list[tuple[str, str]] = []
        self.memory.wake = self.woken.append
        self.memory.on_decision = lambda namespace, run: self.decided.append((namespace, run))


async def follow(listed: list[dict[str, Any]], events: list[dict[str, Any]]) -> Followed:
    followed = Followed()
    kube = FakeKube()
    kube.answers["list_page"] = [{"metadata": {"resourceVersion": "1"}, "items": listed}]
    kube.answers["watch"] = [events]
    runtime = types.SimpleNamespace(
        approvals=followed.memory, kube=kube, metrics=Metrics(),
        settings=types.SimpleNamespace(namespaces=(NAMESPACE,), watch_server_timeout_seconds=60),
    )  # fmt: skip
    task = asyncio.create_task(follow_approvals(runtime))  # type: ignore[arg-type]
    await settle()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return followed


async def test_listed_approvals_are_indexed_and_the_unjudged_wake_the_judge() -> None:
    followed = await follow([approval("a"), approval("b", accepted=("False", "NotWaiting"))], [])
    assert followed.memory.listed.is_set()
    entries = followed.memory.index.of_step((NAMESPACE, RUN, STEP))
    assert [entry.name for entry in entries] == ["a", "b"]
    assert followed.woken == [(NAMESPACE, RUN, STEP)]


async def test_an_approval_turning_recorded_wakes_its_run_once() -> None:
    recorded = approval("a", accepted=RECORDED)
    followed = await follow([approval("a")], [
        {"type": "MODIFIED", "object": recorded},
        {"type": "MODIFIED", "object": recorded},  # a later change of its metadata, say
    ])  # fmt: skip
    assert followed.decided == [(NAMESPACE, RUN)]


async def test_a_deleted_approval_leaves_the_index_and_a_foreign_body_is_not_followed() -> None:
    followed = await follow([approval("a")], [
        {"type": "ADDED", "object": {"metadata": {"namespace": NAMESPACE, "name": "odd"},
                                     "spec": {"runRef": RUN}}},
        {"type": "DELETED", "object": approval("a")},
    ])  # fmt: skip
    assert len(followed.memory.index) == 0


async def test_with_several_namespaces_the_list_is_complete_once_each_is_listed() -> None:
    followed = Followed()
    kube = FakeKube()
    page = {"metadata": {"resourceVersion": "1"}, "items": []}
    kube.answers["list_page"] = [page]  # the second namespace's list never answers
    runtime = types.SimpleNamespace(
        approvals=followed.memory, kube=kube, metrics=Metrics(),
        settings=types.SimpleNamespace(namespaces=("factory", "shop"),
                                       watch_server_timeout_seconds=60),
    )  # fmt: skip
    task = asyncio.create_task(follow_approvals(runtime))  # type: ignore[arg-type]
    try:
        await settle()
        listed = sorted(str(args[1]) for args in kube.called("list_page"))
        assert listed == ["factory", "shop"]
        assert not followed.memory.listed.is_set()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
