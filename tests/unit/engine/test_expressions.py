"""Workflow expressions: compiled once with errors that say where, evaluated to plain JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from stepline.api import Workflow, WorkflowSpec
from stepline.engine.expressions import (
    CompiledExpressions,
    ExpressionCompileError,
    ExpressionEvaluationError,
    build_activation,
    compile_expression,
    compile_workflow_expressions,
    to_json,
)

REPO = Path(__file__).resolve().parents[3]


def _spec(*steps: dict[str, Any], output: str | None = None) -> WorkflowSpec:
    data: dict[str, Any] = {"steps": [{"stepRef": "svc", **step} for step in steps]}
    if output is not None:
        data["output"] = output
    return WorkflowSpec.model_validate(data)


def _compile(*steps: dict[str, Any], output: str | None = None) -> CompiledExpressions:
    return compile_workflow_expressions(_spec(*steps, output=output))


FINANCE_RUN = build_activation(
    run_input={"user": {"id": "u-1", "name": "Ada"}, "order": {"symbol": "ACME", "quantity": 10}},
    phases={"validation": "Succeeded", "fraud": "Skipped", "order": "Pending"},
    outputs={"validation": {"approved": True, "riskScore": 0.12}},
)


def test_the_activation_gives_an_output_only_to_steps_that_produced_one() -> None:
    assert FINANCE_RUN["steps"] == {
        "validation": {"phase": "Succeeded", "output": {"approved": True, "riskScore": 0.12}},
        "fraud": {"phase": "Skipped"},
        "order": {"phase": "Pending"},
    }


def test_an_input_expression_combines_the_run_input_and_an_earlier_output() -> None:
    compiled = _compile(
        {"name": "validation"},
        {
            "name": "order",
            "input": '{"user": input.user.id, "order": input.order, '
            '"risk": steps.validation.output.riskScore}',
        },
    )
    assert compiled.problems == ()
    value = compiled.evaluate_input("order", FINANCE_RUN, default=None)
    assert value == {"user": "u-1", "order": {"symbol": "ACME", "quantity": 10}, "risk": 0.12}


def test_a_step_without_an_input_expression_gets_the_default() -> None:
    compiled = _compile({"name": "validation"})
    assert compiled.evaluate_input("validation", FINANCE_RUN, default={"x": 1}) == {"x": 1}


def test_has_tells_whether_a_step_produced_an_output() -> None:
    compiled = _compile(
        {"name": "a", "when": "has(steps.validation.output)"},
        {"name": "b", "when": "!has(steps.fraud.output)"},
        {"name": "c", "when": "has(steps.fraud.output)"},
    )
    assert [compiled.should_run(n, FINANCE_RUN) for n in ("a", "b", "c")] == [True, True, False]


def test_a_step_without_when_always_runs() -> None:
    assert _compile({"name": "a"}).should_run("a", FINANCE_RUN) is True


def test_a_when_that_is_not_a_boolean_fails_naming_the_field() -> None:
    compiled = _compile({"name": "a"}, {"name": "b", "when": "input.user.name"})
    with pytest.raises(ExpressionEvaluationError, match=r"spec\.steps\[1\]\.when \(step 'b'\)"):
        compiled.should_run("b", FINANCE_RUN)


def test_the_output_expression_or_the_default_makes_the_run_output() -> None:
    compiled = _compile({"name": "validation"}, output='{"ok": steps.validation.output.approved}')
    assert compiled.evaluate_output(FINANCE_RUN, default=None) == {"ok": True}
    assert _compile({"name": "a"}).evaluate_output(FINANCE_RUN, default=[1]) == [1]


def test_kubernetes_string_helpers_are_available() -> None:
    expression = compile_expression(
        '[input.user.name.lowerAscii(), "a,b".split(","), ["x", "y"].join("-"), max([1, 5, 3])]',
        field="spec.output",
    )
    assert expression.evaluate(FINANCE_RUN) == ["ada", ["a", "b"], "x-y", 5]


def test_a_syntax_error_names_step_field_expression_and_position() -> None:
    compiled = _compile(
        {"name": "validation"}, {"name": "order", "input": '{"user": input.user "id"}'}
    )
    (problem,) = compiled.problems
    assert problem.field == "spec.steps[1].input"
    assert problem.step == "order"
    assert problem.expression == '{"user": input.user "id"}'
    assert (problem.line, problem.column) == (1, 21)
    assert "Syntax error" in problem.message
    assert problem.describe().startswith("spec.steps[1].input (step 'order') at 1:21: Syntax error")
    assert "order" not in compiled.inputs


def test_a_position_on_a_later_line_is_reported_as_such() -> None:
    compiled = _compile({"name": "a", "input": '{"a": 1,\n "b": input.x +* 2}'})
    assert (compiled.problems[0].line, compiled.problems[0].column) == (2, 16)


def test_every_broken_expression_is_reported_not_just_the_first() -> None:
    compiled = _compile(
        {"name": "a", "input": "1 +", "when": "true &&"},
        {"name": "b", "input": "input"},
        output="steps.",
    )
    assert [p.field for p in compiled.problems] == [
        "spec.steps[0].input",
        "spec.steps[0].when",
        "spec.output",
    ]
    assert compiled.output is None
    assert list(compiled.inputs) == ["b"]
    with pytest.raises(ExpressionCompileError) as caught:
        compiled.raise_for_problems()
    assert len(caught.value.problems) == 3
    assert "spec.output" in str(caught.value)


def test_a_misspelt_variable_is_refused_at_compile_time_with_its_position() -> None:
    compiled = _compile({"name": "a", "when": 'input.x == "inptu" && inptu.y > 1'})
    (problem,) = compiled.problems
    assert "undeclared reference to 'inptu'" in problem.message
    assert (problem.line, problem.column) == (1, 23)


def test_an_unknown_function_is_refused_at_compile_time_with_its_position() -> None:
    compiled = _compile({"name": "a", "input": "input.user.name.toUpper()"})
    (problem,) = compiled.problems
    assert problem.message == "undeclared function 'toUpper'"
    assert (problem.line, problem.column) == (1, 17)


def test_variables_bound_by_macros_and_type_names_are_not_undeclared() -> None:
    compiled = _compile(
        {
            "name": "a",
            "input": "input.items.filter(i, i.qty > 0).map(j, j.sku)",
            "when": "type(input.items) == list && input.items.exists(x, x.qty > 1)",
        }
    )
    assert compiled.problems == ()


def test_an_evaluation_error_names_the_field_the_step_and_the_missing_key() -> None:
    compiled = _compile({"name": "order", "input": "steps.fraud.output"})
    with pytest.raises(ExpressionEvaluationError) as caught:
        compiled.evaluate_input("order", FINANCE_RUN, default=None)
    assert caught.value.field == "spec.steps[0].input"
    assert caught.value.step == "order"
    assert "no such key: 'output'" in str(caught.value)


@pytest.mark.parametrize(
    ("expression", "blames_input"),
    [
        ('{"user": input.customer}', True),  # the run input alone: the caller's data lacks it
        ("steps.fraud.output", False),  # a step's output is to blame
        ('{"user": input.customer, "risk": steps.validate.output.risk}', False),  # either
    ],
)
def test_an_evaluation_error_blames_the_input_only_when_the_expression_reads_nothing_else(
    expression: str, blames_input: bool
) -> None:
    compiled = _compile({"name": "order", "input": expression})
    with pytest.raises(ExpressionEvaluationError) as caught:
        compiled.evaluate_input("order", FINANCE_RUN, default=None)
    assert caught.value.blames_input is blames_input


def test_mixing_int_and_double_is_an_error_as_in_cel() -> None:
    expression = compile_expression("input.order.quantity * 1.5", field="spec.output")
    with pytest.raises(ExpressionEvaluationError, match=r"spec\.output"):
        expression.evaluate(FINANCE_RUN)
    assert compile_expression("double(input.order.quantity) * 1.5", field="f").evaluate(
        FINANCE_RUN
    ) == pytest.approx(15.0)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('timestamp("2024-01-01T00:00:00Z")', "2024-01-01T00:00:00Z"),
        ('duration("90s")', "90s"),
        ('duration("1.5s")', "1.5s"),
        ('b"hi"', "aGk="),
        ("{1: 2, 3: 4}", {"1": 2, "3": 4}),
        ("[null, 1u, -2, 2.5]", [None, 1, -2, 2.5]),
    ],
)
def test_results_are_plain_json(expression: str, expected: Any) -> None:
    assert compile_expression(expression, field="f").evaluate({}) == expected


def test_a_value_that_is_not_json_is_refused() -> None:
    with pytest.raises(TypeError):
        to_json(float("nan"))
    with pytest.raises(TypeError):
        to_json({1.5: "float keys are not JSON"})


@pytest.mark.parametrize("example", ["finance", "manufacturing"])
def test_the_example_workflows_compile_without_problems(example: str) -> None:
    (document,) = yaml.safe_load_all((REPO / "examples" / example / "workflow.yaml").read_text())
    compiled = compile_workflow_expressions(Workflow.from_body(document).spec)
    assert compiled.problems == ()


def test_the_finance_example_feeds_the_order_step_from_input_and_validation() -> None:
    (document,) = yaml.safe_load_all((REPO / "examples/finance/workflow.yaml").read_text())
    compiled = compile_workflow_expressions(Workflow.from_body(document).spec)
    sent = compiled.evaluate_input("order", FINANCE_RUN, default=None)
    assert sent == {
        "user": {"id": "u-1", "name": "Ada"},
        "order": {"symbol": "ACME", "quantity": 10},
        "riskScore": 0.12,
    }
    assert compiled.should_run("order", FINANCE_RUN) is True
    assert compiled.evaluate_output(FINANCE_RUN, default=None) == {"approved": True, "order": None}
