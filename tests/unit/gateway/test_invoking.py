"""What invoke makes of a request body: a run input that can be sent on to a step, or a 400
saying why not — for any bytes a client may send, never an exception (which the server would
answer 500)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from stepline.api import MAX_INPUT_BYTES, MAX_JSON_DEPTH, measure_depth
from stepline.engine.encoding import encode_json
from stepline.gateway.invoking import parse_input

ODD_TEXT = st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1)
LENIENT = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers(-(2**80), 2**80) | st.text() | ODD_TEXT,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


def check_parsed(body: bytes) -> None:
    value, refusal = parse_input(body)
    if refusal is None:
        assert isinstance(value, dict)
        assert measure_depth(value) <= MAX_JSON_DEPTH
        encode_json(value)  # what is accepted can be sent on to the first step
        return
    assert value is None
    assert refusal.status == 400
    assert refusal.body["error"]["reason"] in {"InvalidInput", "InputTooLarge"}
    assert refusal.body["error"]["message"]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_are_a_run_input_or_a_400_saying_why(body: bytes) -> None:
    check_parsed(body)


@settings(max_examples=300, deadline=None)
@given(LENIENT, st.integers(0, 100))
def test_what_a_lenient_client_writes_is_a_run_input_or_a_400_saying_why(
    value: object, depth: int
) -> None:
    body = ("[" * depth + json.dumps({"v": value}) + "]" * depth).encode(errors="surrogatepass")
    check_parsed(body)


def test_an_input_over_the_cap_is_refused_before_it_is_read() -> None:
    _, refusal = parse_input(b" " * (MAX_INPUT_BYTES + 1))

    assert refusal is not None
    assert refusal.body["error"]["reason"] == "InputTooLarge"
