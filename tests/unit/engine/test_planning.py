"""Plans: execution order, per-step overrides, CEL marks, and workflows that cannot be planned."""

from __future__ import annotations

import pytest

from stepline.engine import PlanError, build_plan
from stepline.engine.expressions import compile_workflow_expressions
from tests.unit.engine.stepservers import build_workflow


def test_a_chain_is_planned_in_list_order_each_step_after_the_previous() -> None:
    workflow = build_workflow(
        [{"name": n, "stepRef": f"{n}-svc"} for n in ("validate", "score", "order")]
    )

    plan = build_plan(workflow)

    assert [step.name for step in plan.steps] == ["validate", "score", "order"]
    assert [step.step_ref for step in plan.steps] == ["validate-svc", "score-svc", "order-svc"]
    assert [step.depends_on for step in plan.steps] == [(), ("validate",), ("score",)]


def test_a_step_depending_on_a_later_step_is_planned_after_it() -> None:
    workflow = build_workflow(
        [
            {"name": "order", "stepRef": "svc", "dependsOn": ["score"]},
            {"name": "score", "stepRef": "svc", "dependsOn": []},
            {"name": "notify", "stepRef": "svc"},
        ]
    )

    plan = build_plan(workflow)

    assert [step.name for step in plan.steps] == ["score", "order", "notify"]


def test_the_workflows_timeout_and_retry_overrides_are_kept_per_step() -> None:
    workflow = build_workflow(
        [
            {"name": "a", "stepRef": "svc", "timeoutSeconds": 3, "retry": {"limit": 0}},
            {"name": "b", "stepRef": "svc"},
        ]
    )

    first, second = build_plan(workflow).steps

    assert first.timeout_seconds == 3
    assert first.retry is not None
    assert first.retry.limit == 0
    assert second.timeout_seconds is None
    assert second.retry is None


def test_steps_without_expressions_are_marked_to_pass_data_along_without_cel() -> None:
    workflow = build_workflow(
        [
            {"name": "a", "stepRef": "svc"},
            {"name": "b", "stepRef": "svc", "input": "input", "when": "true"},
        ]
    )

    first, second = build_plan(workflow).steps

    assert (first.has_input, first.has_condition) == (False, False)
    assert (second.has_input, second.has_condition) == (True, True)


def test_the_plan_knows_its_workflow_key_limit_and_generation() -> None:
    plan = build_plan(build_workflow([{"name": "a", "stepRef": "svc"}], output="steps.a.output"))

    assert plan.key == "shop/trade"
    assert plan.concurrency == 10
    assert plan.generation == 1
    assert plan.has_output is True


def test_expressions_compiled_already_are_reused() -> None:
    workflow = build_workflow([{"name": "a", "stepRef": "svc", "when": "true"}])
    compiled = compile_workflow_expressions(workflow.spec)

    assert build_plan(workflow, expressions=compiled).expressions is compiled


def test_an_expression_that_does_not_compile_refuses_the_plan_naming_its_field() -> None:
    workflow = build_workflow([{"name": "a", "stepRef": "svc", "input": "1 +"}])

    with pytest.raises(PlanError) as refused:
        build_plan(workflow)

    assert "spec.steps[0].input" in str(refused.value)
    assert len(refused.value.problems) == 1


def test_steps_waiting_on_each_other_in_a_cycle_refuse_the_plan() -> None:
    workflow = build_workflow(
        [
            {"name": "a", "stepRef": "svc", "dependsOn": ["b"]},
            {"name": "b", "stepRef": "svc", "dependsOn": ["a"]},
        ]
    )

    with pytest.raises(PlanError, match="cycle: a → b → a"):
        build_plan(workflow)
