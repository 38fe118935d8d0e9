"""The Deployment of a ServiceStep. Pure: `build_deployment(step)` returns a manifest, no I/O.

The manifest leaves `spec.replicas` out on purpose: the HorizontalPodAutoscaler owns the replica
count, and a server-side apply that declared it would take it back on every reconcile.

Security by default (the Pod Security `restricted` profile): non-root, read-only root filesystem,
no privilege escalation, every capability dropped, the RuntimeDefault seccomp profile, no service
account token. A writable emptyDir at /tmp keeps read-only images usable.
"""

from __future__ import annotations

import copy
from typing import Any

from stepline.api import ServiceStep
from stepline.api.servicesteps import HttpProbe, Resources
from stepline.resources.labels import (
    CONTAINER_NAME,
    PORT_NAME,
    build_labels,
    build_metadata,
    selector_labels,
)

# Without a CPU request the autoscaler cannot compute utilisation; these defaults fit a small
# JSON service and are meant to be overridden in spec.resources.
DEFAULT_RESOURCES: dict[str, Any] = {
    "requests": {"cpu": "100m", "memory": "64Mi"},
    "limits": {"memory": "256Mi"},
}
DEFAULT_READINESS = HttpProbe(path="/healthz", period_seconds=5)
DEFAULT_LIVENESS = HttpProbe(path="/healthz", period_seconds=10, failure_threshold=3)
CONTAINER_SECURITY: dict[str, Any] = {
    "runAsNonRoot": True,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
POD_SECURITY: dict[str, Any] = {
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def build_deployment(step: ServiceStep) -> dict[str, Any]:
    """The Deployment running `step`'s image; raises ValueError for a step with a `url`."""
    if not step.spec.image:
        raise ValueError(f"ServiceStep {step.metadata.name} has no image: nothing to deploy")
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": build_metadata(step),
        "spec": {
            "selector": {"matchLabels": selector_labels(step)},
            "revisionHistoryLimit": 5,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"},
            },
            "template": {
                "metadata": {"labels": build_labels(step)},
                "spec": build_pod_spec(step),
            },
        },
    }


def build_pod_spec(step: ServiceStep) -> dict[str, Any]:
    return {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": copy.deepcopy(POD_SECURITY),
        "containers": [build_container(step)],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
    }


def build_container(step: ServiceStep) -> dict[str, Any]:
    spec = step.spec
    probes = spec.probes
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": spec.image,
        "ports": [{"name": PORT_NAME, "containerPort": spec.resolved_port, "protocol": "TCP"}],
        "resources": build_resources(spec.resources),
        "readinessProbe": build_probe((probes and probes.readiness) or DEFAULT_READINESS),
        "livenessProbe": build_probe((probes and probes.liveness) or DEFAULT_LIVENESS),
        "securityContext": copy.deepcopy(CONTAINER_SECURITY),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108
    }
    if spec.command:
        container["command"] = list(spec.command)
    if spec.args:
        container["args"] = list(spec.args)
    if spec.env:
        container["env"] = [variable.to_wire() for variable in spec.env]
    return container


def build_resources(resources: Resources | None) -> dict[str, Any]:
    """The step's requests and limits over the defaults, per section and per resource."""
    merged = {section: dict(values) for section, values in DEFAULT_RESOURCES.items()}
    if resources is not None:
        for section, values in resources.to_wire().items():
            merged.setdefault(section, {}).update(values)
    return merged


def build_probe(probe: HttpProbe) -> dict[str, Any]:
    return {
        "httpGet": {"path": probe.path, "port": probe.port or PORT_NAME},
        "initialDelaySeconds": probe.initial_delay_seconds,
        "periodSeconds": probe.period_seconds,
        "timeoutSeconds": probe.timeout_seconds,
        "failureThreshold": probe.failure_threshold,
    }
