"""The Service of a ServiceStep: a stable in-cluster name for its replicas. Pure, no I/O."""

from __future__ import annotations

from typing import Any

from stepline.api import ServiceStep
from stepline.resources.labels import PORT_NAME, build_metadata, selector_labels


def build_service(step: ServiceStep) -> dict[str, Any]:
    """A ClusterIP Service on the step's port, in front of its Deployment's pods."""
    port = step.spec.resolved_port
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": build_metadata(step),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(step),
            "ports": [
                {"name": PORT_NAME, "port": port, "targetPort": PORT_NAME, "protocol": "TCP"}
            ],
        },
    }
