"""The Approval kind: its rules (a rejection needs a reason; the spec never changes), its CRD's
columns, the request `stepline approve` sends, and the readings of a run's status shared by the
operator and the command line."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from stepline.api import (
    Approval,
    InvalidObjectError,
    Verdict,
    build_approval_request,
    build_crd,
    find_recorded_approval,
    find_wait,
)


def body(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "stepline.io/v1alpha1", "kind": "Approval",
        "metadata": {"name": "line-7-morning-release-x2k9q", "namespace": "factory"},
        "spec": {"runRef": "line-7-morning", "workflowRef": "production-shift",
                 "step": "release", **spec},
    }  # fmt: skip


def test_an_approval_needs_no_reason() -> None:
    approval = Approval.from_body(body(decision="Approve"))
    assert approval.spec.decision is Verdict.APPROVE
    assert approval.spec.reason is None


@pytest.mark.parametrize("reason", [None, ""], ids=["absent", "empty"])
def test_a_rejection_without_a_reason_is_refused_with_the_rules_message(
    reason: str | None,
) -> None:
    spec: dict[str, Any] = {"decision": "Reject"} | ({} if reason is None else {"reason": reason})
    with pytest.raises(InvalidObjectError, match="reason: a rejection needs a reason"):
        Approval.from_body(body(**spec))


def test_a_reason_longer_than_1024_characters_is_refused() -> None:
    with pytest.raises(InvalidObjectError, match=r"spec\.reason"):
        Approval.from_body(body(decision="Reject", reason="x" * 1025))


def test_the_crd_keeps_the_spec_as_created_and_asks_a_reason_to_reject() -> None:
    version = build_crd(Approval)["spec"]["versions"][0]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["x-kubernetes-validations"] == [
        {"rule": "self == oldSelf", "message": "an Approval is a record: create another instead",
         "reason": "FieldValueInvalid"},
        {"rule": "self.decision == 'Approve' || (has(self.reason) && size(self.reason) > 0)",
         "message": "a rejection needs a reason", "fieldPath": ".reason",
         "reason": "FieldValueRequired"},
    ]  # fmt: skip
    assert spec["properties"]["decision"]["enum"] == ["Approve", "Reject"]
    assert spec["required"] == ["runRef", "workflowRef", "step", "decision"]


def test_kubectl_get_shows_run_step_decision_user_accepted_and_age() -> None:
    crd = build_crd(Approval)
    columns = crd["spec"]["versions"][0]["additionalPrinterColumns"]
    shown = [(c["name"], c["jsonPath"]) for c in columns if not c.get("priority")]
    assert shown == [
        ("Run", ".spec.runRef"), ("Step", ".spec.step"), ("Decision", ".spec.decision"),
        ("User", ".spec.decidedBy.username"),
        ("Accepted", '.status.conditions[?(@.type=="Accepted")].status'),
        ("Age", ".metadata.creationTimestamp"),
    ]  # fmt: skip
    names = crd["spec"]["names"]
    assert (names["shortNames"], names["categories"]) == (["appr"], ["stepline"])


def test_the_request_is_named_by_the_api_server_after_the_run_and_step_and_claims_no_author() -> (
    None
):
    request = build_approval_request(
        "factory", run="line-7-morning", workflow="production-shift", step="release",
        verdict=Verdict.REJECT, reason="batch 3 short of steel",
    )  # fmt: skip
    assert request["metadata"] == {"generateName": "line-7-morning-release-",
                                   "namespace": "factory"}  # fmt: skip
    assert request["spec"] == {
        "runRef": "line-7-morning", "workflowRef": "production-shift", "step": "release",
        "decision": "Reject", "reason": "batch 3 short of steel",
    }  # fmt: skip


def test_a_wait_listed_in_waiting_for_says_since_when() -> None:
    status = {"phase": "Waiting", "waitingFor": [{"step": "release",
                                                  "since": "2026-12-07T06:00:00Z"}]}  # fmt: skip
    wait = find_wait(status, "release")
    assert wait is not None
    assert wait.since == datetime(2026, 12, 7, 6, tzinfo=UTC)
    assert find_wait(status, "scheduling") is None


def test_a_step_record_in_phase_waiting_is_a_wait_since_it_started() -> None:
    status = {"phase": "Running", "steps": [
        {"name": "release", "phase": "Waiting", "startedAt": "2026-12-07T06:00:00Z"}]}  # fmt: skip
    wait = find_wait(status, "release")
    assert wait is not None
    assert wait.since == datetime(2026, 12, 7, 6, tzinfo=UTC)


def test_a_finished_run_waits_for_nothing() -> None:
    status = {"phase": "Failed", "waitingFor": [{"step": "release"}]}
    assert find_wait(status, "release") is None


def test_the_approval_a_run_recorded_for_a_step_is_read_from_its_record() -> None:
    record = {"name": "release", "phase": "Succeeded",
              "approval": {"approvalName": "line-7-morning-release-x2k9q"}}  # fmt: skip
    status = {"steps": [record]}
    assert find_recorded_approval(status, "release") == "line-7-morning-release-x2k9q"
    assert find_recorded_approval(status, "scheduling") is None
    assert find_recorded_approval({"steps": "garbage"}, "release") is None
