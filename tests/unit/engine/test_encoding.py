"""The JSON the engine accepts from a client or a step, and what it writes: one set of rules,
checked here on examples and on generated JSON and bytes."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stepline.api import MAX_JSON_DEPTH, measure_depth
from stepline.engine.encoding import InvalidJsonError, decode_json, encode_json

INT64 = st.integers(-(2**63), 2**64 - 1)
FINITE = st.floats(allow_nan=False, allow_infinity=False)
# Text that UTF-8 can carry: no surrogate code points.
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
SCALARS = st.none() | st.booleans() | INT64 | FINITE | TEXT


def nested(depth: int, *, kind: str = "array") -> bytes:
    if kind == "array":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


def json_values(max_leaves: int = 30) -> st.SearchStrategy[Any]:
    return st.recursive(
        SCALARS,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4)
        ),
        max_leaves=max_leaves,
    )


def test_a_value_is_written_as_compact_utf8() -> None:
    assert encode_json({"name": "Zoë", "n": [1, 2.5, None, True]}) == (
        '{"name":"Zoë","n":[1,2.5,null,true]}'.encode()
    )


def test_integer_and_boolean_keys_are_written_as_strings_as_the_standard_library_does() -> None:
    assert encode_json({2: "a", True: "b", None: 1}) == b'{"2":"a","true":"b","null":1}'


@pytest.mark.parametrize("value", [{"when": {1, 2}}, {"id": 2**70}, "\ud800"])
def test_what_cannot_be_sent_as_json_raises_invalid_json_error_saying_so(value: Any) -> None:
    with pytest.raises(InvalidJsonError, match="cannot be written as JSON"):
        encode_json(value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b'{"id": 18446744073709551615}', {"id": 2**64 - 1}),
        (b'{"id": -9223372036854775808}', {"id": -(2**63)}),
        (b'{"id": 1234567890123456789.5}', {"id": 1234567890123456789.5}),
        (b'{"id": "12345678901234567890123"}', {"id": "12345678901234567890123"}),
    ],
)
def test_integers_within_64_bits_are_read_exactly(text: bytes, expected: Any) -> None:
    assert decode_json(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (b"", "empty"),
        (b"{not json", "."),
        (b'{"a": 1} trailing', "after document"),
        ('{"a": "\u00e9"}'.encode("latin-1"), "."),
        (b'\xef\xbb\xbf{"a": 1}', "byte order mark"),
        (b'{"a": NaN}', "NaN and Infinity are not JSON numbers"),
        (b'{"a": -Infinity}', "NaN and Infinity are not JSON numbers"),
        (b'{"a": 1e999999}', "infinity"),
        (b'{"id": 18446744073709551616}', "beyond 64 bits"),
        (b'{"id": -9223372036854775809}', "beyond 64 bits"),
        (b'{"s": "\\ud800"}', "surrogate"),
        (b'{"s": "\\udc00x"}', "surrogate"),
    ],
)
def test_what_is_not_json_the_engine_accepts_is_refused_saying_why(text: bytes, why: str) -> None:
    with pytest.raises(InvalidJsonError, match=why):
        decode_json(text)


@pytest.mark.parametrize("kind", ["array", "object"])
def test_nesting_up_to_the_limit_is_read_and_one_more_level_is_refused(kind: str) -> None:
    assert measure_depth(decode_json(nested(MAX_JSON_DEPTH, kind=kind))) == MAX_JSON_DEPTH

    with pytest.raises(InvalidJsonError, match=f"more than {MAX_JSON_DEPTH} deep"):
        decode_json(nested(MAX_JSON_DEPTH + 1, kind=kind))


@pytest.mark.parametrize("depth", [1_000, 1_025, 100_000])
def test_very_deep_nesting_is_refused_without_exhausting_the_stack(depth: int) -> None:
    with pytest.raises(InvalidJsonError):
        decode_json(nested(depth))


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = json.dumps({"s": "[" * 500 + "{" * 500}).encode()

    assert decode_json(text) == {"s": "[" * 500 + "{" * 500}


@settings(max_examples=300, deadline=None)
@given(json_values())
def test_every_value_the_engine_can_hold_survives_a_round_trip(value: Any) -> None:
    assert decode_json(encode_json(value)) == value


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_are_either_accepted_json_or_refused_with_invalid_json_error(data: bytes) -> None:
    try:
        value = decode_json(data)
    except InvalidJsonError:
        return
    assert measure_depth(value) <= MAX_JSON_DEPTH
    assert decode_json(encode_json(value)) == value


def lenient_json() -> st.SearchStrategy[bytes]:
    """What a lenient encoder (Python's json) writes: NaN, Infinity, lone surrogates, big
    integers, deep nesting, all the things a faulty step may answer."""
    odd_scalars = (
        SCALARS
        | st.floats()
        | st.integers(-(2**80), 2**80)
        | st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1)
    )
    values = st.recursive(
        odd_scalars,
        lambda children: (
            st.lists(children, max_size=3) | st.dictionaries(TEXT, children, max_size=3)
        ),
        max_leaves=20,
    )
    wrapped = st.tuples(values, st.integers(0, 2 * MAX_JSON_DEPTH)).map(
        lambda pair: json.dumps([pair[0]]).join(["[" * pair[1], "]" * pair[1]])
    )
    return wrapped.map(str.encode)


@settings(max_examples=500, deadline=None)
@given(lenient_json())
def test_lenient_json_is_either_accepted_exactly_or_refused_with_a_reason(data: bytes) -> None:
    try:
        value = decode_json(data)
    except InvalidJsonError:
        return
    assert value == json.loads(data)  # nothing accepted is changed on the way in
    encode_json(value)  # and all of it can be sent on


def test_a_finite_double_keeps_its_value() -> None:
    assert decode_json(b"[1.5e308, -0.0, 5e-324]") == [1.5e308, -0.0, 5e-324]
    assert math.copysign(1, decode_json(b"-0.0")) == -1
