"""Stepline's Grafana dashboards, generated from code: `make dashboards` writes dashboards/*.json.

Build-time only: it needs the dev extra (`grafana-foundation-sdk`, pinned to its Grafana 11.6
build) and the operator never imports it. The committed JSON is what users load (and what the
chart ships); a unit test fails when it differs from what this module generates, so nobody edits
the JSON by hand.

Every panel queries the Prometheus data source chosen in the `datasource` variable, and every
query uses only the metrics defined in `metrics.py`. Four dashboards:

- overview: runs per second by outcome, success ratio, run duration p50/p95/p99, runs in flight;
- workflow: one workflow (variables `namespace`, `workflow`): its runs, and per step the call
  rate, errors, duration and retries;
- scaling: per step, ready vs desired replicas beside its call rate and latency;
- operator: reconciles and their errors and duration, watch staleness, the process itself;
  and a row on leadership and access: who leads, Lease renewals that fail, writes refused at
  the fence, invokes the authorizer refused.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model

DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "$__rate_interval"
TAG = "stepline"
WATCH_STALE_SECONDS = 1800  # the SteplineWatchStalled threshold, drawn as the panel's red line
WRITE_VERBS = "POST|PUT|PATCH|DELETE"  # of stepline_api_requests_total: what the fence guards

_Panel = TypeVar("_Panel", stat.Panel, timeseries.Panel)


def _query(expr: str, legend: str = "", *, exemplar: bool = False) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).datasource(DATASOURCE).range()
    if legend:
        query = query.legend_format(legend)
    return query.exemplar(exemplar)


def _with_queries(panel: _Panel, queries: Sequence[prometheus.Dataquery]) -> _Panel:
    for index, query in enumerate(queries):
        panel = panel.with_target(query.ref_id(chr(ord("A") + index)))
    return panel


def _graph(
    title: str, description: str, unit: str, *queries: prometheus.Dataquery, width: int = 12
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(8)
        .fill_opacity(10)
    )
    return _with_queries(panel, queries)


def _number(
    title: str,
    description: str,
    unit: str,
    query: prometheus.Dataquery,
    *,
    steps: Sequence[tuple[float | None, str]] = ((None, "blue"),),
) -> stat.Panel:
    thresholds = dash.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE)
    thresholds = thresholds.steps([model.Threshold(value, color) for value, color in steps])
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(6)
        .height(4)
        .thresholds(thresholds)
    )
    return _with_queries(panel, [query])


def _datasource_variable() -> dash.DatasourceVariable:
    return dash.DatasourceVariable("datasource").label("Data source").type("prometheus")


def _query_variable(name: str, query: str, *, many: bool) -> dash.QueryVariable:
    variable = (
        dash.QueryVariable(name)
        .label(name.capitalize())
        .datasource(DATASOURCE)
        .query(query)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
    )
    if many:
        variable = variable.multi(True).include_all(True).all_value(".*")
    return variable


def _dashboard(uid: str, title: str, description: str) -> dash.Dashboard:
    return (
        dash.Dashboard(f"Stepline / {title}")
        .uid(uid)
        .description(description)
        .tags([TAG])
        .time("now-1h", "now")
        .refresh("30s")
        .timezone("browser")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .link(
            dash.DashboardLink("Stepline")
            .type(model.DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
        .with_variable(_datasource_variable())
    )


def _quantiles(metric: str, selector: str, by: str = "") -> list[prometheus.Dataquery]:
    group = f"{by}, le" if by else "le"
    prefix = f"{{{{{by}}}}} " if by else ""
    matchers = f"{{{selector}}}" if selector else ""
    buckets = f"rate({metric}_bucket{matchers}[{RATE}])"
    return [
        _query(
            f"histogram_quantile({q}, sum by ({group}) ({buckets}))",
            f"{prefix}p{round(q * 100)}",
            exemplar=True,
        )
        for q in (0.5, 0.95, 0.99)
    ]


def _success_ratio(selector: str, by: str) -> str:
    """Succeeded over finished runs, cancelled ones left out; 0 (not "no data") when all fail."""
    finished = f'stepline_runs_finished_total{{{selector}, outcome!="cancelled"}}'
    succeeded = f'stepline_runs_finished_total{{{selector}, outcome="succeeded"}}'
    if not by:
        return f"(sum(rate({succeeded}[{RATE}])) or vector(0)) / sum(rate({finished}[{RATE}]))"
    return (
        f"sum by ({by}) (rate({succeeded}[{RATE}]) or 0 * rate({finished}[{RATE}]))"
        f" / sum by ({by}) (rate({finished}[{RATE}]))"
    )


def build_overview() -> dash.Dashboard:
    sel = 'namespace=~"$namespace"'
    return (
        _dashboard("stepline-overview", "Overview", "Runs of every workflow: rate, outcome, time.")
        .with_variable(
            _query_variable(
                "namespace", "label_values(stepline_runs_started_total, namespace)", many=True
            )
        )
        .with_panel(_number(
            "Runs started per second", "Workflow runs started, all selected namespaces.", "ops",
            _query(f"sum(rate(stepline_runs_started_total{{{sel}}}[{RATE}]))"),
        ))
        .with_panel(_number(
            "Run success ratio", "Succeeded runs over finished runs; cancelled runs left out.",
            "percentunit", _query(_success_ratio(sel, by="")),
            steps=((None, "red"), (0.9, "orange"), (0.99, "green")),
        ))
        .with_panel(_number(
            "Runs in flight", "Runs executing now in the operator.", "short",
            _query(f"sum(stepline_runs_in_flight{{{sel}}})"),
        ))
        .with_panel(_number(
            "Step calls per second", "HTTP calls to steps, retries included.", "ops",
            _query(f"sum(rate(stepline_step_calls_total{{{sel}}}[{RATE}]))"),
        ))
        .with_panel(_graph(
            "Runs finished per second, by outcome", "succeeded, failed, cancelled, timed_out.",
            "ops",
            _query(
                f"sum by (outcome) (rate(stepline_runs_finished_total{{{sel}}}[{RATE}]))",
                "{{outcome}}",
            ),
        ))
        .with_panel(_graph(
            "Run duration", "Quantiles of the time from a run's start to its outcome.", "s",
            *_quantiles("stepline_run_duration_seconds", sel),
        ))
        .with_panel(_graph(
            "Run success ratio, by workflow", "Succeeded over finished runs, cancelled left out.",
            "percentunit",
            _query(_success_ratio(sel, by="namespace, workflow"), "{{namespace}}/{{workflow}}"),
        ))
        .with_panel(_graph(
            "Runs in flight, by workflow", "Runs executing now.", "short",
            _query(
                f"sum by (namespace, workflow) (stepline_runs_in_flight{{{sel}}})",
                "{{namespace}}/{{workflow}}",
            ),
        ))
        .with_panel(_graph(
            "Runs waiting, by why",
            "Runs parked with no task: approval (a step waits for a person) or suspended.",
            "short",
            _query(f"sum by (reason) (stepline_runs_waiting{{{sel}}})", "{{reason}}"),
            width=24,
        ))
        .with_panel(_graph(
            "Slowest steps: p99 call duration, top 5",
            "The five steps with the highest p99 call duration.", "s",
            _query(
                "topk(5, histogram_quantile(0.99, sum by (namespace, workflow, step, le) "
                f"(rate(stepline_step_call_duration_seconds_bucket{{{sel}}}[{RATE}]))))",
                "{{namespace}}/{{workflow}}/{{step}}",
                exemplar=True,
            ),
            width=24,
        ))
    )  # fmt: skip


def build_workflow() -> dash.Dashboard:
    sel = 'namespace="$namespace", workflow="$workflow"'
    calls = f"stepline_step_calls_total{{{sel}}}"
    return (
        _dashboard("stepline-workflow", "Workflow", "One workflow: its runs and each step's calls.")
        .with_variable(
            _query_variable(
                "namespace", "label_values(stepline_runs_started_total, namespace)", many=False
            )
        )
        .with_variable(
            _query_variable(
                "workflow",
                'label_values(stepline_runs_started_total{namespace="$namespace"}, workflow)',
                many=False,
            )
        )
        .with_row(dash.Row("Runs"))
        .with_panel(_graph(
            "Runs finished per second, by outcome", "succeeded, failed, cancelled, timed_out.",
            "ops",
            _query(
                f"sum by (outcome) (rate(stepline_runs_finished_total{{{sel}}}[{RATE}]))",
                "{{outcome}}",
            ),
        ))
        .with_panel(_graph(
            "Run duration", "Quantiles of the time from a run's start to its outcome.", "s",
            *_quantiles("stepline_run_duration_seconds", sel),
        ))
        .with_panel(_graph(
            "Run success ratio", "Succeeded over finished runs; cancelled runs left out.",
            "percentunit", _query(_success_ratio(sel, by=""), "success ratio"),
        ))
        .with_panel(_graph(
            "Runs in flight", "Runs of this workflow executing now.", "short",
            _query(f"sum(stepline_runs_in_flight{{{sel}}})", "in flight"),
        ))
        .with_row(dash.Row("Steps"))
        .with_panel(_graph(
            "Calls per second, by step", "HTTP calls (attempts) to each step.", "ops",
            _query(f"sum by (step) (rate({calls}[{RATE}]))", "{{step}}"),
        ))
        .with_panel(_graph(
            "Call error ratio, by step", "Failed attempts over all attempts, per step.",
            "percentunit",
            _query(
                f'sum by (step) (rate(stepline_step_calls_total{{{sel}, outcome!="success"}}'
                f"[{RATE}]) or 0 * rate({calls}[{RATE}])) / sum by (step) (rate({calls}[{RATE}]))",
                "{{step}}",
            ),
        ))
        .with_panel(_graph(
            "Failed calls per second, by step and cause",
            "Failed attempts by outcome and HTTP status class (none: no answer).", "ops",
            _query(
                "sum by (step, outcome, code_class) "
                f'(rate(stepline_step_calls_total{{{sel}, outcome!="success"}}[{RATE}]))',
                "{{step}} {{outcome}} {{code_class}}",
            ),
        ))
        .with_panel(_graph(
            "Retries per second, by step", "Attempts retried, by how the retried one failed.",
            "ops",
            _query(
                f"sum by (step, outcome) (rate(stepline_step_retries_total{{{sel}}}[{RATE}]))",
                "{{step}} after {{outcome}}",
            ),
        ))
        .with_panel(_graph(
            "Call duration p99, by step", "99th percentile of each step's call duration.", "s",
            _query(
                "histogram_quantile(0.99, sum by (step, le) "
                f"(rate(stepline_step_call_duration_seconds_bucket{{{sel}}}[{RATE}])))",
                "{{step}}",
                exemplar=True,
            ),
        ))
        .with_panel(_graph(
            "Mean call duration, by step",
            "Each step's share of a run's time (T = sum of the steps' times).", "s",
            _query(
                f"sum by (step) (rate(stepline_step_call_duration_seconds_sum{{{sel}}}[{RATE}]))"
                " / sum by (step) "
                f"(rate(stepline_step_call_duration_seconds_count{{{sel}}}[{RATE}]))",
                "{{step}}",
            ),
        ))
    )  # fmt: skip


def build_scaling() -> dash.Dashboard:
    sel = 'namespace=~"$namespace", step=~"$step"'
    calls = f"sum by (namespace, step) (rate(stepline_step_calls_total{{{sel}}}[{RATE}]))"
    return (
        _dashboard("stepline-scaling", "Scaling", "Is each step scaled right for its load?")
        .with_variable(
            _query_variable(
                "namespace", "label_values(stepline_step_replicas_desired, namespace)", many=True
            )
        )
        .with_variable(
            _query_variable(
                "step",
                'label_values(stepline_step_replicas_desired{namespace=~"$namespace"}, step)',
                many=True,
            )
        )
        .with_row(dash.Row("Step $step").repeat("step"))
        .with_panel(_graph(
            "Replicas: ready vs desired", "Ready replicas against what the autoscaler wants.",
            "short",
            _query(
                f"sum by (namespace, step) (stepline_step_replicas_ready{{{sel}}})",
                "ready {{namespace}}/{{step}}",
            ),
            _query(
                f"sum by (namespace, step) (stepline_step_replicas_desired{{{sel}}})",
                "desired {{namespace}}/{{step}}",
            ),
            width=6,
        ))
        .with_panel(_graph(
            "Calls per second", "HTTP calls to the step from every workflow.", "ops",
            _query(calls, "{{namespace}}/{{step}}"), width=6,
        ))
        .with_panel(_graph(
            "Calls per second per ready replica", "The load each ready replica carries.", "ops",
            _query(
                f"{calls} / sum by (namespace, step) (stepline_step_replicas_ready{{{sel}}} > 0)",
                "{{namespace}}/{{step}}",
            ),
            width=6,
        ))
        .with_panel(_graph(
            "Call duration p99", "Rising latency with flat replicas: scaling lags the load.", "s",
            _query(
                "histogram_quantile(0.99, sum by (namespace, step, le) "
                f"(rate(stepline_step_call_duration_seconds_bucket{{{sel}}}[{RATE}])))",
                "{{namespace}}/{{step}}",
                exemplar=True,
            ),
            width=6,
        ))
        .with_panel(_graph(
            "Load, forecast and scaling value",
            "For steps scaling on InFlight or CallsPerSecond: the load the operator sees, its "
            "forecast one lead time ahead, and what the autoscaler follows (the larger of the "
            "two when predictive).",
            "short",
            _query(
                f"sum by (namespace, step, metric) (stepline_step_load{{{sel}}})",
                "load {{metric}} {{namespace}}/{{step}}",
            ),
            _query(
                f"sum by (namespace, step, metric) (stepline_step_load_forecast{{{sel}}})",
                "forecast {{metric}} {{namespace}}/{{step}}",
            ),
            _query(
                f"sum by (namespace, step, metric) (stepline_step_scaling_value{{{sel}}})",
                "scaling value {{metric}} {{namespace}}/{{step}}",
            ),
            width=12,
        ))
        .with_panel(_graph(
            "Forecast error and lead time",
            "The forecasts' smoothed absolute error over the load (alert above 0.5 for 30 "
            "minutes), and the measured seconds from a scale-up to Ready replicas.",
            "short",
            _query(
                "max by (namespace, step, metric) "
                f"(stepline_step_load_forecast_error_ratio{{{sel}}})",
                "error ratio {{metric}} {{namespace}}/{{step}}",
            ),
            _query(
                f"max by (namespace, step) (stepline_step_scaling_lead_seconds{{{sel}}})",
                "lead seconds {{namespace}}/{{step}}",
            ),
            width=12,
        ))
    )  # fmt: skip


def build_operator() -> dash.Dashboard:
    own = "on (job, instance) stepline_build_info"  # the processes that are Stepline operators
    dashboard = (
        _dashboard("stepline-operator", "Operator", "The operator's own health.")
        .with_panel(_number(
            "Operator replicas", "Processes exporting stepline_build_info.", "short",
            _query("count(stepline_build_info)"),
            steps=((None, "red"), (1, "green")),
        ))
        .with_panel(_number(
            "Reconcile errors per second", "Failed reconciles, every kind.", "ops",
            _query(
                f'sum(rate(stepline_reconciliations_total{{outcome="error"}}[{RATE}]))'
                " or vector(0)"
            ),
            steps=((None, "green"), (0.001, "red")),
        ))
        .with_panel(_number(
            "Oldest watch, seconds since its last event", "Alert threshold: 1800 s.", "s",
            _query("max(time() - stepline_watch_last_event_timestamp_seconds)"),
            steps=((None, "green"), (WATCH_STALE_SECONDS, "red")),
        ))
        .with_panel(_number(
            "Metric label overflows per second", "Label values folded into _other.", "ops",
            _query(f"sum(rate(stepline_metrics_label_overflow_total[{RATE}]))"),
            steps=((None, "green"), (0.001, "orange")),
        ))
        .with_panel(_graph(
            "Reconciles per second, by kind and outcome", "Every reconcile of every kind.", "ops",
            _query(
                f"sum by (kind, outcome) (rate(stepline_reconciliations_total[{RATE}]))",
                "{{kind}} {{outcome}}",
            ),
        ))
        .with_panel(_graph(
            "Reconcile errors per second, by kind", "Failed reconciles; kopf retries them.", "ops",
            _query(
                'sum by (kind) (rate(stepline_reconciliations_total{outcome="error"}'
                f"[{RATE}]) or 0 * rate(stepline_reconciliations_total[{RATE}]))",
                "{{kind}}",
            ),
        ))
        .with_panel(_graph(
            "Reconcile duration, by kind", "Quantiles of a reconcile's duration.", "s",
            *_quantiles("stepline_reconciliation_duration_seconds", "", by="kind"),
        ))
        .with_panel(_graph(
            "Seconds since the last watch event, by kind",
            "Grows without bound when a watch has stalled (alert at 1800 s).", "s",
            _query(
                "time() - max by (kind) (stepline_watch_last_event_timestamp_seconds)", "{{kind}}"
            ),
        ))
        .with_panel(_graph(
            "Operator memory", "Resident memory of each operator process.", "bytes",
            _query(f"process_resident_memory_bytes * {own}", "{{instance}}"),
        ))
        .with_panel(_graph(
            "Operator CPU", "CPU cores used by each operator process.", "short",
            _query(f"rate(process_cpu_seconds_total[{RATE}]) * {own}", "{{instance}}"),
        ))
    )  # fmt: skip
    return _with_leadership(dashboard)


def _with_leadership(dashboard: dash.Dashboard) -> dash.Dashboard:
    """The operator dashboard's row on who leads and who may invoke, beside the alerts on it."""
    # Every resource the operator writes shows, at 0 while nothing is refused.
    written = f'0 * rate(stepline_api_requests_total{{verb=~"{WRITE_VERBS}"}}[{RATE}])'
    return (
        dashboard.with_row(dash.Row("Leadership and access"))
        .with_panel(_graph(
            "Leader, by replica",
            "1 on the replica holding the leader Lease, 0 on standbys: one of an installation "
            "at 1 (alerts: none for 2 minutes, several for 1).",
            "short",
            _query("max by (instance) (stepline_leader)", "{{instance}}"),
        ))
        .with_panel(_graph(
            "Lease renew failures per second, by replica",
            "Rounds in which the Lease's holder could not renew it; about five in a row and "
            "it steps down (alert when they go on for 10 minutes).",
            "ops",
            _query(
                f"sum by (instance) (rate(stepline_lease_renew_failures_total[{RATE}]))",
                "{{instance}}",
            ),
        ))
        .with_panel(_graph(
            "Writes refused at the fence per second, by resource",
            "Writes not sent, or given up, as the replica no longer leads: a few at a "
            "hand-over. Rising on a standby: a writer that does not ask first (nothing is "
            "written, so no alert).",
            "ops",
            _query(
                f"sum by (resource) (rate(stepline_writes_refused_total[{RATE}]) or {written})",
                "{{resource}}",
            ),
        ))
        .with_panel(_graph(
            "Invokes refused per second, by status",
            "401: no token or one the API server rejects; 403: not allowed to invoke; 503: no "
            "review could be had (alert after 5 minutes).",
            "ops",
            _query(
                f"sum by (status) (rate(stepline_invoke_refusals_total[{RATE}]))", "{{status}}"
            ),
        ))
    )  # fmt: skip


BUILDERS = {
    "stepline-overview.json": build_overview,
    "stepline-workflow.json": build_workflow,
    "stepline-scaling.json": build_scaling,
    "stepline-operator.json": build_operator,
}


def build_dashboards() -> dict[str, dict[str, Any]]:
    """File name -> dashboard JSON (as plain data), panel ids numbered in order."""
    built: dict[str, dict[str, Any]] = {}
    for name, builder in BUILDERS.items():
        data = json.loads(json.dumps(builder().build(), cls=JSONEncoder))
        for number, panel in enumerate(data["panels"], start=1):
            panel["id"] = number
        built[name] = data
    return built


def render(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("dashboards"), help="target folder")
    parser.add_argument("--check", action="store_true", help="fail if the files differ")
    args = parser.parse_args(argv)
    stale = []
    for name, data in build_dashboards().items():
        path = args.out / name
        text = render(data)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print(f"out of date: {', '.join(stale)}; run make dashboards", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
