"""What a ServiceStep becomes in the cluster: its Deployment, Service and HorizontalPodAutoscaler
as manifests, and its status computed from what those objects report.

Everything here is pure (no I/O); the controllers apply the manifests and feed back the states.
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
from stepline.resources.readiness import (
    AutoscalerState,
    DeploymentState,
    ExternalCheck,
    compute_external_step_status,
    compute_step_status,
)
from stepline.resources.services import build_service

__all__ = [
    "MANAGED_BY_LABEL",
    "MANAGER",
    "STEP_LABEL",
    "AutoscalerState",
    "DeploymentState",
    "ExternalCheck",
    "build_autoscaler",
    "build_deployment",
    "build_endpoint",
    "build_labels",
    "build_service",
    "compute_external_step_status",
    "compute_step_status",
]
