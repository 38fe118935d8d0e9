"""EssenceDiffBaseStorage builds exactly the essence kopf's own storage builds, from less."""

from __future__ import annotations

import copy
from typing import Any

import kopf
import pytest

from stepline.controllers.essences import EssenceDiffBaseStorage

LAST_HANDLED = "stepline.io/last-handled-configuration"


def run_body() -> dict[str, Any]:
    return {
        "apiVersion": "stepline.io/v1alpha1",
        "kind": "WorkflowRun",
        "metadata": {
            "name": "trade-1",
            "namespace": "shop",
            "uid": "0b6f",
            "resourceVersion": "812",
            "generation": 1,
            "labels": {"team": "orders"},
            "annotations": {
                "note": "kept",
                LAST_HANDLED: '{"spec": {}}',
                "stepline.io/create_fn": "{}",
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
            },
            "managedFields": [{"manager": "stepline", "fieldsV1": {"f:status": {}}}],
            "finalizers": ["stepline.io/finalizer"],
        },
        "spec": {"workflowRef": "trade", "input": {"user": {"name": "ada"}}},
        "status": {"phase": "Running", "steps": [{"name": "validate", "output": {"ok": True}}]},
    }


BODIES = {
    "a run with status, managed fields and every kind of annotation": run_body(),
    "no metadata, no status": {"spec": {"x": 1}, "data": {"y": [1, 2]}},
    "empty labels and annotations": {**run_body(), "metadata": {"labels": {}, "annotations": {}}},
}


@pytest.mark.parametrize("raw", BODIES.values(), ids=BODIES.keys())
def test_the_essence_is_kopfs(raw: dict[str, Any]) -> None:
    theirs = kopf.AnnotationsDiffBaseStorage(prefix="stepline.io", key="last-handled-configuration")
    ours = EssenceDiffBaseStorage(prefix="stepline.io", key="last-handled-configuration")
    untouched = copy.deepcopy(raw)

    assert ours.build(body=kopf.Body(raw)) == theirs.build(body=kopf.Body(raw))
    assert raw == untouched


def test_with_extra_fields_the_status_ones_are_kept_as_kopf_keeps_them() -> None:
    theirs = kopf.AnnotationsDiffBaseStorage(prefix="stepline.io")
    ours = EssenceDiffBaseStorage(prefix="stepline.io")
    body = kopf.Body(run_body())

    essence = ours.build(body=body, extra_fields=["status.phase"])

    assert essence == theirs.build(body=body, extra_fields=["status.phase"])
    assert essence["status"] == {"phase": "Running"}


def test_the_essence_is_a_copy_not_a_view_of_the_body() -> None:
    raw = run_body()
    essence = EssenceDiffBaseStorage(prefix="stepline.io").build(body=kopf.Body(raw))

    essence["spec"]["input"]["user"]["name"] = "changed"  # type: ignore[index]

    assert raw["spec"]["input"]["user"]["name"] == "ada"
