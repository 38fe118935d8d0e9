"""Which runs can be parked from their raw status, without a task, a parse or a write.

A run that waits for a person (phase Waiting) or is suspended (phase Suspended, `spec.suspend`)
calls nothing: its status already says everything a task would find by re-executing it up to
the wait. A new leader takes over many such runs at once (1,000 approval waits after a restart),
and giving each a task that parses it, re-executes it and writes the same Waiting status again
cost about 20 ms of CPU and two status writes per run, and kept every parsed run alive at once
(bench/runs/RESULTS.md). `read_parking` looks at the raw body instead, and says how to park it:
why, and until when.

Anything it is not sure of is left to a task, which re-executes the run from its checkpoint as
before: a run to cancel, a suspended run resumed, a Waiting run that is also suspended, a wait
whose deadline has passed (the task fails the step), a wait a person has decided meanwhile (the
`decided` callback says so: the Approval was recorded while no leader watched), and a status
this code cannot read (a field missing or malformed). Pure: the caller passes the clock and the
approvals' answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stepline.api import RunPhase
from stepline.api.base import parse_timestamp
from stepline.observability import WaitReasonLabel

# (namespace, run, step, waiting since) -> a person has decided that wait.
Decided = Callable[[str, str, str, datetime], bool]


@dataclass(frozen=True)
class Parking:
    """How a run is parked: `reason`, and the time it must wake at (an approval's deadline)."""

    reason: WaitReasonLabel
    deadline: datetime | None = None


def read_parking(body: Mapping[str, Any], *, now: datetime, decided: Decided) -> Parking | None:
    """How to park the run in `body` as it stands (module docstring); None: give it a task."""
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    if spec.get("cancel"):
        return None
    phase = status.get("phase")
    if phase == RunPhase.SUSPENDED:
        return Parking(WaitReasonLabel.SUSPENDED) if spec.get("suspend") else None
    if phase != RunPhase.WAITING or spec.get("suspend"):
        return None
    return _read_waits(body, status.get("waitingFor") or [], now=now, decided=decided)


def _read_waits(
    body: Mapping[str, Any], waits: list[Any], *, now: datetime, decided: Decided
) -> Parking | None:
    """A Waiting run's parking: until its earliest deadline, unless one passed or is decided."""
    metadata = body.get("metadata") or {}
    namespace, name = metadata.get("namespace") or "", metadata.get("name") or ""
    deadlines = []
    for wait in waits:
        read = _read_wait(wait)
        if read is None:
            return None
        step, since, deadline = read
        if deadline <= now or decided(namespace, name, step, since):
            return None
        deadlines.append(deadline)
    if not deadlines:
        return None
    return Parking(WaitReasonLabel.APPROVAL, deadline=min(deadlines))


def _read_wait(wait: Any) -> tuple[str, datetime, datetime] | None:
    """A `status.waitingFor` entry's step, since and deadline; None if any is unreadable."""
    if not isinstance(wait, Mapping) or not isinstance(step := wait.get("step"), str):
        return None
    since, deadline = parse_timestamp(wait.get("since")), parse_timestamp(wait.get("deadline"))
    if since is None or deadline is None or since.tzinfo is None or deadline.tzinfo is None:
        return None
    return step, since, deadline
