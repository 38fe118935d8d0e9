"""How long the controllers wait before trying again: one doubling backoff for all of them."""

from __future__ import annotations


def backoff(base: float, attempt: int, *, maximum: float) -> float:
    """`base` doubled per earlier attempt (0: `base` itself), up to `maximum`."""
    return min(base * 2.0 ** min(attempt, 16), maximum)
