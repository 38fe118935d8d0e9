"""Rerun from the failed step (`spec.rerunOf`, `stepline rerun`) against the real control plane,
the operator running as a process and the steps served by a local HTTP server: a rerun reuses the
steps its source did, calls the failed one under the first run's key with the next attempt
number, executes the definition the source recorded, and succeeds, leaving its source as it was;
each refusal fails the rerun visibly (condition and Event); a rerun whose first checkpoint is
written no longer needs its source, even across an operator restart; and the API server keeps
`rerunOf` immutable and refuses a run that reruns itself.

One namespace, step server and operator serve the module (see stepservices.py). A rerun's calls
carry its root run's uid in their Idempotency-Key, so `calls(path, run_uid=root)` holds the
source's calls and the rerun's together, in order.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.localcluster import wait_until
from tests.integration.stepobjects import API_VERSION, Manifest, condition, events_about, get
from tests.integration.stepservices import (
    StepBed,
    apply_workflow,
    module_step_bed,
    restart,
    start_run,
    step_status,
    wait_finished,
)
from tests.unit.engine.stepservers import Answer

pytestmark = pytest.mark.integration

STEPS = ("order", "pricing", "settlement", "audit", "cancel")
ONE_RETRY = {"limit": 1, "backoff": {"initialSeconds": 0.05, "factor": 1, "maxSeconds": 0.05}}
NO_RETRY = {"limit": 0}


bed = module_step_bed("rerun", STEPS)


def trade_steps(*, settlement: dict[str, Any] | None = None) -> list[Manifest]:
    return [
        {"name": "order", "stepRef": "order"},
        {"name": "pricing", "stepRef": "pricing", "input": '{"orderId": steps.order.output.id}'},
        {"name": "settlement", "stepRef": "settlement", "retry": ONE_RETRY, **(settlement or {})},
    ]


def failed_trade(bed: StepBed, workflow: str, run: str, **settlement: Any) -> str:
    """A Workflow order → pricing → settlement, and a run of it that fails at settlement (503,
    twice); returns the run's uid."""
    bed.server.answer("/order", Answer(json={"id": f"o-{run}"}))
    bed.server.answer("/pricing", lambda got: {"priced": got["orderId"], "amount": 12})
    bed.server.answer("/settlement", Answer(status=503, json={"error": "ledger unavailable"}))
    apply_workflow(bed, workflow, trade_steps(settlement=settlement))
    uid = start_run(bed, run, workflow, {"account": "a-1"})
    source = wait_finished(bed, run)
    assert source["status"]["phase"] == "Failed", source["status"]
    return uid


def stepline_rerun(bed: StepBed, run: str, *more: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stepline", "rerun", run, "-n", bed.namespace,
         "--kubeconfig", str(bed.cluster.kubeconfig), *more],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def create_rerun(bed: StepBed, name: str, workflow: str, run_input: Any, rerun_of: str) -> None:
    bed.cluster.apply({
        "apiVersion": API_VERSION, "kind": "WorkflowRun",
        "metadata": {"name": name, "namespace": bed.namespace},
        "spec": {"workflowRef": workflow, "input": run_input, "rerunOf": rerun_of},
    })  # fmt: skip


def keys_and_attempts(bed: StepBed, path: str, uid: str) -> list[tuple[str, str]]:
    calls = bed.server.calls(path, run_uid=uid)
    return [(c.headers["Idempotency-Key"], c.headers["Stepline-Attempt"]) for c in calls]


def events(bed: StepBed, run: str) -> list[tuple[str, str, str]]:
    found = events_about(bed.cluster, bed.namespace, "WorkflowRun", run)
    return [(e["type"], e["reason"], e["message"]) for e in found]


def test_a_rerun_reuses_the_succeeded_steps_and_calls_the_failed_one_under_the_root_key(
    bed: StepBed,
) -> None:
    uid = failed_trade(bed, "trade", "trade-1")
    # The Workflow is edited after the failure: the rerun still executes what its source ran.
    apply_workflow(bed, "trade", [*trade_steps(), {"name": "audit", "stepRef": "audit"}])
    bed.server.answer("/settlement", lambda got: {"settled": got})

    out = stepline_rerun(bed, "trade-1")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "workflowrun.stepline.io/trade-1-r1 created\n"
    rerun = wait_finished(bed, "trade-1-r1")

    status = rerun["status"]
    assert status["phase"] == "Succeeded", status
    spec = rerun["spec"]
    assert (spec["workflowRef"], spec["input"], spec["rerunOf"]) == (
        "trade", {"account": "a-1"}, "trade-1",
    )  # fmt: skip
    assert status["rerun"] == {"of": "trade-1", "rootUID": uid, "reusedSteps": ["order", "pricing"]}
    assert [step_status(rerun, name).get("reusedFrom") for name in ("order", "pricing")] == [
        "trade-1", "trade-1",
    ]  # fmt: skip
    # The reused steps were called once, by the source; the failed one again, under the root
    # run's key, numbered after the source's two attempts, with pricing's recorded output.
    assert keys_and_attempts(bed, "/order", uid) == [(f"{uid}/order", "1")]
    assert keys_and_attempts(bed, "/pricing", uid) == [(f"{uid}/pricing", "1")]
    assert keys_and_attempts(bed, "/settlement", uid) == [
        (f"{uid}/settlement", "1"), (f"{uid}/settlement", "2"), (f"{uid}/settlement", "3"),
    ]  # fmt: skip
    assert bed.server.calls("/settlement", run_uid=uid)[-1].body == {
        "priced": "o-trade-1", "amount": 12,
    }  # fmt: skip
    assert step_status(rerun, "settlement")["attempts"] == 3
    assert status["output"] == {"settled": {"priced": "o-trade-1", "amount": 12}}
    # The recorded definition, not the edited Workflow: no audit step.
    assert [s["name"] for s in status["steps"]] == ["order", "pricing", "settlement"]
    assert bed.server.calls("/audit", run_uid=uid) == []
    assert ("Normal", "Rerun", "2 steps reused from trade-1; starting at 'settlement'") in events(
        bed, "trade-1-r1"
    )
    # The source is a record: untouched.
    source = get(bed.cluster, "workflowrun", "trade-1", bed.namespace) or {}
    assert source["status"]["phase"] == "Failed"
    assert step_status(source, "settlement")["attempts"] == 2


def refused(bed: StepBed, run: str) -> tuple[Manifest, str]:
    """The refused rerun's Succeeded condition, and the message of its Failed Warning Event."""
    failed = wait_finished(bed, run)
    assert failed["status"]["phase"] == "Failed", failed["status"]
    assert "startedAt" not in failed["status"]
    warning = wait_until(
        lambda: [e for e in events(bed, run) if e[:2] == ("Warning", "Failed")],
        what=f"the Failed Event of {run}",
    )
    return condition(failed, "Succeeded"), warning[0][2]


def test_a_rerun_of_a_run_that_is_not_there_fails_saying_so(bed: StepBed) -> None:
    create_rerun(bed, "ghost-r1", "trade", {"account": "a-1"}, "ghost")

    succeeded, event = refused(bed, "ghost-r1")

    assert (succeeded["status"], succeeded["reason"]) == ("False", "RerunSourceNotFound")
    expected = (
        f"spec.rerunOf: WorkflowRun 'ghost' not found in namespace '{bed.namespace}'; a rerun "
        "starts from a run that still exists"
    )
    assert succeeded["message"] == expected
    assert event == expected


def test_a_rerun_with_another_input_fails_and_calls_nothing(bed: StepBed) -> None:
    uid = failed_trade(bed, "inputs", "inputs-1")
    create_rerun(bed, "inputs-1-r1", "inputs", {"account": "a-2"}, "inputs-1")

    succeeded, event = refused(bed, "inputs-1-r1")

    assert (succeeded["status"], succeeded["reason"]) == ("False", "RerunNotAllowed")
    assert "this run's spec.input differs from run 'inputs-1''s" in succeeded["message"]
    assert event == succeeded["message"]
    assert len(bed.server.calls("/settlement", run_uid=uid)) == 2  # the source's only


def test_a_rerun_of_a_compensated_run_fails_saying_its_outputs_were_undone(bed: StepBed) -> None:
    bed.server.answer("/order", Answer(json={"id": "o-saga"}))
    bed.server.answer("/settlement", Answer(status=409, json={"error": "insufficient funds"}))
    bed.server.answer("/cancel", Answer(json={"cancelled": True}))
    apply_workflow(
        bed, "saga",
        [{"name": "order", "stepRef": "order", "compensation": {"stepRef": "cancel"}},
         {"name": "settlement", "stepRef": "settlement", "retry": NO_RETRY}],
    )  # fmt: skip
    uid = start_run(bed, "saga-1", "saga", {"account": "a-1"})
    source = wait_finished(bed, "saga-1")
    assert source["status"]["compensation"]["phase"] == "Succeeded", source["status"]

    out = stepline_rerun(bed, "saga-1")
    assert out.returncode == 0, out.stderr
    succeeded, event = refused(bed, "saga-1-r1")

    assert (succeeded["status"], succeeded["reason"]) == ("False", "RerunNotAllowed")
    assert "run 'saga-1' ran its compensation" in succeeded["message"]
    assert "start a fresh run" in succeeded["message"]
    assert event == succeeded["message"]
    assert len(bed.server.calls("/order", run_uid=uid)) == 1


def test_deleting_the_source_after_the_reruns_first_checkpoint_changes_nothing(
    bed: StepBed, tmp_path: Path
) -> None:
    uid = failed_trade(bed, "durable-trade", "durable-1", timeoutSeconds=60)
    # The rerun's first call never answers in time: the operator dies while it waits.
    bed.server.answer(
        "/settlement", Answer(json={"late": True}, delay=60), lambda got: {"settled": got}
    )
    out = stepline_rerun(bed, "durable-1")
    assert out.returncode == 0, out.stderr

    def first_checkpoint() -> bool:
        rerun = get(bed.cluster, "workflowrun", "durable-1-r1", bed.namespace) or {}
        return "rerun" in (rerun.get("status") or {})

    wait_until(first_checkpoint, what="the rerun's first checkpoint")
    wait_until(
        lambda: len(bed.server.calls("/settlement", run_uid=uid)) == 3,
        what="the rerun's settlement call",
    )
    bed.cluster.kubectl("delete", "workflowrun", "durable-1", "-n", bed.namespace)
    bed.operator.kill()
    bed.operator = restart(bed.operator, tmp_path / "restarted.log")

    rerun = wait_finished(bed, "durable-1-r1", timeout=60)
    assert rerun["status"]["phase"] == "Succeeded", rerun["status"]
    assert rerun["status"]["rerun"]["reusedSteps"] == ["order", "pricing"]
    # The source's two calls, the rerun's in flight at the kill, and the one after the restart,
    # all under the root run's key. The engine numbers a call that may have been in flight
    # after the attempts recorded before it (not after itself), so the last is 3 again.
    calls = keys_and_attempts(bed, "/settlement", uid)
    assert [key for key, _ in calls] == [f"{uid}/settlement"] * 4
    assert [attempt for _, attempt in calls] == ["1", "2", "3", "3"]
    assert len(bed.server.calls("/order", run_uid=uid)) == 1
    assert len(bed.server.calls("/pricing", run_uid=uid)) == 1
    reasons = [reason for _, reason, _ in events(bed, "durable-1-r1")]
    assert reasons.count("Rerun") == 1
    assert "Failed" not in reasons


def test_rerun_of_never_changes_and_a_run_cannot_rerun_itself(bed: StepBed) -> None:
    itself = {
        "apiVersion": API_VERSION, "kind": "WorkflowRun",
        "metadata": {"name": "itself", "namespace": bed.namespace},
        "spec": {"workflowRef": "absent", "rerunOf": "itself"},
    }  # fmt: skip
    out = bed.cluster.apply(itself, check=False)
    assert out.returncode != 0
    assert "spec.rerunOf: Invalid value" in out.stderr
    assert "a run cannot rerun itself" in out.stderr
    assert get(bed.cluster, "workflowrun", "itself", bed.namespace) is None

    # A plain run of a Workflow that does not exist waits (Pending); a rerun of a run that does
    # not exist fails at once: either way nothing is called.
    create_rerun(bed, "waiting-r1", "absent", {}, "waiting")
    start_run(bed, "plain", "absent", {})
    for run, change in (("waiting-r1", {"rerunOf": "another"}), ("waiting-r1", {"rerunOf": None}),
                        ("plain", {"rerunOf": "waiting"})):  # fmt: skip
        out = bed.cluster.kubectl(
            "patch", "workflowrun", run, "-n", bed.namespace, "--type=merge",
            "-p", json.dumps({"spec": change}), check=False,
        )  # fmt: skip
        assert out.returncode != 0, (run, change)
        assert "spec.rerunOf: Invalid value" in out.stderr
        assert "rerunOf is immutable: start a new run instead" in out.stderr
    stored = get(bed.cluster, "workflowrun", "waiting-r1", bed.namespace) or {}
    assert stored["spec"]["rerunOf"] == "waiting"
