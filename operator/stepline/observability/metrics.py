"""Every Prometheus metric of Stepline, defined here and recorded only through `Metrics`' verbs.

No other module touches a collector. A `Metrics` owns one `CollectorRegistry` (never the global
default), so the operator creates one at start-up and passes it down, and each test makes a
fresh one. Recording never raises because of a label value and never does I/O; label values are
guarded against explosion (see `guarding`).

The metrics (all durations in seconds, counters end in `_total`):

    stepline_runs_started_total{namespace,workflow}
    stepline_runs_finished_total{namespace,workflow,outcome}              exemplar: trace_id
    stepline_run_duration_seconds{namespace,workflow,outcome}             histogram, exemplar
    stepline_runs_in_flight{namespace,workflow}
    stepline_runs_waiting{namespace,workflow,reason}        parked: approval, suspended
    stepline_compensations_total{namespace,workflow,outcome}  per step undone: succeeded, failed
    stepline_spans_dropped_total{reason}              not exported: queue_full, export_failed
    stepline_step_calls_total{namespace,workflow,step,outcome,code_class} exemplar: trace_id
    stepline_step_call_duration_seconds{namespace,workflow,step,outcome}  histogram, exemplar
    stepline_step_retries_total{namespace,workflow,step,outcome}
    stepline_step_replicas_ready{namespace,step}
    stepline_step_replicas_desired{namespace,step}
    stepline_step_load{namespace,step,metric}              metric: in_flight, calls_per_second
    stepline_step_load_forecast{namespace,step,metric}
    stepline_step_load_forecast_error_ratio{namespace,step,metric}
    stepline_step_scaling_value{namespace,step,metric}                   what the autoscaler follows
    stepline_step_scaling_lead_seconds{namespace,step}
    stepline_step_autoscaler_active{namespace,step}
    stepline_schedule_runs_total{namespace,schedule,outcome}  started, skipped, missed, replaced
    stepline_schedule_next_run_timestamp_seconds{namespace,schedule}   Unix time of the next run
    stepline_approvals_total{namespace,workflow,decision}     approved, rejected, timed_out
    stepline_reconciliations_total{kind,outcome}
    stepline_reconciliation_duration_seconds{kind,outcome}                histogram
    stepline_watch_last_event_timestamp_seconds{kind}
    stepline_build_info{version,python}
    stepline_leader                                       1 while this replica leads, else 0
    stepline_writes_refused_total{resource}               not sent, or given up, at the fence
    stepline_lease_renew_failures_total                   rounds the holder could not renew in
    stepline_invoke_refusals_total{status}                by the authorizer: 401, 403, 503
    stepline_metrics_label_overflow_total{metric,reason}

beside the client library's standard process_* metrics (CPU, memory, file descriptors) of the
operator process, read from /proc at scrape time.

`step` is always the ServiceStep's name (a workflow step's `stepRef`), so call metrics join the
replica gauges on (namespace, step). The watch gauge holds the Unix time of the last event rather
than the seconds since it: the value changes only when an event arrives (no timer, no work at
scrape time), and `time() - stepline_watch_last_event_timestamp_seconds` keeps growing on
Prometheus' own clock, whereas a seconds-since gauge computed in the operator freezes with a
wedged process and vanishes with a dead one. (It assumes the two clocks agree to well within the
alert's 30 minutes, which NTP gives.) The next-run gauge of a schedule is a Unix time for the
same reason: a dashboard shows `it - time()`, and a schedule that is suspended or cannot run has
no series.
"""

from __future__ import annotations

import logging
import math
import platform
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from stepline import __version__
from stepline.observability.guarding import (
    DEFAULT_MAX_SERIES_PER_METRIC,
    FoldReason,
    LabelGuard,
    check_label_names,
)
from stepline.observability.labelvalues import (
    ApprovalDecisionLabel,
    CallOutcomeLabel,
    CodeClass,
    CompensationOutcomeLabel,
    InvokeRefusalLabel,
    ReconcileOutcomeLabel,
    RunOutcomeLabel,
    ScheduleOutcomeLabel,
    SpanDropReasonLabel,
    WaitReasonLabel,
)
from stepline.observability.scalingfigures import DOCUMENTATION as SCALING_DOCUMENTATION
from stepline.observability.scalingfigures import NAMES as SCALING_METRICS
from stepline.observability.scalingfigures import VALUE as SCALING_VALUE
from stepline.observability.scalingfigures import ScalingFigures, StepFigure

logger = logging.getLogger(__name__)

# Seconds, from a sub-millisecond loopback hop (≈0.6 ms per call in Python here) to a call or a
# run of five minutes; roughly x2-x2.5 apart so that p50/p99 interpolate within ~25%.
DURATION_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip
# A reconcile is a few API requests: milliseconds, up to a minute against a struggling server.
RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

_NAME = re.compile(r"stepline_[a-z][a-z0-9_]*[a-z0-9]")
# W3C trace context (32 hex) or a 64-bit Jaeger/Zipkin id (16 hex); an all-zero id is invalid.
_TRACE_ID = re.compile(r"(?!0+$)([0-9a-f]{16}|[0-9a-f]{32})")

_M = TypeVar("_M", Counter, Gauge, Histogram)


@dataclass(frozen=True)
class _Family(Generic[_M]):
    """A collector and the guard that every label set passes before reaching it.

    The child of each admitted label set is kept until its series is forgotten, so recording
    under a known set is one dict look-up instead of the guard's checks and the client library's
    `labels()` (its lock, validation and key building): the invoke path records several times
    per step. Folded sets are not kept, so that every recording of one still counts as a fold.
    """

    collector: _M
    guard: LabelGuard
    _children: dict[tuple[object, ...], _M] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def child(self, **values: str) -> _M:
        key = tuple(map(values.__getitem__, self.guard.label_names))
        try:
            found = self._children.get(key)
        except TypeError:  # an unhashable value: the guard folds it
            found = None
        return found if found is not None else self._admit(key, values)

    def _admit(self, key: tuple[object, ...], values: dict[str, str]) -> _M:
        # Under the lock, so that forget() cannot drop the series between admitting and keeping.
        with self._lock:
            admitted = self.guard.admit(values)
            child = self.collector.labels(*admitted)
            if admitted == key:
                self._children[key] = child
        return child

    def forget(self, **match: str) -> None:
        if self.guard.uses(match):
            with self._lock:
                for values in self.guard.forget(match):
                    self._children.pop(values, None)
                    self.collector.remove(*values)


def check_metric_name(name: str, *, kind: str, documentation: str) -> None:
    """Refuses a name that breaks Prometheus' conventions as Stepline applies them."""
    problems = []
    if _NAME.fullmatch(name) is None or "__" in name:
        problems.append("must be stepline_ followed by lower_snake_case")
    if (kind == "counter") != name.endswith("_total"):
        problems.append("counters, and only counters, end in _total")
    if kind == "histogram" and not name.endswith("_seconds"):
        problems.append("histograms measure durations in seconds: end in _seconds")
    if not documentation.strip():
        problems.append("needs HELP text")
    if problems:
        raise ValueError(f"metric {name}: {'; '.join(problems)}")


class Metrics:
    """Stepline's metrics in one registry, recorded through keyword-only verbs.

    `registry`: where they are defined (default: a new one, never the global default);
    `max_series_per_metric`: the cap of distinct label sets of each metric; `clock`: the Unix
    time that `mark_watch_event` records (a seam for tests).
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        max_series_per_metric: int = DEFAULT_MAX_SERIES_PER_METRIC,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self._max_series = max_series_per_metric
        self._clock = clock
        self._warned: set[tuple[str, FoldReason, str]] = set()
        self._warned_lock = threading.Lock()
        self._families: list[_Family[Counter] | _Family[Gauge] | _Family[Histogram]] = []
        self._overflow = self._overflow_counter()
        self._define_run_metrics()
        self._define_step_metrics()
        self._define_schedule_metrics()
        self._define_approval_metrics()
        self._define_operator_metrics()
        self._define_invoke_metrics()
        ProcessCollector(registry=self.registry)  # process_*: the operator's CPU and memory
        for metric in (*(family.guard.metric for family in self._families), SCALING_VALUE):
            for reason in FoldReason:
                self._overflow.labels(metric, reason.value)  # exported at 0

    # Runs

    def record_run_started(self, *, namespace: str, workflow: str) -> None:
        self._runs_started.child(namespace=namespace, workflow=workflow).inc()

    def record_run_finished(
        self,
        *,
        namespace: str,
        workflow: str,
        outcome: RunOutcomeLabel,
        seconds: float,
        trace_id: str | None = None,
    ) -> None:
        exemplar = _exemplar(trace_id)
        labels = {"namespace": namespace, "workflow": workflow, "outcome": outcome}
        self._runs_finished.child(**labels).inc(exemplar=exemplar)
        duration = _duration(seconds)
        if duration is not None:
            self._run_duration.child(**labels).observe(duration, exemplar=exemplar)

    @contextmanager
    def run_in_flight(self, *, namespace: str, workflow: str) -> Iterator[None]:
        """Counts a run as in flight for the duration of the `with` block, exceptions included.

        Wrap the execution of a run, new or resumed after a restart: the gauge is per process.
        """
        gauge = self._runs_in_flight.child(namespace=namespace, workflow=workflow)
        gauge.inc()
        try:
            yield
        finally:
            gauge.dec()

    def run_parked(self, *, namespace: str, workflow: str, reason: WaitReasonLabel) -> None:
        """A run stopped before its end with no task (waiting for a person, or suspended)."""
        self._runs_waiting.child(namespace=namespace, workflow=workflow, reason=reason).inc()

    def run_unparked(self, *, namespace: str, workflow: str, reason: WaitReasonLabel) -> None:
        """A parked run goes on, ends, is deleted, or is left to another leader."""
        self._runs_waiting.child(namespace=namespace, workflow=workflow, reason=reason).dec()

    def record_compensations(
        self, *, namespace: str, workflow: str, succeeded: int, failed: int
    ) -> None:
        """The compensations of a run's steps, once its undoing ended."""
        labels = {"namespace": namespace, "workflow": workflow}
        for outcome, count in (
            (CompensationOutcomeLabel.SUCCEEDED, succeeded),
            (CompensationOutcomeLabel.FAILED, failed),
        ):
            if count:
                self._compensations.child(**labels, outcome=outcome).inc(count)

    # Steps

    def record_step_call(
        self,
        *,
        namespace: str,
        workflow: str,
        step: str,
        outcome: CallOutcomeLabel,
        code_class: CodeClass,
        seconds: float,
        trace_id: str | None = None,
    ) -> None:
        """One HTTP call (one attempt) to a step; `step` is the ServiceStep's name."""
        exemplar = _exemplar(trace_id)
        labels = {"namespace": namespace, "workflow": workflow, "step": step, "outcome": outcome}
        self._step_calls.child(**labels, code_class=code_class).inc(exemplar=exemplar)
        duration = _duration(seconds)
        if duration is not None:
            self._step_call_duration.child(**labels).observe(duration, exemplar=exemplar)

    def record_step_retry(
        self, *, namespace: str, workflow: str, step: str, outcome: CallOutcomeLabel
    ) -> None:
        """A failed attempt is retried; `outcome` is how that attempt failed."""
        self._step_retries.child(
            namespace=namespace, workflow=workflow, step=step, outcome=outcome
        ).inc()

    def set_step_replicas(self, *, namespace: str, step: str, ready: int, desired: int) -> None:
        self._step_replicas_ready.child(namespace=namespace, step=step).set(ready)
        self._step_replicas_desired.child(namespace=namespace, step=step).set(desired)

    def set_step_load(
        self,
        *,
        namespace: str,
        step: str,
        metric: str,
        load: float,
        forecast: float | None,
        error_ratio: float | None,
        value: float,
    ) -> None:
        """One load metric of a step that scales on it: the figure the autoscaler follows, and
        for a predictive step (`forecast` not None) the load now, its forecast one lead time
        ahead and that forecast's error so far. A reactive step's load is its value: one
        series, not two (each costs about a kilobyte in the client library)."""
        figure = StepFigure(load=load, forecast=forecast, error_ratio=error_ratio, value=value)
        self._scaling_figures.set(namespace=namespace, step=step, metric=metric, figure=figure)

    def set_step_scaling_lead(self, *, namespace: str, step: str, seconds: float) -> None:
        self._scaling_figures.set_lead(namespace=namespace, step=step, seconds=seconds)

    def set_step_autoscaler_active(self, *, namespace: str, step: str, active: bool) -> None:
        self._step_autoscaler_active.child(namespace=namespace, step=step).set(int(active))

    def forget_step_scaling(self, *, namespace: str, step: str) -> None:
        """The step no longer scales on its load: drop its load, forecast and scaling series."""
        self._scaling_figures.forget(namespace=namespace, step=step)

    def forget_step(self, *, namespace: str, step: str) -> None:
        """The ServiceStep is deleted: drop its replica gauges, its call and scaling series."""
        for family in self._families:
            family.forget(namespace=namespace, step=step)
        self._scaling_figures.forget(namespace=namespace, step=step)

    def forget_workflow(self, *, namespace: str, workflow: str) -> None:
        """The Workflow is deleted: drop every series of its runs and calls."""
        for family in self._families:
            family.forget(namespace=namespace, workflow=workflow)

    # Schedules

    def record_schedule_run(
        self, *, namespace: str, schedule: str, outcome: ScheduleOutcomeLabel
    ) -> None:
        """What a WorkflowSchedule did at one of its times."""
        self._schedule_runs.child(namespace=namespace, schedule=schedule, outcome=outcome).inc()

    def set_schedule_next_run(self, *, namespace: str, schedule: str, at: float | None) -> None:
        """The Unix time of the schedule's next run; None (suspended, invalid) drops the series."""
        if at is None:
            self._schedule_next_run.forget(namespace=namespace, schedule=schedule)
            return
        self._schedule_next_run.child(namespace=namespace, schedule=schedule).set(at)

    def forget_schedule(self, *, namespace: str, schedule: str) -> None:
        """The WorkflowSchedule is deleted: drop its series."""
        for family in self._families:
            family.forget(namespace=namespace, schedule=schedule)

    # Approvals

    def record_approval(
        self, *, namespace: str, workflow: str, decision: ApprovalDecisionLabel
    ) -> None:
        """How an approval step of a run of `workflow` was decided."""
        self._approvals.child(namespace=namespace, workflow=workflow, decision=decision).inc()

    # The operator

    def record_reconcile(
        self, *, kind: str, outcome: ReconcileOutcomeLabel, seconds: float
    ) -> None:
        """One reconcile of an object of `kind` (e.g. `ServiceStep`)."""
        self._reconciliations.child(kind=kind, outcome=outcome).inc()
        duration = _duration(seconds)
        if duration is not None:
            self._reconciliation_duration.child(kind=kind, outcome=outcome).observe(duration)

    def record_api_request(self, verb: str, resource: str, status: int) -> None:
        """One request of the operator to the Kubernetes API, answered with `status` (0: no
        answer); kopf's own watches of ServiceSteps and Workflows are not among them."""
        code_class = CodeClass.of(status or None)
        self._api_requests.child(verb=verb, resource=resource, code_class=code_class).inc()

    def record_write_refused(self, resource: str) -> None:
        """A write to `resource` this replica did not send, or gave up at its fence, as it does
        not lead (`KubeApi`'s `NotLeadingError`)."""
        self._writes_refused.child(resource=resource).inc()

    def mark_watch_event(self, *, kind: str) -> None:
        """A watch event (or a re-list) of `kind` arrived now."""
        self._watch_last_event.child(kind=kind).set(self._clock())

    def set_leader(self, *, leading: bool) -> None:
        """This replica holds the leader Lease, and so may write (True), or stands by."""
        self._leader.set(int(leading))

    def record_lease_renew_failure(self) -> None:
        """A round of the election in which this replica, leading or named by the Lease as it
        last saw it, did not write the Lease (an error, a conflict, no answer in time)."""
        self._lease_renew_failures.inc()

    def record_invoke_refused(self, *, status: int) -> None:
        """An invoke the authorizer refused with `status` (401, 403 or 503; any other is folded
        into _other)."""
        self._invoke_refusals.child(status=str(status)).inc()

    def record_spans_dropped(self, reason: SpanDropReasonLabel, count: int) -> None:
        """Spans the tracer could not export (called from its export thread)."""
        self._spans_dropped.child(reason=reason).inc(count)

    # Definitions

    def _define_run_metrics(self) -> None:
        run = ("namespace", "workflow")
        self._runs_started = self._counter(
            "stepline_runs_started_total", "Workflow runs started.", run
        )
        self._runs_finished = self._counter(
            "stepline_runs_finished_total",
            "Workflow runs finished, by outcome (succeeded, failed, cancelled, timed_out).",
            (*run, "outcome"),
        )
        self._run_duration = self._histogram(
            "stepline_run_duration_seconds",
            "Duration of finished workflow runs, from start to outcome.",
            (*run, "outcome"),
            DURATION_BUCKETS,
        )
        self._runs_in_flight = self._gauge(
            "stepline_runs_in_flight", "Workflow runs executing in this operator now.", run
        )
        self._compensations = self._counter(
            "stepline_compensations_total",
            "Compensations of the steps of failed or cancelled runs, by outcome (succeeded: "
            "undone; failed: its calls failed after their retries).",
            (*run, "outcome"),
        )
        self._runs_waiting = self._gauge(
            "stepline_runs_waiting",
            "Workflow runs parked by this operator, holding no task, by why: approval (a step "
            "waits for a person) or suspended.",
            (*run, "reason"),
        )

    def _define_step_metrics(self) -> None:
        call = ("namespace", "workflow", "step", "outcome")
        self._step_calls = self._counter(
            "stepline_step_calls_total",
            "HTTP calls (attempts) to steps, by outcome and HTTP status class; "
            "step is the ServiceStep's name.",
            (*call, "code_class"),
        )
        self._step_call_duration = self._histogram(
            "stepline_step_call_duration_seconds",
            "Duration of HTTP calls (attempts) to steps, until the answer or the failure.",
            call,
            DURATION_BUCKETS,
        )
        self._step_retries = self._counter(
            "stepline_step_retries_total",
            "Step calls retried, by how the retried attempt failed.",
            call,
        )
        self._step_replicas_ready = self._gauge(
            "stepline_step_replicas_ready",
            "Ready replicas of a ServiceStep's Deployment.",
            ("namespace", "step"),
        )
        self._step_replicas_desired = self._gauge(
            "stepline_step_replicas_desired",
            "Replicas a ServiceStep's autoscaler wants.",
            ("namespace", "step"),
        )
        self._step_autoscaler_active = self._gauge(
            "stepline_step_autoscaler_active",
            "1 while a ServiceStep's autoscaler can compute replicas, 0 while it cannot (a "
            "metric it cannot read): it then keeps the replicas it has.",
            ("namespace", "step"),
        )
        self._define_scaling_metrics()

    def _define_scaling_metrics(self) -> None:
        for name in SCALING_METRICS:
            check_metric_name(name, kind="gauge", documentation=SCALING_DOCUMENTATION[name])
        check_label_names(SCALING_VALUE, ("namespace", "step", "metric"))
        self._scaling_figures = ScalingFigures(max_series=self._max_series, on_fold=self._folded)
        self.registry.register(self._scaling_figures)

    def _define_schedule_metrics(self) -> None:
        schedule = ("namespace", "schedule")
        self._schedule_runs = self._counter(
            "stepline_schedule_runs_total",
            "What WorkflowSchedules did at their times: started a run, skipped (a run active "
            "under Forbid, or no Workflow), missed (past startingDeadlineSeconds) or replaced "
            "(active runs cancelled, a run started).",
            (*schedule, "outcome"),
        )
        self._schedule_next_run = self._gauge(
            "stepline_schedule_next_run_timestamp_seconds",
            "Unix time of a WorkflowSchedule's next run; no series while it is suspended or "
            "cannot run.",
            schedule,
        )

    def _define_approval_metrics(self) -> None:
        self._approvals = self._counter(
            "stepline_approvals_total",
            "Approval steps decided: approved or rejected (an Approval recorded), or timed out "
            "(nobody decided in time).",
            ("namespace", "workflow", "decision"),
        )

    def _define_operator_metrics(self) -> None:
        self._reconciliations = self._counter(
            "stepline_reconciliations_total",
            "Reconciles of Stepline's objects, by kind and outcome.",
            ("kind", "outcome"),
        )
        self._reconciliation_duration = self._histogram(
            "stepline_reconciliation_duration_seconds",
            "Duration of reconciles, by kind and outcome.",
            ("kind", "outcome"),
            RECONCILE_BUCKETS,
        )
        self._api_requests = self._counter(
            "stepline_api_requests_total",
            "Requests of the operator to the Kubernetes API, by verb (GET, LIST, WATCH, POST, "
            "PATCH, PUT, DELETE), resource (with its subresource) and class of HTTP status "
            "(none: no answer); rate() of it is the load the operator puts on the API server.",
            ("verb", "resource", "code_class"),
        )
        self._watch_last_event = self._gauge(
            "stepline_watch_last_event_timestamp_seconds",
            "Unix time of the last watch event (or re-list) of a kind; "
            "alert on time() minus it to catch a stalled watch.",
            ("kind",),
        )
        build_info = self._gauge(
            "stepline_build_info",
            "Always 1; labels say which Stepline and Python this operator runs.",
            ("version", "python"),
        )
        build_info.child(version=__version__, python=platform.python_version()).set(1)
        # No labels, so no guard: one series, exported at 0 from the start.
        leader = "stepline_leader"
        documentation = "1 while this replica holds the leader Lease (only it writes), else 0."
        check_metric_name(leader, kind="gauge", documentation=documentation)
        self._leader = Gauge(leader, documentation, registry=self.registry)
        self._define_leadership_metrics()
        self._spans_dropped = self._counter(
            "stepline_spans_dropped_total",
            "Spans not exported: queue_full (ended faster than they could be sent) or "
            "export_failed (the collector was away, too slow, or refused them).",
            ("reason",),
        )
        for reason in SpanDropReasonLabel:  # both series from the start; recorded off the loop
            self._spans_dropped.child(reason=reason)

    def _define_leadership_metrics(self) -> None:
        self._writes_refused = self._counter(
            "stepline_writes_refused_total",
            "Writes to the Kubernetes API this replica did not send, or gave up at its fence, "
            "because it does not lead, by resource (with its subresource).",
            ("resource",),
        )
        # No labels, so no guard: one series, exported at 0 from the start.
        renew_failures = "stepline_lease_renew_failures_total"
        documentation = (
            "Rounds of the leader election in which the replica holding the Lease could not "
            "renew it: an error or no answer from the API server, or a conflict it lost."
        )
        check_metric_name(renew_failures, kind="counter", documentation=documentation)
        self._lease_renew_failures = Counter(renew_failures, documentation, registry=self.registry)

    def _define_invoke_metrics(self) -> None:
        self._invoke_refusals = self._counter(
            "stepline_invoke_refusals_total",
            "Invokes the authorizer refused, by HTTP status: 401 (no token, or one the API "
            "server does not accept), 403 (not allowed to invoke the Workflow), 503 (no review "
            "could be had).",
            ("status",),
        )
        for status in InvokeRefusalLabel:  # every series from the start, so rate() sees the first
            self._invoke_refusals.child(status=status)

    def _overflow_counter(self) -> Counter:
        name = "stepline_metrics_label_overflow_total"
        documentation = (
            "Label values folded into _other: reason invalid (a value of no bounded shape) "
            "or cardinality (the metric's cap of distinct label sets was reached)."
        )
        check_metric_name(name, kind="counter", documentation=documentation)
        check_label_names(name, ("metric", "reason"))
        return Counter(name, documentation, ("metric", "reason"), registry=self.registry)

    def _counter(self, name: str, documentation: str, labels: Sequence[str]) -> _Family[Counter]:
        check_metric_name(name, kind="counter", documentation=documentation)
        guard = self._guard(name, labels)
        family = _Family(Counter(name, documentation, labels, registry=self.registry), guard)
        self._families.append(family)
        return family

    def _gauge(self, name: str, documentation: str, labels: Sequence[str]) -> _Family[Gauge]:
        check_metric_name(name, kind="gauge", documentation=documentation)
        guard = self._guard(name, labels)
        family = _Family(Gauge(name, documentation, labels, registry=self.registry), guard)
        self._families.append(family)
        return family

    def _histogram(
        self, name: str, documentation: str, labels: Sequence[str], buckets: Sequence[float]
    ) -> _Family[Histogram]:
        check_metric_name(name, kind="histogram", documentation=documentation)
        guard = self._guard(name, labels)
        collector = Histogram(name, documentation, labels, registry=self.registry, buckets=buckets)
        family = _Family(collector, guard)
        self._families.append(family)
        return family

    def _guard(self, name: str, labels: Sequence[str]) -> LabelGuard:
        return LabelGuard(name, labels, max_series=self._max_series, on_fold=self._folded)

    def _folded(self, metric: str, reason: FoldReason, label: str) -> None:
        self._overflow.labels(metric, reason.value).inc()
        with self._warned_lock:
            first = (metric, reason, label) not in self._warned
            self._warned.add((metric, reason, label))
        if first:  # once per metric, reason and label: a flood of bad values is one log line
            logger.warning(
                "metric %s: %s; recorded under _other (see stepline_metrics_label_overflow_total)",
                metric,
                f"label {label} got a value of no bounded shape"
                if reason is FoldReason.INVALID
                else "reached its cap of distinct label sets",
            )


def _exemplar(trace_id: str | None) -> dict[str, str] | None:
    """An exemplar linking the sample to its trace; none for a missing or malformed id."""
    if trace_id is None or _TRACE_ID.fullmatch(trace_id) is None:
        return None
    return {"trace_id": trace_id}


def _duration(seconds: float) -> float | None:
    """A duration fit for a histogram: NaN and infinities are dropped, negatives are 0."""
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)
