"""What the Approval controller remembers, in this process: every Approval it follows (`index`),
whether the watch listed them all and the admission policies were checked once, what the last
check found wrong, and two hooks.

Every replica keeps all of it, so that a replica taking over the lead judges at once and its
runs find their decisions; only the leader judges (`judging.Judge`). While the judge runs,
`wake` is its `judge_soon`; otherwise waking does nothing. `on_decision(namespace, run)` is
called when an Approval of that run becomes Recorded (the leader wrote it, or a watch event shows
it): the engine's side connects it to the run supervisor, so that a run waiting for a person
wakes; until then it does nothing. It must not block: it is called from the watch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from stepline.api import ApprovalDecision
from stepline.controllers.approvals.index import ApprovalIndex, StepKey


def asleep(key: StepKey) -> None:
    """No judge runs here (a standby): nothing to wake."""


def unheard(namespace: str, run: str) -> None:
    """Nobody listens for decisions yet."""


@dataclass
class ApprovalMemory:
    index: ApprovalIndex = field(default_factory=ApprovalIndex)
    # Set once the Approval watch listed every watched namespace: before that, the first
    # Approval of a step may not be known yet.
    listed: asyncio.Event = field(default_factory=asyncio.Event)
    # Set once the admission policies were checked (`verification`), found or not.
    checked: asyncio.Event = field(default_factory=asyncio.Event)
    # What the last check found missing or wrong; "" when verified.
    problem: str = ""
    wake: Callable[[StepKey], None] = asleep
    on_decision: Callable[[str, str], None] = unheard

    @property
    def available(self) -> bool:
        """Approvals can decide steps now: the admission policies were found in place (a
        Workflow with an approval step is not Ready otherwise; `problem` says why)."""
        return self.index.verified is True

    def decision_for(
        self, namespace: str, run: str, step: str, *, waiting_since: datetime
    ) -> ApprovalDecision | None:
        """The Recorded Approval of `step` of `run` created at or after `waiting_since` (to the
        second), while the admission policies are verified; else None (`ApprovalIndex`)."""
        return self.index.decision_for(namespace, run, step, waiting_since=waiting_since)
