"""The guard against label explosion: every label has a known, bounded shape. Pure: no I/O.

A Prometheus series is created per distinct label set and never forgotten by the client library,
so one unbounded label value (a run id, a URL, a step named per request) grows the operator's
memory and every scrape without limit. Two defences:

1. At definition: a metric may only use the label names in `BOUNDED_LABELS`, each with a known
   shape. Defining a metric with any other label raises `UnboundedLabelError` — when the module
   is imported, in development, never in production traffic.
2. At recording, silently for the caller (recording never raises because of a value, and a scrape
   never fails because of one):
   - a value that does not have its label's shape (a namespace that is not a DNS-1123 label, a
     name longer than 63 characters, an outcome outside its enum) is replaced by `OTHER`, and the
     fold is reported with reason `invalid`;
   - a new label set beyond the per-metric cap of distinct label sets has its name labels
     (namespace, workflow, step, kind) replaced by `OTHER`, reported with reason `cardinality`.
     Folded sets differ only in enum labels, so there are few of them and the cap holds.

`OTHER` is `_other`: it starts with an underscore, which no Kubernetes name or kind can, so the
bucket never merges with a real workflow that happens to be called "other".
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from enum import StrEnum
from types import MappingProxyType

from stepline.observability.labelvalues import (
    ApiVerbLabel,
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

OTHER = "_other"

# Ten thousand label sets of one metric is ~2 MB of client memory and, for a histogram of 19
# buckets, ~200k samples per scrape: the most a single operator should ever export. Real use is
# namespaces x workflows x steps x outcomes, far below it.
DEFAULT_MAX_SERIES_PER_METRIC = 10_000


class UnboundedLabelError(ValueError):
    """A metric was defined with a label whose values are not known to be bounded."""


class FoldReason(StrEnum):
    INVALID = "invalid"
    CARDINALITY = "cardinality"


# Kubernetes object names used as label values (namespaces, workflows, ServiceSteps) are all
# DNS-1123 labels of at most 63 characters in Stepline's API.
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_KIND = re.compile(r"[A-Z][A-Za-z0-9]{0,62}")
_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}")
# `metric` names one of Stepline's metrics (the overflow counter), or the load a step's
# autoscaler follows (resources/autoscalers.py: in_flight, calls_per_second).
# A Kubernetes resource's plural name, with its subresource if any (`workflowruns/status`).
_RESOURCE = re.compile(r"[a-z][a-z0-9]{0,62}(/[a-z]{1,30})?")
_METRIC_NAME = re.compile(r"stepline_[a-z0-9_]{1,100}|in_flight|calls_per_second")


def _matching(pattern: re.Pattern[str]) -> Callable[[str], bool]:
    return lambda value: pattern.fullmatch(value) is not None


def _one_of(*enums: type[StrEnum]) -> Callable[[str], bool]:
    allowed = frozenset(member.value for enum in enums for member in enum)
    return lambda value: value in allowed


BOUNDED_LABELS: Mapping[str, Callable[[str], bool]] = MappingProxyType(
    {
        "namespace": _matching(_DNS1123_LABEL),
        "workflow": _matching(_DNS1123_LABEL),
        "step": _matching(_DNS1123_LABEL),
        "schedule": _matching(_DNS1123_LABEL),
        "kind": _matching(_KIND),
        "outcome": _one_of(
            RunOutcomeLabel,
            CallOutcomeLabel,
            ReconcileOutcomeLabel,
            ScheduleOutcomeLabel,
            CompensationOutcomeLabel,
        ),
        "code_class": _one_of(CodeClass),
        "verb": _one_of(ApiVerbLabel),
        "resource": _matching(_RESOURCE),
        "decision": _one_of(ApprovalDecisionLabel),
        "version": _matching(_VERSION),
        "python": _matching(_VERSION),
        "metric": _matching(_METRIC_NAME),
        "reason": _one_of(FoldReason, WaitReasonLabel, SpanDropReasonLabel),
        "status": _one_of(InvokeRefusalLabel),
    }
)
"""Every label name a Stepline metric may carry, with the test a value must pass."""

NAME_LABELS = frozenset({"namespace", "workflow", "step", "kind"})
"""The labels whose values come from objects users create: the ones folded on overflow."""


def check_label_names(metric: str, label_names: Sequence[str]) -> None:
    """Refuses a metric definition that uses a label outside `BOUNDED_LABELS`."""
    unbounded = [name for name in label_names if name not in BOUNDED_LABELS]
    if unbounded:
        raise UnboundedLabelError(
            f"metric {metric}: label(s) {', '.join(unbounded)} have no bounded shape; "
            f"use only {', '.join(sorted(BOUNDED_LABELS))} (never run ids or payloads)"
        )


class LabelGuard:
    """Admits the label sets of one metric: checks values, caps distinct sets, folds the rest.

    Thread-safe: the engine records from the event loop while kopf's handlers run in threads.
    """

    def __init__(
        self,
        metric: str,
        label_names: Sequence[str],
        *,
        max_series: int,
        on_fold: Callable[[str, FoldReason, str], None],
    ) -> None:
        check_label_names(metric, label_names)
        if max_series < 1:
            raise ValueError(f"metric {metric}: max_series must be at least 1, not {max_series}")
        self.metric = metric
        self.label_names = tuple(label_names)
        self._max_series = max_series
        self._on_fold = on_fold
        self._admitted: set[tuple[str, ...]] = set()
        self._lock = threading.Lock()

    def admit(self, values: Mapping[str, str]) -> tuple[str, ...]:
        """The label values to record under, in label order: `values` as given, or folded."""
        given = tuple(values[name] for name in self.label_names)
        try:
            if given in self._admitted:  # the common case, checked before; atomic under the GIL
                return given
        except TypeError:  # an unhashable value: _check() folds it
            pass
        checked = tuple(self._check(name, values[name]) for name in self.label_names)
        with self._lock:
            if checked in self._admitted or len(self._admitted) < self._max_series:
                self._admitted.add(checked)
                return checked
            folded = tuple(
                OTHER if name in NAME_LABELS else value
                for name, value in zip(self.label_names, checked, strict=True)
            )
            self._admitted.add(folded)
        self._on_fold(self.metric, FoldReason.CARDINALITY, "")
        return folded

    def forget(self, match: Mapping[str, str]) -> list[tuple[str, ...]]:
        """Drops, and returns, the admitted label sets that carry every label of `match`."""
        positions = [(self.label_names.index(name), value) for name, value in match.items()]
        with self._lock:
            gone = [
                values
                for values in self._admitted
                if all(values[index] == value for index, value in positions)
            ]
            self._admitted.difference_update(gone)
        return gone

    def uses(self, names: Collection[str]) -> bool:
        return all(name in self.label_names for name in names)

    @property
    def series(self) -> int:
        """How many distinct label sets are admitted now."""
        with self._lock:
            return len(self._admitted)

    def _check(self, name: str, value: str) -> str:
        if isinstance(value, str) and BOUNDED_LABELS[name](value):
            return str(value)  # an enum member becomes its plain value
        self._on_fold(self.metric, FoldReason.INVALID, name)
        return OTHER
