"""A forEach step's elements as the executor keeps them, and as a step record saves them.

Each element of the list is one call with its own retries and its own Idempotency-Key
(`<run uid>/<step>/<index>`). `ElementProgress` knows which elements succeeded (with their
outputs), which failed (the first few errors, by index), which are in flight, and the attempts.
In a checkpoint it is an `ItemsSummary` in bounded space — a bitmap of the completed elements,
counts, at most 100 elements in flight and 5 errors — beside the step's output, which holds the
outputs so far, index-aligned (null for those not done).

Resuming (`from_record`): the elements the bitmap marks completed are not called again, their
outputs taken from the record, unless the output was too large to record (then every element
is called again, under the same keys); the elements recorded in flight are called again at
attempt 2 or more.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from stepline.api import MAX_ITEM_ERRORS, ItemError, ItemsSummary, StepError, StepRecord

# Elements recorded as in flight at most (ItemsSummary.in_flight's limit).
MAX_RECORDED_IN_FLIGHT = 100
# An element's error message in the summary is cut to this (ItemError.message's limit).
MAX_ITEM_MESSAGE = 256


def encode_bitmap(indices: set[int] | dict[int, Any], total: int) -> str:
    """Bit i % 8 of byte i // 8 set for each index, base64."""
    bits = bytearray((total + 7) // 8)
    for index in indices:
        bits[index // 8] |= 1 << (index % 8)
    return base64.b64encode(bytes(bits)).decode()


def decode_bitmap(text: str, total: int) -> set[int]:
    """The indices below `total` whose bit is set; nothing for a bitmap that does not decode."""
    try:
        bits = base64.b64decode(text, validate=True)
    except ValueError:
        return set()
    return {
        index for index in range(min(total, len(bits) * 8)) if bits[index // 8] >> (index % 8) & 1
    }


@dataclass(slots=True)
class ElementProgress:
    total: int = 0
    outputs: dict[int, Any] = field(default_factory=dict)  # the succeeded elements'
    errors: dict[int, StepError] = field(default_factory=dict)  # the first failed ones'
    failed: int = 0
    in_flight: set[int] = field(default_factory=set)
    interrupted: set[int] = field(default_factory=set)  # in flight when the run stopped
    attempts: int = 0  # of every element, for the step's record
    max_attempts: int = 0
    # What each element was sent, kept (in memory only) for a step with a compensation.
    inputs: dict[int, Any] = field(default_factory=dict)

    @classmethod
    def from_record(cls, record: StepRecord) -> ElementProgress | None:
        summary = record.items
        if summary is None:
            return None
        progress = cls(total=summary.total, interrupted=set(summary.in_flight))
        truncated = record.output_info is not None and record.output_info.truncated
        outputs = record.output
        if not truncated and isinstance(outputs, list) and len(outputs) == summary.total:
            for index in decode_bitmap(summary.completed, summary.total):
                progress.outputs[index] = outputs[index]
        return progress

    def restart(self, total: int) -> None:
        """Fits the progress to the list the step now has: one of another length (the items
        came out different) starts afresh."""
        if total != self.total:
            self.outputs.clear()
            self.interrupted.clear()
            self.total = total
        self.errors.clear()
        self.failed = 0

    def succeed(self, index: int, output: Any, attempts: int) -> None:
        self.outputs[index] = output
        self._count(attempts)

    def fail(self, index: int, error: StepError, attempts: int) -> None:
        self.failed += 1
        if len(self.errors) < MAX_ITEM_ERRORS:
            self.errors[index] = error
        self._count(attempts)

    def _count(self, attempts: int) -> None:
        self.attempts += attempts
        self.max_attempts = max(self.max_attempts, attempts)

    def output_list(self) -> list[Any]:
        """The outputs so far, index-aligned; None for the elements not done."""
        return [self.outputs.get(index) for index in range(self.total)]

    def summary(self) -> ItemsSummary:
        return ItemsSummary(
            total=self.total,
            succeeded=len(self.outputs),
            failed=self.failed,
            running=len(self.in_flight),
            completed=encode_bitmap(self.outputs, self.total),
            in_flight=sorted(self.in_flight)[:MAX_RECORDED_IN_FLIGHT],
            max_attempts=self.max_attempts,
            errors=[
                ItemError(
                    index=index,
                    reason=error.reason,
                    message=error.message[:MAX_ITEM_MESSAGE],
                    http_status=error.http_status,
                )
                for index, error in sorted(self.errors.items())
            ],
        )
