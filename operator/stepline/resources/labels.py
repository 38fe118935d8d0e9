"""Names and labels of the objects a ServiceStep owns. Pure: no I/O.

Every owned object carries the app.kubernetes.io/* labels and `stepline.io/step`; the selector
uses `stepline.io/step` alone, because a Deployment's selector can never change.
"""

from __future__ import annotations

from typing import Any

from stepline.api import API_VERSION, ServiceStep

STEP_LABEL = "stepline.io/step"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGER = "stepline"
CONTAINER_NAME = "step"
PORT_NAME = "http"


def step_name(step: ServiceStep) -> str:
    name = step.metadata.name
    if not name:
        raise ValueError("a ServiceStep without metadata.name cannot own objects")
    return name


def selector_labels(step: ServiceStep) -> dict[str, str]:
    return {STEP_LABEL: step_name(step)}


def build_labels(step: ServiceStep) -> dict[str, str]:
    name = step_name(step)
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": "step",
        "app.kubernetes.io/part-of": "stepline",
        MANAGED_BY_LABEL: MANAGER,
        STEP_LABEL: name,
    }


def build_metadata(step: ServiceStep) -> dict[str, Any]:
    """Name, namespace, labels and the controller reference to the step, for garbage collection."""
    if not step.metadata.uid or not step.metadata.namespace:
        raise ValueError(f"ServiceStep {step_name(step)}: metadata.uid and namespace are needed")
    return {
        "name": step_name(step),
        "namespace": step.metadata.namespace,
        "labels": build_labels(step),
        "ownerReferences": [
            {
                "apiVersion": API_VERSION,
                "kind": "ServiceStep",
                "name": step_name(step),
                "uid": step.metadata.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }


def build_endpoint(step: ServiceStep) -> str:
    """The URL Stepline calls: the step's in-cluster Service, or its external `url`."""
    if step.spec.url:
        return step.spec.url
    spec = step.spec
    return f"http://{step_name(step)}.{step.metadata.namespace}.svc:{spec.resolved_port}{spec.resolved_path}"
