"""The CEL expressions of a workflow: compiled once per Workflow generation, evaluated per run.

No kopf and no I/O here. Expressions (`input`, `when` of each step, the workflow's `output`) see
two variables: `input`, the run input, and `steps`, a map from step name to `{phase, output}`
where `output` is present only once the step succeeded (so `has(steps.order.output)` tells
whether it ran). Besides CEL's standard functions, the string and list helpers Kubernetes' CEL
also offers are available (`lowerAscii`, `split`, `join`, `min`, `max`, `sum`, …).

The library is `common-expression-language` (Rust-backed): it passes the CEL conformance cases
that matter here where `cel-python` fails some, and compiles and evaluates 8 to 10 times faster; see
bench/cel/RESULTS.md. It parses but does not type-check and offers no syntax tree (a program
tells only the names it uses), so compilation here adds checks of its own, and mistakes surface
when a Workflow is applied, not in the middle of a run:

- a function or a variable that does not exist;
- a step that does not exist, named as `steps.<name>` or `steps["<name>"]` (a key computed at run
  time, `steps[input.which]`, is not checked);
- a `when` that cannot be true or false: one that reads no variable is evaluated once, and must
  give a bool; one that reads some must not have, as its outermost operation, one that never
  gives a bool (arithmetic, a unary minus, a list or map literal, a call of `size`, `string`,
  `split`, …). A `when` whose value depends on the data (`input.flag`, `steps.a.output.n`, a
  ternary) is still checked only when it runs.

The two last checks read the source text (referencing.py says what they do and do not catch);
each compiled expression is kept even when they find a problem, since a problem alone already
stops the workflow from running.

Errors, all `ValueError`s:

    ExpressionError
    ├── ExpressionCompileError      expressions that do not compile; `.problems` lists each one
    │                               as an api `ExpressionProblem` (field, step, position, message)
    └── ExpressionEvaluationError   an expression failed on a run's data, or returned a value
                                    that is not JSON (or, for `when`, not a bool)
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from stepline.api import ExpressionProblem, WorkflowSpec, compute_waits
from stepline.api.celbinding import EXTENSIONS, cel
from stepline.engine import referencing

VARIABLES = frozenset({"input", "steps"})
# What a forEach step's input expression sees besides: the element and its position.
ELEMENT_VARIABLES = frozenset({"item", "index"})
# What a compensation's expressions see: the run input, and the step undone ({output, input}),
# and, for a forEach step's element, its index.
COMPENSATION_VARIABLES = frozenset({"input", "step"})
# CEL's type names are identifiers too (`type(x) == int`).
_TYPE_NAMES = frozenset(
    {"int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type"}
)
_NATIVE_FUNCTIONS = frozenset(
    {
        "size", "contains", "startsWith", "endsWith", "matches", "int", "uint", "double",
        "string", "bytes", "dyn", "type", "timestamp", "duration", "getFullYear", "getMonth",
        "getDate", "getDayOfMonth", "getDayOfWeek", "getDayOfYear", "getHours", "getMinutes",
        "getSeconds", "getMilliseconds",
    }
)  # fmt: skip
# Kubernetes' CEL has these too; namespaced ones (`strings.quote`) need CEL namespaces, left out.
EXTRA_FUNCTIONS: Mapping[str, Callable[..., Any]] = {
    name: function
    for library in ("core", "strings")
    for name, function in EXTENSIONS[library].items()
    if "." not in name
}
FUNCTIONS = _NATIVE_FUNCTIONS | EXTRA_FUNCTIONS.keys()
_POSITION = re.compile(r"<input>:(\d+):(\d+): (.*)")
_NOT_A_BOOL = "a condition must be true or false; this one "
_MESSAGE_LENGTH = 2048  # ExpressionProblem.message's limit
_VARIABLE_ORDER = ("input", "steps", "step", "item", "index")


class ExpressionError(ValueError):
    """An expression of a workflow is wrong."""


class ExpressionCompileError(ExpressionError):
    """Expressions that do not compile; each problem names its field, step and position."""

    def __init__(self, problems: tuple[ExpressionProblem, ...]) -> None:
        self.problems = problems
        super().__init__("; ".join(problem.describe() for problem in problems))


class ExpressionEvaluationError(ExpressionError):
    """An expression failed on a run's data. `blames_input`: the expression reads the run input
    and nothing else, so the input, not a step, lacks what it needs."""

    def __init__(
        self,
        *,
        field: str,
        step: str | None,
        expression: str,
        message: str,
        blames_input: bool = False,
    ) -> None:
        self.field = field
        self.step = step
        self.expression = expression
        self.message = message
        self.blames_input = blames_input
        in_step = f" (step {step!r})" if step else ""
        super().__init__(f"{field}{in_step}: {message}: `{expression}`")


@dataclass(frozen=True)
class CompiledExpression:
    """One expression, compiled, with where it came from."""

    field: str
    step: str | None
    source: str
    program: cel.Program = dataclasses.field(repr=False, compare=False)
    # The run's variables it reads (`input`, `steps`).
    reads: frozenset[str] = frozenset(VARIABLES)

    def evaluate(self, activation: Mapping[str, Any]) -> Any:
        """The value as plain JSON (dict, list, str, int, float, bool, None)."""
        context = cel.Context(variables=dict(activation), functions=dict(EXTRA_FUNCTIONS))
        try:
            value = self.program.execute(context)
        except Exception as exc:  # the library raises KeyError, TypeError, RuntimeError, …
            raise self._failure(_describe_runtime_error(exc)) from exc
        try:
            return to_json(value)
        except TypeError as exc:
            raise self._failure(str(exc)) from exc

    def evaluate_condition(self, activation: Mapping[str, Any]) -> bool:
        value = self.evaluate(activation)
        if not isinstance(value, bool):
            raise self._failure(f"a condition must be true or false, not {value!r}")
        return value

    def _failure(self, message: str) -> ExpressionEvaluationError:
        return ExpressionEvaluationError(
            field=self.field, step=self.step, expression=self.source, message=message,
            blames_input=self.reads == {"input"},
        )  # fmt: skip


@dataclass(frozen=True)
class CompiledExpressions:
    """Every expression of a workflow that compiled, by step name, and the problems of the rest.

    A Workflow is usable only when `problems` is empty; `raise_for_problems()` says so loudly.
    """

    inputs: Mapping[str, CompiledExpression]
    conditions: Mapping[str, CompiledExpression]
    output: CompiledExpression | None
    problems: tuple[ExpressionProblem, ...] = ()
    # forEach steps' `items`, by step name.
    items: Mapping[str, CompiledExpression] = dataclasses.field(default_factory=dict)
    # Compensations' `when` and `input`, by the name of the step they undo.
    compensation_conditions: Mapping[str, CompiledExpression] = dataclasses.field(
        default_factory=dict
    )
    compensation_inputs: Mapping[str, CompiledExpression] = dataclasses.field(default_factory=dict)
    # Approval steps' `message`, by step name.
    approval_messages: Mapping[str, CompiledExpression] = dataclasses.field(default_factory=dict)

    def raise_for_problems(self) -> None:
        if self.problems:
            raise ExpressionCompileError(self.problems)

    def evaluate_input(self, step: str, activation: Mapping[str, Any], *, default: Any) -> Any:
        """What the step is sent: its `input` expression's value, else `default`."""
        expression = self.inputs.get(step)
        return default if expression is None else expression.evaluate(activation)

    def evaluate_items(self, step: str, activation: Mapping[str, Any]) -> Any:
        """The value of a forEach step's `items` (the caller checks it is a list)."""
        return self.items[step].evaluate(activation)

    def should_run(self, step: str, activation: Mapping[str, Any]) -> bool:
        """The step's `when`, true when it has none."""
        expression = self.conditions.get(step)
        return True if expression is None else expression.evaluate_condition(activation)

    def evaluate_output(self, activation: Mapping[str, Any], *, default: Any) -> Any:
        """The run's output: the workflow's `output` expression's value, else `default`."""
        return default if self.output is None else self.output.evaluate(activation)


def build_activation(
    *, run_input: Any, phases: Mapping[str, str], outputs: Mapping[str, Any]
) -> dict[str, Any]:
    """The variables of an expression: `outputs` holds the steps that produced one."""
    steps = {
        name: {"phase": phase, "output": outputs[name]} if name in outputs else {"phase": phase}
        for name, phase in phases.items()
    }
    return {"input": run_input, "steps": steps}


def compile_workflow_expressions(spec: WorkflowSpec) -> CompiledExpressions:
    """Compiles each expression of `spec` once; problems are collected, not raised. An
    expression that compiled but names a missing step, or a `when` that cannot be a bool, is
    kept and has its problem too."""
    compiled: dict[str, dict[str | None, CompiledExpression]] = {
        "input": {},
        "when": {},
        "items": {},
        "compensation.when": {},
        "compensation.input": {},
        "approval.message": {},
        "output": {},
    }
    element_steps = {step.name for step in spec.steps if step.for_each is not None}
    problems: list[ExpressionProblem] = []
    names = [step.name for step in spec.steps]
    waits_for = compute_waits(spec)
    for role, where, step, source in _expressions_of(spec):
        extra = ELEMENT_VARIABLES if role == "input" and step in element_steps else frozenset()
        variables = VARIABLES
        if role.startswith("compensation"):
            variables = COMPENSATION_VARIABLES
            extra = frozenset({"index"}) if step in element_steps else frozenset()
        try:
            expression = compile_expression(
                source, field=where, step=step, extra_variables=extra, variables=variables
            )
        except ExpressionCompileError as exc:
            problems.extend(exc.problems)
            continue
        compiled[role][step] = expression
        is_condition = role in {"when", "compensation.when"}
        problems.extend(_check_compiled(expression, is_condition=is_condition, steps=names))
        if step is not None:
            unseen = referencing.find_unseen_steps(
                source, step, visible=waits_for[step], steps=names
            )
            problems.extend(_finding_problem(expression, finding) for finding in unseen)
    return CompiledExpressions(
        inputs={name: e for name, e in compiled["input"].items() if name is not None},
        conditions={name: e for name, e in compiled["when"].items() if name is not None},
        output=compiled["output"].get(None),
        problems=tuple(problems),
        items={name: e for name, e in compiled["items"].items() if name is not None},
        compensation_conditions={
            name: e for name, e in compiled["compensation.when"].items() if name is not None
        },
        compensation_inputs={
            name: e for name, e in compiled["compensation.input"].items() if name is not None
        },
        approval_messages={
            name: e for name, e in compiled["approval.message"].items() if name is not None
        },
    )


def compile_expression(
    source: str,
    *,
    field: str,
    step: str | None = None,
    extra_variables: frozenset[str] = frozenset(),
    variables: frozenset[str] = VARIABLES,
) -> CompiledExpression:
    """One expression, compiled and checked for unknown functions and variables (`variables`:
    `input` and `steps` unless told, and `extra_variables`)."""
    try:
        program = cel.compile(source)
    except ValueError as exc:
        raise ExpressionCompileError((_syntax_problem(source, field, step, str(exc)),)) from exc
    problem = _unknown_name_problem(source, field, step, program, variables | extra_variables)
    if problem is not None:
        raise ExpressionCompileError((problem,))
    reads = frozenset(program.variables()) & (variables | extra_variables)
    return CompiledExpression(field=field, step=step, source=source, program=program, reads=reads)


def to_json(value: Any) -> Any:
    """A CEL result as plain JSON; timestamps become RFC 3339 strings, durations `1.5s`,
    bytes base64."""
    if isinstance(value, float) and not math.isfinite(value):
        raise TypeError(f"{value} is not a JSON number")
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {_json_key(key): to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    for kind, convert in _CONVERSIONS:
        if isinstance(value, kind):
            return convert(value)
    raise TypeError(f"a {type(value).__name__} is not a JSON value")


def _duration_text(value: timedelta) -> str:
    seconds = value.total_seconds()
    return f"{int(seconds)}s" if seconds.is_integer() else f"{seconds!r}s"


def _optional_value(value: cel.OptionalValue) -> Any:
    return to_json(value.value()) if value.has_value() else None


_CONVERSIONS: tuple[tuple[type[Any], Callable[[Any], Any]], ...] = (
    (datetime, lambda value: value.isoformat().replace("+00:00", "Z")),
    (timedelta, _duration_text),
    (bytes, lambda value: base64.b64encode(value).decode()),
    (cel.OptionalValue, _optional_value),
)


def _json_key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bool | int):
        return str(key).lower() if isinstance(key, bool) else str(key)
    raise TypeError(f"a map key of type {type(key).__name__} is not a JSON key")


def _expressions_of(spec: WorkflowSpec) -> Iterator[tuple[str, str, str | None, str]]:
    """(role, field path, step name, source) of every expression, in document order."""
    for index, step in enumerate(spec.steps):
        if step.input is not None:
            yield "input", f"spec.steps[{index}].input", step.name, step.input
        if step.when is not None:
            yield "when", f"spec.steps[{index}].when", step.name, step.when
        if step.for_each is not None:
            yield "items", f"spec.steps[{index}].forEach.items", step.name, step.for_each.items
        if step.approval is not None and step.approval.message is not None:
            where = f"spec.steps[{index}].approval.message"
            yield "approval.message", where, step.name, step.approval.message
        undo, where = step.compensation, f"spec.steps[{index}].compensation"
        if undo is not None and undo.when is not None:
            yield "compensation.when", f"{where}.when", step.name, undo.when
        if undo is not None and undo.input is not None:
            yield "compensation.input", f"{where}.input", step.name, undo.input
    if spec.output is not None:
        yield "output", "spec.output", None, spec.output


def _check_compiled(
    expression: CompiledExpression, *, is_condition: bool, steps: Sequence[str]
) -> list[ExpressionProblem]:
    """The problems the compiler cannot see: steps that do not exist, a `when` that is no bool."""
    findings = referencing.find_unknown_steps(expression.source, steps)
    if is_condition:
        finding = _condition_finding(expression)
        findings += [] if finding is None else [finding]
    return [_finding_problem(expression, finding) for finding in findings]


def _condition_finding(expression: CompiledExpression) -> referencing.Finding | None:
    """Why a `when` can never be true or false: by its one value when it reads no variable,
    else by the shape of its text."""
    if not expression.reads:
        return _constant_condition_finding(expression)
    shape = referencing.describe_non_bool(expression.source)
    if shape is None:
        return None
    return referencing.Finding(shape.offset, f"{_NOT_A_BOOL}is {shape.message}")


def _constant_condition_finding(expression: CompiledExpression) -> referencing.Finding | None:
    """Why a `when` that reads no variable, and so has the same value on every run, can never
    be true or false, judged by that value."""
    try:
        value = expression.evaluate({})
    except ExpressionEvaluationError as exc:
        return referencing.Finding(None, f"{_NOT_A_BOOL}always fails: {exc.message}")
    if isinstance(value, bool):
        return None
    shown = repr(value) if isinstance(value, str) else json.dumps(value)
    return referencing.Finding(None, f"{_NOT_A_BOOL}is always {shown}")


def _finding_problem(
    expression: CompiledExpression, finding: referencing.Finding
) -> ExpressionProblem:
    source = expression.source
    where = {} if finding.offset is None else referencing.position_of(source, finding.offset)
    return ExpressionProblem(
        field=expression.field, step=expression.step, expression=source,
        message=finding.message[:_MESSAGE_LENGTH], **where,
    )  # fmt: skip


def _syntax_problem(source: str, field: str, step: str | None, error: str) -> ExpressionProblem:
    found = _POSITION.search(error)
    if found is None:
        return ExpressionProblem(
            field=field, step=step, expression=source, message=error[:_MESSAGE_LENGTH]
        )
    return ExpressionProblem(
        field=field,
        step=step,
        expression=source,
        line=int(found[1]),
        column=int(found[2]),
        message=found[3][:_MESSAGE_LENGTH],
    )


def _unknown_name_problem(
    source: str, field: str, step: str | None, program: cel.Program, variables: frozenset[str]
) -> ExpressionProblem | None:
    code = referencing.blank_strings(source)  # names inside strings don't count
    for name in program.functions():
        if name[0].isalpha() and name not in FUNCTIONS:
            where = _locate(code, rf"\b{re.escape(name)}\s*\(")
            message = f"undeclared function {name!r}"
            return ExpressionProblem(
                field=field, step=step, expression=source, message=message, **where
            )
    bound = referencing.bound_names(code)
    for name in program.variables():
        if name not in variables | _TYPE_NAMES | bound:
            where = _locate(code, rf"(?<![.\w]){re.escape(name)}\b")
            names = sorted(variables, key=_VARIABLE_ORDER.index)
            seen = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
            message = f"undeclared reference to {name!r} (expressions see {seen})"
            return ExpressionProblem(
                field=field, step=step, expression=source, message=message, **where
            )
    return None


def _locate(code: str, pattern: str) -> dict[str, int]:
    """Line and column (from 1) of the first match, as ExpressionProblem fields."""
    found = re.search(pattern, code)
    return {} if found is None else referencing.position_of(code, found.start())


def _describe_runtime_error(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"no such key: {exc.args[0]!r}" if exc.args else "no such key"
    return str(exc) or type(exc).__name__
