"""Reading a manufacturing request field by field. Pure: no I/O.

Each `require_*` returns the field's value or raises `InvalidFieldError`, which names the field
by its path in the request (`devices[2].readings.temperatureC`) and says what is wrong with it.
A service catches it once and answers 400 with `InvalidFieldError.as_answer()`:
`{"error": "orders[1].quantity must be a positive whole number", "field": "orders[1].quantity",
"reason": "must be a positive whole number"}`. Stepline never retries a 400, and the run's
error shows the body, so the field and the reason reach whoever started the run.

`number_between` does the same for a service's command-line options.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")


class InvalidFieldError(ValueError):
    """A request field that is missing or malformed."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field} {reason}")
        self.field = field
        self.reason = reason

    def as_answer(self) -> dict[str, str]:
        return {"error": str(self), "field": self.field, "reason": self.reason}


def require_object(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidFieldError(field, "is required (an object)")
    return value


def require_text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidFieldError(field, "is required (a non-empty string)")
    return value


def require_number(value: Any, field: str, *, minimum: float | None = None) -> float:
    """A finite JSON number (Python's json module also reads NaN and Infinity; they are refused)."""
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if not is_number or not math.isfinite(value):
        raise InvalidFieldError(field, "must be a number")
    if minimum is not None and value < minimum:
        raise InvalidFieldError(field, f"must be at least {minimum:g}")
    return float(value)


def require_positive_number(value: Any, field: str) -> float:
    number = require_number(value, field)
    if number <= 0:
        raise InvalidFieldError(field, "must be a positive number")
    return number


def require_positive_whole(value: Any, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InvalidFieldError(field, "must be a positive whole number")
    return value


def require_items(value: Any, field: str, parse: Callable[[dict[str, Any], str], T]) -> list[T]:
    """A non-empty list of objects, each parsed by `parse(item, "field[i]")`."""
    if not isinstance(value, list) or not value:
        raise InvalidFieldError(field, "must be a non-empty list")
    return [
        parse(require_object(item, f"{field}[{i}]"), f"{field}[{i}]")
        for i, item in enumerate(value)
    ]


def require_distinct(keys: Iterable[str], field: str, name: str) -> None:
    """Refuses the second item whose `name` repeats an earlier one's: `devices[3].id`."""
    seen: set[str] = set()
    for index, key in enumerate(keys):
        if key in seen:
            raise InvalidFieldError(f"{field}[{index}].{name}", f"repeats {key!r}")
        seen.add(key)


def number_between(low: float, high: float) -> Callable[[str], float]:
    """An argparse `type`: a number more than `low` and at most `high`."""

    def parse(text: str) -> float:
        number = float(text)
        if not low < number <= high:  # NaN fails both comparisons, so it is refused too
            raise argparse.ArgumentTypeError(f"must be more than {low:g} and at most {high:g}")
        return number

    return parse
