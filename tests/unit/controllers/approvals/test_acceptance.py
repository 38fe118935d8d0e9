"""The Accepted condition of each Approval of a step, from the run as the API server holds it:
Recorded for the first one made while the run waits there, and each refusal with the reason and
a message that says what to do."""

from __future__ import annotations

from datetime import timedelta

import pytest

from stepline.api import ConditionStatus, Reason
from stepline.controllers.approvals.acceptance import Acceptance, judge_step
from stepline.controllers.approvals.index import ApprovalEntry, ApprovalIndex
from tests.unit.controllers.approvals.samples import (
    NAMESPACE,
    RUN,
    SINCE,
    STEP,
    approval,
    waiting_run,
)

KEY = (NAMESPACE, RUN, STEP)


def entries(*bodies: dict[str, object]) -> list[ApprovalEntry]:
    index = ApprovalIndex()
    for body in bodies:
        index.record("ADDED", body)
    return index.of_step(KEY)


def reasons(judged: dict[str, Acceptance]) -> dict[str, Reason]:
    return {name: acceptance.reason for name, acceptance in judged.items()}


@pytest.mark.parametrize("listed", [True, False], ids=["waitingFor", "step-phase-only"])
def test_an_approval_made_while_the_run_waits_there_is_recorded(listed: bool) -> None:
    judged = judge_step(entries(approval("a")), waiting_run(listed=listed), verified=True)
    acceptance = judged["a"]
    assert (acceptance.status, acceptance.reason) == (ConditionStatus.TRUE, Reason.RECORDED)
    assert acceptance.message == (
        "step 'release' of run 'line-7-morning' approved by system:serviceaccount:factory:lead"
    )


def test_the_first_approval_of_a_step_wins_and_the_others_are_not_waiting() -> None:
    minute = SINCE + timedelta(minutes=1)
    judged = judge_step(
        entries(approval("b", created=minute), approval("a", created=minute),
                approval("c", created=minute - timedelta(seconds=1), decision="Reject",
                         reason="no")),
        waiting_run(), verified=True,
    )  # fmt: skip
    assert reasons(judged) == {"c": Reason.RECORDED, "a": Reason.NOT_WAITING,
                               "b": Reason.NOT_WAITING}  # fmt: skip
    assert "already decided by Approval 'c'" in judged["a"].message


def test_an_approval_already_recorded_keeps_the_step_for_itself() -> None:
    judged = judge_step(
        entries(approval("first", accepted=("True", "Recorded")), approval("second")),
        waiting_run(), verified=True,
    )  # fmt: skip
    assert reasons(judged) == {"second": Reason.NOT_WAITING}


def test_a_step_the_run_recorded_another_approval_for_is_not_waiting() -> None:
    judged = judge_step(entries(approval("late")), waiting_run(recorded="earlier"), verified=True)
    assert reasons(judged) == {"late": Reason.NOT_WAITING}
    assert "already decided by Approval 'earlier'" in judged["late"].message


def test_an_approval_made_before_the_wait_began_is_not_waiting() -> None:
    early = approval("early", created=SINCE - timedelta(seconds=30))
    judged = judge_step(entries(early), waiting_run(), verified=True)
    assert reasons(judged) == {"early": Reason.NOT_WAITING}
    assert judged["early"].message == (
        "created at 2026-12-07T05:59:30Z, before step 'release' began waiting at "
        "2026-12-07T06:00:00Z: create another Approval"
    )


def test_an_approval_made_in_the_second_the_wait_began_is_recorded() -> None:
    judged = judge_step(entries(approval("prompt", created=SINCE)), waiting_run(), verified=True)
    assert reasons(judged) == {"prompt": Reason.RECORDED}


@pytest.mark.parametrize(
    "run",
    [waiting_run(step="scheduling"), waiting_run(phase="Succeeded"),
     {"spec": {"workflowRef": "production-shift"}, "status": {}}],
    ids=["another-step-waits", "finished", "not-started"],
)  # fmt: skip
def test_a_run_that_does_not_wait_at_the_step_is_not_waiting(run: dict[str, object]) -> None:
    judged = judge_step(entries(approval("a")), run, verified=True)
    assert reasons(judged) == {"a": Reason.NOT_WAITING}
    assert "does not wait at step 'release'" in judged["a"].message


def test_a_missing_run_is_run_not_found() -> None:
    judged = judge_step(entries(approval("a")), None, verified=True)
    assert reasons(judged) == {"a": Reason.RUN_NOT_FOUND}
    assert judged["a"].message == "WorkflowRun 'line-7-morning' not found in namespace 'factory'"


def test_an_approval_naming_another_workflow_than_the_runs_is_a_mismatch() -> None:
    # Its author may approve `cheap`, which the policy checked; the run runs production-shift.
    judged = judge_step(entries(approval("a", workflow="cheap")), waiting_run(), verified=True)
    assert reasons(judged) == {"a": Reason.WORKFLOW_MISMATCH}
    assert "runs Workflow 'production-shift'" in judged["a"].message


def test_without_verified_policies_every_approval_is_unverified_whatever_the_run() -> None:
    problem = "MutatingAdmissionPolicy approvals.stepline.io-decided-by is missing"
    judged = judge_step(entries(approval("a")), waiting_run(), verified=False, problem=problem)
    assert reasons(judged) == {"a": Reason.UNVERIFIED}
    assert problem in judged["a"].message


def test_approvals_already_judged_are_left_as_they_are() -> None:
    judged = judge_step(entries(approval("a", accepted=("False", "NotWaiting"))), waiting_run(),
                        verified=True)  # fmt: skip
    assert judged == {}
