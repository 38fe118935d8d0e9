"""The HorizontalPodAutoscaler of a ServiceStep (autoscaling/v2). Pure, no I/O.

The step's `scaling.behavior` mirrors autoscaling/v2's HorizontalPodAutoscalerBehavior field for
field, so it is copied as it is on the wire.
"""

from __future__ import annotations

from typing import Any

from stepline.api import ServiceStep
from stepline.resources.labels import build_metadata, step_name


def build_autoscaler(step: ServiceStep) -> dict[str, Any]:
    scaling = step.spec.resolved_scaling
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": step_name(step)},
        "minReplicas": scaling.min_replicas,
        "maxReplicas": scaling.max_replicas,
        "metrics": [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {
                        "type": "Utilization",
                        "averageUtilization": scaling.target_cpu_utilization_percentage,
                    },
                },
            }
        ],
    }
    if scaling.behavior is not None:
        spec["behavior"] = scaling.behavior.to_wire()
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": build_metadata(step),
        "spec": spec,
    }
