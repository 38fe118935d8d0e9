"""The check of the admission policies: all four objects, each binding binding its policy, the
validating one denying; a policy the operator may not read counts as missing; an API server that
does not answer leaves the last verdict; a change wakes the steps still to judge."""

from __future__ import annotations

import asyncio
import types
from typing import Any

import pytest

from stepline.api import build_admission_policies
from stepline.controllers.approvals import verification
from stepline.controllers.approvals.memory import ApprovalMemory
from stepline.controllers.approvals.verification import (
    find_policy_problem,
    verify_policies_forever,
)
from stepline.errors import KubeApiError
from tests.unit.controllers.approvals.samples import approval
from tests.unit.controllers.fakes import FakeKube, VirtualClock, settle


def policies(**changes: Any) -> list[dict[str, Any] | BaseException | None]:
    """The four objects as the API server returns them, in the order they are read; a kind in
    `changes` is answered with its value instead."""
    return [changes.get(doc["kind"], doc) for doc in build_admission_policies()]


async def problem_with(*answers: Any) -> str | None:
    kube = FakeKube()
    kube.answers["get"] = list(answers)
    return await find_policy_problem(kube)  # type: ignore[arg-type]


async def test_all_four_in_place_is_no_problem() -> None:
    assert await problem_with(*policies()) is None


async def test_a_missing_binding_is_named() -> None:
    problem = await problem_with(*policies(MutatingAdmissionPolicyBinding=None))
    assert problem == ("MutatingAdmissionPolicyBinding approvals.stepline.io-decided-by is missing")


async def test_a_validating_binding_that_only_warns_is_a_problem() -> None:
    (_, _, _, binding) = build_admission_policies()
    warning = {**binding, "spec": {**binding["spec"], "validationActions": ["Warn"]}}
    problem = await problem_with(*policies(ValidatingAdmissionPolicyBinding=warning))
    assert problem is not None
    assert "does not Deny" in problem


async def test_a_binding_of_another_policy_is_a_problem() -> None:
    (_, binding, _, _) = build_admission_policies()
    other = {**binding, "spec": {"policyName": "something-else"}}
    problem = await problem_with(*policies(MutatingAdmissionPolicyBinding=other))
    assert problem is not None
    assert "binds 'something-else'" in problem


async def test_a_policy_the_operator_may_not_read_counts_as_missing() -> None:
    forbidden = KubeApiError("403 forbidden", status=403)
    problem = await problem_with(*policies(ValidatingAdmissionPolicy=forbidden))
    assert problem is not None
    assert "cannot be read" in problem


async def test_an_api_server_that_does_not_answer_is_an_error_not_a_verdict() -> None:
    with pytest.raises(KubeApiError):
        await problem_with(KubeApiError("no answer", status=0))


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> VirtualClock:
    virtual = VirtualClock()
    virtual.install(monkeypatch, verification)
    return virtual


def world(answers: list[Any], interval: float = 60) -> tuple[ApprovalMemory, Any, list[Any]]:
    memory = ApprovalMemory()
    woken: list[Any] = []
    memory.wake = woken.append
    kube = FakeKube()
    kube.answers["get"] = answers
    runtime = types.SimpleNamespace(
        approvals=memory, kube=kube,
        settings=types.SimpleNamespace(approval_policy_check_seconds=interval),
    )  # fmt: skip
    return memory, runtime, woken


async def test_checked_at_start_and_every_interval_waking_the_steps_to_judge_on_a_change(
    clock: VirtualClock,
) -> None:
    memory, runtime, woken = world([*policies(), *policies(ValidatingAdmissionPolicy=None)])
    memory.index.record("ADDED", approval("a"))
    task = asyncio.create_task(verify_policies_forever(runtime))
    try:
        await settle()
        assert (memory.index.verified, memory.checked.is_set()) == (True, True)
        assert woken == [("factory", "line-7-morning", "release")]
        await clock.advance(60)
        assert memory.index.verified is False
        assert "ValidatingAdmissionPolicy approvals.stepline.io-approver is missing" in (
            memory.problem
        )
        assert len(woken) == 2
        assert clock.sleeps == [60, 60]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_no_answer_keeps_the_last_verdict_and_checks_again_sooner(
    clock: VirtualClock,
) -> None:
    memory, runtime, _ = world([KubeApiError("no answer", status=0), *policies()])
    task = asyncio.create_task(verify_policies_forever(runtime))
    try:
        await settle()
        assert (memory.index.verified, memory.checked.is_set()) == (None, False)
        await clock.advance(5)
        assert memory.index.verified is True
        assert clock.sleeps == [5, 60]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
