"""The Grafana dashboards: committed JSON equals the generator's output, follows Grafana 11's
schema, queries the datasource variable, and asks only valid PromQL about metrics we export."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard

from stepline.observability.dashboards import build_dashboards, main, render
from tests.unit.observability.exported import exported_names, metric_names_in
from tests.unit.observability.promtool import promtool

REPO = Path(__file__).resolve().parents[3]
DASHBOARDS = REPO / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GRAFANA_VARIABLES = {"__rate_interval", "__interval", "__range"}
_VARIABLE = re.compile(r"\$\{?(\w+)")


def committed() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in DASHBOARDS.glob("*.json")}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel that shows data (rows only group them)."""
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            yield panel
        yield from panel.get("panels", [])


def queries() -> Iterator[tuple[str, str, str]]:
    """(dashboard file, panel title, PromQL) for every query of every committed dashboard."""
    for name, dashboard in sorted(committed().items()):
        for panel in panels(dashboard):
            for target in panel["targets"]:
                yield name, panel["title"], target["expr"]


def as_promql(expr: str) -> str:
    """A Grafana query with its variables replaced as Grafana would, for Prometheus to parse."""
    return (
        expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "15s")
        .replace("$__range", "1h")
        .replace('=~"$', '=~"value-of-')
        .replace('="$', '="value-of-')
    )


def test_committed_dashboards_are_what_the_generator_produces() -> None:
    generated = build_dashboards()
    assert sorted(committed()) == sorted(generated), "run make dashboards"
    for name, data in generated.items():
        assert (DASHBOARDS / name).read_text() == render(data), f"{name}: run make dashboards"


def test_the_generator_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path)]) == 0
    assert main(["--out", str(tmp_path), "--check"]) == 0
    (tmp_path / "stepline-overview.json").write_text("{}\n")
    assert main(["--out", str(tmp_path), "--check"]) == 1


def test_there_are_four_dashboards_with_unique_uids_and_the_stepline_tag() -> None:
    dashboards = committed()
    assert sorted(dashboards) == [
        "stepline-operator.json",
        "stepline-overview.json",
        "stepline-scaling.json",
        "stepline-workflow.json",
    ]
    uids = [dashboard["uid"] for dashboard in dashboards.values()]
    assert len(set(uids)) == 4
    for dashboard in dashboards.values():
        assert dashboard["tags"] == ["stepline"]
        assert dashboard["title"].startswith("Stepline / ")
        assert dashboard["schemaVersion"] >= 39  # Grafana 11


@pytest.mark.parametrize("name", sorted(committed()))
def test_a_dashboard_round_trips_through_the_grafana_11_dashboard_model(name: str) -> None:
    register_default_plugins()
    data = committed()[name]
    again = json.loads(json.dumps(Dashboard.from_json(data), cls=JSONEncoder))
    assert again == data  # a field the schema does not know would be dropped


@pytest.mark.parametrize("name", sorted(committed()))
def test_every_panel_queries_the_datasource_variable(name: str) -> None:
    dashboard = committed()[name]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in panels(dashboard):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert target["expr"].strip(), panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]


@pytest.mark.parametrize("name", sorted(committed()))
def test_every_panel_is_titled_described_and_placed_without_overlap(name: str) -> None:
    dashboard = committed()[name]
    cells: set[tuple[int, int]] = set()
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["title"]
        if panel["type"] != "row":
            assert panel["description"], panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        covered = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not covered & cells, f"{panel['title']} overlaps another panel"
        cells |= covered


@pytest.mark.parametrize("name", sorted(committed()))
def test_every_variable_a_query_uses_is_defined(name: str) -> None:
    dashboard = committed()[name]
    defined = {variable["name"] for variable in dashboard["templating"]["list"]}
    texts = [target["expr"] for panel in panels(dashboard) for target in panel["targets"]]
    texts += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    texts += [panel["title"] for panel in dashboard["panels"]]
    used = {match for text in texts for match in _VARIABLE.findall(text)}
    assert used - defined - GRAFANA_VARIABLES == set()


def test_every_metric_a_query_reads_is_one_the_operator_exports() -> None:
    exported = exported_names()
    unknown = {
        (name, title, metric)
        for name, title, expr in queries()
        for metric in metric_names_in(expr)
        if metric not in exported
    }
    assert unknown == set()
    read = {metric for _, _, expr in queries() for metric in metric_names_in(expr)}
    assert len(read) >= 15


def test_the_operator_dashboard_shows_who_leads_and_what_the_fence_and_authorizer_refused() -> None:
    dashboard = committed()["stepline-operator.json"]
    exprs = [target["expr"] for panel in panels(dashboard) for target in panel["targets"]]
    read = {metric for expr in exprs for metric in metric_names_in(expr)}
    assert {
        "stepline_leader",
        "stepline_lease_renew_failures_total",
        "stepline_writes_refused_total",
        "stepline_invoke_refusals_total",
    } <= read


def test_every_query_is_promql_that_promtool_parses(tmp_path: Path) -> None:
    exprs = [as_promql(expr) for _, _, expr in queries()]
    assert len(exprs) >= 35
    rules = {
        "groups": [
            {
                "name": "dashboard-queries",
                "rules": [
                    {"record": f"stepline:dashboard_query_{index}", "expr": expr}
                    for index, expr in enumerate(exprs)
                ],
            }
        ]
    }
    path = tmp_path / "queries.yaml"
    path.write_text(yaml.safe_dump(rules))

    checked = promtool("check", "rules", str(path))

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in checked.stdout


def test_promtool_would_catch_a_broken_query(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    broken = {"groups": [{"name": "g", "rules": [{"record": "x:y", "expr": "sum(rate(a[1m])"}]}]}
    path.write_text(yaml.safe_dump(broken))
    assert promtool("check", "rules", str(path)).returncode != 0
