"""JSON from the API server is decoded without recursion, and an object nested deeper than
anything Stepline reads has its deep subtrees read as null instead of failing a whole list."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stepline.errors import KubeApiError
from stepline.kube import MAX_DECODED_DEPTH, decode_api_json, parse_watch_event, prune_deep_json


def nested_object(depth: int) -> bytes:
    return b'{"a":' * depth + b"{}" + b"}" * depth


def depth_of_chain(value: object) -> int:
    depth = 0
    while isinstance(value, dict) and value:
        value, depth = value["a"], depth + 1
    return depth


@pytest.mark.parametrize("depth", [1_100, 5_000, 10_000])
def test_a_list_holding_one_very_deep_object_is_decoded_with_that_subtree_cut(depth: int) -> None:
    page = b'{"items":[{"metadata":{"name":"deep"},"spec":{"input":' + nested_object(depth)
    page += b'}},{"metadata":{"name":"plain"},"spec":{"input":{"n":1}}}]}'

    decoded = decode_api_json(page)

    deep, plain = decoded["items"]
    assert deep["metadata"]["name"] == "deep"
    assert depth_of_chain(deep["spec"]["input"]) == MAX_DECODED_DEPTH - 4  # items, [, item, spec
    assert plain["spec"]["input"] == {"n": 1}


def test_a_watch_event_of_a_very_deep_object_is_an_event_not_an_error() -> None:
    line = b'{"type":"ADDED","object":{"metadata":{"uid":"u"},"spec":' + nested_object(5000) + b"}}"

    event = parse_watch_event("/apis/x", line)

    assert event["type"] == "ADDED"
    assert event["object"]["metadata"]["uid"] == "u"


def test_brackets_in_strings_and_escaped_quotes_are_not_structure() -> None:
    text = b'[[["\\"]]]{{", "x"], [1]], 2]'

    assert prune_deep_json(text, 2) == b"[[null, null], 2]"
    assert prune_deep_json(text, 3) == text
    assert json.loads(text) == [[['"]]]{{', "x"], [1]], 2]


def test_what_is_not_json_is_a_value_error_and_in_a_watch_an_api_error() -> None:
    with pytest.raises(ValueError, match=r"\w"):
        decode_api_json(b"{nope")
    with pytest.raises(KubeApiError, match="not JSON"):
        parse_watch_event("/apis/x", b"{nope")


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.text(max_size=4), children, max_size=3)
        ),
        max_leaves=25,
    )
)
def test_json_within_the_depth_is_decoded_as_the_standard_library_does(value: object) -> None:
    data = json.dumps(value).encode()

    assert decode_api_json(data) == json.loads(data)
    assert prune_deep_json(data, MAX_DECODED_DEPTH) == data
