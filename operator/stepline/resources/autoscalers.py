"""The HorizontalPodAutoscaler of a ServiceStep (autoscaling/v2). Pure, no I/O.

The step's `scaling.behavior` mirrors autoscaling/v2's HorizontalPodAutoscalerBehavior field for
field, so it is copied as it is on the wire. Each of `scaling.metrics` becomes one metric of the
autoscaler, which takes the largest replica count any of them asks for: CPU a Resource metric
(from metrics-server), InFlight and CallsPerSecond an External metric, the operator's gauge
`stepline_step_scaling_value` for this step (served through the external metrics API by an
adapter reading Prometheus), with an AverageValue target: the autoscaler divides the step's
figure by its replicas and aims for the target per replica.
"""

from __future__ import annotations

from typing import Any

from stepline.api import ScalingMetric, ScalingMetricType, ServiceStep
from stepline.resources.labels import build_metadata, step_name

# The operator's gauge an External metric reads, and its label per metric type.
SCALING_METRIC_NAME = "stepline_step_scaling_value"
LOAD_METRIC_LABELS = {
    ScalingMetricType.IN_FLIGHT: "in_flight",
    ScalingMetricType.CALLS_PER_SECOND: "calls_per_second",
}


def build_autoscaler(step: ServiceStep) -> dict[str, Any]:
    scaling = step.spec.resolved_scaling
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": step_name(step)},
        "minReplicas": scaling.min_replicas,
        "maxReplicas": scaling.max_replicas,
        "metrics": [build_metric(step, m) for m in scaling.resolved_metrics],
    }
    if scaling.behavior is not None:
        spec["behavior"] = scaling.behavior.to_wire()
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": build_metadata(step),
        "spec": spec,
    }


def build_metric(step: ServiceStep, metric: ScalingMetric) -> dict[str, Any]:
    """One autoscaler metric (autoscaling/v2 MetricSpec) for one of the step's scaling metrics."""
    target = metric.target if metric.target is not None else 0.0
    if metric.type is ScalingMetricType.CPU:
        utilization = {"type": "Utilization", "averageUtilization": round(target)}
        return {"type": "Resource", "resource": {"name": "cpu", "target": utilization}}
    labels = {"step": step.metadata.name or "", "metric": LOAD_METRIC_LABELS[metric.type]}
    return {
        "type": "External",
        "external": {
            "metric": {"name": SCALING_METRIC_NAME, "selector": {"matchLabels": labels}},
            "target": {"type": "AverageValue", "averageValue": format_quantity(target)},
        },
    }


def format_quantity(value: float) -> str:
    """A Kubernetes quantity for a positive value: whole numbers as they are, fractions in
    thousandths (`0.5` → `500m`), the finest an autoscaler target keeps."""
    if value == int(value):
        return str(int(value))
    return f"{max(round(value * 1000), 1)}m"
