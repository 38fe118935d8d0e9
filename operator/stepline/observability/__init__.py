"""Observability: Stepline's Prometheus metrics, recorded through `Metrics`' verbs and rendered
for /metrics by `render_metrics`. A leaf: it imports no other layer of Stepline.

The dashboard and alert-rule generators in this package (`dashboards`, `rules`) are build-time
tools, not re-exported here: the operator never imports them.
"""

from stepline.observability.exposition import Exposition, render_metrics
from stepline.observability.guarding import (
    DEFAULT_MAX_SERIES_PER_METRIC,
    OTHER,
    FoldReason,
    UnboundedLabelError,
)
from stepline.observability.labelvalues import (
    ApprovalDecisionLabel,
    CallOutcomeLabel,
    CodeClass,
    CompensationOutcomeLabel,
    ReconcileOutcomeLabel,
    RunOutcomeLabel,
    ScheduleOutcomeLabel,
    SpanDropReasonLabel,
    WaitReasonLabel,
)
from stepline.observability.metrics import DURATION_BUCKETS, RECONCILE_BUCKETS, Metrics

__all__ = [
    "DEFAULT_MAX_SERIES_PER_METRIC",
    "DURATION_BUCKETS",
    "OTHER",
    "RECONCILE_BUCKETS",
    "ApprovalDecisionLabel",
    "CallOutcomeLabel",
    "CodeClass",
    "CompensationOutcomeLabel",
    "Exposition",
    "FoldReason",
    "Metrics",
    "ReconcileOutcomeLabel",
    "RunOutcomeLabel",
    "ScheduleOutcomeLabel",
    "SpanDropReasonLabel",
    "UnboundedLabelError",
    "WaitReasonLabel",
    "render_metrics",
]
