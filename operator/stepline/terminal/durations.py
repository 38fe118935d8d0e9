"""Durations and ages as people read them in a terminal. Pure.

`format_duration` keeps the precision a step's time needs (`85ms`, `1.25s`, `3m05s`);
`format_age` is kubectl's coarse age (`45s`, `3m`, `2h5m`, `4d`).
"""

from __future__ import annotations

import math
from datetime import datetime

MINUTE = 60
HOUR = 60 * MINUTE
DAY = 24 * HOUR
NONE = "-"


def format_duration(seconds: float | None) -> str:
    """`85ms`, `1.25s`, `12.5s`, `3m05s`, `2h04m`, `3d4h`; `-` for None."""
    if seconds is None or math.isnan(seconds):
        return NONE
    seconds = max(seconds, 0.0)
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < MINUTE:
        return f"{seconds:.2f}s" if seconds < 10 else f"{seconds:.1f}s"
    return format_long(int(seconds))


def format_long(whole: int) -> str:
    """A minute or more, to the second: `3m05s`, `2h04m`, `3d4h`."""
    if whole < HOUR:
        return f"{whole // MINUTE}m{whole % MINUTE:02d}s"
    if whole < DAY:
        return f"{whole // HOUR}h{whole % HOUR // MINUTE:02d}m"
    return f"{whole // DAY}d{whole % DAY // HOUR}h"


def format_offset(seconds: float | None) -> str:
    """A start relative to the run's: `+0ms`, `+1.25s`; `-` for None."""
    return NONE if seconds is None else f"+{format_duration(seconds)}"


def format_age(seconds: float | None) -> str:
    """kubectl's age: `45s`, `3m`, `2h5m`, `4d`; `-` for None."""
    if seconds is None:
        return NONE
    whole = max(int(seconds), 0)
    if whole < 2 * MINUTE:
        return f"{whole}s"
    if whole < HOUR:
        return f"{whole // MINUTE}m"
    if whole < 8 * HOUR:
        minutes = whole % HOUR // MINUTE
        return f"{whole // HOUR}h{minutes}m" if minutes else f"{whole // HOUR}h"
    if whole < 2 * DAY:
        return f"{whole // HOUR}h"
    return f"{whole // DAY}d"


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    """`end - start` in seconds; None when either is unknown."""
    if start is None or end is None:
        return None
    return (end - start).total_seconds()
