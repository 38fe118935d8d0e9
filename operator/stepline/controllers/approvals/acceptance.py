"""Whether the operator honours an Approval: its Accepted condition, decided from the Approvals of
its step, the run as the API server holds it now, and whether the admission policies are in
place. Pure: the caller reads the run and writes the result.

The Approvals of one step are judged together, first first (creationTimestamp, then name), so
that at most one is Recorded: an Approval is Recorded when the policies are verified, its run
exists and runs the Workflow it names, the run waits at the step now (`api.find_wait`), it was
created at or after the wait began (to the second), and no other Approval decided the step
(recorded by the run, or accepted here before it). Otherwise it is refused, with the first
reason that applies: Unverified, RunNotFound, WorkflowMismatch, NotWaiting. A judgment is final:
an Approval is a record, and a refused one is followed by another, not revived.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stepline.api import ConditionStatus, Reason, find_recorded_approval, find_wait
from stepline.controllers.approvals.index import ApprovalEntry


@dataclass(frozen=True)
class Acceptance:
    """The Accepted condition of one Approval."""

    status: ConditionStatus
    reason: Reason
    message: str

    @property
    def recorded(self) -> bool:
        return self.status is ConditionStatus.TRUE


def judge_step(
    entries: Sequence[ApprovalEntry],
    run: Mapping[str, Any] | None,
    *,
    verified: bool,
    problem: str = "",
) -> dict[str, Acceptance]:
    """Approval name → its Accepted condition, for each entry of one step not judged yet.

    `entries` are every Approval of the step, first first; `run` is the run's body (None: it
    does not exist); `problem` says what is wrong with the policies when not `verified`.
    """
    taken = next((entry.name for entry in entries if entry.recorded), None)
    judged: dict[str, Acceptance] = {}
    for entry in entries:
        if entry.judged:
            continue
        acceptance = judge_one(entry, run, verified=verified, problem=problem, taken=taken)
        if acceptance.recorded:
            taken = entry.name
        judged[entry.name] = acceptance
    return judged


def judge_one(
    entry: ApprovalEntry,
    run: Mapping[str, Any] | None,
    *,
    verified: bool,
    problem: str,
    taken: str | None,
) -> Acceptance:
    """The Accepted condition of one Approval, `taken` naming the one that decided its step
    already, if any (module docstring)."""
    if not verified:
        return _refused(Reason.UNVERIFIED, describe_unverified(problem))
    if run is None:
        return _refused(
            Reason.RUN_NOT_FOUND,
            f"WorkflowRun {entry.run!r} not found in namespace {entry.namespace!r}",
        )
    workflow = str((run.get("spec") or {}).get("workflowRef") or "")
    if workflow != entry.workflow:
        return _refused(
            Reason.WORKFLOW_MISMATCH,
            f"spec.workflowRef is {entry.workflow!r}, but run {entry.run!r} runs Workflow "
            f"{workflow!r}: the approve permission was checked on the wrong Workflow; create "
            f"another Approval naming {workflow!r}",
        )
    status: Mapping[str, Any] = run.get("status") or {}
    refusal = _not_waiting(entry, status, taken=taken)
    if refusal is not None:
        return _refused(Reason.NOT_WAITING, refusal)
    verb = "approved" if entry.approve else "rejected"
    return Acceptance(
        ConditionStatus.TRUE,
        Reason.RECORDED,
        f"step {entry.step!r} of run {entry.run!r} {verb} by {entry.user or 'an unknown user'}",
    )


def _not_waiting(
    entry: ApprovalEntry, status: Mapping[str, Any], *, taken: str | None
) -> str | None:
    """Why the run does not take this Approval now, if it does not."""
    step, run = entry.step, entry.run
    recorded = find_recorded_approval(status, step)
    if recorded == entry.name:
        return None  # the run recorded it already: it is the decision
    decided_by = recorded or taken
    if decided_by is not None:
        return f"step {step!r} of run {run!r} was already decided by Approval {decided_by!r}"
    wait = find_wait(status, step)
    if wait is None:
        phase = status.get("phase") or "Pending"
        return (
            f"run {run!r} ({phase}) does not wait at step {step!r}: not reached yet, already "
            "decided, or not an approval step"
        )
    if wait.since is not None and entry.created_at < wait.since.replace(microsecond=0):
        return (
            f"created at {_time(entry.created_at)}, before step {step!r} began waiting at "
            f"{_time(wait.since)}: create another Approval"
        )
    return None


def describe_unverified(problem: str) -> str:
    return (
        "the admission policies that vouch for spec.decidedBy are not in place"
        f"{f' ({problem})' if problem else ''}: no Approval is honoured; restore them "
        "(deploy/admission/approval-policies.yaml, or the chart's approvals.enabled) and "
        "create another Approval"
    )


def _refused(reason: Reason, message: str) -> Acceptance:
    return Acceptance(ConditionStatus.FALSE, reason, message)


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
