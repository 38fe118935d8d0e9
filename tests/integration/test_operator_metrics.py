"""The real operator's /metrics, scraped by a real Prometheus while runs succeed, retry and fail:
every dashboard panel's query and every alert's expression is evaluated through Prometheus' API.

A panel query must parse and, when it is about what this traffic produces, return series; the
failure-ratio alert's expression must return the failing workflow and not the healthy one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.integration.localcluster import LocalCluster
from tests.integration.prometheus import (
    RULES,
    DashboardQuery,
    PrometheusServer,
    dashboard_queries,
    fill_variables,
)
from tests.integration.stepservices import (
    StepBed,
    apply_workflow,
    close_step_bed,
    open_step_bed,
    post_invoke,
    start_run,
    wait_finished,
)
from tests.unit.engine.stepservers import Answer

pytestmark = pytest.mark.integration

STEPS = ("validate", "order", "broken")
QUICK = {"limit": 1, "backoff": {"initialSeconds": 0.01, "maxSeconds": 0.05}}
# order scales on its calls in flight, ahead of a forecast: the Scaling dashboard's load panels.
SCALING = {"order": {"metrics": [{"type": "InFlight", "target": 2}], "predictive": True}}
# Sampled every second, forecast 2 s ahead: forecasts are scored within seconds.
SCALING_ENV = {"STEPLINE_SCALING_SAMPLE_SECONDS": "1", "STEPLINE_SCALING_DEFAULT_LEAD_SECONDS": "2"}


def drive(bed: StepBed) -> None:
    """Runs that succeed (invoke and WorkflowRun), one that retries, failing ones, and one
    suspended."""
    # The first order is retried (500, then 200), the second refused (400), the rest echo.
    bed.server.answer(
        "/order", Answer(500), Answer(200, json={"ok": True}), Answer(400), lambda got: got
    )
    bed.server.answer("/broken", Answer(503))
    apply_workflow(
        bed, "trade",
        [{"name": "validate", "stepRef": "validate"}, {"name": "order", "stepRef": "order"}],
    )  # fmt: skip
    apply_workflow(bed, "notify", [{"name": "send", "stepRef": "broken", "retry": QUICK}])
    for index in range(8):  # spread over several scrapes, so that rates see the counters grow
        body = json.dumps({"n": index}).encode()
        post_invoke(bed.operator.base_url, bed.namespace, "trade", body, token=bed.token)
        post_invoke(bed.operator.base_url, bed.namespace, "notify", b"{}", token=bed.token)
        time.sleep(0.5)
    start_run(bed, "trade-run", "trade", {"n": 99})
    wait_finished(bed, "trade-run")
    # A run created suspended is parked: the runs-waiting panel.
    bed.cluster.apply({
        "apiVersion": "stepline.io/v1alpha1", "kind": "WorkflowRun",
        "metadata": {"name": "trade-held", "namespace": bed.namespace},
        "spec": {"workflowRef": "trade", "input": {}, "suspend": True},
    })  # fmt: skip


@pytest.fixture(scope="module")
def scraped(
    cluster: LocalCluster, crds: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[StepBed, PrometheusServer]]:
    workdir = tmp_path_factory.mktemp("operator-metrics")
    with ExitStack() as stack:
        bed = open_step_bed(
            cluster, "metrics", STEPS, workdir, scaling=SCALING, extra_env=SCALING_ENV
        )
        stack.callback(close_step_bed, bed)
        address = bed.operator.metrics_url.removeprefix("http://")
        prometheus = PrometheusServer(targets=[address], workdir=workdir, rule_files=[RULES])
        stack.enter_context(prometheus)
        drive(bed)
        prometheus.wait_for(
            "both workflows' runs to be seen growing", lambda: keep_growing(bed, prometheus)
        )
        yield bed, prometheus


def keep_growing(bed: StepBed, prometheus: PrometheusServer) -> bool:
    """One more run of each workflow; True once Prometheus has seen both counters grow.

    A rate needs two scrapes that see a counter at different values. Under load a scrape can
    take longer than the 1 s interval and fail, so every run `drive` made may land before the
    first good scrape: the rates are then zero and every ratio of them NaN. Runs keep coming
    until a rate is positive, whatever the scrapes' timing.
    """
    post_invoke(bed.operator.base_url, bed.namespace, "trade", b'{"n": 100}', token=bed.token)
    post_invoke(bed.operator.base_url, bed.namespace, "notify", b"{}", token=bed.token)
    return all(
        prometheus.query(f'rate(stepline_runs_finished_total{{workflow="{name}"}}[5m]) > 0')
        for name in ("trade", "notify")
    )


@pytest.mark.parametrize(
    "query",
    list(dashboard_queries()),
    ids=lambda q: f"{q.dashboard.removesuffix('.json')}/{q.panel}",
)
def test_a_dashboard_query_returns_series_from_the_real_operator(
    scraped: tuple[StepBed, PrometheusServer], query: DashboardQuery
) -> None:
    bed, prometheus = scraped
    expr = fill_variables(
        query.expr, {"namespace": bed.namespace, "workflow": "trade", "step": "order"}
    )
    assert prometheus.format_query(expr)
    prometheus.wait_for(
        f"{query.dashboard} / {query.panel}: {expr}", lambda: prometheus.query(expr)
    )


def test_the_failure_ratio_alert_sees_the_failing_workflow_and_not_the_healthy_one(
    scraped: tuple[StepBed, PrometheusServer],
) -> None:
    _, prometheus = scraped
    rule = next(
        r for group in prometheus.rule_groups() for r in group["rules"]
        if r["name"] == "SteplineWorkflowFailureRatioHigh"
    )  # fmt: skip
    series = prometheus.wait_for(
        "the failure-ratio expression to return series", lambda: prometheus.query(rule["query"])
    )
    workflows = {s["metric"]["workflow"] for s in series}
    assert "notify" in workflows
    assert "trade" not in workflows


def test_the_operator_exports_reconciles_watch_events_and_replicas(
    scraped: tuple[StepBed, PrometheusServer],
) -> None:
    bed, prometheus = scraped
    for expr in (
        'stepline_reconciliations_total{kind="ServiceStep", outcome="success"}',
        'stepline_watch_last_event_timestamp_seconds{kind="WorkflowRun"}',
        f'stepline_step_replicas_ready{{namespace="{bed.namespace}", step="order"}} >= 1',
        f'stepline_step_retries_total{{namespace="{bed.namespace}", step="order"}}',
        "stepline_build_info",
    ):
        assert prometheus.wait_for(expr, lambda e=expr: prometheus.query(e)), expr  # type: ignore[misc]


def test_prometheus_log_has_no_scrape_errors(scraped: tuple[StepBed, PrometheusServer]) -> None:
    _, prometheus = scraped
    (target,) = prometheus.active_targets()
    assert target["health"] == "up", target
    assert not Path(prometheus.log_path).read_text().count("level=error")
