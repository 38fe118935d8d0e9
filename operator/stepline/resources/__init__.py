"""What a ServiceStep becomes in the cluster: its Deployment, Service and HorizontalPodAutoscaler
as manifests.

Everything here is pure (no I/O); the ServiceStep controller applies the manifests, and computes
the step's status from what those objects report (`controllers.servicesteps.status`).
"""

from stepline.resources.autoscalers import build_autoscaler
from stepline.resources.deployments import build_deployment
from stepline.resources.labels import (
    MANAGED_BY_LABEL,
    MANAGER,
    STEP_LABEL,
    build_endpoint,
    build_labels,
)
from stepline.resources.services import build_service

__all__ = [
    "MANAGED_BY_LABEL",
    "MANAGER",
    "STEP_LABEL",
    "build_autoscaler",
    "build_deployment",
    "build_endpoint",
    "build_labels",
    "build_service",
]
