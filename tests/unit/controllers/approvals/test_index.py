"""The index of Approvals: ordered by creationTimestamp then name, answering `decision_for` from
Recorded Approvals created at or after the wait began, and nothing while the admission policies
are not verified."""

from __future__ import annotations

from datetime import timedelta

import pytest

from stepline.controllers.approvals.index import ApprovalIndex
from stepline.controllers.approvals.memory import ApprovalMemory
from tests.unit.controllers.approvals.samples import NAMESPACE, RUN, SINCE, STEP, approval

KEY = (NAMESPACE, RUN, STEP)
RECORDED = ("True", "Recorded")


def index_of(*bodies: dict[str, object], verified: bool | None = True) -> ApprovalIndex:
    index = ApprovalIndex()
    index.verified = verified
    for body in bodies:
        index.record("ADDED", body)
    return index


def test_approvals_of_a_step_come_first_by_creation_time_then_by_name() -> None:
    minute = SINCE + timedelta(minutes=1)
    index = index_of(
        approval("c-later", created=minute + timedelta(seconds=1)),
        approval("b-same-second", created=minute),
        approval("a-same-second", created=minute),
    )
    names = [entry.name for entry in index.of_step(KEY)]
    assert names == ["a-same-second", "b-same-second", "c-later"]


def test_only_a_recorded_approval_decides_a_step() -> None:
    index = index_of(approval("first"), approval("second", accepted=RECORDED, decision="Reject",
                                                 reason="the line lead said no"))  # fmt: skip
    decision = index.decision_for(NAMESPACE, RUN, STEP, waiting_since=SINCE)
    assert decision is not None
    assert (decision.name, decision.approve, decision.reason) == (
        "second", False, "the line lead said no",
    )  # fmt: skip
    assert decision.user == "system:serviceaccount:factory:lead"
    assert decision.decided_at == SINCE + timedelta(minutes=1)


def test_an_approval_created_before_the_wait_began_decides_nothing() -> None:
    index = index_of(approval("early", created=SINCE - timedelta(seconds=1), accepted=RECORDED))
    assert index.decision_for(NAMESPACE, RUN, STEP, waiting_since=SINCE) is None


def test_the_wait_is_compared_to_the_second_as_creation_timestamps_are_kept() -> None:
    # Created 0.4 s after the wait began, in the same second: its creationTimestamp reads the
    # second before.
    index = index_of(approval("prompt", created=SINCE, accepted=RECORDED))
    since = SINCE + timedelta(milliseconds=400)
    decision = index.decision_for(NAMESPACE, RUN, STEP, waiting_since=since)
    assert decision is not None
    assert decision.name == "prompt"


@pytest.mark.parametrize("verified", [False, None], ids=["missing", "not-checked-yet"])
def test_nothing_decides_while_the_policies_are_not_verified(verified: bool | None) -> None:
    index = index_of(approval("recorded", accepted=RECORDED), verified=verified)
    assert index.decision_for(NAMESPACE, RUN, STEP, waiting_since=SINCE) is None


def test_other_steps_runs_and_namespaces_are_apart() -> None:
    index = index_of(approval("recorded", accepted=RECORDED))
    for namespace, run, step in (("shop", RUN, STEP), (NAMESPACE, "other", STEP),
                                 (NAMESPACE, RUN, "other")):  # fmt: skip
        assert index.decision_for(namespace, run, step, waiting_since=SINCE) is None


def test_a_deleted_approval_is_forgotten_and_its_step_with_it() -> None:
    index = index_of(approval("recorded", accepted=RECORDED))
    before, after = index.record("DELETED", {"metadata": {"namespace": NAMESPACE,
                                                          "name": "recorded"}})  # fmt: skip
    assert before is not None
    assert after is None
    assert index.of_step(KEY) == []
    assert len(index) == 0


def test_an_update_replaces_the_entry_and_says_what_it_was() -> None:
    index = index_of(approval("a"))
    before, after = index.record("MODIFIED", approval("a", accepted=RECORDED))
    assert before is not None
    assert not before.judged
    assert after is not None
    assert after.recorded
    assert [entry.name for entry in index.of_step(KEY)] == ["a"]


def test_unjudged_steps_are_those_with_an_approval_without_a_condition() -> None:
    index = index_of(approval("judged", accepted=RECORDED),
                     approval("other", step="inspect"))  # fmt: skip
    assert index.unjudged_steps() == [(NAMESPACE, RUN, "inspect")]


def test_marking_an_entry_judged_keeps_it_in_place() -> None:
    index = index_of(approval("a"))
    (entry,) = index.of_step(KEY)
    index.mark(entry, accepted="True", reason="Recorded")
    decision = index.decision_for(NAMESPACE, RUN, STEP, waiting_since=SINCE)
    assert decision is not None
    assert decision.name == "a"


def test_a_body_that_is_not_an_approval_is_refused() -> None:
    index = ApprovalIndex()
    with pytest.raises((KeyError, TypeError, ValueError)):
        index.record("ADDED", {"metadata": {"name": "x", "namespace": NAMESPACE}, "spec": {}})


def test_the_memory_is_available_only_once_the_policies_are_verified() -> None:
    memory = ApprovalMemory()
    assert not memory.available  # not checked yet
    memory.index.verified = False
    assert not memory.available
    memory.index.verified = True
    assert memory.available
    memory.index.record("ADDED", approval("a", accepted=RECORDED))
    decision = memory.decision_for(NAMESPACE, RUN, STEP, waiting_since=SINCE)
    assert decision is not None
    assert decision.name == "a"
