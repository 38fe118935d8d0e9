"""The metrics module: what each verb records, the naming conventions, and the label guard."""

from __future__ import annotations

import threading

import pytest
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from stepline import __version__
from stepline.observability import (
    DURATION_BUCKETS,
    OTHER,
    ApprovalDecisionLabel,
    CallOutcomeLabel,
    CodeClass,
    Metrics,
    ReconcileOutcomeLabel,
    RunOutcomeLabel,
    ScheduleOutcomeLabel,
    UnboundedLabelError,
    WaitReasonLabel,
)
from stepline.observability.guarding import BOUNDED_LABELS, LabelGuard, check_label_names
from stepline.observability.metrics import check_metric_name

SHOP = {"namespace": "shop", "workflow": "trade"}


def families(metrics: Metrics) -> dict[str, tuple[str, str, set[str]]]:
    """name -> (type, help, label names of its samples), parsed from the text exposition.

    The client library's own families are left out: its `_created` gauges (the creation time of
    each counter and histogram) and its standard process_* metrics.
    """
    parsed = text_string_to_metric_families(generate_latest(metrics.registry).decode())
    return {
        family.name: (
            family.type,
            family.documentation,
            {label for sample in family.samples for label in sample.labels} - {"le"},
        )
        for family in parsed
        if not family.name.endswith("_created") and not family.name.startswith("process_")
    }


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def record_everything(metrics: Metrics) -> None:
    metrics.record_run_started(**SHOP)
    metrics.record_run_finished(**SHOP, outcome=RunOutcomeLabel.SUCCEEDED, seconds=0.2)
    with metrics.run_in_flight(**SHOP):
        pass
    metrics.run_parked(**SHOP, reason=WaitReasonLabel.APPROVAL)
    metrics.record_compensations(**SHOP, succeeded=1, failed=0)
    metrics.record_step_call(
        **SHOP,
        step="order",
        outcome=CallOutcomeLabel.SUCCESS,
        code_class=CodeClass.SUCCESS,
        seconds=0.1,
    )
    metrics.record_step_retry(**SHOP, step="order", outcome=CallOutcomeLabel.TIMEOUT)
    metrics.set_step_replicas(namespace="shop", step="order", ready=1, desired=2)
    metrics.record_reconcile(
        kind="ServiceStep", outcome=ReconcileOutcomeLabel.SUCCESS, seconds=0.01
    )
    metrics.mark_watch_event(kind="ServiceStep")
    metrics.set_step_load(
        namespace="shop", step="order", metric="in_flight", load=3.0, forecast=4.0,
        error_ratio=0.1, value=4.0,
    )  # fmt: skip
    metrics.set_step_scaling_lead(namespace="shop", step="order", seconds=12.0)
    metrics.set_step_autoscaler_active(namespace="shop", step="order", active=True)
    metrics.set_leader(leading=True)
    metrics.record_schedule_run(
        namespace="shop", schedule="nightly", outcome=ScheduleOutcomeLabel.STARTED
    )
    metrics.set_schedule_next_run(namespace="shop", schedule="nightly", at=1.8e9)
    metrics.record_approval(
        namespace="shop", workflow="trade", decision=ApprovalDecisionLabel.APPROVED
    )
    metrics.record_api_request("PATCH", "workflowruns/status", 200)
    metrics.record_write_refused("workflowruns/status")
    metrics.record_lease_renew_failure()
    metrics.record_invoke_refused(status=403)


def test_every_metric_is_prefixed_documented_and_follows_the_naming_conventions() -> None:
    metrics = Metrics()
    record_everything(metrics)
    found = families(metrics)
    assert len(found) == 31
    for name, (kind, documentation, _) in found.items():
        assert name.startswith("stepline_"), name
        assert len(documentation) > 15, name
        if kind == "counter":
            assert not name.endswith("_total"), name  # the parser strips the suffix it requires
        if kind == "histogram":
            assert name.endswith("_seconds"), name
    text = generate_latest(metrics.registry).decode()
    assert "stepline_runs_started_total{" in text
    assert "stepline_step_call_duration_seconds_bucket{" in text


def test_labels_are_only_the_bounded_ones_and_never_identify_a_run() -> None:
    metrics = Metrics()
    record_everything(metrics)
    used = set().union(*(labels for _, _, labels in families(metrics).values()))
    assert used <= set(BOUNDED_LABELS)
    assert {"namespace", "workflow", "step", "outcome", "code_class", "kind"} <= used
    assert not {"run", "run_id", "uid", "trace_id", "url"} & used


def test_duration_buckets_reach_from_sub_millisecond_to_five_minutes() -> None:
    assert DURATION_BUCKETS[0] < 0.001
    assert DURATION_BUCKETS[-1] == 300
    assert list(DURATION_BUCKETS) == sorted(set(DURATION_BUCKETS))


def test_a_run_is_counted_when_it_starts_and_when_it_finishes_with_its_duration() -> None:
    metrics = Metrics()
    metrics.record_run_started(**SHOP)
    metrics.record_run_finished(**SHOP, outcome=RunOutcomeLabel.FAILED, seconds=0.7)
    assert value(metrics, "stepline_runs_started_total", **SHOP) == 1
    assert value(metrics, "stepline_runs_finished_total", **SHOP, outcome="failed") == 1
    failed = {**SHOP, "outcome": "failed"}
    assert value(metrics, "stepline_run_duration_seconds_sum", **failed) == 0.7
    assert value(metrics, "stepline_run_duration_seconds_bucket", **failed, le="0.5") == 0
    assert value(metrics, "stepline_run_duration_seconds_bucket", **failed, le="1.0") == 1


def test_a_run_in_flight_is_counted_until_its_block_ends_even_when_it_raises() -> None:
    metrics = Metrics()
    with metrics.run_in_flight(**SHOP):
        assert value(metrics, "stepline_runs_in_flight", **SHOP) == 1
        with metrics.run_in_flight(**SHOP):
            assert value(metrics, "stepline_runs_in_flight", **SHOP) == 2
    assert value(metrics, "stepline_runs_in_flight", **SHOP) == 0
    with pytest.raises(RuntimeError), metrics.run_in_flight(**SHOP):
        raise RuntimeError("the run crashed")
    assert value(metrics, "stepline_runs_in_flight", **SHOP) == 0


def test_a_parked_run_is_counted_by_why_until_it_goes_on() -> None:
    metrics = Metrics()
    metrics.run_parked(**SHOP, reason=WaitReasonLabel.APPROVAL)
    metrics.run_parked(**SHOP, reason=WaitReasonLabel.APPROVAL)
    metrics.run_parked(**SHOP, reason=WaitReasonLabel.SUSPENDED)
    metrics.run_unparked(**SHOP, reason=WaitReasonLabel.APPROVAL)
    assert value(metrics, "stepline_runs_waiting", **SHOP, reason="approval") == 1
    assert value(metrics, "stepline_runs_waiting", **SHOP, reason="suspended") == 1


def test_a_step_call_is_counted_by_outcome_and_code_class_and_timed() -> None:
    metrics = Metrics()
    metrics.record_step_call(
        **SHOP,
        step="order",
        outcome=CallOutcomeLabel.ERROR,
        code_class=CodeClass.of(503),
        seconds=0.0004,
    )
    call = {**SHOP, "step": "order", "outcome": "error"}
    assert value(metrics, "stepline_step_calls_total", **call, code_class="5xx") == 1
    assert value(metrics, "stepline_step_call_duration_seconds_bucket", **call, le="0.0005") == 1


@pytest.mark.parametrize(
    ("status", "expected"),
    [(200, "2xx"), (204, "2xx"), (302, "3xx"), (404, "4xx"), (503, "5xx"), (None, "none"),
     (99, "none"), (600, "none"), (101, "1xx")],
)  # fmt: skip
def test_a_status_code_maps_to_its_class(status: int | None, expected: str) -> None:
    assert CodeClass.of(status) == expected


def test_a_retry_is_counted_by_how_the_retried_attempt_failed() -> None:
    metrics = Metrics()
    for _ in range(2):
        metrics.record_step_retry(**SHOP, step="order", outcome=CallOutcomeLabel.CONNECTION_ERROR)
    retried = {**SHOP, "step": "order", "outcome": "connection_error"}
    assert value(metrics, "stepline_step_retries_total", **retried) == 2


def test_replicas_are_set_and_dropped_when_the_step_is_deleted() -> None:
    metrics = Metrics()
    metrics.set_step_replicas(namespace="shop", step="order", ready=1, desired=3)
    metrics.set_step_replicas(namespace="shop", step="validate", ready=2, desired=2)
    metrics.record_step_call(
        **SHOP,
        step="order",
        outcome=CallOutcomeLabel.SUCCESS,
        code_class=CodeClass.SUCCESS,
        seconds=1,
    )
    order = {"namespace": "shop", "step": "order"}
    assert value(metrics, "stepline_step_replicas_ready", **order) == 1
    assert value(metrics, "stepline_step_replicas_desired", **order) == 3

    metrics.forget_step(namespace="shop", step="order")

    assert value(metrics, "stepline_step_replicas_ready", **order) is None
    assert value(metrics, "stepline_step_replicas_desired", **order) is None
    calls = {**SHOP, "step": "order", "outcome": "success", "code_class": "2xx"}
    assert value(metrics, "stepline_step_calls_total", **calls) is None
    assert value(metrics, "stepline_step_replicas_ready", namespace="shop", step="validate") == 2


def test_forgetting_a_workflow_drops_its_series_and_frees_room_under_the_cap() -> None:
    metrics = Metrics(max_series_per_metric=1)
    metrics.record_run_started(**SHOP)
    metrics.forget_workflow(**SHOP)
    assert value(metrics, "stepline_runs_started_total", **SHOP) is None

    metrics.record_run_started(namespace="shop", workflow="refund")

    assert value(metrics, "stepline_runs_started_total", namespace="shop", workflow="refund") == 1
    overflow = {"metric": "stepline_runs_started_total", "reason": "cardinality"}
    assert value(metrics, "stepline_metrics_label_overflow_total", **overflow) == 0


def test_a_series_recorded_again_after_it_was_forgotten_starts_from_zero_and_is_exported() -> None:
    metrics = Metrics()
    call = {**SHOP, "step": "order", "outcome": CallOutcomeLabel.SUCCESS}
    for _ in range(3):
        metrics.record_step_call(**call, code_class=CodeClass.SUCCESS, seconds=0.1)
    metrics.forget_step(namespace="shop", step="order")

    metrics.record_step_call(**call, code_class=CodeClass.SUCCESS, seconds=0.1)

    labels = {**SHOP, "step": "order", "outcome": "success"}
    assert value(metrics, "stepline_step_calls_total", **labels, code_class="2xx") == 1
    assert value(metrics, "stepline_step_call_duration_seconds_count", **labels) == 1


def test_every_recording_under_a_folded_label_set_counts_as_a_fold() -> None:
    metrics = Metrics(max_series_per_metric=1)
    metrics.record_run_started(namespace="shop", workflow="trade")
    for _ in range(3):
        metrics.record_run_started(namespace="shop", workflow="refund")
        metrics.record_run_started(namespace="shop", workflow="Not-A-Name")

    folded = {"namespace": OTHER, "workflow": OTHER}
    assert value(metrics, "stepline_runs_started_total", **folded) == 6
    for reason, count in (("cardinality", 6), ("invalid", 3)):
        overflow = {"metric": "stepline_runs_started_total", "reason": reason}
        assert value(metrics, "stepline_metrics_label_overflow_total", **overflow) == count


def test_a_reconcile_is_counted_and_timed_per_kind_and_outcome() -> None:
    metrics = Metrics()
    metrics.record_reconcile(kind="Workflow", outcome=ReconcileOutcomeLabel.ERROR, seconds=0.02)
    labels = {"kind": "Workflow", "outcome": "error"}
    assert value(metrics, "stepline_reconciliations_total", **labels) == 1
    assert value(metrics, "stepline_reconciliation_duration_seconds_count", **labels) == 1


def test_a_watch_event_records_the_time_it_arrived() -> None:
    now = [1_700_000_000.0]
    metrics = Metrics(clock=lambda: now[0])
    metrics.mark_watch_event(kind="WorkflowRun")
    now[0] += 42
    assert value(metrics, "stepline_watch_last_event_timestamp_seconds", kind="WorkflowRun") == (
        1_700_000_000.0
    )
    metrics.mark_watch_event(kind="WorkflowRun")
    assert value(metrics, "stepline_watch_last_event_timestamp_seconds", kind="WorkflowRun") == (
        1_700_000_042.0
    )


def test_the_leader_gauge_is_0_until_this_replica_leads_and_again_once_it_stops() -> None:
    metrics = Metrics()
    assert value(metrics, "stepline_leader") == 0
    metrics.set_leader(leading=True)
    assert value(metrics, "stepline_leader") == 1
    metrics.set_leader(leading=False)
    assert value(metrics, "stepline_leader") == 0


def test_build_info_names_the_version() -> None:
    metrics = Metrics()
    samples = [
        sample
        for family in text_string_to_metric_families(generate_latest(metrics.registry).decode())
        if family.name == "stepline_build_info"
        for sample in family.samples
    ]
    assert len(samples) == 1
    assert samples[0].value == 1
    assert samples[0].labels["version"] == __version__
    assert samples[0].labels["python"].count(".") == 2


def test_label_sets_beyond_the_cap_fold_into_other_and_are_counted() -> None:
    metrics = Metrics(max_series_per_metric=3)
    for index in range(10):
        metrics.record_run_started(namespace="shop", workflow=f"per-request-{index}")

    for index in range(3):
        labels = {"namespace": "shop", "workflow": f"per-request-{index}"}
        assert value(metrics, "stepline_runs_started_total", **labels) == 1
    folded = {"namespace": OTHER, "workflow": OTHER}
    assert value(metrics, "stepline_runs_started_total", **folded) == 7
    beyond = {"namespace": "shop", "workflow": "per-request-5"}
    assert value(metrics, "stepline_runs_started_total", **beyond) is None
    overflow = {"metric": "stepline_runs_started_total", "reason": "cardinality"}
    assert value(metrics, "stepline_metrics_label_overflow_total", **overflow) == 7


def test_label_sets_admitted_before_the_cap_keep_recording_and_enum_labels_survive_a_fold() -> None:
    metrics = Metrics(max_series_per_metric=1)
    for outcome in (RunOutcomeLabel.SUCCEEDED, RunOutcomeLabel.FAILED, RunOutcomeLabel.SUCCEEDED):
        metrics.record_run_finished(**SHOP, outcome=outcome, seconds=1)

    assert value(metrics, "stepline_runs_finished_total", **SHOP, outcome="succeeded") == 2
    folded = {"namespace": OTHER, "workflow": OTHER, "outcome": "failed"}
    assert value(metrics, "stepline_runs_finished_total", **folded) == 1


@pytest.mark.parametrize(
    "bad",
    ["Shop", "shop/trade", "a" * 64, "", "-shop", "trade?id=42", "space d", "ünïcode"],
)
def test_a_label_value_of_no_bounded_shape_is_refused_and_recorded_under_other(bad: str) -> None:
    metrics = Metrics()
    metrics.record_run_started(namespace="shop", workflow=bad)

    text = generate_latest(metrics.registry).decode()
    assert f'workflow="{bad}"' not in text
    assert value(metrics, "stepline_runs_started_total", namespace="shop", workflow=OTHER) == 1
    overflow = {"metric": "stepline_runs_started_total", "reason": "invalid"}
    assert value(metrics, "stepline_metrics_label_overflow_total", **overflow) == 1


def test_a_value_that_is_not_a_string_is_refused_without_raising() -> None:
    metrics = Metrics()
    metrics.record_run_started(namespace="shop", workflow=["trade"])  # type: ignore[arg-type]
    metrics.record_run_started(namespace="shop", workflow=42)  # type: ignore[arg-type]
    assert value(metrics, "stepline_runs_started_total", namespace="shop", workflow=OTHER) == 2


def test_an_outcome_outside_its_enum_is_refused() -> None:
    metrics = Metrics()
    metrics.record_reconcile(kind="Workflow", outcome="exploded", seconds=1)  # type: ignore[arg-type]
    assert value(metrics, "stepline_reconciliations_total", kind="Workflow", outcome=OTHER) == 1


def test_a_kind_must_look_like_a_kubernetes_kind() -> None:
    metrics = Metrics()
    metrics.mark_watch_event(kind="servicesteps.stepline.io")
    metrics.mark_watch_event(kind="ServiceStep")
    assert value(metrics, "stepline_watch_last_event_timestamp_seconds", kind=OTHER) is not None
    assert value(metrics, "stepline_watch_last_event_timestamp_seconds", kind="ServiceStep")


def test_a_metric_with_an_unbounded_label_is_refused_at_definition() -> None:
    with pytest.raises(UnboundedLabelError, match="run_id"):
        LabelGuard("stepline_runs_total", ("namespace", "run_id"), max_series=10, on_fold=print)
    with pytest.raises(UnboundedLabelError, match="payload"):
        check_label_names("stepline_calls_total", ("payload",))


@pytest.mark.parametrize(
    ("name", "kind", "problem"),
    [
        ("runs_total", "counter", "stepline_"),
        ("stepline_runs", "counter", "_total"),
        ("stepline_runs_in_flight_total", "gauge", "_total"),
        ("stepline_run_duration_ms", "histogram", "_seconds"),
        ("stepline_Runs_total", "counter", "snake_case"),
    ],
)
def test_a_metric_name_breaking_the_conventions_is_refused(
    name: str, kind: str, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        check_metric_name(name, kind=kind, documentation="Something.")


def test_a_metric_without_help_text_is_refused() -> None:
    with pytest.raises(ValueError, match="HELP"):
        check_metric_name("stepline_runs_total", kind="counter", documentation=" ")


def test_negative_and_non_finite_durations_do_not_corrupt_histograms() -> None:
    metrics = Metrics()
    metrics.record_run_finished(**SHOP, outcome=RunOutcomeLabel.FAILED, seconds=-0.5)
    metrics.record_run_finished(**SHOP, outcome=RunOutcomeLabel.FAILED, seconds=float("nan"))
    failed = {**SHOP, "outcome": "failed"}
    assert value(metrics, "stepline_runs_finished_total", **failed) == 2
    assert value(metrics, "stepline_run_duration_seconds_count", **failed) == 1
    assert value(metrics, "stepline_run_duration_seconds_sum", **failed) == 0


def test_each_metrics_has_its_own_registry_and_never_the_global_one() -> None:
    first, second = Metrics(), Metrics(CollectorRegistry())
    first.record_run_started(**SHOP)
    assert value(second, "stepline_runs_started_total", **SHOP) is None
    assert REGISTRY.get_sample_value("stepline_runs_started_total", SHOP) is None


def test_the_cap_holds_when_threads_record_concurrently() -> None:
    metrics = Metrics(max_series_per_metric=50)

    def record(worker: int) -> None:
        for index in range(100):
            metrics.record_run_started(namespace="shop", workflow=f"w{worker}-{index}")

    threads = [threading.Thread(target=record, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    samples = [
        sample
        for family in text_string_to_metric_families(generate_latest(metrics.registry).decode())
        if family.name == "stepline_runs_started"
        for sample in family.samples
        if sample.name.endswith("_total")
    ]
    assert len(samples) == 51  # the cap, plus the one folded set
    assert sum(sample.value for sample in samples) == 800
    overflow = {"metric": "stepline_runs_started_total", "reason": "cardinality"}
    assert value(metrics, "stepline_metrics_label_overflow_total", **overflow) == 750


def test_a_steps_scaling_series_are_exported_and_forgotten_without_its_other_series() -> None:
    metrics = Metrics()
    record_everything(metrics)
    text = generate_latest(metrics.registry).decode()
    labels = 'metric="in_flight",namespace="shop",step="order"'
    assert f"stepline_step_scaling_value{{{labels}}} 4.0" in text
    assert f"stepline_step_load_forecast_error_ratio{{{labels}}} 0.1" in text
    metrics.forget_step_scaling(namespace="shop", step="order")
    text = generate_latest(metrics.registry).decode()
    assert "stepline_step_scaling_value{" not in text
    assert "stepline_step_scaling_lead_seconds{" not in text
    assert 'stepline_step_replicas_ready{namespace="shop",step="order"}' in text


def test_scaling_series_past_the_cap_fold_into_other_and_are_counted() -> None:
    metrics = Metrics(max_series_per_metric=2)
    for index in range(4):
        metrics.set_step_load(
            namespace="shop", step=f"s{index}", metric="in_flight", load=1.0, forecast=None,
            error_ratio=None, value=float(index),
        )  # fmt: skip
    values = {
        step: value(
            metrics, "stepline_step_scaling_value", namespace=ns, step=step, metric="in_flight"
        )
        for ns, step in [("shop", "s0"), ("shop", "s1"), ("_other", "_other"), ("shop", "s3")]
    }
    assert values == {"s0": 0.0, "s1": 1.0, "_other": 3.0, "s3": None}
    overflow = {"metric": "stepline_step_scaling_value", "reason": "cardinality"}
    assert value(metrics, "stepline_metrics_label_overflow_total", **overflow) == 2
    for step in ("s0", "s1"):  # deleted: their slots are free again (_other keeps one)
        metrics.forget_step(namespace="shop", step=step)
    metrics.set_step_scaling_lead(namespace="shop", step="s4", seconds=9.0)
    assert value(metrics, "stepline_step_scaling_lead_seconds", namespace="shop", step="s4") == 9
    assert value(metrics, "stepline_step_scaling_value", namespace="shop", step="s0",
                 metric="in_flight") is None  # fmt: skip


def test_api_requests_are_counted_by_verb_resource_and_class_of_status() -> None:
    metrics = Metrics()
    metrics.record_api_request("PATCH", "workflowruns/status", 200)
    metrics.record_api_request("PATCH", "workflowruns/status", 200)
    metrics.record_api_request("LIST", "workflowruns", 410)
    metrics.record_api_request("POST", "events", 0)
    counted = "stepline_api_requests_total"
    assert (
        value(metrics, counted, verb="PATCH", resource="workflowruns/status", code_class="2xx") == 2
    )
    assert value(metrics, counted, verb="LIST", resource="workflowruns", code_class="4xx") == 1
    assert value(metrics, counted, verb="POST", resource="events", code_class="none") == 1


def test_writes_refused_are_counted_by_resource() -> None:
    metrics = Metrics()
    metrics.record_write_refused("workflowruns/status")
    metrics.record_write_refused("workflowruns/status")
    metrics.record_write_refused("events")
    counted = "stepline_writes_refused_total"
    assert value(metrics, counted, resource="workflowruns/status") == 2
    assert value(metrics, counted, resource="events") == 1


def test_lease_renew_failures_are_one_series_exported_at_0_from_the_start() -> None:
    metrics = Metrics()
    assert value(metrics, "stepline_lease_renew_failures_total") == 0
    metrics.record_lease_renew_failure()
    metrics.record_lease_renew_failure()
    assert value(metrics, "stepline_lease_renew_failures_total") == 2


def test_invoke_refusals_are_counted_by_status_each_exported_from_the_start() -> None:
    metrics = Metrics()
    counted = "stepline_invoke_refusals_total"
    assert [value(metrics, counted, status=status) for status in ("401", "403", "503")] == [0] * 3
    metrics.record_invoke_refused(status=401)
    metrics.record_invoke_refused(status=503)
    metrics.record_invoke_refused(status=503)
    assert [value(metrics, counted, status=status) for status in ("401", "403", "503")] == [1, 0, 2]


def test_an_invoke_refusal_with_another_status_is_folded_not_a_new_series() -> None:
    metrics = Metrics()
    metrics.record_invoke_refused(status=500)
    assert value(metrics, "stepline_invoke_refusals_total", status=OTHER) == 1
    assert value(metrics, "stepline_invoke_refusals_total", status="500") is None
    overflow = {"metric": "stepline_invoke_refusals_total", "reason": "invalid"}
    assert value(metrics, "stepline_metrics_label_overflow_total", **overflow) == 1
