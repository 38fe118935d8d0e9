"""A run's input as the user gives it (a file, or `-` for stdin) checked as the WorkflowRun's
`spec.input` must be: JSON text holding an object within the input caps (`api.payloads`).

Pure but for `read_input_text`, which reads the file or stream it is given. Errors are
`UsageError`s naming the source and, for text that is not JSON, the line and column.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

from stepline.api import find_input_problem
from stepline.terminal.errors import UsageError

STDIN = "-"


def read_input_text(source: str | None, *, stdin: TextIO) -> tuple[str, str]:
    """(what the input is called in messages, its text): `source` a path, `-` for `stdin`, or
    None for the empty object."""
    if source is None:
        return "the default input", "{}"
    if source == STDIN:
        return "stdin", stdin.read()
    try:
        return source, Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the input file {source}: {exc}") from exc


def parse_run_input(text: str, *, source: str) -> dict[str, Any]:
    """The JSON object in `text`; `UsageError` saying where it is not JSON, or why it cannot be
    a run's input (not an object, too deep, too large)."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{source} is not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from exc
    except ValueError as exc:  # NaN, Infinity: JSON has no such numbers
        raise UsageError(f"{source} is not JSON: {exc}") from exc
    except RecursionError as exc:
        raise UsageError(f"{source} nests arrays and objects too deep to be an input") from exc
    if not isinstance(value, dict):
        raise UsageError(
            f"{source} holds a JSON {_json_type(value)}; a run's input is a JSON object "
            '(e.g. {"orderId": "o-1"})'
        )
    problem = find_input_problem(value)
    if problem is not None:
        raise UsageError(f"{source}: {problem[1]}")
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    return "null" if value is None else "number"
