"""The prometheus-operator templates under deploy/monitoring: the shape the chart will fill in."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from stepline.resources.labels import MANAGED_BY_LABEL, MANAGER, PORT_NAME, STEP_LABEL

REPO = Path(__file__).resolve().parents[3]
MONITORING = REPO / "deploy" / "monitoring"


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((MONITORING / name).read_text())
    return document


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("servicemonitor.yaml", "ServiceMonitor"),
        ("podmonitor.yaml", "PodMonitor"),
        ("prometheusrule.yaml", "PrometheusRule"),
    ],
)
def test_a_template_is_a_prometheus_operator_object_with_only_the_namespace_placeholder(
    name: str, kind: str
) -> None:
    document = load(name)
    assert document["apiVersion"] == "monitoring.coreos.com/v1"
    assert document["kind"] == kind
    assert document["metadata"]["namespace"] == "__NAMESPACE__"
    placeholders = set(re.findall(r"__[A-Z_]+__", (MONITORING / name).read_text()))
    assert placeholders == {"__NAMESPACE__"}


def test_the_service_monitor_keeps_steplines_namespace_label() -> None:
    (endpoint,) = load("servicemonitor.yaml")["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] == "metrics"  # the operator's metrics port: no token asked
    assert endpoint["honorLabels"] is True


def test_the_pod_monitor_selects_the_step_pods_stepline_deploys() -> None:
    spec = load("podmonitor.yaml")["spec"]
    assert spec["selector"]["matchLabels"] == {
        MANAGED_BY_LABEL: MANAGER,
        "app.kubernetes.io/component": "step",
    }
    assert spec["namespaceSelector"] == {"any": True}
    (endpoint,) = spec["podMetricsEndpoints"]
    assert endpoint["port"] == PORT_NAME
    (relabeling,) = endpoint["relabelings"]
    meta_label = "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9]", "_", STEP_LABEL)
    assert relabeling == {"sourceLabels": [meta_label], "targetLabel": "step"}
