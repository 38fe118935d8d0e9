"""JSON payloads in objects: run input, step outputs, run output — and their size caps.

Pure. A payload is free-form JSON (`x-kubernetes-preserve-unknown-fields`). Two caps apply:

- A run's input is a JSON object of at most `MAX_INPUT_BYTES` of compact JSON. The model checks
  that exactly. The API server cannot: CEL has no JSON encoding, and it cannot range over an
  object with unknown fields (its type has no keys to range over), so the schema bounds what
  OpenAPI can, `MAX_INPUT_PROPERTIES` top-level keys. Bigger input passes admission and is
  refused by the model: the controller fails the run with reason InputTooLarge. The API
  server's own request limit (~1.5 MiB in etcd) bounds the rest.
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

MAX_INPUT_BYTES = 64 * 1024
MAX_INPUT_PROPERTIES = 64
# 50 steps of 16 KiB each stays under half of etcd's 1.5 MiB object limit.
MAX_RECORDED_OUTPUT_BYTES = 16 * 1024
PREVIEW_CHARACTERS = 512


def encode_payload(value: JsonValue) -> bytes:
    """Compact, key-sorted JSON: what sizes and digests are computed over."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def _within_input_cap(value: dict[str, JsonValue]) -> dict[str, JsonValue]:
    if len(value) > MAX_INPUT_PROPERTIES:
        raise ValueError(f"input has {len(value)} keys; at most {MAX_INPUT_PROPERTIES} are allowed")
    size = len(encode_payload(value))
    if size > MAX_INPUT_BYTES:
        raise ValueError(f"input is {size} bytes of JSON; at most {MAX_INPUT_BYTES} are allowed")
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
