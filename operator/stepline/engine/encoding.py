"""The JSON the engine accepts and sends: one place decides, for a client's input (invoke) and
for a step's answer alike.

Pure. orjson (Rust) does the work, several times faster than the standard library on these
payloads (bench/overhead/RESULTS.md, section 8, has the figures).

`decode_json` accepts JSON text (RFC 8259) in UTF-8 that every consumer downstream can carry —
CEL, the WorkflowRun status, the API server, the next step — and refuses, with
`InvalidJsonError` (a `ValueError`) whose message says why:

- bytes that are not UTF-8, a byte-order mark, an empty body, trailing data;
- `NaN`, `Infinity` and numbers beyond a double (`1e999999`): JSON has no such values;
- integers beyond 64 bits (below -2**63 or above 2**64-1), which CEL cannot hold and orjson
  would silently round to a double;
- escaped lone surrogates (`"\\ud800"`): no UTF-8 text can carry them onwards;
- arrays and objects nested more than `MAX_JSON_DEPTH` deep.

Duplicate keys in an object are accepted; the last one wins.

`encode_json` writes compact UTF-8 (`{"a":1}`), int and bool keys as strings. Whatever the
engine decoded, or CEL computed from it, can be written; anything else raises
`InvalidJsonError` too, never another exception type.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from stepline.api import MAX_JSON_DEPTH, measure_depth

__all__ = ["MAX_JSON_DEPTH", "InvalidJsonError", "decode_json", "encode_json"]

_LONG_DIGITS = re.compile(rb"\d{19}")  # 19 digits: past -2**63 and 2**64, orjson's exact ints
_OPTIONS = orjson.OPT_NON_STR_KEYS  # int and bool keys written as strings, as json does
_INT_RANGE = range(-(2**63), 2**64)
# With fewer brackets than this, the depth cannot exceed the limit: no need to measure it.
_BRACKETS_TO_MEASURE = MAX_JSON_DEPTH + 1
_TOO_DEEP = f"arrays and objects nest more than {MAX_JSON_DEPTH} deep"


class InvalidJsonError(ValueError):
    """JSON the engine does not accept or cannot write; the message says why."""


def decode_json(data: bytes) -> Any:
    """The value of the JSON text `data`; `InvalidJsonError` saying why it is refused."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidJsonError(_describe_refusal(data, exc)) from exc
    if data.count(b"[") + data.count(b"{") >= _BRACKETS_TO_MEASURE and (
        measure_depth(value) > MAX_JSON_DEPTH
    ):
        raise InvalidJsonError(_TOO_DEEP)
    if _LONG_DIGITS.search(data) is not None:
        _check_integers(data)
    return value


def encode_json(value: Any) -> bytes:
    """`value` as compact UTF-8 JSON; `InvalidJsonError` if it is not JSON that can be sent."""
    try:
        return orjson.dumps(value, option=_OPTIONS)
    except orjson.JSONEncodeError as exc:
        raise InvalidJsonError(f"cannot be written as JSON: {exc}") from exc


def _describe_refusal(data: bytes, exc: orjson.JSONDecodeError) -> str:
    if not data:
        return "the body is empty"
    message = str(exc)
    if message.startswith("depth limit exceeded"):  # orjson's own limit, far above ours
        return _TOO_DEEP
    near = data[max(exc.pos - 1, 0) : exc.pos + 9]  # orjson's position is past a minus sign
    if b"NaN" in near or b"Infinity" in near:
        return f"NaN and Infinity are not JSON numbers: {message}"
    return message


def _check_integers(data: bytes) -> None:
    """Integers orjson would have read as doubles are refused (the module docstring)."""

    def exact_int(text: str) -> int:
        number = int(text)
        if number not in _INT_RANGE:
            raise InvalidJsonError(f"the integer {text[:40]} is beyond 64 bits")
        return number

    json.loads(data, parse_int=exact_int)
