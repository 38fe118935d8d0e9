"""The chart's part of approvals, rendered locally: the admission policies exactly as Python
generates them, the approver ClusterRole and its aggregation, the operator's least privilege for
Approvals (the policies read by name only), and everything left out with approvals.enabled=false
or on a cluster older than Kubernetes 1.36 (no MutatingAdmissionPolicy v1)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from stepline.api import build_admission_policies
from tests.unit.test_chart_templates import CHART, granted, helm, named, of_kind, one, render

ADMISSION_KINDS = (
    "MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding",
    "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
)  # fmt: skip


def admission_objects(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] in ADMISSION_KINDS]


def operator_env(docs: list[dict[str, Any]]) -> dict[str, str]:
    container = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    return {entry["name"]: entry.get("value", "") for entry in container["env"]}


def approval_rules(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {rule for rule in granted(role) if rule[1].startswith("approvals")}


def test_the_chart_ships_the_admission_policies_exactly_as_python_generates_them() -> None:
    assert admission_objects(render()) == build_admission_policies()


def test_the_approver_cluster_role_may_create_approvals_and_approve_workflows_only() -> None:
    approver = named(render(), "ClusterRole", "stepline-approver")
    assert granted(approver) == {
        ("stepline.io", "approvals", "create"), ("stepline.io", "approvals", "get"),
        ("stepline.io", "approvals", "list"), ("stepline.io", "approvals", "watch"),
        ("stepline.io", "workflows", "approve"),
        # what `stepline approve` reads: the run, and its Workflow's steps
        ("stepline.io", "workflowruns", "get"), ("stepline.io", "workflows", "get"),
    }  # fmt: skip
    assert not any("aggregate-to" in label for label in approver["metadata"]["labels"])
    aggregated = named(render("rbac.approverAggregateTo={admin}"), "ClusterRole",
                       "stepline-approver")  # fmt: skip
    labels = aggregated["metadata"]["labels"]
    assert labels["rbac.authorization.k8s.io/aggregate-to-admin"] == "true"
    assert "rbac.authorization.k8s.io/aggregate-to-edit" not in labels


@pytest.mark.parametrize("mode", [(), ("watchNamespaces={factory}",)], ids=["cluster-wide", "ns"])
def test_the_operator_follows_approvals_and_reads_the_policies_by_name_only(
    mode: tuple[str, ...],
) -> None:
    docs = render(*mode)
    role = (
        named(docs, "ClusterRole", "stepline")
        if not mode
        else next(r for r in of_kind(docs, "Role") if r["metadata"]["name"] == "stepline")
    )
    assert approval_rules(role) == {
        ("stepline.io", "approvals", "get"), ("stepline.io", "approvals", "list"),
        ("stepline.io", "approvals", "watch"), ("stepline.io", "approvals", "patch"),
        ("stepline.io", "approvals/status", "get"), ("stepline.io", "approvals/status", "patch"),
    }  # fmt: skip
    admission = [
        rule for rule in named(docs, "ClusterRole", "stepline")["rules"]
        if rule["apiGroups"] == ["admissionregistration.k8s.io"]
    ]  # fmt: skip
    assert {name for rule in admission for name in rule["resourceNames"]} == {
        policy["metadata"]["name"] for policy in build_admission_policies()
    }
    assert {verb for rule in admission for verb in rule["verbs"]} == {"get"}
    assert operator_env(docs)["STEPLINE_APPROVALS"] == "true"


def test_approvals_disabled_leave_out_the_policies_the_roles_and_the_operators_watch() -> None:
    docs = render("approvals.enabled=false")
    assert admission_objects(docs) == []
    assert [
        r for r in of_kind(docs, "ClusterRole") if r["metadata"]["name"].endswith("approver")
    ] == []
    assert approval_rules(named(docs, "ClusterRole", "stepline")) == set()
    assert operator_env(docs)["STEPLINE_APPROVALS"] == "false"


def test_on_a_cluster_older_than_1_36_approvals_are_left_out_as_if_disabled() -> None:
    out = helm("template", "stepline", str(CHART), "--namespace", "stepline-system",
               "--kube-version", "1.35.4")  # fmt: skip
    docs = [doc for doc in yaml.safe_load_all(out.stdout) if doc]
    assert admission_objects(docs) == []
    assert operator_env(docs)["STEPLINE_APPROVALS"] == "false"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("approvals.enabled=yes", "at '/approvals/enabled': got string, want boolean"),
        ("approvals.enable=true", "additional properties 'enable' not allowed"),
        ("rbac.approverAggregateTo={view}", "at '/rbac/approverAggregateTo/0'"),
    ],
)
def test_the_values_schema_rejects_a_wrong_approvals_value_naming_the_field(
    bad: str, message: str
) -> None:
    out = helm("template", "stepline", str(CHART), "--set", bad, check=False)
    assert out.returncode != 0
    assert message in out.stderr, out.stderr
