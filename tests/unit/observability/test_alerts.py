"""The alert rules: promtool accepts them and their unit tests pass, each alert is shown both
firing and quiet, each has a runbook, and the PrometheusRule carries exactly the same rules."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from stepline.observability.rules import build_prometheus_rule, main, render
from tests.unit.observability.exported import exported_names, metric_names_in
from tests.unit.observability.promtool import promtool

REPO = Path(__file__).resolve().parents[3]
RULES = REPO / "alerts" / "stepline-rules.yaml"
RULE_TESTS = sorted((REPO / "alerts" / "tests").glob("*.yaml"))
RUNBOOKS = REPO / "docs" / "runbooks.md"
MANIFEST = REPO / "deploy" / "monitoring" / "prometheusrule.yaml"

EXPECTED_ALERTS = {
    "SteplineWorkflowFailureRatioHigh",
    "SteplineStepLatencyHigh",
    "SteplineStepNoReadyReplicas",
    "SteplineStepAutoscalerInactive",
    "SteplineStepForecastErrorHigh",
    "SteplineOperatorAbsent",
    "SteplineNoLeader",
    "SteplineSeveralLeaders",
    "SteplineLeaseRenewFailing",
    "SteplineInvokeAuthUnavailable",
    "SteplineWatchStalled",
    "SteplineReconcileErrors",
    "SteplineScheduleMissed",
    "SteplineMetricsLabelOverflow",
}


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in rules() if "alert" in rule}


def runbook_anchors() -> set[str]:
    """GitHub's anchors of the runbook's second-level headings."""
    headings = re.findall(r"^## (.+)$", RUNBOOKS.read_text(), flags=re.MULTILINE)
    return {re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_promtool_accepts_the_rules() -> None:
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules())} rules found" in checked.stdout


def test_the_promtool_unit_tests_of_the_rules_pass() -> None:
    assert len(RULE_TESTS) >= 4
    tested = promtool("test", "rules", *map(str, RULE_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert tested.stdout.count("SUCCESS") == len(RULE_TESTS)


def test_promtool_unit_tests_would_catch_a_changed_threshold(tmp_path: Path) -> None:
    changed = RULES.read_text().replace("> 0.05", "> 0.5")
    assert changed != RULES.read_text()
    (tmp_path / "stepline-rules.yaml").write_text(changed)
    (tmp_path / "tests").mkdir()
    test_file = tmp_path / "tests" / "runs.yaml"
    test_file.write_text((REPO / "alerts" / "tests" / "runs.yaml").read_text())
    assert promtool("test", "rules", str(test_file)).returncode != 0


def test_the_rules_define_every_alert_stepline_promises() -> None:
    assert set(alerts()) == EXPECTED_ALERTS


def test_every_alert_is_shown_both_firing_and_quiet_by_a_unit_test() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    assert firing == EXPECTED_ALERTS
    assert quiet == EXPECTED_ALERTS


@pytest.mark.parametrize("name", sorted(EXPECTED_ALERTS))
def test_an_alert_has_a_severity_a_summary_a_description_and_its_runbook(name: str) -> None:
    alert = alerts()[name]
    assert alert["labels"]["severity"] in {"warning", "critical"}
    annotations = alert["annotations"]
    assert annotations["summary"].strip()
    assert len(annotations["description"]) > 60
    anchor = name.lower()
    assert annotations["runbook_url"] == f"docs/runbooks.md#{anchor}"
    assert anchor in runbook_anchors()


def test_every_runbook_entry_belongs_to_an_alert_and_says_what_to_check_and_do() -> None:
    assert runbook_anchors() == {name.lower() for name in EXPECTED_ALERTS}
    entries = re.split(r"^## ", RUNBOOKS.read_text(), flags=re.MULTILINE)[1:]
    for entry in entries:
        for part in ("**Means**", "**Check**", "**Do**"):
            assert part in entry, entry.splitlines()[0]


def test_every_metric_a_rule_reads_is_one_the_operator_exports() -> None:
    exported = exported_names()
    read = {metric for rule in rules() for metric in metric_names_in(rule["expr"])}
    assert read - exported == set()
    assert len(read) >= 7


def test_the_committed_prometheus_rule_is_generated_from_the_rules_file() -> None:
    assert MANIFEST.read_text() == render(RULES.read_text()), "run make dashboards"
    manifest = yaml.safe_load(MANIFEST.read_text())
    assert manifest["kind"] == "PrometheusRule"
    assert manifest["apiVersion"] == "monitoring.coreos.com/v1"
    assert manifest["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]
    assert manifest == build_prometheus_rule(yaml.safe_load(RULES.read_text()))


def test_the_rule_generator_check_mode_reports_a_stale_manifest(tmp_path: Path) -> None:
    out = tmp_path / "prometheusrule.yaml"
    assert main(["--rules", str(RULES), "--out", str(out)]) == 0
    assert main(["--rules", str(RULES), "--out", str(out), "--check"]) == 0
    out.write_text(out.read_text().replace("0.05", "0.5"))
    assert main(["--rules", str(RULES), "--out", str(out), "--check"]) == 1
