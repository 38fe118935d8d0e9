"""What the metrics module exports, and what PromQL expressions refer to, for the tests that
check dashboards and alerts against it."""

from __future__ import annotations

import re

from stepline.observability import Metrics

# Metric names in an expression: Stepline's, and the client library's process_* ones. Recording
# rules (with colons) are not metrics and are left out.
_METRIC = re.compile(r"(?<![\w:])((?:stepline|process)_[a-z0-9_]+)\b(?!:)")
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exported_names() -> set[str]:
    """Every sample name a fresh `Metrics` can expose (counters with _total, histogram parts)."""
    names = set()
    for family in Metrics().registry.collect():
        for suffix in _SUFFIXES.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names


def metric_names_in(expr: str) -> set[str]:
    return set(_METRIC.findall(expr))
