"""The Workflow controller against the real control plane, the operator running as a process:
a Workflow is Ready only when every ServiceStep it references is, follows those steps as they
appear, change and go away, and says clearly what is wrong (a missing step, an expression that
does not compile, a dependency cycle).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.localcluster import LocalCluster, wait_until
from tests.integration.operatorprocess import OperatorProcess
from tests.integration.stepobjects import (
    condition,
    get,
    service_step,
    wait_condition,
    wait_event,
    wait_ready,
    workflow,
)

pytestmark = pytest.mark.integration

TRADE = [
    {"name": "validate", "stepRef": "user-validation"},
    {"name": "order", "stepRef": "order-processing"},
]


def step_records(flow: dict[str, Any] | None) -> dict[str, tuple[bool, str | None]]:
    """Each workflow step's (ready, message) from the status."""
    records = ((flow or {}).get("status") or {}).get("steps") or []
    return {r["name"]: (r["ready"], r.get("message")) for r in records}


def test_a_workflow_naming_a_missing_step_says_so_then_turns_ready_when_the_step_is(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess
) -> None:
    cluster.apply(service_step("user-validation", namespace))
    cluster.apply(workflow("trade", namespace, TRADE))
    wait_ready(cluster, "servicestep", "user-validation", namespace)

    missing = wait_condition(
        cluster, "workflow", "trade", namespace, status="False", reason="StepNotFound"
    )
    assert missing["message"] == "ServiceStep not found: order-processing"
    flow = get(cluster, "workflow", "trade", namespace)
    assert flow is not None
    assert flow["status"]["stepsReady"] == "1/2"
    assert flow["status"]["observedGeneration"] == 1
    wait_until(
        lambda: (
            step_records(get(cluster, "workflow", "trade", namespace))
            == {"validate": (True, None), "order": (False, "ServiceStep not found")}
        ),
        what="per-step readiness: validate ready, order not found",
    )
    warning = wait_event(cluster, namespace, "Workflow", "trade", reason="StepNotFound")
    assert warning["type"] == "Warning"
    assert "order-processing" in warning["message"]

    cluster.apply(service_step("order-processing", namespace))
    ready = wait_ready(cluster, "workflow", "trade", namespace)
    assert condition(ready, "Ready")["reason"] == "AllStepsReady"
    assert condition(ready, "Ready")["message"] == "all 2 steps are ready"
    assert ready["status"]["stepsReady"] == "2/2"
    assert step_records(ready) == {"validate": (True, None), "order": (True, None)}
    announced = wait_event(cluster, namespace, "Workflow", "trade", reason="AllStepsReady")
    assert announced["type"] == "Normal"


def test_a_workflow_follows_its_steps_as_they_change_and_go_away(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess
) -> None:
    cluster.apply([service_step("user-validation", namespace),
                   service_step("order-processing", namespace),
                   workflow("trade", namespace, TRADE)])  # fmt: skip
    wait_ready(cluster, "workflow", "trade", namespace)

    cluster.kubectl("delete", "servicestep", "order-processing", "-n", namespace)
    gone = wait_condition(
        cluster, "workflow", "trade", namespace, status="False", reason="StepNotFound"
    )
    assert "order-processing" in gone["message"]

    # A step that exists but is not Ready: its own reason is quoted.
    quota = {
        "apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": {"name": "no-more-deployments", "namespace": namespace},
        "spec": {"hard": {"count/deployments.apps": "1"}},
    }  # fmt: skip
    cluster.apply(quota)
    wait_until(
        lambda: (
            (get(cluster, "resourcequota", "no-more-deployments", namespace) or {})
            .get("status", {})
            .get("used")
        ),
        what="the quota counted",
    )
    cluster.apply(service_step("order-processing", namespace))
    unready = wait_condition(
        cluster, "workflow", "trade", namespace,
        status="False", reason="StepsNotReady", mentioning="exceeded quota",
    )  # fmt: skip
    assert unready["message"].startswith("step 'order' (order-processing): ")


def test_an_expression_that_does_not_compile_is_reported_with_its_field_and_position(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess
) -> None:
    steps = [
        {"name": "validate", "stepRef": "user-validation"},
        {"name": "order", "stepRef": "order-processing", "input": '{"user": input.user +}'},
    ]
    cluster.apply([service_step("user-validation", namespace),
                   service_step("order-processing", namespace),
                   workflow("trade", namespace, steps)])  # fmt: skip

    invalid = wait_condition(
        cluster, "workflow", "trade", namespace, status="False", reason="InvalidExpression"
    )
    assert invalid["message"].startswith("spec.steps[1].input (step 'order') at 1:22: Syntax")
    flow = get(cluster, "workflow", "trade", namespace)
    assert flow is not None
    (problem,) = flow["status"]["expressionErrors"]
    assert problem["field"] == "spec.steps[1].input"
    assert problem["step"] == "order"
    assert problem["expression"] == '{"user": input.user +}'
    assert problem["line"] == 1
    assert problem["column"] == 22  # the closing brace where an operand is missing
    assert problem["message"].startswith("Syntax error: mismatched input '}'")

    # Steps that are Ready do not hide the invalid expression; fixing it clears the error.
    wait_ready(cluster, "servicestep", "order-processing", namespace)
    steps[1]["input"] = '{"user": input.user}'
    cluster.apply(workflow("trade", namespace, steps))
    fixed = wait_ready(cluster, "workflow", "trade", namespace)
    assert fixed["status"].get("expressionErrors", []) == []
    assert fixed["status"]["observedGeneration"] == 2


def test_a_dependency_cycle_is_reported_naming_the_steps_in_it(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess
) -> None:
    steps = [
        {"name": "validate", "stepRef": "user-validation", "dependsOn": []},
        {"name": "price", "stepRef": "user-validation", "dependsOn": ["validate", "settle"]},
        {"name": "order", "stepRef": "user-validation", "dependsOn": ["price"]},
        {"name": "settle", "stepRef": "user-validation", "dependsOn": ["order"]},
    ]
    cluster.apply([service_step("user-validation", namespace),
                   workflow("trade", namespace, steps)])  # fmt: skip

    cycle = wait_condition(
        cluster, "workflow", "trade", namespace, status="False", reason="DependencyCycle"
    )
    for name in ("price", "order", "settle"):
        assert name in cycle["message"]
    assert "validate" not in cycle["message"]
    event = wait_event(cluster, namespace, "Workflow", "trade", reason="DependencyCycle")
    assert event["type"] == "Warning"
