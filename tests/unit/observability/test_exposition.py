"""What /metrics serves: the format the scraper asks for, exemplars in OpenMetrics, output that
parsers and promtool accept whatever the label values were."""

from __future__ import annotations

import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from stepline.observability import (
    CallOutcomeLabel,
    CodeClass,
    Metrics,
    ReconcileOutcomeLabel,
    RunOutcomeLabel,
    render_metrics,
)
from tests.unit.observability.promtool import promtool

# What Prometheus 2.42 sends when it scrapes.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def busy_metrics() -> Metrics:
    metrics = Metrics()
    shop = {"namespace": "shop", "workflow": "trade"}
    metrics.record_run_started(**shop)
    metrics.record_run_finished(
        **shop, outcome=RunOutcomeLabel.FAILED, seconds=1.5, trace_id=TRACE_ID
    )
    metrics.record_step_call(
        **shop,
        step="order",
        outcome=CallOutcomeLabel.TIMEOUT,
        code_class=CodeClass.NONE,
        seconds=2.0,
        trace_id=TRACE_ID,
    )
    metrics.record_step_retry(**shop, step="order", outcome=CallOutcomeLabel.TIMEOUT)
    metrics.set_step_replicas(namespace="shop", step="order", ready=0, desired=1)
    metrics.record_reconcile(kind="Workflow", outcome=ReconcileOutcomeLabel.SUCCESS, seconds=0.01)
    metrics.mark_watch_event(kind="Workflow")
    with metrics.run_in_flight(**shop):
        pass
    # Hostile input: folded, never exported, never breaking the output.
    metrics.record_run_started(namespace="shop", workflow='a"b\\c\n{d}')
    return metrics


def test_prometheus_gets_openmetrics_with_exemplars_carrying_the_trace_id() -> None:
    body, content_type = render_metrics(busy_metrics().registry, accept=PROMETHEUS_ACCEPT)

    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    exemplars = {
        sample.name: sample.exemplar
        for family in openmetrics_families(body.decode())
        for sample in family.samples
        if sample.exemplar is not None
    }
    assert set(exemplars) == {
        "stepline_runs_finished_total",
        "stepline_run_duration_seconds_bucket",
        "stepline_step_calls_total",
        "stepline_step_call_duration_seconds_bucket",
    }
    for exemplar in exemplars.values():
        assert exemplar.labels == {"trace_id": TRACE_ID}
    assert exemplars["stepline_run_duration_seconds_bucket"].value == 1.5


@pytest.mark.parametrize("accept", [None, "", "text/plain", "*/*", "text/plain;version=0.0.4"])
def test_other_scrapers_get_the_text_format_without_exemplars(accept: str | None) -> None:
    body, content_type = render_metrics(busy_metrics().registry, accept=accept)

    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert TRACE_ID not in body.decode()
    names = {family.name for family in text_string_to_metric_families(body.decode())}
    assert "stepline_runs_finished" in names


@pytest.mark.parametrize(
    "accept",
    [
        "application/openmetrics-text; version=abc",
        "text/plain; version=x.y",
        ";;;,,",
        "application/openmetrics-text; version=",
    ],
)
def test_a_malformed_accept_header_never_fails_the_scrape(accept: str) -> None:
    body, content_type = render_metrics(busy_metrics().registry, accept=accept)
    assert content_type.startswith(("text/plain", "application/openmetrics-text"))
    assert b"stepline_build_info" in body


@pytest.mark.parametrize(
    "trace_id", ["not-a-trace", "0" * 32, TRACE_ID.upper(), TRACE_ID + "0", "x" * 200]
)
def test_a_malformed_trace_id_records_the_sample_without_an_exemplar(trace_id: str) -> None:
    metrics = Metrics()
    shop = {"namespace": "shop", "workflow": "trade"}
    metrics.record_run_finished(
        **shop, outcome=RunOutcomeLabel.SUCCEEDED, seconds=1, trace_id=trace_id
    )

    body, _ = render_metrics(metrics.registry, accept=PROMETHEUS_ACCEPT)
    samples = [s for family in openmetrics_families(body.decode()) for s in family.samples]
    finished = [s for s in samples if s.name == "stepline_runs_finished_total"]
    assert [s.value for s in finished] == [1]
    assert all(s.exemplar is None for s in samples)


def test_a_64_bit_trace_id_is_accepted_too() -> None:
    metrics = Metrics()
    metrics.record_run_finished(
        namespace="shop",
        workflow="trade",
        outcome=RunOutcomeLabel.SUCCEEDED,
        seconds=1,
        trace_id="00f067aa0ba902b7",
    )
    body, _ = render_metrics(metrics.registry, accept=PROMETHEUS_ACCEPT)
    assert b'# {trace_id="00f067aa0ba902b7"}' in body


def test_hostile_label_values_never_reach_the_output() -> None:
    body, _ = render_metrics(busy_metrics().registry, accept=None)
    assert b'a\\"b' not in body
    assert b"{d}" not in body


def test_promtool_finds_no_problem_in_the_output() -> None:
    body, _ = render_metrics(busy_metrics().registry, accept=None)

    checked = promtool("check", "metrics", stdin=body.decode())

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert (checked.stdout + checked.stderr).strip() == ""  # promtool prints each lint problem
