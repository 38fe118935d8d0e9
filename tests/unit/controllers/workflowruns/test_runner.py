"""A run is pinned to the Workflow it started with (`running.pin_workflow`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from stepline.api import Workflow, WorkflowRun
from stepline.controllers.workflowruns.runner import pin_workflow

STARTED = datetime(2026, 12, 2, 12, 0, tzinfo=UTC).isoformat()


def workflow(generation: int, *steps: str) -> Workflow:
    return Workflow.from_body({
        "apiVersion": "stepline.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "trade", "namespace": "shop", "uid": "w1", "generation": generation},
        "spec": {"steps": [{"name": step, "stepRef": step} for step in steps]},
    })  # fmt: skip


def run(**status: Any) -> WorkflowRun:
    return WorkflowRun.from_body({
        "apiVersion": "stepline.io/v1alpha1",
        "kind": "WorkflowRun",
        "metadata": {"name": "r1", "namespace": "shop", "uid": "r1"},
        "spec": {"workflowRef": "trade", "input": {}},
        "status": status,
    })  # fmt: skip


def test_a_run_that_has_not_started_takes_the_workflow_as_it_is_now() -> None:
    now = workflow(3, "validate", "order")
    assert pin_workflow(now, run()) is now
    assert pin_workflow(now, run(workflowGeneration=1)) is now  # recorded, never started


def test_a_run_started_on_this_generation_takes_the_workflow_as_it_is() -> None:
    now = workflow(3, "validate", "order")
    assert pin_workflow(now, run(startedAt=STARTED, workflowGeneration=3)) is now


def test_a_run_resumed_after_the_workflow_changed_executes_the_definition_it_started_with() -> None:
    before = workflow(2, "validate", "order")
    now = workflow(3, "validate", "fraud-check", "order")
    resumed = run(startedAt=STARTED, workflowGeneration=2, workflowSpec=before.spec.to_wire())
    pinned = pin_workflow(now, resumed)
    assert isinstance(pinned, Workflow)
    assert [step.name for step in pinned.spec.steps] == ["validate", "order"]
    assert (pinned.metadata.generation, pinned.metadata.uid) == (2, "w1")


def test_a_changed_workflow_without_a_recorded_definition_fails_the_run_saying_why() -> None:
    now = workflow(3, "validate", "fraud-check", "order")
    message = pin_workflow(now, run(startedAt=STARTED, workflowGeneration=2))
    assert isinstance(message, str)
    assert "changed (generation 2 to 3)" in message
    assert "no record of the definition" in message


def test_a_recorded_definition_that_no_longer_parses_fails_the_run_saying_why() -> None:
    now = workflow(3, "validate")
    broken = {"steps": [{"name": "validate", "stepRef": "validate", "retries": "often"}]}
    message = pin_workflow(now, run(startedAt=STARTED, workflowGeneration=2, workflowSpec=broken))
    assert isinstance(message, str)
    assert "is not valid" in message
