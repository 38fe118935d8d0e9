"""Every WorkflowRun the API server admits either runs or fails visibly, and a run resumes from
its checkpoint when the API server goes away mid-run for longer than the leader may write
without renewing its Lease: against the real control plane, the operator as a process and real
step servers.

The outage test kills the cluster's kube-apiserver and brings it back with hack/cluster-up.sh,
as a user would; it runs last in this module.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.integration.localcluster import wait_until
from tests.integration.stepobjects import Manifest, condition, events_about, get, wait_event
from tests.integration.stepservices import (
    StepBed,
    apply_workflow,
    module_step_bed,
    start_run,
    step_status,
    wait_finished,
)
from tests.unit.engine.stepservers import Answer

pytestmark = pytest.mark.integration

STEPS = ("echo", "hold", "answer")
# The API server stays down this long: past the 10 s after which kube-controller-manager, which
# cannot renew its lease, gives up and exits.
OUTAGE_SECONDS = 12


bed = module_step_bed("admitted", STEPS)


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def failure_of(bed: StepBed, name: str) -> tuple[Manifest, Manifest]:
    """The finished run (which must have failed) and its Succeeded condition."""
    run = wait_finished(bed, name)
    assert run["status"]["phase"] == "Failed", run["status"]
    assert run["status"].get("finishedAt")
    return run, condition(run, "Succeeded")


@pytest.mark.parametrize(
    ("name", "run_input", "reason", "says"),
    [
        ("too-large", {"pad": "x" * 70_000}, "InputTooLarge", "at most 65536 are allowed"),
        ("too-deep", nested(100), "InvalidRun", "more than 64 deep"),
    ],
)
def test_a_run_the_api_admits_but_the_operator_cannot_execute_fails_with_its_reason_and_event(
    bed: StepBed, name: str, run_input: Any, reason: str, says: str
) -> None:
    apply_workflow(bed, "plain", [{"name": "only", "stepRef": "echo"}])
    uid = start_run(bed, name, "plain", run_input)

    _, succeeded = failure_of(bed, name)
    assert succeeded["status"] == "False"
    assert succeeded["reason"] == reason
    assert says in succeeded["message"]
    assert "spec.input" in succeeded["message"]
    event = wait_event(bed.cluster, bed.namespace, "WorkflowRun", name, reason="Failed")
    assert says in event["message"]
    assert bed.server.calls("/echo", run_uid=uid) == []


def test_a_run_nested_thousands_deep_fails_and_the_runs_beside_it_still_run(
    bed: StepBed,
) -> None:
    # The API server admits 10,000 levels; the operator's own JSON reading must not choke on it.
    deep = '{"a":' * 5_000 + "{}" + "}" * 5_000
    manifest = (
        '{"apiVersion": "stepline.io/v1alpha1", "kind": "WorkflowRun", "metadata": {"name": '
        f'"abyss", "namespace": "{bed.namespace}"}}, "spec": {{"workflowRef": "plain", '
        f'"input": {deep}}}}}'
    )
    apply_workflow(bed, "plain", [{"name": "only", "stepRef": "echo"}])
    bed.cluster.kubectl("create", "-f", "-", stdin=manifest)
    start_run(bed, "beside", "plain", {"n": 1})

    # Read through jsonpath: Python's own json cannot read the object back, the test neither.
    fields = "{.status.phase}|{.status.conditions[0].reason}|{.status.conditions[0].message}"
    phase, reason, message = wait_until(
        lambda: (
            (
                out := bed.cluster.kubectl(
                    "get", "workflowrun", "abyss", "-n", bed.namespace, "-o", f"jsonpath={fields}"
                ).stdout.split("|")
            )[0]
            and out
        ),
        what="the deep run to fail",
    )
    assert (phase, reason) == ("Failed", "InvalidRun")
    assert "more than 64 deep" in message
    assert wait_finished(bed, "beside")["status"]["phase"] == "Succeeded"


def test_a_step_answering_json_the_engine_cannot_use_fails_the_run_once_naming_why(
    bed: StepBed,
) -> None:
    bed.server.answer("/answer", Answer(text='{"name": "\\ud800"}'))
    apply_workflow(bed, "surrogate", [{"name": "reply", "stepRef": "answer"}])
    uid = start_run(bed, "surrogate-1", "surrogate", {})

    run, succeeded = failure_of(bed, "surrogate-1")
    record = step_status(run, "reply")
    assert record["phase"] == "Failed"
    assert record["error"]["reason"] == "InvalidResponse"
    assert "not usable JSON" in record["error"]["message"]
    assert "surrogate" in record["error"]["message"]
    assert succeeded["reason"] == "StepFailed"
    assert len(bed.server.calls("/answer", run_uid=uid)) == 1


def test_a_run_of_a_workflow_with_a_dependency_cycle_fails_with_the_workflows_reason(
    bed: StepBed,
) -> None:
    bed.cluster.apply(
        {
            "apiVersion": "stepline.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"name": "loop", "namespace": bed.namespace},
            "spec": {
                "steps": [
                    {"name": "a", "stepRef": "echo", "dependsOn": ["b"]},
                    {"name": "b", "stepRef": "echo", "dependsOn": ["a"]},
                ]
            },
        }
    )
    workflow = wait_until(
        lambda: (
            (w := get(bed.cluster, "workflow", "loop", bed.namespace))
            and condition(w, "Ready").get("reason") == "DependencyCycle"
            and w
        ),
        what="the Workflow to report its cycle",
    )
    start_run(bed, "loop-1", "loop", {})

    _, succeeded = failure_of(bed, "loop-1")
    assert succeeded["reason"] == condition(workflow, "Ready")["reason"] == "DependencyCycle"


def test_an_api_server_outage_past_the_fence_resumes_from_the_checkpoint_under_the_same_keys(
    bed: StepBed,
) -> None:
    """An outage longer than the renew deadline: the operator cannot renew its Lease, so it
    stops leading and writing at its fence, its run tasks cancelled. Back in the lead, it resumes
    the run from the checkpoint the API server holds: the step that answered during the outage
    (its end never written) is called again under the same Idempotency-Key; the step before it,
    checkpointed, is not."""
    bed.server.answer("/hold", Answer(json={"held": True}, delay=3))
    apply_workflow(
        bed, "outage",
        [{"name": "first", "stepRef": "echo"},
         {"name": "hold", "stepRef": "hold", "timeoutSeconds": 10},
         {"name": "last", "stepRef": "echo"}],
    )  # fmt: skip
    uid = start_run(bed, "outage-1", "outage", {"n": 1})
    checkpoint = wait_until(
        lambda: (
            (r := get(bed.cluster, "workflowrun", "outage-1", bed.namespace))
            and (r.get("status") or {}).get("currentStep") == "hold"
            and r
        ),
        what="the checkpoint after the first step",
    )
    started_at = checkpoint["status"]["startedAt"]

    bed.cluster.kill_component("kube-apiserver")
    try:
        # The hold step answers while the API server is down: its checkpoint cannot be written.
        time.sleep(OUTAGE_SECONDS)
    finally:
        bed.cluster.restore()

    run = wait_finished(bed, "outage-1", timeout=120)
    assert run["status"]["phase"] == "Succeeded", run["status"]
    assert run["status"]["startedAt"] == started_at
    calls = {
        step: [c.headers["Idempotency-Key"] for c in bed.server.calls(f"/{path}", run_uid=uid)]
        for step, path in (("first", "echo"), ("hold", "hold"))
    }
    assert calls["first"] == [f"{uid}/first", f"{uid}/last"]
    assert set(calls["hold"]) == {f"{uid}/hold"}
    assert len(calls["hold"]) == 2  # its answer in the outage was not written: called again
    assert [step_status(run, s)["attempts"] for s in ("first", "last")] == [1, 1]
    assert step_status(run, "hold")["attempts"] == 2  # numbered after the interrupted one
    assert "could not write its status" in bed.operator.log_tail(400)
    reasons = [
        e["reason"] for e in events_about(bed.cluster, bed.namespace, "WorkflowRun", "outage-1")
    ]
    assert reasons.count("Succeeded") == 1
