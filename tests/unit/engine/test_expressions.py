"""Workflow expressions: compiled once with errors that say where, evaluated to plain JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from stepline.api import Workflow, WorkflowSpec
from stepline.engine.expressions import (
    FUNCTIONS,
    CompiledExpressions,
    ExpressionCompileError,
    ExpressionEvaluationError,
    build_activation,
    compile_expression,
    compile_workflow_expressions,
    to_json,
)
from stepline.engine.referencing import NON_BOOL_FUNCTIONS

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
        {"name": "validation"},
        {"name": "fraud"},
        {"name": "a", "when": "has(steps.validation.output)"},
        {"name": "b", "when": "!has(steps.fraud.output)"},
        {"name": "c", "when": "has(steps.fraud.output)"},
    )
    assert compiled.problems == ()
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
    compiled = _compile({"name": "fraud"}, {"name": "order", "input": "steps.fraud.output"})
    with pytest.raises(ExpressionEvaluationError) as caught:
        compiled.evaluate_input("order", FINANCE_RUN, default=None)
    assert caught.value.field == "spec.steps[1].input"
    assert caught.value.step == "order"
    assert "no such key: 'output'" in str(caught.value)


@pytest.mark.parametrize(
    ("expression", "blames_input"),
    [
        ('{"user": input.customer}', True),  # the run input alone: the caller's data lacks it
        ("steps.fraud.output", False),  # a step's output is to blame
        ('{"user": input.customer, "risk": steps.fraud.output.risk}', False),  # either
    ],
)
def test_an_evaluation_error_blames_the_input_only_when_the_expression_reads_nothing_else(
    expression: str, blames_input: bool
) -> None:
    compiled = _compile({"name": "fraud"}, {"name": "order", "input": expression})
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


SHOP = ({"name": "validate"}, {"name": "order"})


def test_an_input_naming_a_missing_step_is_a_problem_naming_the_field_and_the_step() -> None:
    compiled = _compile(*SHOP, {"name": "ship", "input": "{'id': steps.nosuch.output.id}"})
    (problem,) = compiled.problems
    assert (problem.field, problem.step) == ("spec.steps[2].input", "ship")
    assert problem.expression == "{'id': steps.nosuch.output.id}"
    assert problem.message == "no step 'nosuch' in this workflow (steps: validate, order, ship)"
    assert (problem.line, problem.column) == (1, 8)


@pytest.mark.parametrize(
    ("when", "output", "missing"),
    [
        ("has(steps.nosuch.output)", None, "nosuch"),
        (None, 'steps["nosuch"].output', "nosuch"),
        (None, "steps['no-such'].phase", "no-such"),
    ],
)
def test_a_when_or_an_output_naming_a_step_that_does_not_exist_is_a_problem_on_its_field(
    when: str | None, output: str | None, missing: str
) -> None:
    step = {"name": "ship"} if when is None else {"name": "ship", "when": when}
    (problem,) = _compile(*SHOP, step, output=output).problems
    assert problem.field == ("spec.output" if when is None else "spec.steps[2].when")
    assert problem.message.startswith(f"no step {missing!r} in this workflow")


def test_a_missing_step_is_reported_at_its_reference_even_on_a_later_line() -> None:
    compiled = _compile(*SHOP, output='{"id": input.id,\n  "o": steps["ordr"].output}')
    assert (compiled.problems[0].line, compiled.problems[0].column) == (2, 8)


def test_references_to_existing_steps_in_either_form_are_not_problems() -> None:
    compiled = _compile(
        {"name": "validate"},
        {"name": "check-stock", "when": "has(steps.validate.output)"},
        output='{"v": steps.validate.output, "s": steps["check-stock"].phase}',
    )
    assert compiled.problems == ()


def test_names_in_strings_in_comments_or_bound_by_a_macro_are_not_step_references() -> None:
    compiled = _compile(
        *SHOP,
        {
            "name": "ship",
            "input": '["steps.nosuch", input.items.map(steps, steps.nosuch)] // steps.gone',
            "when": "has(steps[input.which].output)",
        },
    )
    assert compiled.problems == ()


def test_an_expression_naming_a_missing_step_is_still_compiled() -> None:
    compiled = _compile(*SHOP, {"name": "ship", "when": "steps.nosuch.phase == 'Succeeded'"})
    assert len(compiled.problems) == 1
    assert "ship" in compiled.conditions


@pytest.mark.parametrize(
    ("when", "shown"),
    [('"yes"', "'yes'"), ("1", "1"), ("null", "null"), ("[true]", "[true]")],
)
def test_a_when_that_reads_no_variable_is_evaluated_once_and_must_be_a_bool(
    when: str, shown: str
) -> None:
    (problem,) = _compile({"name": "a", "when": when}).problems
    assert problem.field == "spec.steps[0].when"
    assert problem.message == f"a condition must be true or false; this one is always {shown}"
    assert (problem.line, problem.column) == (None, None)


def test_a_when_that_reads_no_variable_and_always_fails_is_a_problem() -> None:
    (problem,) = _compile({"name": "a", "when": "1 / 0 == 1"}).problems
    assert problem.message.startswith("a condition must be true or false; this one always fails")


@pytest.mark.parametrize("when", ["true", "false", "1 < 2", "[1, 2].exists(x, x > 1)"])
def test_a_when_that_reads_no_variable_and_is_a_bool_is_fine(when: str) -> None:
    assert _compile({"name": "a", "when": when}).problems == ()


@pytest.mark.parametrize(
    ("when", "what", "column"),
    [
        ("input.amount * 2", "an arithmetic expression (*)", 14),
        ("-input.amount", "a negation (-)", 1),
        ("[input.ok]", "a list", 1),
        ('{"ok": input.ok}', "a map", 1),
        ("size(steps.validate.output.items)", "a call of size()", 1),
        ("input.name.lowerAscii()", "a call of lowerAscii()", 12),
    ],
)
def test_a_when_whose_outermost_operation_gives_no_bool_is_a_problem_pointing_at_it(
    when: str, what: str, column: int
) -> None:
    (problem,) = _compile(*SHOP, {"name": "a", "when": when}).problems
    assert problem.field == "spec.steps[2].when"
    assert problem.message == f"a condition must be true or false; this one is {what}"
    assert (problem.line, problem.column) == (1, column)


@pytest.mark.parametrize(
    "when",
    [
        "input.flag",
        "steps.validate.output.approved",
        "has(steps.validate.output) && input.amount * 2 > 10",
        "input.vip ? true : input.amount > 10",
        "min(input.flags)",
    ],
)
def test_a_when_that_may_be_a_bool_is_left_to_the_run(when: str) -> None:
    assert _compile(*SHOP, {"name": "a", "when": when}).problems == ()


def test_the_functions_said_to_give_no_bool_are_functions_or_macros_that_exist() -> None:
    assert (NON_BOOL_FUNCTIONS - FUNCTIONS).issubset({"map", "filter"})
    assert {"bool", "min", "max", "contains", "matches", "dyn"}.isdisjoint(NON_BOOL_FUNCTIONS)


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
    # The output reads every step: the settlement, after the order, has not run either.
    pending = build_activation(
        run_input=FINANCE_RUN["input"],
        phases={"validation": "Succeeded", "order": "Pending", "settlement": "Pending"},
        outputs={"validation": FINANCE_RUN["steps"]["validation"]["output"]},
    )
    assert compiled.evaluate_output(pending, default=None) == {
        "approved": True, "order": None, "settlement": None,
    }  # fmt: skip
