"""ServiceSteps as kopf hands them to the controllers, for the builders and readiness tests."""

from __future__ import annotations

from typing import Any

from stepline.api import ServiceStep

NAMESPACE = "shop"
UID = "0b0e7c4e-5f0c-4d57-9a43-3c1f8d1f2a10"


def make_step(name: str = "validate", *, generation: int = 1, **spec: Any) -> ServiceStep:
    """A ServiceStep named `name` in namespace `shop`; `spec` defaults to an image."""
    return ServiceStep.from_body(
        {
            "apiVersion": "stepline.io/v1alpha1",
            "kind": "ServiceStep",
            "metadata": {
                "name": name,
                "namespace": NAMESPACE,
                "uid": UID,
                "generation": generation,
            },
            "spec": spec or {"image": "registry.example/validate:1.2.0"},
        }
    )
