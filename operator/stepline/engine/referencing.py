"""What an expression's text gives away without a CEL parser: the steps it names and, for a
`when`, whether its outermost operation can be a bool at all.

Pure text functions: no CEL, no I/O. They exist because the `cel` binding offers no syntax tree
and no type checker — a compiled `Program` tells only the names of the variables and functions
it uses (`variables()`, `functions()`, `references()`) — so these checks scan the source, with
string literals and `//` comments blanked out (`blank_strings`) so that nothing inside them
counts. Each check reports a `Finding` (an offset in the source and what it found); expressions.py
turns findings into problems. Both checks err on the side of silence: what they cannot tell for
certain from the text, they let through to run time.

Step references (`find_unknown_steps`). `steps.<name>` and `steps["<name>"]` (either quote, raw or
not) must name a step of the workflow. Not checked: a key computed at run time
(`steps[input.which]`), a literal key with escapes or of bytes, `x.steps` (a field, not the
variable), and any reference in an expression where a macro binds its own variable called
`steps` (`input.all(steps, …)`): telling the two apart would need scopes.

Conditions (`describe_non_bool`). A `when` is certainly not a bool when its outermost operation
is, outside brackets, strings and comments:
    arithmetic (`+ - * / %`) with no `||`, `&&`, comparison, `in` or `?:` beside it;
    a unary minus; a list `[…]` or a map `{…}` literal;
    a call, last in its chain, of a function that never returns a bool (`size`, `string`,
    `split`, `map`, `filter`, … see `NON_BOOL_FUNCTIONS`); parentheses are looked through.
Not flagged, since they can be bools: variables, fields, indexes, `has()`, `!`, comparisons,
`&&`, `||`, ternaries (even of two non-bool branches), `all`/`exists`/`exists_one`,
`contains`/`startsWith`/`endsWith`/`matches`, `bool()`, `dyn()`, and `min`/`max` (which return
a bool when given bools). Scalar literals are left to the caller, who evaluates an expression
that reads no variable once.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Sequence
from typing import NamedTuple

# Functions whose result is never a bool: the conversions, size, the date parts, sum, the string
# helpers and the `map`/`filter` macros (lists). `min`/`max` return a bool given bools; not here.
NON_BOOL_FUNCTIONS = frozenset(
    {
        "size", "int", "uint", "double", "string", "bytes", "type", "timestamp", "duration",
        "getFullYear", "getMonth", "getDate", "getDayOfMonth", "getDayOfWeek", "getDayOfYear",
        "getHours", "getMinutes", "getSeconds", "getMilliseconds", "sum", "charAt", "indexOf",
        "lastIndexOf", "substring", "replace", "split", "join", "lowerAscii", "upperAscii",
        "trim", "reverse", "map", "filter",
    }
)  # fmt: skip
_STRING = r"""[rRbB]*('''.*?'''|\"\"\".*?\"\"\"|'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*")"""
_LITERAL = re.compile(_STRING, re.DOTALL)
_LITERAL_OR_COMMENT = re.compile(rf"{_STRING}|//[^\n]*", re.DOTALL)
_BOUND = re.compile(r"\b(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_]\w*)\s*,")
_STEP_REFERENCE = re.compile(r"\bsteps\s*(?:\.\s*(?P<name>[A-Za-z_]\w*)|\[\s*)")
_CLOSING_BRACKET = re.compile(r"\s*\]")
# What makes the outermost operation a bool (or, for `?:`, possibly one).
_BOOLEAN_OPERATOR = re.compile(r"\|\||&&|[=!<>]=|[<>?]|\bin\b")
# `+ * / %`, and a `-` after an operand; the sign of an exponent (`1e-5`) is not an operator.
_ARITHMETIC = re.compile(r"""[*/%]|(?<![0-9][eE])\+|(?<=[\w)\]}"'])(?<![0-9][eE])\s*-""")
_LAST_CALL = re.compile(r"([A-Za-z_]\w*)\s*\(\s*\)\s*$")
_PAIRS = {"(": ")", "[": "]", "{": "}"}
_SHOWN_STEPS = 20  # a workflow may have hundreds; the message lists this many


class Finding(NamedTuple):
    """What a check found, and where: an offset in the source (None: the whole expression)."""

    offset: int | None
    message: str


def blank_strings(source: str) -> str:
    """`source` with each string or bytes literal replaced by `"` , blanks and `"`, and each `//`
    comment by blanks: same length, so offsets still point into `source`."""

    def blank(found: re.Match[str]) -> str:
        text = found[0]
        return " " * len(text) if text.startswith("//") else f'"{" " * (len(text) - 2)}"'

    return _LITERAL_OR_COMMENT.sub(blank, source)


def bound_names(code: str) -> set[str]:
    """The variables that macros bind in `code` (`x` in `items.all(x, x > 0)`)."""
    return set(_BOUND.findall(code))


def position_of(text: str, offset: int) -> dict[str, int]:
    """Line and column (from 1) of `offset` in `text`, as ExpressionProblem fields."""
    before = text[:offset]
    return {"line": before.count("\n") + 1, "column": offset - (before.rfind("\n") + 1) + 1}


def find_unknown_steps(source: str, steps: Sequence[str]) -> list[Finding]:
    """Each name of a step that `steps` lacks, at its first `steps.<name>` or `steps["name"]`."""
    code = blank_strings(source)
    if "steps" in bound_names(code):
        return []
    findings: dict[str, Finding] = {}
    for offset, name in _step_references(source, code):
        if name not in steps and name not in findings:
            findings[name] = Finding(offset, f"no step {name!r} in this workflow ({_list(steps)})")
    return list(findings.values())


def find_unseen_steps(
    source: str, step: str, *, visible: Collection[str], steps: Collection[str]
) -> list[Finding]:
    """Each step of the workflow that an expression of `step` reads but `step` does not wait
    for (`visible`: the steps it waits for, directly or through others; `steps`: all of the
    workflow's): with steps running side by side, such a read would race that step. Names of no
    step are `find_unknown_steps`' to report."""
    code = blank_strings(source)
    if "steps" in bound_names(code):
        return []
    findings: dict[str, Finding] = {}
    for offset, name in _step_references(source, code):
        if name in steps and name not in visible and name != step and name not in findings:
            message = f"steps.{name} is not among the steps {step!r} waits for; add it to dependsOn"
            findings[name] = Finding(offset, message)
    return list(findings.values())


def _step_references(source: str, code: str) -> Iterator[tuple[int, str]]:
    """(offset, step name) of each static reference to the `steps` variable."""
    for reference in _STEP_REFERENCE.finditer(code):
        if code[: reference.start()].rstrip().endswith("."):
            continue  # `x.steps`: a field of something else
        name = reference["name"] or _literal_key(source, code, reference.end())
        if name is not None:
            yield reference.start(), name


def _literal_key(source: str, code: str, offset: int) -> str | None:
    """The text of the string literal at `offset` that closes a `[…]`; None when there is none,
    or it is bytes or has escapes (the key is then left unchecked)."""
    literal = _LITERAL.match(source, offset)
    if literal is None or _CLOSING_BRACKET.match(code, literal.end()) is None:
        return None
    prefix = literal[0][: literal.start(1) - literal.start()].lower()
    quoted = literal[1]
    quote = 3 if quoted[:3] in ('"""', "'''") else 1
    text = quoted[quote:-quote]
    if "b" in prefix or ("\\" in text and "r" not in prefix):
        return None
    return text


def _list(steps: Sequence[str]) -> str:
    if not steps:
        return "it has no steps"
    shown = ", ".join(steps[:_SHOWN_STEPS])
    more = f" and {len(steps) - _SHOWN_STEPS} more" if len(steps) > _SHOWN_STEPS else ""
    return f"steps: {shown}{more}"


def describe_non_bool(source: str) -> Finding | None:
    """What a `when`'s outermost operation is, when it certainly yields no bool; None when it
    may yield one."""
    return _outermost(blank_strings(source))


def _outermost(code: str) -> Finding | None:
    top = _top_level(code)
    if _BOOLEAN_OPERATOR.search(top):
        return None
    operator = _ARITHMETIC.search(top)
    if operator is not None:
        offset = operator.end() - 1
        return Finding(offset, f"an arithmetic expression ({top[offset]})")
    start = len(top) - len(top.lstrip())
    if top.startswith("-", start):
        return Finding(start, "a negation (-)")
    return _outermost_primary(code, top, start)


def _outermost_primary(code: str, top: str, start: int) -> Finding | None:
    """A bracketed whole (looked into for `(…)`), or a call last in its chain."""
    end = len(top.rstrip())
    opening = top[start : start + 1]
    if opening in _PAIRS and top.find(_PAIRS[opening], start) == end - 1:
        if opening == "(":
            return _outermost(f"{code[:start]} {code[start + 1 : end - 1]} {code[end:]}")
        return Finding(start, "a list" if opening == "[" else "a map")
    call = _LAST_CALL.search(top[:end])
    if call is not None and call[1] in NON_BOOL_FUNCTIONS:
        return Finding(call.start(1), f"a call of {call[1]}()")
    return None


def _top_level(code: str) -> str:
    """`code` with what lies inside brackets blanked; the outermost brackets stay."""
    depth = 0
    kept = []
    for char in code:
        if char in ")]}":
            depth -= 1
        kept.append(char if depth == 0 else " ")
        if char in "([{":
            depth += 1
    return "".join(kept)
