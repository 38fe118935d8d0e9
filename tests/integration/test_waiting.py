"""Runs that stop before their end, through the operator on the real control plane: a run
suspended mid-way lets its call end, starts nothing, holds no slot and goes on when resumed; a
run created suspended does not start; a run whose approval step waits for a person is Waiting,
says who may decide, and holds no run slot; a parked run is parked again by a restarted
operator and goes on when resumed; a restarted operator parks Waiting runs from their status,
writing nothing, and a decision made while it was down, or after, lets each go on.

One namespace, step server and operator serve the module (see stepservices.py); each test reads
only the calls of its own run (by Idempotency-Key).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.localcluster import LocalCluster, wait_until
from tests.integration.stepobjects import events_about, get, merge_patch
from tests.integration.stepservices import (
    StepBed,
    apply_workflow,
    close_step_bed,
    open_step_bed,
    post_invoke,
    restart,
    start_run,
    step_status,
    wait_finished,
)
from tests.integration.test_approvals import POLICIES, sample, scraped
from tests.unit.engine.stepservers import Answer

pytestmark = pytest.mark.integration

STEPS = ("plan", "ship", "audit")
CHAIN = [{"name": "plan", "stepRef": "plan", "timeoutSeconds": 30},
         {"name": "ship", "stepRef": "ship"}]  # fmt: skip


@pytest.fixture(scope="module")
def bed(
    cluster: LocalCluster, crds: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StepBed]:
    # The Approvals' admission policies, as the chart ships them: without them the operator
    # honours no Approval, and a Workflow with an approval step is not Ready.
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(POLICIES))
    env = {"STEPLINE_APPROVAL_POLICY_CHECK_SECONDS": "2"}
    folder = tmp_path_factory.mktemp("waiting")
    opened = open_step_bed(cluster, "waiting", STEPS, folder, extra_env=env)
    try:
        yield opened
    finally:
        close_step_bed(opened)
        cluster.kubectl("delete", "--ignore-not-found", "-f", str(POLICIES), check=False)


def phase_of(bed: StepBed, name: str) -> str | None:
    run = get(bed.cluster, "workflowrun", name, bed.namespace) or {}
    phase: str | None = (run.get("status") or {}).get("phase")
    return phase


def reasons(bed: StepBed, name: str) -> set[str]:
    return {e["reason"] for e in events_about(bed.cluster, bed.namespace, "WorkflowRun", name)}


def set_suspend(bed: StepBed, name: str, value: bool) -> None:
    merge_patch(bed.cluster, "workflowrun", name, bed.namespace, {"spec": {"suspend": value}})


def create_suspended(bed: StepBed, name: str, workflow: str) -> None:
    """A run created with spec.suspend, once the operator shows it Suspended."""
    bed.cluster.apply({
        "apiVersion": "stepline.io/v1alpha1", "kind": "WorkflowRun",
        "metadata": {"name": name, "namespace": bed.namespace},
        "spec": {"workflowRef": workflow, "input": {}, "suspend": True},
    })  # fmt: skip
    wait_until(lambda: phase_of(bed, name) == "Suspended", what=f"run {name} to be Suspended")


def test_a_run_suspended_mid_way_lets_its_call_end_and_goes_on_when_resumed(
    bed: StepBed,
) -> None:
    bed.server.answer("/plan", Answer(json={"batches": 2}, delay=2))
    apply_workflow(bed, "chain", CHAIN)
    uid = start_run(bed, "chain-1", "chain", {})
    wait_until(lambda: bed.server.calls("/plan", run_uid=uid), what="the first step's call")

    set_suspend(bed, "chain-1", True)
    wait_until(lambda: phase_of(bed, "chain-1") == "Suspended", what="the run to be Suspended")

    run = get(bed.cluster, "workflowrun", "chain-1", bed.namespace)
    assert run is not None
    assert step_status(run, "plan")["phase"] == "Succeeded"  # its call in flight ended
    assert bed.server.calls("/ship", run_uid=uid) == []
    [condition] = [c for c in run["status"]["conditions"] if c["type"] == "Succeeded"]
    assert (condition["status"], condition["reason"]) == ("Unknown", "Suspended")
    assert "Suspended" in reasons(bed, "chain-1")

    set_suspend(bed, "chain-1", False)
    run = wait_finished(bed, "chain-1")

    assert run["status"]["phase"] == "Succeeded", run["status"]
    assert len(bed.server.calls("/plan", run_uid=uid)) == 1
    assert len(bed.server.calls("/ship", run_uid=uid)) == 1
    assert run["status"]["suspendedSeconds"] > 0
    assert "Resumed" in reasons(bed, "chain-1")


def test_a_run_created_suspended_does_not_start(bed: StepBed) -> None:
    apply_workflow(bed, "later", CHAIN)
    create_suspended(bed, "later-1", "later")
    run = get(bed.cluster, "workflowrun", "later-1", bed.namespace)
    assert run is not None
    uid = run["metadata"]["uid"]
    assert "startedAt" not in run["status"]
    assert bed.server.calls("/plan", run_uid=uid) == []

    set_suspend(bed, "later-1", False)
    run = wait_finished(bed, "later-1")

    assert run["status"]["phase"] == "Succeeded", run["status"]


def test_a_run_waiting_for_a_person_says_who_may_decide_and_holds_no_slot(
    bed: StepBed,
) -> None:
    bed.server.answer("/plan", Answer(json={"batches": 3}))
    steps = [
        {"name": "plan", "stepRef": "plan"},
        {"name": "release", "dependsOn": ["plan"],
         "approval": {"message": '"Release " + string(steps.plan.output.batches) + " batches"'}},
        {"name": "ship", "stepRef": "ship", "dependsOn": ["release"]},
    ]  # fmt: skip
    apply_workflow(bed, "shift", steps, concurrency=1)

    first = start_run(bed, "shift-1", "shift", {})
    wait_until(lambda: phase_of(bed, "shift-1") == "Waiting", what="the run to be Waiting")
    # It holds no run slot: a second run of a workflow that runs one at a time gets as far.
    start_run(bed, "shift-2", "shift", {})
    wait_until(lambda: phase_of(bed, "shift-2") == "Waiting", what="the second run to be Waiting")

    run = get(bed.cluster, "workflowrun", "shift-1", bed.namespace)
    assert run is not None
    status = run["status"]
    (wait,) = status["waitingFor"]
    assert wait["step"] == "release"
    assert wait["message"] == "Release 3 batches"
    assert wait["approvers"] == (
        f"a user with verb approve on workflows.stepline.io/shift in {bed.namespace}: "
        f"stepline approve shift-1 --step release -n {bed.namespace}"
    )
    assert step_status(run, "release")["phase"] == "Waiting"
    [condition] = [c for c in status["conditions"] if c["type"] == "Succeeded"]
    assert (condition["status"], condition["reason"]) == ("Unknown", "WaitingForApproval")
    assert "WaitingForApproval" in reasons(bed, "shift-1")
    assert bed.server.calls("/ship", run_uid=first) == []
    # Invoke refuses it: a person cannot answer within an HTTP request.
    status, answer = post_invoke(
        bed.operator.base_url, bed.namespace, "shift", b"{}", token=bed.token
    )
    assert (status, answer["error"]["reason"], answer["error"]["step"]) == (
        409, "NotInvocable", "release",
    )  # fmt: skip

    # A person with verb approve (the cluster's admin here) decides: the run goes on.
    decided = {
        "apiVersion": "stepline.io/v1alpha1", "kind": "Approval",
        "metadata": {"name": "shift-1-release", "namespace": bed.namespace},
        "spec": {"runRef": "shift-1", "workflowRef": "shift", "step": "release",
                 "decision": "Approve", "reason": "the line lead agreed"},
    }  # fmt: skip
    bed.cluster.apply(decided)
    run = wait_finished(bed, "shift-1", timeout=60)

    assert run["status"]["phase"] == "Succeeded", run["status"]
    release = step_status(run, "release")
    assert release["phase"] == "Succeeded"
    assert release["output"]["decision"] == "Approve"
    assert release["approval"]["approvalName"] == "shift-1-release"
    assert release["approval"]["reason"] == "the line lead agreed"
    assert len(bed.server.calls("/ship", run_uid=first)) == 1
    assert "waitingFor" not in run["status"]


def test_a_parked_run_is_parked_again_by_a_restarted_operator_and_goes_on_when_resumed(
    bed: StepBed, tmp_path: Path
) -> None:
    apply_workflow(bed, "parked", CHAIN)
    create_suspended(bed, "parked-1", "parked")

    bed.operator.kill()
    bed.operator = restart(bed.operator, tmp_path / "restarted.log")
    set_suspend(bed, "parked-1", False)
    run = wait_finished(bed, "parked-1", timeout=60)

    assert run["status"]["phase"] == "Succeeded", run["status"]


HELD = [
    {"name": "plan", "stepRef": "plan"},
    {"name": "release", "dependsOn": ["plan"], "approval": {"message": '"Release?"'}},
    {"name": "ship", "stepRef": "ship", "dependsOn": ["release"]},
]


def approve(bed: StepBed, run: str) -> None:
    bed.cluster.apply({
        "apiVersion": "stepline.io/v1alpha1", "kind": "Approval",
        "metadata": {"name": f"{run}-release", "namespace": bed.namespace},
        "spec": {"runRef": run, "workflowRef": "held", "step": "release",
                 "decision": "Approve", "reason": "agreed"},
    })  # fmt: skip


def test_a_restarted_operator_parks_waiting_runs_from_their_status_and_decisions_wake_them(
    bed: StepBed, tmp_path: Path
) -> None:
    bed.server.answer("/plan", Answer(json={"batches": 2}))
    apply_workflow(bed, "held", HELD)
    for name in ("held-1", "held-2"):
        start_run(bed, name, "held", {})
    for name in ("held-1", "held-2"):
        wait_until(lambda name=name: phase_of(bed, name) == "Waiting", what=f"{name} Waiting")
    before = get(bed.cluster, "workflowrun", "held-1", bed.namespace) or {}

    bed.operator.kill()
    approve(bed, "held-2")  # decided while no operator runs
    bed.operator = restart(bed.operator, tmp_path / "restarted.log")

    decided = wait_finished(bed, "held-2", timeout=60)
    assert decided["status"]["phase"] == "Succeeded", decided["status"]
    labels = {"namespace": bed.namespace, "workflow": "held", "reason": "approval"}
    wait_until(
        lambda: sample(scraped(bed.operator), "stepline_runs_waiting", labels) == 1,
        timeout=30, what="held-1 counted as parked by the new leader",
    )  # fmt: skip
    # Parked from its status: not re-executed, not written.
    after = get(bed.cluster, "workflowrun", "held-1", bed.namespace) or {}
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert len(bed.server.calls("/plan", run_uid=after["metadata"]["uid"])) == 1

    approve(bed, "held-1")
    run = wait_finished(bed, "held-1", timeout=60)

    assert run["status"]["phase"] == "Succeeded", run["status"]
    assert step_status(run, "release")["approval"]["approvalName"] == "held-1-release"
    assert sample(scraped(bed.operator), "stepline_runs_waiting", labels) == 0
