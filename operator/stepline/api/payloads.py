"""JSON payloads in objects: run input, step outputs, run output — and their size caps.

Pure. A payload is free-form JSON (`x-kubernetes-preserve-unknown-fields`). Every payload the
engine accepts, from a client or from a step, nests at most `MAX_JSON_DEPTH` arrays and objects
(`measure_depth`): deep enough for any business document, shallow enough that every consumer
of a payload (validation, CEL, the status record, the API server) stays far from its own
recursion limits. Two caps apply besides:

- A run's input is a JSON object of at most `MAX_INPUT_BYTES` of compact JSON, nested at most
  `MAX_JSON_DEPTH` deep. The model checks both exactly. The API server cannot: CEL has no JSON
  encoding, and it cannot range over an object with unknown fields (its type has no keys to
  range over), so the schema bounds what OpenAPI can, `MAX_INPUT_PROPERTIES` top-level keys.
  Bigger or deeper input passes admission and is refused by the model: the controller then
  fails the run, with reason InputTooLarge (or InvalidRun, too deep) in its status and an
  Event. The API server's own request limit (~1.5 MiB in etcd) bounds the rest.
- A step output recorded in a run's status is kept whole up to `MAX_RECORDED_OUTPUT_BYTES`;
  beyond that only a preview, its size and its SHA-256 are recorded (`record_payload`), so that a
  run with many large outputs stays far below the object size limit.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from pydantic import AfterValidator, Field, JsonValue, WithJsonSchema

from stepline.api.base import ApiModel
from stepline.api.conditions import Reason

MAX_INPUT_BYTES = 64 * 1024
# Arrays and objects nested in one another; {"a": [1]} is 2 deep, a scalar 0.
MAX_JSON_DEPTH = 64
MAX_INPUT_PROPERTIES = 64
# 50 steps of 16 KiB each stays under half of etcd's 1.5 MiB object limit.
MAX_RECORDED_OUTPUT_BYTES = 16 * 1024
PREVIEW_CHARACTERS = 512


def encode_payload(value: JsonValue) -> bytes:
    """Compact, key-sorted JSON: what sizes and digests are computed over."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def measure_depth(value: Any, *, limit: int = MAX_JSON_DEPTH) -> int:
    """How deep arrays and objects nest in `value`, counted up to `limit + 1`: iterative, so a
    value of any depth is measured without recursion."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest > limit:
            break
        pending.extend((child, depth) for child in children)
    return deepest


def find_input_problem(value: Any) -> tuple[Reason, str] | None:
    """Why `value` cannot be a run's input (a reason and a message naming the limit), or None.
    Safe on a value of any depth: the depth is measured first, without recursion."""
    if not isinstance(value, dict):
        return Reason.INVALID_RUN, "input must be a JSON object"
    if measure_depth(value) > MAX_JSON_DEPTH:
        message = f"input nests arrays and objects more than {MAX_JSON_DEPTH} deep"
        return Reason.INVALID_RUN, message
    if len(value) > MAX_INPUT_PROPERTIES:
        message = f"input has {len(value)} keys; at most {MAX_INPUT_PROPERTIES} are allowed"
        return Reason.INPUT_TOO_LARGE, message
    size = len(encode_payload(value))
    if size > MAX_INPUT_BYTES:
        message = f"input is {size} bytes of JSON; at most {MAX_INPUT_BYTES} are allowed"
        return Reason.INPUT_TOO_LARGE, message
    return None


def _within_input_cap(value: dict[str, JsonValue]) -> dict[str, JsonValue]:
    problem = find_input_problem(value)
    if problem is not None:
        raise ValueError(problem[1])
    return value


Payload = Annotated[
    JsonValue,
    WithJsonSchema({"x-kubernetes-preserve-unknown-fields": True}),
]
"""Any JSON value, kept as is."""

InputPayload = Annotated[
    dict[str, JsonValue],
    AfterValidator(_within_input_cap),
    WithJsonSchema(
        {
            "type": "object",
            "maxProperties": MAX_INPUT_PROPERTIES,
            "x-kubernetes-preserve-unknown-fields": True,
        }
    ),
]
"""A JSON object of bounded size: the input of a run."""


class PayloadInfo(ApiModel):
    """The size and digest of a payload, and a preview when it was too large to record."""

    size_bytes: int = Field(ge=0, description="Size of the payload as compact JSON, in bytes.")
    sha256: str = Field(
        max_length=64,
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of the compact, key-sorted JSON, in hex.",
    )
    truncated: bool = Field(
        default=False,
        description="True when the payload was too large to record; only the preview is kept.",
    )
    preview: str | None = Field(
        default=None,
        max_length=PREVIEW_CHARACTERS,
        description="The beginning of the JSON text, when the payload was truncated.",
    )


def record_payload(value: JsonValue) -> tuple[Any, PayloadInfo]:
    """What a status records of a payload: the value (or None when too large) and its info."""
    encoded = encode_payload(value)
    digest = hashlib.sha256(encoded).hexdigest()
    if len(encoded) <= MAX_RECORDED_OUTPUT_BYTES:
        return value, PayloadInfo(size_bytes=len(encoded), sha256=digest)
    preview = encoded.decode()[:PREVIEW_CHARACTERS]
    info = PayloadInfo(size_bytes=len(encoded), sha256=digest, truncated=True, preview=preview)
    return None, info
