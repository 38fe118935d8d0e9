"""The Approval's admission policies: generated from Python, committed unchanged (the chart's
copy is checked in tests/unit/test_chart_templates.py), and saying what §5 of
docs/proposals/workflow-semantics.md says they check."""

from __future__ import annotations

from pathlib import Path

from stepline.api import (
    build_admission_policies,
    find_admission_policy_drift,
    render_admission_policies,
)
from stepline.api.admission import REQUIRED_OBJECTS
from stepline.cli import main

REPO = Path(__file__).resolve().parents[3]
ADMISSION = REPO / "deploy" / "admission"


def test_the_committed_policies_are_what_python_generates() -> None:
    assert find_admission_policy_drift(ADMISSION) == [], "run `stepline crds` and commit them"


def test_stepline_crds_writes_the_policies_and_check_finds_an_edit(tmp_path: Path) -> None:
    crds, admission = tmp_path / "crds", tmp_path / "admission"
    assert main(["crds", "--out", str(crds), "--admission-out", str(admission)]) == 0
    assert (admission / "approval-policies.yaml").read_text() == render_admission_policies()
    assert main(["crds", "--check", "--out", str(crds), "--admission-out", str(admission)]) == 0
    policy = admission / "approval-policies.yaml"
    policy.write_text(policy.read_text().replace("Deny", "Warn"))
    assert main(["crds", "--check", "--out", str(crds), "--admission-out", str(admission)]) == 1


def test_the_mutating_policy_stamps_the_requester_on_create_of_approvals_only() -> None:
    mutating, binding, _, _ = build_admission_policies()
    spec = mutating["spec"]
    (rule,) = spec["matchConstraints"]["resourceRules"]
    assert (rule["resources"], rule["operations"]) == (["approvals"], ["CREATE"])
    (mutation,) = spec["mutations"]
    assert mutation["patchType"] == "ApplyConfiguration"
    expression = mutation["applyConfiguration"]["expression"]
    assert "username: request.userInfo.username" in expression
    assert spec["failurePolicy"] == "Fail"
    assert binding["spec"] == {"policyName": mutating["metadata"]["name"]}


def test_the_validating_policy_denies_a_foreign_author_and_a_requester_without_approve() -> None:
    _, _, validating, binding = build_admission_policies()
    first, second = validating["spec"]["validations"]
    assert first["expression"] == (
        "has(object.spec.decidedBy) && object.spec.decidedBy.username == request.userInfo.username"
    )
    assert second["expression"] == (
        "authorizer.group('stepline.io').resource('workflows')"
        ".namespace(object.metadata.namespace).name(object.spec.workflowRef)"
        ".check('approve').allowed()"
    )
    assert second["messageExpression"] == (
        "request.userInfo.username + ' may not approve runs of Workflow ' + "
        "object.spec.workflowRef + ': it needs verb approve on workflows.stepline.io in ' + "
        "object.metadata.namespace"
    )
    assert second["reason"] == "Forbidden"
    assert binding["spec"]["validationActions"] == ["Deny"]


def test_the_operator_checks_exactly_the_objects_generated() -> None:
    generated = {(doc["kind"], doc["metadata"]["name"]) for doc in build_admission_policies()}
    assert generated == set(REQUIRED_OBJECTS.items())
