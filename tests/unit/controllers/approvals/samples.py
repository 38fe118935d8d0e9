"""Bodies of Approvals and WorkflowRuns as the API server returns them, for the approvals
controller's tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

NAMESPACE = "factory"
RUN = "line-7-morning"
WORKFLOW = "production-shift"
STEP = "release"
# When the run's step began to wait; Approvals are created around it.
SINCE = datetime(2026, 12, 7, 6, 0, 0, tzinfo=UTC)


def approval(
    name: str,
    *,
    created: datetime = SINCE + timedelta(minutes=1),
    decision: str = "Approve",
    reason: str | None = None,
    run: str = RUN,
    step: str = STEP,
    workflow: str = WORKFLOW,
    user: str = "system:serviceaccount:factory:lead",
    accepted: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """An Approval's body; `accepted` is (status, reason) of its Accepted condition."""
    spec: dict[str, Any] = {
        "runRef": run, "workflowRef": workflow, "step": step, "decision": decision,
        "decidedBy": {"username": user, "uid": f"uid-{user}"},
    }  # fmt: skip
    if reason is not None:
        spec["reason"] = reason
    body: dict[str, Any] = {
        "apiVersion": "stepline.io/v1alpha1",
        "kind": "Approval",
        "metadata": {
            "name": name, "namespace": NAMESPACE, "uid": f"uid-{name}",
            "creationTimestamp": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "spec": spec,
    }  # fmt: skip
    if accepted is not None:
        status, why = accepted
        body["status"] = {"conditions": [{
            "type": "Accepted", "status": status, "reason": why, "message": "",
            "lastTransitionTime": "2026-12-07T06:01:00Z",
        }]}  # fmt: skip
    return body


def waiting_run(
    *,
    step: str = STEP,
    since: datetime | None = SINCE,
    workflow: str = WORKFLOW,
    listed: bool = True,
    recorded: str | None = None,
    phase: str = "Waiting",
) -> dict[str, Any]:
    """A WorkflowRun whose `step` waits for a person: listed in `waitingFor` (the engine's
    status), else only its step record's phase says so; `recorded` names the Approval the run
    recorded for it (then it no longer waits)."""
    record: dict[str, Any] = {"name": step, "phase": "Waiting"}
    if since is not None:
        record["startedAt"] = since.strftime("%Y-%m-%dT%H:%M:%SZ")
    status: dict[str, Any] = {
        "phase": phase,
        "steps": [{"name": "scheduling", "phase": "Succeeded"}, record],
    }
    if listed and recorded is None:
        entry: dict[str, Any] = {"step": step}
        if since is not None:
            entry["since"] = since.strftime("%Y-%m-%dT%H:%M:%SZ")
        status["waitingFor"] = [entry]
    if recorded is not None:
        record["phase"] = "Succeeded"
        record["approval"] = {"decision": "Approve", "approvalName": recorded}
    return {
        "apiVersion": "stepline.io/v1alpha1",
        "kind": "WorkflowRun",
        "metadata": {"name": RUN, "namespace": NAMESPACE, "uid": "uid-run"},
        "spec": {"workflowRef": workflow, "input": {}},
        "status": status,
    }
