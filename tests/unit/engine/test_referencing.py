"""Reading an expression's text: the steps it names and whether a `when` can be a bool."""

from __future__ import annotations

import pytest

from stepline.engine.referencing import (
    Finding,
    blank_strings,
    describe_non_bool,
    find_unknown_steps,
    position_of,
)

STEPS = ("validate", "check-stock")


def test_blanking_hides_strings_and_comments_and_keeps_every_offset() -> None:
    source = 'steps["a"] + r\'b\' // steps.c\n+ b"""d"""'
    blanked = blank_strings(source)
    assert blanked == 'steps[" "] + "  " ' + " " * len("// steps.c") + '\n+ "      "'
    assert len(blanked) == len(source)


def test_a_position_counts_lines_and_columns_from_one() -> None:
    assert position_of("ab\ncd", 0) == {"line": 1, "column": 1}
    assert position_of("ab\ncd", 4) == {"line": 2, "column": 2}


@pytest.mark.parametrize(
    ("source", "offset", "name"),
    [
        ("steps.nosuch.output", 0, "nosuch"),
        ("has(steps.nosuch.output)", 4, "nosuch"),
        ('steps["nosuch"].output', 0, "nosuch"),
        ("steps['no-such'].phase", 0, "no-such"),
        ('input.a + steps[ r"nosuch" ].output', 10, "nosuch"),
        ('steps["""nosuch"""].phase', 0, "nosuch"),
        ("input.x ||\n  steps\n  .nosuch.output.ok", 13, "nosuch"),
    ],
)
def test_a_reference_to_a_missing_step_is_found_in_each_static_form(
    source: str, offset: int, name: str
) -> None:
    message = f"no step {name!r} in this workflow (steps: validate, check-stock)"
    assert find_unknown_steps(source, STEPS) == [Finding(offset, message)]


@pytest.mark.parametrize(
    "source",
    [
        "steps.validate.output",
        'steps["check-stock"].phase',
        "steps[input.which].output",
        'steps["no" + "such"].output',
        'steps[b"nosuch"].output',
        r'steps["no\x2dsuch"].output',
        '"steps.nosuch" == input.name',
        "input.ok // steps.nosuch",
        "input.steps.nosuch",
        "input.items.exists(steps, steps.nosuch)",
    ],
)
def test_existing_dynamic_and_lookalike_references_are_left_alone(source: str) -> None:
    assert find_unknown_steps(source, STEPS) == []


def test_each_missing_step_is_reported_once_at_its_first_reference() -> None:
    source = "has(steps.a.output) && steps.a.output.ok && steps.b.ok"
    findings = find_unknown_steps(source, STEPS)
    assert [finding.offset for finding in findings] == [4, source.index("steps.b")]


def test_the_steps_a_message_lists_are_cut_short_in_a_long_workflow() -> None:
    steps = [f"s{index}" for index in range(25)]
    (finding,) = find_unknown_steps("steps.nosuch", steps)
    assert finding.message.endswith("s18, s19 and 5 more)")


@pytest.mark.parametrize(
    ("when", "offset", "what"),
    [
        ("input.a + 1", 8, "an arithmetic expression (+)"),
        ("input.a - input.b", 8, "an arithmetic expression (-)"),
        ("input.a * 2", 8, "an arithmetic expression (*)"),
        ("input.a / 2", 8, "an arithmetic expression (/)"),
        ("input.a % 2", 8, "an arithmetic expression (%)"),
        ('"a" + input.s', 4, "an arithmetic expression (+)"),
        ("1e-5 * input.a", 5, "an arithmetic expression (*)"),
        ("(input.a + 1)", 9, "an arithmetic expression (+)"),
        ("-input.a", 0, "a negation (-)"),
        ("[input.a, input.b]", 0, "a list"),
        ('{"a": input.a}', 0, "a map"),
        ("size(input.items)", 0, "a call of size()"),
        ("input.items.size()", 12, "a call of size()"),
        ("string(input.n)", 0, "a call of string()"),
        ("input.s.split(',')", 8, "a call of split()"),
        ("input.items.map(i, i.ok)", 12, "a call of map()"),
        ("input.items.filter(i, i.ok)", 12, "a call of filter()"),
    ],
)
def test_a_when_whose_outermost_operation_gives_no_bool_is_described(
    when: str, offset: int, what: str
) -> None:
    assert describe_non_bool(when) == Finding(offset, what)


@pytest.mark.parametrize(
    "when",
    [
        "input.flag",
        "steps.validate.output.approved",
        "input.flags[0]",
        'input.flags["a-b"]',
        "has(input.flag)",
        "!input.flag",
        "input.a + 1 > 2",
        "input.a * 2 == input.b",
        "-input.a < 0",
        '"x" in input.tags',
        "input.a || input.b + 1",
        "input.a && input.b",
        "input.vip ? 1 : 2",
        "input.items.all(i, i.ok)",
        "input.items.exists(i, i.ok)",
        "input.items.exists_one(i, i.ok)",
        'input.s.contains("+")',
        'input.s.startsWith("-")',
        'input.s.endsWith("*")',
        'input.s.matches("a+b")',
        "dyn(input.flag)",
        "bool(input.s)",
        "min(input.flags)",
        "max(input.flags)",
        "(input.flag)",
        "[1, 2][0] == input.a",
        "input.flag // true - 1",
    ],
)
def test_a_when_that_may_give_a_bool_is_not_described(when: str) -> None:
    assert describe_non_bool(when) is None


@pytest.mark.parametrize("when", ['"yes"', "1", "2.5", "null", 'b"x"'])
def test_scalar_literals_are_left_to_the_evaluation_of_a_when_that_reads_nothing(
    when: str,
) -> None:
    assert describe_non_bool(when) is None
