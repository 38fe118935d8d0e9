"""Stepline's metrics, dashboards and alerts against a real Prometheus.

A loopback HTTP server serves a registry filled by our metrics module while a driver thread
records runs that succeed, retry, fail and time out, a step with no ready replica that is still
called, reconciles that fail, a stalled watch, label values that overflow, Lease renewals that
fail and invokes refused for want of a review. Beside that troubled operator, which leads,
other installations (namespaces of operator processes, each process a target of its own) have
no leader, two leaders, or a leader and a standby refusing bad callers. A real Prometheus
scrapes them every second and evaluates our rules (their `for` holds removed). Then every query
of every dashboard panel, every template variable, every recording rule and every alert
expression is evaluated through Prometheus' HTTP API and must return series; each alert must
fire for the failing case and stay quiet for the healthy one.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from stepline.observability import (
    CallOutcomeLabel,
    CodeClass,
    Metrics,
    ReconcileOutcomeLabel,
    RunOutcomeLabel,
    WaitReasonLabel,
    render_metrics,
)
from tests.integration.prometheus import (
    RULES,
    DashboardQuery,
    PrometheusServer,
    TargetGroup,
    alert_expressions,
    dashboard_queries,
    dashboard_variables,
    fill_variables,
    label_values_as_promql,
    recording_rules,
    rules_without_holds,
)

NAMESPACE = "shop"
# The values a user picks in the dashboards' variables: the workflow and step that misbehave.
CHOSEN = {"namespace": NAMESPACE, "workflow": "trade", "step": "order"}
ROUND_SECONDS = 0.2
DRIVE_LIMIT_SECONDS = 240  # the driver stops by itself even if a teardown never comes
STALLED_SECONDS = 7200  # how long ago the WorkflowRun watch saw its last event
OPERATOR_NAMESPACE = "stepline-system"  # the troubled operator's, which leads
# Installations beside it: per namespace, whether each of its processes holds the Lease.
OTHER_INSTALLATIONS = {
    "stepline-stuck": (False, False),  # none leads
    "stepline-split": (True, True),  # two lead
    "stepline-ha": (True, False),  # one leads: healthy, though callers send bad tokens
}
HEALTHY = "stepline-ha"


class MetricsEndpoint:
    """/metrics of one registry on a free loopback port, as the operator will serve it."""

    def __init__(self, metrics: Metrics) -> None:
        registry = metrics.registry

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/metrics":
                    self.send_error(404)
                    return
                body, content_type = render_metrics(registry, accept=self.headers.get("Accept"))
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass  # one line per scrape is noise

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> MetricsEndpoint:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


class Traffic:
    """Records what an operator under trouble records, one round every ROUND_SECONDS.

    - trade (validate -> order): per round one run succeeds (order takes 1.8 s, over the 1 s
      objective), one fails after a retried 503, and every third round one times out;
    - ship (pack -> label): succeeds, now and then a run is cancelled (not a failure);
    - notify (mailer): fails, its step having no ready replica to connect to;
    - reconciles of Workflows fail; workflows named per request overflow the label cap;
    - the leader fails to renew its Lease, gives a write up at its fence, and cannot have
      invoke's reviews (503);
    - callers of the healthy installation (`healthy`, its leader) send a bad token (401) or
      lack the permission (403): their business, not the operator's.
    """

    def __init__(self, metrics: Metrics, *, healthy: Metrics) -> None:
        self.metrics = metrics
        self.healthy = healthy
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._drive, daemon=True)
        self.rounds = 0

    def start(self) -> Traffic:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)

    def _drive(self) -> None:
        deadline = time.monotonic() + DRIVE_LIMIT_SECONDS
        while not self.stopping.wait(ROUND_SECONDS) and time.monotonic() < deadline:
            self.rounds += 1
            self._trade()
            self._ship()
            self._notify()
            self._operator()
            self._access()

    def _call(self, workflow: str, step: str, outcome: CallOutcomeLabel, seconds: float) -> None:
        code_class = {
            CallOutcomeLabel.SUCCESS: CodeClass.SUCCESS,
            CallOutcomeLabel.ERROR: CodeClass.of(503),
        }.get(outcome, CodeClass.NONE)
        self.metrics.record_step_call(
            namespace=NAMESPACE,
            workflow=workflow,
            step=step,
            outcome=outcome,
            code_class=code_class,
            seconds=seconds,
            trace_id=secrets.token_hex(16),
        )

    def _retry(self, workflow: str, step: str, outcome: CallOutcomeLabel) -> None:
        self.metrics.record_step_retry(
            namespace=NAMESPACE, workflow=workflow, step=step, outcome=outcome
        )

    def _run(self, workflow: str, outcome: RunOutcomeLabel, seconds: float) -> None:
        self.metrics.record_run_finished(
            namespace=NAMESPACE,
            workflow=workflow,
            outcome=outcome,
            seconds=seconds,
            trace_id=secrets.token_hex(16),
        )

    def _trade(self) -> None:
        runs = 3 if self.rounds % 3 == 0 else 2
        for run in range(runs):
            self.metrics.record_run_started(namespace=NAMESPACE, workflow="trade")
            with self.metrics.run_in_flight(namespace=NAMESPACE, workflow="trade"):
                self._call("trade", "validate", CallOutcomeLabel.SUCCESS, 0.003)
                if run == 0:
                    self._call("trade", "order", CallOutcomeLabel.SUCCESS, 1.8)
                    self._run("trade", RunOutcomeLabel.SUCCEEDED, 1.81)
                elif run == 1:
                    self._call("trade", "order", CallOutcomeLabel.ERROR, 0.05)
                    self._retry("trade", "order", CallOutcomeLabel.ERROR)
                    self._call("trade", "order", CallOutcomeLabel.ERROR, 0.05)
                    self._run("trade", RunOutcomeLabel.FAILED, 0.2)
                else:
                    self._call("trade", "order", CallOutcomeLabel.TIMEOUT, 5.0)
                    self._retry("trade", "order", CallOutcomeLabel.TIMEOUT)
                    self._call("trade", "order", CallOutcomeLabel.TIMEOUT, 5.0)
                    self._run("trade", RunOutcomeLabel.TIMED_OUT, 10.0)

    def _ship(self) -> None:
        self.metrics.record_run_started(namespace=NAMESPACE, workflow="ship")
        self._call("ship", "pack", CallOutcomeLabel.SUCCESS, 0.01)
        if self.rounds % 5 == 0:
            self._run("ship", RunOutcomeLabel.CANCELLED, 0.02)
            return
        self._call("ship", "label", CallOutcomeLabel.SUCCESS, 0.02)
        self._run("ship", RunOutcomeLabel.SUCCEEDED, 0.03)

    def _notify(self) -> None:
        self.metrics.record_run_started(namespace=NAMESPACE, workflow="notify")
        self._call("notify", "mailer", CallOutcomeLabel.CONNECTION_ERROR, 0.001)
        self._retry("notify", "mailer", CallOutcomeLabel.CONNECTION_ERROR)
        self._call("notify", "mailer", CallOutcomeLabel.CONNECTION_ERROR, 0.001)
        self._run("notify", RunOutcomeLabel.FAILED, 0.01)

    def _operator(self) -> None:
        metrics = self.metrics
        for step, ready, desired in (
            ("validate", 2, 2), ("order", 1, 3), ("pack", 2, 2), ("label", 1, 1), ("mailer", 0, 2)
        ):  # fmt: skip
            metrics.set_step_replicas(namespace=NAMESPACE, step=step, ready=ready, desired=desired)
        metrics.record_reconcile(
            kind="ServiceStep", outcome=ReconcileOutcomeLabel.SUCCESS, seconds=0.02
        )
        metrics.record_reconcile(kind="Workflow", outcome=ReconcileOutcomeLabel.ERROR, seconds=0.3)
        metrics.record_reconcile(
            kind="WorkflowRun", outcome=ReconcileOutcomeLabel.SUCCESS, seconds=0.01
        )
        metrics.mark_watch_event(kind="ServiceStep")
        metrics.mark_watch_event(kind="Workflow")
        # order's autoscaler cannot read its metrics, and its forecasts are far off a real load.
        metrics.set_step_autoscaler_active(namespace=NAMESPACE, step="order", active=False)
        metrics.set_step_autoscaler_active(namespace=NAMESPACE, step="validate", active=True)
        for step, load, error in (("order", 6.0, 0.8), ("validate", 6.0, 0.1), ("label", 0.2, 0.9)):
            metrics.set_step_load(
                namespace=NAMESPACE, step=step, metric="in_flight", load=load, forecast=load,
                error_ratio=error, value=load,
            )  # fmt: skip
        metrics.set_step_scaling_lead(namespace=NAMESPACE, step="order", seconds=12.0)
        metrics.record_run_started(namespace=NAMESPACE, workflow=f"generated-{self.rounds}")
        metrics.record_run_started(namespace=NAMESPACE, workflow="Not A Kubernetes Name")

    def _access(self) -> None:
        self.metrics.record_lease_renew_failure()
        self.metrics.record_write_refused("workflowruns/status")
        self.metrics.record_invoke_refused(status=503)
        self.healthy.record_invoke_refused(status=401)
        self.healthy.record_invoke_refused(status=403)


class Clock:
    """Real time, shifted while the stalled watch's last event is recorded."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def troubled_metrics() -> Metrics:
    clock = Clock()
    # A small cap, so that the workflows named per request overflow within seconds.
    metrics = Metrics(max_series_per_metric=20, clock=clock)
    metrics.set_leader(leading=True)
    clock.offset = -STALLED_SECONDS
    metrics.mark_watch_event(kind="WorkflowRun")
    clock.offset = 0.0
    return metrics


def replica(*, leading: bool) -> Metrics:
    metrics = Metrics()
    metrics.set_leader(leading=leading)
    return metrics


def serve_installation(
    stack: ExitStack, namespace: str, replicas: Sequence[Metrics]
) -> TargetGroup:
    """Serves each replica's /metrics until `stack` closes; their targets, in `namespace`."""
    endpoints = [MetricsEndpoint(metrics).start() for metrics in replicas]
    for endpoint in endpoints:
        stack.callback(endpoint.stop)
    return TargetGroup([endpoint.address for endpoint in endpoints], {"namespace": namespace})


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    metrics = troubled_metrics()
    others = {
        namespace: [replica(leading=leading) for leading in leads]
        for namespace, leads in OTHER_INSTALLATIONS.items()
    }
    workdir = tmp_path_factory.mktemp("prometheus")
    with ExitStack() as stack:
        stack.enter_context(metrics.run_in_flight(namespace=NAMESPACE, workflow="trade"))
        metrics.run_parked(namespace=NAMESPACE, workflow="trade", reason=WaitReasonLabel.APPROVAL)
        endpoint = MetricsEndpoint(metrics).start()
        stack.callback(endpoint.stop)
        groups = [serve_installation(stack, name, replicas) for name, replicas in others.items()]
        stack.callback(Traffic(metrics, healthy=others[HEALTHY][0]).start().stop)
        server = PrometheusServer(
            targets=[endpoint.address],
            workdir=workdir,
            rule_files=[rules_without_holds(RULES, workdir / "rules.yaml")],
            # What the prometheus-operator adds to a target: the operator's own namespace.
            target_labels={"namespace": OPERATOR_NAMESPACE},
            more_targets=groups,
        )
        stack.enter_context(server)
        server.wait_for(
            "runs finishing at a measurable rate",
            lambda: server.query("sum(rate(stepline_runs_finished_total[1m])) > 0"),
        )
        yield server


def has_finite_values(series: list[dict[str, Any]]) -> bool:
    values = [float(s["value"][1]) for s in series if "value" in s]
    values += [float(v) for s in series for _, v in s.get("values", [])]
    return any(math.isfinite(v) for v in values)


def test_prometheus_scrapes_openmetrics_and_keeps_steplines_namespace_label(
    prometheus: PrometheusServer,
) -> None:
    processes = Counter({OPERATOR_NAMESPACE: 1})
    processes.update({namespace: len(leads) for namespace, leads in OTHER_INSTALLATIONS.items()})
    prometheus.wait_for(
        f"{processes.total()} targets up",
        lambda: [t["health"] for t in prometheus.active_targets()] == ["up"] * processes.total(),
    )
    assert prometheus.query('stepline_runs_started_total{namespace="shop", workflow="trade"}')
    assert prometheus.query('{__name__=~"stepline_.+", exported_namespace!=""}') == []
    build = prometheus.query("stepline_build_info")
    assert Counter(series["metric"]["namespace"] for series in build) == processes


@pytest.mark.parametrize(
    "query",
    list(dashboard_queries()),
    ids=lambda q: f"{q.dashboard.removesuffix('.json')}/{q.panel}",
)
def test_a_dashboard_query_parses_and_returns_series(
    prometheus: PrometheusServer, query: DashboardQuery
) -> None:
    expr = fill_variables(query.expr, CHOSEN)
    assert prometheus.format_query(expr)

    instant = prometheus.wait_for(
        f"{query.dashboard} / {query.panel}: {expr} returns series",
        lambda: prometheus.query(expr),
        timeout=30,
    )
    assert has_finite_values(instant), instant
    now = time.time()
    ranged = prometheus.query_range(expr, start=now - 10, end=now, step=1)
    assert ranged
    assert has_finite_values(ranged), ranged


@pytest.mark.parametrize(("dashboard", "variable", "query"), list(dashboard_variables()), ids=str)
def test_a_dashboard_variable_lists_the_names_recorded(
    prometheus: PrometheusServer, dashboard: str, variable: str, query: str
) -> None:
    expr, label = label_values_as_promql(query, CHOSEN)
    series = prometheus.wait_for(
        f"{dashboard}: ${variable} has values", lambda: prometheus.query(expr)
    )
    assert CHOSEN[variable] in {s["metric"][label] for s in series}


@pytest.mark.parametrize("record", recording_rules())
def test_a_recording_rule_produces_series(prometheus: PrometheusServer, record: str) -> None:
    prometheus.wait_for(f"{record} has series", lambda: prometheus.query(record))


FIRING = {
    "SteplineWorkflowFailureRatioHigh": [
        {"namespace": "shop", "workflow": "notify"},
        {"namespace": "shop", "workflow": "trade"},
    ],
    "SteplineStepLatencyHigh": [{"namespace": "shop", "workflow": "trade", "step": "order"}],
    "SteplineStepNoReadyReplicas": [{"namespace": "shop", "step": "mailer"}],
    "SteplineStepAutoscalerInactive": [{"namespace": "shop", "step": "order"}],
    "SteplineStepForecastErrorHigh": [
        {"namespace": "shop", "step": "order", "metric": "in_flight"}
    ],
    "SteplineWatchStalled": [{"kind": "WorkflowRun"}],
    "SteplineReconcileErrors": [{"kind": "Workflow"}],
    "SteplineMetricsLabelOverflow": [
        {"metric": "stepline_runs_started_total", "reason": "cardinality"},
        {"metric": "stepline_runs_started_total", "reason": "invalid"},
    ],
    "SteplineNoLeader": [{"namespace": "stepline-stuck"}],
    "SteplineSeveralLeaders": [{"namespace": "stepline-split"}],
    "SteplineLeaseRenewFailing": [{"namespace": OPERATOR_NAMESPACE}],
    "SteplineInvokeAuthUnavailable": [{"namespace": OPERATOR_NAMESPACE}],
}
LABELS_OF_ALERTS = {"namespace", "workflow", "step", "kind", "metric", "reason"}


@pytest.mark.parametrize("alert", sorted(FIRING))
def test_an_alert_expression_returns_series_in_the_failing_case(
    prometheus: PrometheusServer, alert: str
) -> None:
    expr = alert_expressions()[alert]
    expected = sorted(FIRING[alert], key=str)
    seen: list[list[dict[str, str]]] = []

    def found() -> list[dict[str, str]] | None:
        series = prometheus.query(expr)
        labels = [{k: v for k, v in s["metric"].items() if k in LABELS_OF_ALERTS} for s in series]
        seen.append(sorted(labels, key=str))
        return seen[-1] if seen[-1] == expected else None

    try:
        prometheus.wait_for(f"{alert}: {expr}", found, timeout=30)
    except AssertionError:
        assert seen[-1] == expected  # shows what the expression returned instead
        raise


def firing(prometheus: PrometheusServer) -> dict[str, list[dict[str, str]]]:
    found: dict[str, list[dict[str, str]]] = {}
    for alert in prometheus.alerts():
        if alert["state"] == "firing":
            labels = alert["labels"]
            found.setdefault(labels["alertname"], []).append(
                {k: v for k, v in labels.items() if k in LABELS_OF_ALERTS}
            )
    return {name: sorted(labels, key=str) for name, labels in found.items()}


def test_every_alert_fires_for_the_failing_case_and_only_for_it(
    prometheus: PrometheusServer,
) -> None:
    expected = {name: sorted(labels, key=str) for name, labels in FIRING.items()}
    seen: list[dict[str, list[dict[str, str]]]] = []

    def as_expected() -> bool:
        seen.append(firing(prometheus))
        return seen[-1] == expected

    try:
        prometheus.wait_for(f"alerts firing: {sorted(expected)}", as_expected, timeout=30)
    except AssertionError:
        assert seen[-1] == expected  # shows which alerts fired instead
        raise
    time.sleep(2)  # a few more evaluations: nothing else may join
    assert firing(prometheus) == expected


def test_the_failure_ratio_alert_fires_for_failing_workflows_but_not_the_healthy_one(
    prometheus: PrometheusServer,
) -> None:
    def failing_workflows() -> set[str]:
        return {
            alert["labels"]["workflow"]
            for alert in prometheus.alerts()
            if alert["labels"]["alertname"] == "SteplineWorkflowFailureRatioHigh"
            and alert["state"] == "firing"
        }

    found = prometheus.wait_for("failure-ratio alerts", lambda: failing_workflows() or None)
    assert found == {"trade", "notify"}
    assert "ship" not in failing_workflows()  # only cancelled runs, never failures
    ratio = prometheus.query(
        'sum(rate(stepline_runs_finished_total{workflow="ship", outcome!="succeeded"}[1m]))'
    )
    assert float(ratio[0]["value"][1]) > 0  # ship does have runs that are not successes


def test_exemplars_carry_the_trace_id_into_prometheus(prometheus: PrometheusServer) -> None:
    now = time.time()

    def exemplars() -> list[dict[str, Any]]:
        found = prometheus.exemplars(
            'stepline_run_duration_seconds_bucket{workflow="trade"}', start=now - 60, end=now + 5
        )
        return [e for series in found for e in series["exemplars"]]

    found = prometheus.wait_for("exemplars of run durations", exemplars)
    assert all(len(e["labels"]["trace_id"]) == 32 for e in found)


def test_the_operator_absent_alert_fires_only_once_its_target_is_gone(tmp_path: Path) -> None:
    metrics = Metrics()
    endpoint = MetricsEndpoint(metrics).start()
    with PrometheusServer(
        targets=[endpoint.address],
        workdir=tmp_path,
        rule_files=[rules_without_holds(RULES, tmp_path / "rules.yaml")],
    ) as server:
        try:
            server.wait_for("build info scraped", lambda: server.query("stepline_build_info"))
            expr = alert_expressions()["SteplineOperatorAbsent"]
            time.sleep(2)  # rules evaluated a few times with the operator present
            assert server.query(expr) == []
            assert "SteplineOperatorAbsent" not in firing(server)
        finally:
            endpoint.stop()

        series = server.wait_for("absent() once the target is gone", lambda: server.query(expr))
        assert series[0]["metric"] == {}
        server.wait_for(
            "SteplineOperatorAbsent firing", lambda: "SteplineOperatorAbsent" in firing(server)
        )
