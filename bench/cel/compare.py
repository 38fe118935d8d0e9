"""Compares two CEL libraries for Python on the expressions Stepline evaluates.

Candidates: `common-expression-language` (module `cel`, Rust-backed) and `cel-python`
(module `celpy`, pure Python). Both must be installed in the interpreter that runs this script:

    .venv/bin/pip install cel-python==0.5.0   # the other one is a Stepline dependency
    .venv/bin/python bench/cel/compare.py

Correctness: each case has the value the CEL specification prescribes, or ERROR where the spec
says evaluation fails; a library passes a case when it returns that value (or raises). Parse
errors must report the line and column of the offending token. Speed: compile time and
evaluation time of typical workflow expressions, both libraries in one run, so the ratio holds
even though absolute numbers depend on the machine. Results are recorded in RESULTS.md.
"""

from __future__ import annotations

import platform
import re
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import cel
import celpy

ERROR = object()
Activation = Mapping[str, Any]

RUN = {
    "input": {"user": {"id": "u-1", "name": "Ada"}, "order": {"sku": "X1", "qty": 3}},
    "steps": {
        "validation": {"phase": "Succeeded", "output": {"approved": True, "score": 0.93}},
        "fraud": {"phase": "Skipped"},
    },
}


@dataclass(frozen=True)
class Case:
    name: str
    expression: str
    expected: Any
    activation: Activation


CASES = [
    Case("has() on a present field", "has(steps.validation.output)", True, RUN),
    Case("has() on a skipped step's output", "has(steps.fraud.output)", False, RUN),
    Case(
        "map literal from input and a step",
        '{"user": input.user.id, "ok": steps.validation.output.approved}',
        {"user": "u-1", "ok": True},
        RUN,
    ),
    Case("index with a dashed key", 'steps["validation"].phase == "Succeeded"', True, RUN),
    Case("key in map", '"order" in input', True, RUN),
    Case("missing key is an error", "input.nothing", ERROR, RUN),
    Case(
        "startsWith/endsWith/contains",
        'input.user.name.startsWith("A") && '
        'input.user.name.endsWith("a") && input.user.name.contains("d")',
        True,
        RUN,
    ),
    Case("matches (RE2)", 'input.order.sku.matches("^[A-Z][0-9]+$")', True, RUN),
    Case("size of a unicode string", 'size("héllo")', 5, {}),
    Case("list macros", "[1, 2, 3].filter(x, x > 1).map(x, x * 10)", [20, 30], {}),
    Case("exists_one", "[1, 2, 3].exists_one(x, x == 2)", True, {}),
    Case("ternary", "input.order.qty > 2 ? 'bulk' : 'single'", "bulk", RUN),
    Case("integer division truncates", "7 / 2", 3, {}),
    Case("division by zero is an error", "1 / 0", ERROR, {}),
    Case("int overflow is an error", "9223372036854775807 + 1", ERROR, {}),
    Case("no implicit int/double arithmetic", "1 + 1.5", ERROR, {}),
    Case(
        "no implicit double/int arithmetic on data",
        "input.price + 1",
        ERROR,
        {"input": {"price": 7.5}},
    ),
    Case("heterogeneous numeric equality", "1 == 1.0", True, {}),
    Case("error absorbed by ||", "(1 / 0 == 1) || true", True, {}),
    Case("error absorbed by &&", "false && (1 / 0 == 1)", False, {}),
    Case("null comparison", "input.user.name != null", True, RUN),
    Case("string conversion", "string(input.order.qty) + 'x'", "3x", RUN),
    Case("double conversion", "double(input.order.qty) * 1.5", 4.5, RUN),
    Case(
        "timestamp arithmetic",
        'timestamp("2024-01-01T00:00:00Z") + duration("90s") > timestamp("2024-01-01T00:01:00Z")',
        True,
        {},
    ),
]

# (expression, line, column) where cel-go's parser points; columns are 1-based. A library passes
# when it names the same line and a column at most one away (the offending token or just past it).
PARSE_ERRORS = [
    ("1 +", 1, 4),
    ('{"a": 1,\n "b": input.x +* 2}', 2, 16),
    ("input.order.qty >", 1, 18),
]

BENCH_EXPRESSIONS = [
    '{"user": input.user, "order": input.order, "approved": steps.validation.output.approved}',
    "has(steps.validation.output) && steps.validation.output.score > 0.5",
    "input.order.qty * 2",
]


class Library:
    name = ""

    def compile(self, expression: str) -> Any:
        raise NotImplementedError

    def evaluate(self, program: Any, activation: Activation) -> Any:
        raise NotImplementedError

    def parse_position(self, expression: str) -> tuple[int, int] | None:
        raise NotImplementedError


class RustCel(Library):
    name = "common-expression-language"
    _where = re.compile(r"<input>:(\d+):(\d+):")

    def compile(self, expression: str) -> Any:
        return cel.compile(expression)

    def evaluate(self, program: Any, activation: Activation) -> Any:
        return program.execute(dict(activation))

    def parse_position(self, expression: str) -> tuple[int, int] | None:
        try:
            cel.compile(expression)
        except ValueError as exc:
            found = self._where.search(str(exc))
            return (int(found[1]), int(found[2])) if found else None
        return None


class PyCel(Library):
    name = "cel-python"

    def __init__(self) -> None:
        self.env = celpy.Environment()

    def compile(self, expression: str) -> Any:
        return self.env.program(self.env.compile(expression))

    def evaluate(self, program: Any, activation: Activation) -> Any:
        return program.evaluate(celpy.json_to_cel(dict(activation)))

    def parse_position(self, expression: str) -> tuple[int, int] | None:
        try:
            self.env.compile(expression)
        except celpy.CELParseError as exc:
            # cel-python points at the last token read, 1-based; report what it says.
            return (exc.line, exc.column) if exc.line is not None else None
        return None


def plain(value: Any) -> Any:
    """cel-python returns its own wrapper types; compare as plain JSON values."""
    if isinstance(value, Mapping):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, bool | celpy.celtypes.BoolType):
        return bool(value)
    for kind in (int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return value


def outcome(library: Library, case: Case) -> tuple[bool, str]:
    try:
        got = plain(library.evaluate(library.compile(case.expression), case.activation))
    except Exception as exc:  # any failure is the outcome we grade
        return case.expected is ERROR, f"error: {type(exc).__name__}"
    if case.expected is ERROR:
        return False, f"returned {got!r} instead of an error"
    same = got == case.expected and type(got) is type(case.expected)
    return same, repr(got)


def message_length(library: Library, expression: str) -> int:
    """How long the error message a user would see is, for an unknown function."""
    try:
        library.evaluate(library.compile(expression), RUN)
    except Exception as exc:  # the message is what we measure
        return len(str(exc))
    return 0


def per_call_microseconds(action: Callable[[], object], *, rounds: int = 5) -> float:
    """Median over `rounds` of the mean time per call, calibrated to ~0.2 s per round."""
    calls = 1
    while True:
        started = time.perf_counter()
        for _ in range(calls):
            action()
        if time.perf_counter() - started > 0.2:
            break
        calls *= 2
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            action()
        samples.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(samples)


def measure(library: Library) -> tuple[float, float]:
    compile_us = statistics.mean(
        per_call_microseconds(lambda e=e: library.compile(e)) for e in BENCH_EXPRESSIONS
    )
    programs = [library.compile(e) for e in BENCH_EXPRESSIONS]
    evaluate_us = statistics.mean(
        per_call_microseconds(lambda p=p: library.evaluate(p, RUN)) for p in programs
    )
    return compile_us, evaluate_us


def main() -> int:
    libraries: list[Library] = [RustCel(), PyCel()]
    print(f"Python {platform.python_version()} on {platform.machine()}, one run\n")
    print("| case | " + " | ".join(lib.name for lib in libraries) + " |")
    print("|---|" + "---|" * len(libraries))
    passed = dict.fromkeys((lib.name for lib in libraries), 0)
    for case in CASES:
        cells = []
        for lib in libraries:
            ok, seen = outcome(lib, case)
            passed[lib.name] += ok
            cells.append(("pass" if ok else "FAIL") + f" ({seen})")
        print(f"| {case.name} | " + " | ".join(cells) + " |")
    for expression, line, column in PARSE_ERRORS:
        cells = []
        for lib in libraries:
            where = lib.parse_position(expression)
            ok = where is not None and where[0] == line and abs(where[1] - column) <= 1
            passed[lib.name] += ok
            cells.append(("pass" if ok else "FAIL") + f" ({where})")
        shown = expression.replace("\n", "\\n")
        print(f"| parse error at {line}:{column} in `{shown}` | " + " | ".join(cells) + " |")
    unknown = "input.user.name.lowerAscii()"
    lengths = " | ".join(str(message_length(lib, unknown)) for lib in libraries)
    print(f"| characters in the error for `{unknown}` | {lengths} |")
    total = len(CASES) + len(PARSE_ERRORS)
    print("\n| library | correct | compile µs | evaluate µs |\n|---|---|---|---|")
    timings = {lib.name: measure(lib) for lib in libraries}
    for lib in libraries:
        compile_us, evaluate_us = timings[lib.name]
        print(f"| {lib.name} | {passed[lib.name]}/{total} | {compile_us:.1f} | {evaluate_us:.1f} |")
    rust, py = timings[libraries[0].name], timings[libraries[1].name]
    print(
        f"\ncel-python / common-expression-language: compile x{py[0] / rust[0]:.1f}, "
        f"evaluate x{py[1] / rust[1]:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
