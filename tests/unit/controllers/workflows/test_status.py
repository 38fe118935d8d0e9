"""Whether a Workflow can run (`readiness.compute_workflow_status`): its Ready condition says why
not, one reason at a time in a fixed order (expressions, cycles, missing steps, steps not
Ready), and moves its transition time only when it flips."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from stepline.api import ExpressionProblem, ServiceStep, Workflow
from stepline.controllers.workflows.status import compute_workflow_status

EARLIER = datetime(2026, 12, 2, 11, 0, tzinfo=UTC)
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
BROKEN = ExpressionProblem(
    field="spec.steps[1].input", step="order", expression="1 +", message="syntax error"
)


def workflow(*steps: dict[str, Any], **status: Any) -> Workflow:
    return Workflow.from_body({
        "apiVersion": "stepline.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "trade", "namespace": "shop", "uid": "w1", "generation": 4},
        "spec": {"steps": list(steps)},
        "status": status,
    })  # fmt: skip


def step(name: str, ref: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": name, "stepRef": ref or name, **extra}


def service_step(name: str, *, ready: bool | None, message: str = "") -> ServiceStep:
    conditions = [] if ready is None else [{
        "type": "Ready", "status": str(ready), "reason": "Ready" if ready else "Progressing",
        "message": message, "lastTransitionTime": EARLIER.isoformat(),
    }]  # fmt: skip
    return ServiceStep.from_body({
        "apiVersion": "stepline.io/v1alpha1",
        "kind": "ServiceStep",
        "metadata": {"name": name, "namespace": "shop", "uid": name, "generation": 1},
        "spec": {"image": f"registry.example/{name}:1"},
        "status": {"conditions": conditions},
    })  # fmt: skip


def ready_condition(status: Any) -> Any:
    [condition] = [c for c in status.conditions if c.type == "Ready"]
    return condition


def test_a_workflow_whose_steps_are_all_ready_is_ready() -> None:
    flow = workflow(step("validate"), step("order"))
    steps = {"validate": service_step("validate", ready=True),
             "order": service_step("order", ready=True)}  # fmt: skip

    status = compute_workflow_status(flow, steps=steps, now=NOW)

    condition = ready_condition(status)
    assert (condition.status, condition.reason) == ("True", "AllStepsReady")
    assert condition.message == "all 2 steps are ready"
    assert condition.observed_generation == status.observed_generation == 4
    assert status.steps_ready == "2/2"
    assert [(s.name, s.ready, s.message) for s in status.steps] == [
        ("validate", True, None), ("order", True, None),
    ]  # fmt: skip


def test_missing_steps_are_named_once_each_in_order() -> None:
    flow = workflow(step("charge", "payments"), step("validate"), step("refund", "payments"))
    steps = {"validate": service_step("validate", ready=True), "payments": None}

    status = compute_workflow_status(flow, steps=steps, now=NOW)

    condition = ready_condition(status)
    assert (condition.status, condition.reason) == ("False", "StepNotFound")
    assert condition.message == "ServiceStep not found: payments"
    assert status.steps_ready == "1/3"
    assert [s.step_ref for s in status.steps] == ["payments", "validate", "payments"]


def test_a_step_that_is_not_ready_is_named_with_its_own_reason() -> None:
    flow = workflow(step("validate", "user-validation"), step("order"))
    steps = {
        "user-validation": service_step("user-validation", ready=False, message="0/2 ready"),
        "order": service_step("order", ready=None),
    }

    status = compute_workflow_status(flow, steps=steps, now=NOW)

    condition = ready_condition(status)
    assert (condition.status, condition.reason) == ("False", "StepsNotReady")
    assert condition.message == (
        "step 'validate' (user-validation): 0/2 ready; "
        "step 'order' (order): ServiceStep has no status yet"
    )
    assert status.steps_ready == "0/2"


def test_a_missing_step_is_said_before_steps_that_are_not_ready() -> None:
    flow = workflow(step("validate"), step("order"))
    steps = {"validate": service_step("validate", ready=False, message="rolling out")}

    condition = ready_condition(compute_workflow_status(flow, steps=steps, now=NOW))

    assert (condition.reason, condition.message) == ("StepNotFound", "ServiceStep not found: order")


def test_a_dependency_cycle_is_said_before_missing_steps() -> None:
    flow = workflow(step("a"), step("b", dependsOn=["c"]), step("c"))

    condition = ready_condition(compute_workflow_status(flow, steps={}, now=NOW))

    assert (condition.status, condition.reason) == ("False", "DependencyCycle")
    assert "b → c → b" in condition.message


def test_an_expression_that_does_not_compile_is_said_first_and_recorded() -> None:
    flow = workflow(step("a"), step("b", dependsOn=["c"]), step("c"))  # a cycle too

    status = compute_workflow_status(flow, steps={}, expression_problems=(BROKEN,), now=NOW)

    condition = ready_condition(status)
    assert (condition.status, condition.reason) == ("False", "InvalidExpression")
    assert condition.message == BROKEN.describe()
    assert status.expression_errors == [BROKEN]


def test_the_transition_time_moves_only_when_readiness_flips() -> None:
    not_ready = {"validate": service_step("validate", ready=False, message="0/1 ready")}
    ready = {"validate": service_step("validate", ready=True)}
    first = compute_workflow_status(workflow(step("validate")), steps=not_ready, now=EARLIER)
    wire = first.to_wire()

    still = compute_workflow_status(workflow(step("validate"), **wire), steps={}, now=NOW)
    flipped = compute_workflow_status(workflow(step("validate"), **wire), steps=ready, now=NOW)

    assert ready_condition(still).reason == "StepNotFound"  # another reason, still False
    assert ready_condition(still).last_transition_time == EARLIER
    assert ready_condition(flipped).last_transition_time == NOW


def test_expression_errors_of_an_earlier_generation_are_cleared() -> None:
    before = compute_workflow_status(
        workflow(step("validate")), steps={}, expression_problems=(BROKEN,), now=EARLIER
    )
    fixed = workflow(step("validate"), **before.to_wire())

    status = compute_workflow_status(fixed, steps={"validate": None}, now=NOW)

    assert status.expression_errors == []


def test_a_missing_or_unready_compensating_step_keeps_the_workflow_from_being_ready() -> None:
    flow = workflow(
        step("order", compensation={"stepRef": "cancel-order"}),
        step("settle", compensation={"stepRef": "refund"}),
    )
    steps = {
        "order": service_step("order", ready=True),
        "settle": service_step("settle", ready=True),
        "refund": service_step("refund", ready=False, message="0/1 replicas available"),
    }

    missing = compute_workflow_status(flow, steps={**steps, "cancel-order": None}, now=NOW)
    unready = compute_workflow_status(
        flow, steps={**steps, "cancel-order": service_step("cancel-order", ready=True)}, now=NOW
    )

    condition = ready_condition(missing)
    assert (condition.status, condition.reason) == ("False", "StepNotFound")
    assert condition.message == "ServiceStep not found: cancel-order"
    condition = ready_condition(unready)
    assert (condition.status, condition.reason) == ("False", "StepsNotReady")
    assert condition.message == "step 'settle' compensation (refund): 0/1 replicas available"
    order, settle = unready.steps
    assert order.ready
    assert order.compensation is not None
    assert (order.compensation.step_ref, order.compensation.ready) == ("cancel-order", True)
    assert settle.ready  # its own ServiceStep is Ready; its compensation's is not
    assert settle.compensation is not None
    assert settle.compensation.ready is False


def test_a_workflow_with_an_approval_step_is_not_ready_while_approvals_are_unavailable() -> None:
    flow = workflow(step("plan"), {"name": "release", "approval": {}})
    steps = {"plan": service_step("plan", ready=True)}

    unavailable = compute_workflow_status(
        flow, steps=steps, now=NOW, approvals_problem="the binding approvals.stepline.io is missing"
    )
    available = compute_workflow_status(flow, steps=steps, now=NOW)
    without = compute_workflow_status(
        workflow(step("plan")), steps=steps, now=NOW, approvals_problem="missing"
    )

    condition = ready_condition(unavailable)
    assert (condition.status, condition.reason) == ("False", "ApprovalsUnavailable")
    assert condition.message == (
        "its approval steps cannot be decided: the binding approvals.stepline.io is missing"
    )
    assert ready_condition(available).status == "True"
    assert ready_condition(without).status == "True"  # no approval step: nothing to decide
