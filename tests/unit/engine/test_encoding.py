"""JSON on the invoke path: orjson where it gives what the standard library gives, the standard
library where the two would differ."""

from __future__ import annotations

import json
import math

import pytest

from stepline.engine.encoding import decode_json, encode_json


def test_a_value_is_written_as_compact_utf8() -> None:
    assert encode_json({"name": "Zoë", "n": [1, 2.5, None, True]}) == (
        '{"name":"Zoë","n":[1,2.5,null,true]}'.encode()
    )


def test_integer_and_boolean_keys_are_written_as_strings_as_the_standard_library_does() -> None:
    assert encode_json({2: "a", True: "b", None: 1}) == b'{"2":"a","true":"b","null":1}'


def test_an_integer_beyond_64_bits_is_written_exactly() -> None:
    assert encode_json({"id": 2**70}) == b'{"id":1180591620717411303424}'


def test_what_neither_can_write_raises_type_error() -> None:
    with pytest.raises(TypeError):
        encode_json({"when": {1, 2}})


@pytest.mark.parametrize(
    "text",
    [
        b'{"id": 123456789012345678901234567890}',
        b'{"id": -9999999999999999999}',
        b'{"id": 18446744073709551615, "small": -1}',
    ],
)
def test_long_integers_are_read_exactly(text: bytes) -> None:
    assert decode_json(text) == json.loads(text)


def test_what_the_standard_library_accepts_beyond_strict_json_is_still_read() -> None:
    value = decode_json(b'{"a": NaN, "b": 1e400, "c": "\\ud800"}')

    assert math.isnan(value["a"])
    assert value["b"] == math.inf
    assert value["c"] == "\ud800"


@pytest.mark.parametrize(
    "text", [b"{not json", b"", b'{"a": 1} trailing', '{"a": "\u00e9"}'.encode("latin-1")]
)
def test_what_is_not_json_raises_value_error(text: bytes) -> None:
    with pytest.raises(ValueError, match=r"."):
        decode_json(text)


def test_a_decoded_value_is_the_standard_librarys() -> None:
    text = b'{"user": {"id": "u-1"}, "n": [1, -0, 2.5e-7, true, null], "s": "\\u00e9"}'

    assert decode_json(text) == json.loads(text)
