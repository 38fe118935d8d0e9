"""Every Approval the operator follows, reduced to what deciding needs, by the step it decides.
Pure bookkeeping, fed by the Approval watch (`watch`); no I/O.

Approvals of one step of one run (namespace, run, step) are kept in the order that says which
comes first: creationTimestamp, then name. Only an Approval the operator accepted (its condition
Accepted=True, reason Recorded: `acceptance`) decides a step, so `decision_for` answers from those
alone; the leader accepts at most one per step. While the admission policies are not verified
(`verified` is not True) it answers None for every step: an Approval nobody vouched for decides
nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from stepline.api import ApprovalDecision, ConditionType, Verdict

StepKey = tuple[str, str, str]  # (namespace, run, step)


@dataclass(frozen=True)
class ApprovalEntry:
    """What the operator keeps of one Approval."""

    namespace: str
    name: str
    uid: str
    run: str
    step: str
    workflow: str
    approve: bool
    user: str
    user_uid: str
    reason: str
    created_at: datetime
    # The Accepted condition's status ("True", "False") and reason, once the operator wrote one.
    accepted: str | None = None
    accepted_reason: str | None = None

    @property
    def key(self) -> StepKey:
        return self.namespace, self.run, self.step

    @property
    def judged(self) -> bool:
        return self.accepted is not None

    @property
    def recorded(self) -> bool:
        return self.accepted == "True"

    def order(self) -> tuple[datetime, str]:
        """First comes the earliest created; of two created in the same second, the first name."""
        return self.created_at, self.name

    def as_decision(self) -> ApprovalDecision:
        return ApprovalDecision(
            approve=self.approve, user=self.user, uid=self.user_uid, reason=self.reason,
            decided_at=self.created_at, name=self.name,
        )  # fmt: skip


def read_entry(body: Mapping[str, Any]) -> ApprovalEntry:
    """What the index keeps of an Approval's body; KeyError, TypeError or ValueError if it is not
    shaped like one (the API server admitted it: an older schema, say)."""
    metadata, spec = body["metadata"], body["spec"]
    decided_by = spec.get("decidedBy") or {}
    conditions = (body.get("status") or {}).get("conditions") or ()
    accepted: Mapping[str, Any] = next(
        (c for c in conditions if c.get("type") == ConditionType.ACCEPTED), {}
    )
    return ApprovalEntry(
        namespace=str(metadata["namespace"]),
        name=str(metadata["name"]),
        uid=str(metadata.get("uid") or ""),
        run=str(spec["runRef"]),
        step=str(spec["step"]),
        workflow=str(spec["workflowRef"]),
        approve=Verdict(spec["decision"]) is Verdict.APPROVE,
        user=str(decided_by.get("username") or ""),
        user_uid=str(decided_by.get("uid") or ""),
        reason=str(spec.get("reason") or ""),
        created_at=datetime.fromisoformat(str(metadata["creationTimestamp"])),
        accepted=accepted.get("status"),
        accepted_reason=accepted.get("reason"),
    )


class ApprovalIndex:
    """The Approvals, by the step they decide; and whether the admission policies vouch for them."""

    def __init__(self) -> None:
        self._by_step: dict[StepKey, dict[str, ApprovalEntry]] = {}
        self._steps: dict[tuple[str, str], StepKey] = {}  # (namespace, name) → its step
        # True: the policies and bindings exist; False: one is missing; None: not checked yet.
        self.verified: bool | None = None

    def record(
        self, event_type: str, body: Mapping[str, Any]
    ) -> tuple[ApprovalEntry | None, ApprovalEntry | None]:
        """One watch event: (before, after) of the Approval it concerns; DELETED gives after None.
        ValueError, KeyError or TypeError for a body the index cannot read."""
        metadata = body["metadata"]
        where = (str(metadata.get("namespace") or ""), str(metadata["name"]))
        before = self._remove(where)
        if event_type == "DELETED":
            return before, None
        after = read_entry(body)
        self._put(after)
        return before, after

    def mark(self, entry: ApprovalEntry, *, accepted: str, reason: str) -> ApprovalEntry:
        """The Approval as judged now (before the watch shows the status written)."""
        marked = replace(entry, accepted=accepted, accepted_reason=reason)
        if self._steps.get((entry.namespace, entry.name)) == entry.key:
            self._put(marked)
        return marked

    def of_step(self, key: StepKey) -> list[ApprovalEntry]:
        """The Approvals of one step, first first."""
        return sorted(self._by_step.get(key, {}).values(), key=ApprovalEntry.order)

    def unjudged_steps(self) -> list[StepKey]:
        """The steps with an Approval that has no Accepted condition yet."""
        return [key for key, found in self._by_step.items()
                if any(not entry.judged for entry in found.values())]  # fmt: skip

    def decision_for(
        self, namespace: str, run: str, step: str, *, waiting_since: datetime
    ) -> ApprovalDecision | None:
        """What decides `step` of `run`: its recorded Approval, if it was created at or after
        `waiting_since` (to the second: creationTimestamp has no finer grain) and the policies
        are verified now; else None."""
        if self.verified is not True:
            return None
        since = waiting_since.replace(microsecond=0)
        for entry in self.of_step((namespace, run, step)):
            if entry.recorded and entry.created_at >= since:
                return entry.as_decision()
        return None

    def __len__(self) -> int:
        return len(self._steps)

    def _put(self, entry: ApprovalEntry) -> None:
        self._by_step.setdefault(entry.key, {})[entry.name] = entry
        self._steps[(entry.namespace, entry.name)] = entry.key

    def _remove(self, where: tuple[str, str]) -> ApprovalEntry | None:
        key = self._steps.pop(where, None)
        if key is None:
            return None
        found = self._by_step.get(key, {})
        before = found.pop(where[1], None)
        if not found:
            self._by_step.pop(key, None)
        return before
