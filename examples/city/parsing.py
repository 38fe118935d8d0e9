"""The field rules the city services need beyond `manufacturing.parsing`: a name from a fixed
set, a whole number within bounds, a list of names that may be empty, an RFC 3339 time. Pure: no
I/O. Each raises `manufacturing.parsing.InvalidFieldError`, so a service answers every malformed
field the same way: 400 `{"error", "field", "reason"}`.

They are kept here rather than in `manufacturing/parsing.py` only because that module belongs to
another example; both belong in one module the examples share.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from manufacturing.parsing import InvalidFieldError, require_text

# RFC 3339's date-time: a date, a time and a zone; fromisoformat alone also takes a bare date or
# a time without a zone, which would make "how long ago" depend on the server's clock zone.
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
RFC3339_EXAMPLE = "2026-12-07T07:30:00Z"


def require_choice(value: Any, field: str, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise InvalidFieldError(field, f"must be one of {', '.join(choices)}")
    return value


def require_whole(value: Any, field: str, *, minimum: int = 0, maximum: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidFieldError(field, "must be a whole number")
    if value < minimum:
        raise InvalidFieldError(field, f"must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise InvalidFieldError(field, f"must be at most {maximum}")
    return value


def require_names(value: Any, field: str) -> list[str]:
    """A list of non-empty strings, possibly empty (no congested segment, no hotspot)."""
    if not isinstance(value, list):
        raise InvalidFieldError(field, "must be a list of strings")
    return [require_text(item, f"{field}[{i}]") for i, item in enumerate(value)]


def require_time(value: Any, field: str) -> datetime:
    """An RFC 3339 date-time with its zone (`Z` or an offset); lower-case `t` and `z` too."""
    text = value.upper() if isinstance(value, str) else ""
    if RFC3339.fullmatch(text) is None:
        raise InvalidFieldError(field, f"must be an RFC 3339 time such as {RFC3339_EXAMPLE}")
    try:
        return datetime.fromisoformat(text)
    except ValueError as invalid:  # well formed but no such time: 2026-02-30, 25:00
        raise InvalidFieldError(field, "is not a valid date and time") from invalid
