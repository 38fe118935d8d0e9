"""JSON on the invoke path: the run input, each step's input and output, the answer.

Pure. orjson (Rust) does the work: on these payloads it encodes 20-30x and decodes 3-6x faster
than the standard library (bench/overhead/RESULTS.md, section 8). The standard library takes
over wherever the two would differ, so that what is accepted and what is sent stay as they were:

- `decode_json` falls back to `json.loads` when orjson refuses the bytes (NaN and Infinity,
  numbers beyond a double, escaped lone surrogates, nesting deeper than 1,024): the standard
  library then accepts them or raises its own `ValueError`, as before. It also leaves to it any
  text with a run of 19 digits, where orjson would turn an integer beyond 64 bits into a float
  instead of keeping it exact. JSON is UTF-8 (RFC 8259): other bytes are not JSON, as step
  answers were not before; an invoke body in UTF-16 or with a byte-order mark is now refused.
- `encode_json` writes compact UTF-8 (`{"a":1}`); it falls back to the standard library for
  what orjson cannot write (integers beyond 64 bits) or refuses, which then writes or raises
  as before. One difference remains: a NaN or Infinity, which JSON has no literal for and which
  only a lenient step's answer can bring in, is written as `null` instead of `NaN`.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

_LONG_DIGITS = re.compile(rb"\d{19}")  # 19 digits: past -2**63 and 2**64, orjson's exact ints
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_OPTIONS = orjson.OPT_NON_STR_KEYS  # int and bool keys written as strings, as json does


def decode_json(data: bytes) -> Any:
    """The value of JSON `data`; `ValueError` if it is not JSON."""
    if _LONG_DIGITS.search(data) is None:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data.decode())


def encode_json(value: Any) -> bytes:
    """`value` as compact UTF-8 JSON; `TypeError` (or `ValueError`) if it cannot be written."""
    try:
        return orjson.dumps(value, option=_OPTIONS)
    except TypeError:
        return _ENCODER.encode(value).encode()
