"""read_step(): a ServiceStep from a watched body, the spec parsed again only when it changed
(an event of the same generation is one of its status or metadata)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from stepline.api import InvalidObjectError
from stepline.controllers.servicesteps.handlers import read_step

STATUS = {
    "observedGeneration": 1,
    "replicas": 1,
    "conditions": [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Available",
            "message": "1 of 1 replicas ready",
            "lastTransitionTime": "2026-03-01T09:00:00Z",
            "observedGeneration": 1,
        }
    ],
}


def body(*, generation: int = 1, image: str = "registry.example/validate:1", **extra: Any) -> Any:
    return {
        "apiVersion": "stepline.io/v1alpha1",
        "kind": "ServiceStep",
        "metadata": {
            "name": "validate",
            "namespace": "shop",
            "uid": "0b0e7c4e-5f0c-4d57-9a43-3c1f8d1f2a10",
            "generation": generation,
            "resourceVersion": "100",
            "labels": {"team": "payments"},
            "managedFields": [{"manager": "stepline", "fieldsV1": {"f:status": {}}}],
        },
        "spec": {"image": image},
        **extra,
    }


def test_a_status_event_keeps_the_known_spec_and_reads_the_new_status_and_metadata() -> None:
    known = read_step(body())
    echoed = body(status=STATUS)
    echoed["metadata"]["resourceVersion"] = "101"
    step = read_step(echoed, known=known)
    assert step.spec is known.spec
    assert step.status.replicas == 1
    assert step.status.conditions[0].message == "1 of 1 replicas ready"
    assert step.metadata.resource_version == "101"
    assert step == read_step(echoed)


def test_a_new_generation_is_parsed_in_full() -> None:
    known = read_step(body())
    step = read_step(body(generation=2, image="registry.example/validate:2"), known=known)
    assert step.spec.image == "registry.example/validate:2"


def test_an_invalid_status_is_reported_as_in_a_full_parse() -> None:
    known = read_step(body())
    broken = body(status=copy.deepcopy(STATUS))
    broken["status"]["replicas"] = "one"
    with pytest.raises(InvalidObjectError, match=r"status\.replicas"):
        read_step(broken, known=known)
