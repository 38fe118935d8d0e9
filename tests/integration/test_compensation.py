"""Compensation through the operator, on the real control plane: a run whose later step fails
undoes the step that succeeded and ends Failed saying so; a compensation is retried under one
key; one that keeps failing stops the undoing (CompensationFailed, the rest Skipped); a
cancelled run is undone; and the operator killed while the second of two compensations is in
flight goes on after a restart without calling the first again.

One namespace, step server and operator serve the module (see stepservices.py); each test reads
only the calls of its own run (by Idempotency-Key).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.localcluster import wait_until
from tests.integration.stepobjects import events_about, get, merge_patch
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

STEPS = ("order", "settle", "cancel", "reserve", "release", "pay")
NO_RETRY = {"limit": 0}
QUICK = {"limit": 2, "backoff": {"initialSeconds": 0.1, "maxSeconds": 0.1}}


bed = module_step_bed("saga", STEPS)


def trade(bed: StepBed, name: str, *, cancel_retry: dict[str, object] = QUICK) -> None:
    apply_workflow(
        bed, name,
        [{"name": "order", "stepRef": "order",
          "compensation": {"stepRef": "cancel", "retry": cancel_retry,
                           "input": '{"orderId": step.output.orderId, "reason": "not settled"}'}},
         {"name": "settle", "stepRef": "settle", "retry": NO_RETRY}],
    )  # fmt: skip


def test_a_trade_that_cannot_settle_cancels_its_order_and_ends_failed_saying_so(
    bed: StepBed,
) -> None:
    bed.server.answer("/order", Answer(json={"orderId": "o-1", "status": "accepted"}))
    bed.server.answer("/settle", Answer(status=409, json={"error": "insufficient funds"}))
    bed.server.answer("/cancel", Answer(json={"status": "cancelled"}))
    trade(bed, "trade")

    uid = start_run(bed, "trade-1", "trade", {})
    run = wait_finished(bed, "trade-1")

    status = run["status"]
    assert status["phase"] == "Failed", status
    [condition] = [c for c in status["conditions"] if c["type"] == "Succeeded"]
    assert condition["reason"] == "StepFailed"
    assert condition["message"].endswith("; undone: order")
    assert status["compensation"]["phase"] == "Succeeded"
    assert status["compensation"]["cause"] == "StepFailed"
    assert (status["compensation"]["steps"], status["compensation"]["succeeded"]) == (1, 1)
    undo = step_status(run, "order")["compensation"]
    assert (undo["stepRef"], undo["phase"], undo["order"], undo["attempts"]) == (
        "cancel", "Succeeded", 1, 1,
    )  # fmt: skip
    (call,) = bed.server.calls("/cancel", run_uid=uid)
    assert call.body == {"orderId": "o-1", "reason": "not settled"}
    assert call.headers["Idempotency-Key"] == f"{uid}/order/compensation"
    reasons = [
        e["reason"] for e in events_about(bed.cluster, bed.namespace, "WorkflowRun", "trade-1")
    ]
    assert {"StepFailed", "Compensating", "Compensated", "Failed"} <= set(reasons)


def test_a_compensation_answering_503_is_retried_under_one_key(bed: StepBed) -> None:
    bed.server.answer("/order", Answer(json={"orderId": "o-2"}))
    bed.server.answer("/settle", Answer(status=400, json={}))
    bed.server.answer("/cancel", Answer(status=503, json={}), Answer(json={}))
    trade(bed, "retried")

    uid = start_run(bed, "retried-1", "retried", {})
    run = wait_finished(bed, "retried-1")

    assert run["status"]["compensation"]["phase"] == "Succeeded", run["status"]
    calls = bed.server.calls("/cancel", run_uid=uid)
    assert [c.headers["Idempotency-Key"] for c in calls] == [f"{uid}/order/compensation"] * 2
    assert [c.headers["Stepline-Attempt"] for c in calls] == ["1", "2"]


def test_a_compensation_that_keeps_failing_stops_the_undoing_and_says_where(
    bed: StepBed,
) -> None:
    bed.server.answer("/reserve", Answer(json={"reservation": "r-1"}))
    bed.server.answer("/order", Answer(json={"orderId": "o-3"}))
    bed.server.answer("/pay", Answer(status=402, json={"error": "card declined"}))
    bed.server.answer("/cancel", Answer(status=500, json={"error": "order already shipped"}))
    apply_workflow(
        bed, "stuck",
        [{"name": "reserve", "stepRef": "reserve", "compensation": {"stepRef": "release"}},
         {"name": "order", "stepRef": "order",
          "compensation": {"stepRef": "cancel", "retry": NO_RETRY}},
         {"name": "pay", "stepRef": "pay", "retry": NO_RETRY}],
    )  # fmt: skip

    uid = start_run(bed, "stuck-1", "stuck", {})
    run = wait_finished(bed, "stuck-1")

    status = run["status"]
    assert status["phase"] == "Failed", status
    [condition] = [c for c in status["conditions"] if c["type"] == "Succeeded"]
    assert condition["reason"] == "CompensationFailed"
    assert "compensation failed at step 'order'" in condition["message"]
    order_undo = step_status(run, "order")["compensation"]
    assert order_undo["phase"] == "Failed"
    assert order_undo["error"]["httpStatus"] == 500
    reserve_undo = step_status(run, "reserve")["compensation"]
    assert (reserve_undo["phase"], reserve_undo["reason"]) == (
        "Skipped", "EarlierCompensationFailed",
    )  # fmt: skip
    assert bed.server.calls("/release", run_uid=uid) == []
    reasons = [
        e["reason"] for e in events_about(bed.cluster, bed.namespace, "WorkflowRun", "stuck-1")
    ]
    assert "CompensationFailed" in reasons


def test_a_cancelled_run_undoes_what_it_did(bed: StepBed) -> None:
    bed.server.answer("/reserve", Answer(json={"reservation": "r-2"}))
    bed.server.answer("/pay", Answer(json={"paid": True}, delay=3))
    bed.server.answer("/release", Answer(json={"released": True}))
    apply_workflow(
        bed, "cancelled",
        [{"name": "reserve", "stepRef": "reserve", "compensation": {"stepRef": "release"}},
         {"name": "pay", "stepRef": "pay", "retry": NO_RETRY, "timeoutSeconds": 10},
         {"name": "settle", "stepRef": "settle"}],
    )  # fmt: skip
    uid = start_run(bed, "cancelled-1", "cancelled", {})
    wait_until(lambda: bed.server.calls("/pay", run_uid=uid), what="the pay step to be called")

    merge_patch(
        bed.cluster, "workflowrun", "cancelled-1", bed.namespace, {"spec": {"cancel": True}}
    )
    run = wait_finished(bed, "cancelled-1")

    assert run["status"]["phase"] == "Cancelled", run["status"]
    assert run["status"]["compensation"]["cause"] == "Cancelled"
    # pay's call was in flight: it ended and succeeded, but has no compensation; reserve is undone.
    assert [c.body for c in bed.server.calls("/release", run_uid=uid)] == [{"reservation": "r-2"}]
    assert bed.server.calls("/settle", run_uid=uid) == []


def test_the_operator_killed_mid_compensation_goes_on_without_undoing_anything_twice(
    bed: StepBed, tmp_path: Path
) -> None:
    bed.server.answer("/reserve", Answer(json={"reservation": "r-3"}))
    bed.server.answer("/order", Answer(json={"orderId": "o-4"}))
    bed.server.answer("/pay", Answer(status=402, json={"error": "card declined"}))
    bed.server.answer("/cancel", Answer(json={"cancelled": True}))
    # The second undo (reserve's, after order's) never answers in time: the operator dies.
    bed.server.answer("/release", Answer(json={"late": True}, delay=60), Answer(json={}))
    apply_workflow(
        bed, "durable-saga",
        [{"name": "reserve", "stepRef": "reserve",
          "compensation": {"stepRef": "release", "timeoutSeconds": 60}},
         {"name": "order", "stepRef": "order", "compensation": {"stepRef": "cancel"}},
         {"name": "pay", "stepRef": "pay", "retry": NO_RETRY}],
    )  # fmt: skip
    uid = start_run(bed, "durable-saga-1", "durable-saga", {})

    def compensating() -> bool:
        run = get(bed.cluster, "workflowrun", "durable-saga-1", bed.namespace) or {}
        status = run.get("status") or {}
        steps = {s["name"]: s for s in status.get("steps") or []}
        undo = (steps.get("reserve") or {}).get("compensation") or {}
        return status.get("phase") == "Compensating" and undo.get("phase") == "Running"

    wait_until(compensating, what="the run to checkpoint the second compensation as running")
    wait_until(lambda: bed.server.calls("/release", run_uid=uid), what="the second undo's call")
    bed.operator.kill()
    bed.operator = restart(bed.operator, tmp_path / "restarted.log")

    run = wait_finished(bed, "durable-saga-1", timeout=60)

    status = run["status"]
    assert status["phase"] == "Failed", status
    assert status["compensation"]["phase"] == "Succeeded"
    [condition] = [c for c in status["conditions"] if c["type"] == "Succeeded"]
    assert condition["message"].endswith("; undone: order, reserve")
    assert len(bed.server.calls("/cancel", run_uid=uid)) == 1  # undone before the crash: once
    releases = bed.server.calls("/release", run_uid=uid)
    assert [c.headers["Idempotency-Key"] for c in releases] == [f"{uid}/reserve/compensation"] * 2
    assert [c.headers["Stepline-Attempt"] for c in releases] == ["1", "2"]
    assert step_status(run, "pay")["phase"] == "Failed"  # the records kept through the restart
