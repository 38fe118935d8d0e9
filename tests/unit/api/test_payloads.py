"""Payloads recorded in a run's status: whole when small, preview and digest when large."""

from __future__ import annotations

import hashlib

from stepline.api import MAX_RECORDED_OUTPUT_BYTES, encode_payload, record_payload


def test_a_small_output_is_recorded_whole_with_its_size_and_digest() -> None:
    value = {"b": 1, "a": "é"}
    recorded, info = record_payload(value)
    assert recorded == value
    assert info.truncated is False
    assert info.preview is None
    assert info.size_bytes == len('{"a":"é","b":1}'.encode())
    assert info.sha256 == hashlib.sha256('{"a":"é","b":1}'.encode()).hexdigest()


def test_a_large_output_keeps_only_a_preview_its_size_and_digest() -> None:
    value = {"rows": ["x" * 100] * 500}
    recorded, info = record_payload(value)
    assert recorded is None
    assert info.truncated is True
    assert info.size_bytes == len(encode_payload(value)) > MAX_RECORDED_OUTPUT_BYTES
    assert info.preview is not None
    assert info.preview.startswith('{"rows":["xxx')
    assert len(info.preview) == 512


def test_the_digest_does_not_depend_on_key_order() -> None:
    assert record_payload({"a": 1, "b": 2})[1].sha256 == record_payload({"b": 2, "a": 1})[1].sha256


def test_any_json_value_can_be_recorded() -> None:
    for value in ("text", 3, 2.5, None, True, [1, "two"]):
        recorded, info = record_payload(value)
        assert recorded == value
        assert info.size_bytes == len(encode_payload(value))
