"""WorkflowRuns against the real control plane, the operator running as a process and the steps
served by real local HTTP servers: data flows from step to step as the Workflow says, failures
are retried or not as the policy says and named in the status, `when` skips, `spec.cancel`
stops a run, Events tell the story, and a run survives the operator being killed mid-step.

One namespace, step server and operator serve the whole module (see stepservices.py); each test
scripts its own steps and reads only the calls of its own run (by Idempotency-Key).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.integration.localcluster import wait_until
from tests.integration.stepobjects import (
    Manifest,
    condition,
    events_about,
    get,
    merge_patch,
    wait_event,
)
from tests.integration.stepservices import (
    QUICK_RETRY,
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

STEPS = (
    "validate", "score", "order", "flaky", "sluggish", "rejecting", "echo", "slow",
    "unavailable", "hold",
)  # fmt: skip
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-[0-9a-f]{16}-01$")


bed = module_step_bed("runs", STEPS)


def test_a_three_step_run_passes_each_step_the_data_the_workflow_says(bed: StepBed) -> None:
    bed.server.answer("/validate", lambda user: {"risk": "low", "checked": user["user"]["name"]})
    bed.server.answer("/score", lambda verdict: {"score": 0.9 if verdict["risk"] == "low" else 0})
    bed.server.answer(
        "/order", lambda order: {"accepted": order["score"] > 0.5, "for": order["user"]["name"]}
    )
    apply_workflow(
        bed, "trade",
        [
            {"name": "validate", "stepRef": "validate"},
            {"name": "score", "stepRef": "score"},
            {
                "name": "order", "stepRef": "order",
                "input": '{"user": input.user, "amount": input.amount, '
                '"risk": steps.validate.output.risk, "score": steps.score.output.score}',
            },
        ],
        output='{"order": steps.order.output, "risk": steps.validate.output.risk}',
    )  # fmt: skip
    run_input = {"user": {"name": "ada", "age": 36}, "amount": 120}
    uid = start_run(bed, "trade-1", "trade", run_input)

    run = wait_finished(bed, "trade-1")

    assert run["status"]["phase"] == "Succeeded", run["status"]
    (validate,) = bed.server.calls("/validate", run_uid=uid)
    (score,) = bed.server.calls("/score", run_uid=uid)
    (order,) = bed.server.calls("/order", run_uid=uid)
    assert validate.body == run_input
    assert score.body == {"risk": "low", "checked": "ada"}
    assert order.body == {
        "user": {"name": "ada", "age": 36}, "amount": 120, "risk": "low", "score": 0.9,
    }  # fmt: skip
    assert run["status"]["output"] == {"order": {"accepted": True, "for": "ada"}, "risk": "low"}
    for name, output in [
        ("validate", {"risk": "low", "checked": "ada"}),
        ("score", {"score": 0.9}),
        ("order", {"accepted": True, "for": "ada"}),
    ]:
        record = step_status(run, name)
        assert (record["phase"], record["attempts"], record["output"]) == ("Succeeded", 1, output)
    assert condition(run, "Succeeded")["status"] == "True"
    # Every call carries the step's idempotency key, its attempt, its deadline and the run's trace.
    traces = set()
    for name, call in [("validate", validate), ("score", score), ("order", order)]:
        assert call.headers["Idempotency-Key"] == f"{uid}/{name}"
        assert call.headers["Stepline-Attempt"] == "1"
        assert 0 < float(call.headers["Stepline-Deadline"]) <= 2
        match = TRACEPARENT.match(call.headers["traceparent"])
        assert match is not None, call.headers["traceparent"]
        traces.add(match.group(1))
    assert len(traces) == 1


def test_a_step_answering_500_then_200_is_retried_under_the_same_key_and_succeeds(
    bed: StepBed,
) -> None:
    bed.server.answer("/flaky", Answer(500, json={"error": "try again"}), lambda _: {"ok": True})
    apply_workflow(bed, "retrying", [{"name": "charge", "stepRef": "flaky"}])
    uid = start_run(bed, "retrying-1", "retrying", {"amount": 5})

    run = wait_finished(bed, "retrying-1")

    assert run["status"]["phase"] == "Succeeded", run["status"]
    record = step_status(run, "charge")
    assert (record["phase"], record["attempts"], record["output"]) == ("Succeeded", 2, {"ok": True})
    calls = bed.server.calls("/flaky", run_uid=uid)
    assert [c.headers["Stepline-Attempt"] for c in calls] == ["1", "2"]
    assert {c.headers["Idempotency-Key"] for c in calls} == {f"{uid}/charge"}
    assert [c.body for c in calls] == [{"amount": 5}, {"amount": 5}]


def test_a_step_that_always_times_out_fails_the_run_naming_the_step(bed: StepBed) -> None:
    bed.server.answer("/sluggish", Answer(json={"late": True}, delay=5))
    apply_workflow(
        bed, "stalling",
        [{"name": "wait", "stepRef": "sluggish", "timeoutSeconds": 1,
          "retry": {**QUICK_RETRY, "limit": 1}},
         {"name": "never", "stepRef": "echo"}],
    )  # fmt: skip
    uid = start_run(bed, "stalling-1", "stalling", {})

    run = wait_finished(bed, "stalling-1")

    assert run["status"]["phase"] == "Failed", run["status"]
    record = step_status(run, "wait")
    assert (record["phase"], record["attempts"]) == ("Failed", 2)
    assert record["error"]["reason"] == "Timeout"
    assert "'wait'" in record["error"]["message"]
    failed = condition(run, "Succeeded")
    assert (failed["status"], failed["reason"]) == ("False", "TimedOut")
    assert "'wait'" in failed["message"]
    assert step_status(run, "never").get("phase") != "Succeeded"
    assert bed.server.calls("/echo", run_uid=uid) == []
    assert len(bed.server.calls("/sluggish", run_uid=uid)) == 2
    assert (
        wait_event(bed.cluster, bed.namespace, "WorkflowRun", "stalling-1", reason="Failed")["type"]
        == "Warning"
    )
    assert (
        "'wait'"
        in wait_event(bed.cluster, bed.namespace, "WorkflowRun", "stalling-1", reason="StepFailed")[
            "message"
        ]
    )


def test_a_client_error_is_not_retried_and_fails_the_run_with_its_status(bed: StepBed) -> None:
    bed.server.answer("/rejecting", Answer(422, json={"error": "amount must be positive"}))
    apply_workflow(bed, "rejected", [{"name": "check", "stepRef": "rejecting"}])
    uid = start_run(bed, "rejected-1", "rejected", {"amount": -1})

    run = wait_finished(bed, "rejected-1")

    assert run["status"]["phase"] == "Failed", run["status"]
    record = step_status(run, "check")
    assert (record["phase"], record["attempts"]) == ("Failed", 1)
    error = record["error"]
    assert (error["reason"], error["httpStatus"]) == ("ClientError", 422)
    assert "amount must be positive" in error["body"]
    assert "422" in error["message"]
    assert condition(run, "Succeeded")["reason"] == "StepFailed"
    assert len(bed.server.calls("/rejecting", run_uid=uid)) == 1


def test_a_step_whose_when_is_false_is_skipped_and_the_next_gets_the_last_output(
    bed: StepBed,
) -> None:
    apply_workflow(
        bed, "skipping",
        [{"name": "first", "stepRef": "echo", "input": '{"from": "first"}'},
         {"name": "audit", "stepRef": "echo", "when": "input.amount > 1000"},
         {"name": "last", "stepRef": "echo"}],
    )  # fmt: skip
    uid = start_run(bed, "skipping-1", "skipping", {"amount": 10})

    run = wait_finished(bed, "skipping-1")

    assert run["status"]["phase"] == "Succeeded", run["status"]
    audit = step_status(run, "audit")
    assert (audit["phase"], audit["attempts"]) == ("Skipped", 0)
    assert "output" not in audit or audit["output"] is None
    calls = bed.server.calls("/echo", run_uid=uid)
    assert [c.headers["Idempotency-Key"] for c in calls] == [f"{uid}/first", f"{uid}/last"]
    assert calls[1].body == {"from": "first"}
    assert "1 skipped" in condition(run, "Succeeded")["message"]


def test_cancelling_a_run_during_a_slow_step_stops_it_before_the_next_step(
    bed: StepBed,
) -> None:
    bed.server.answer("/slow", Answer(json={"slow": True}, delay=1.5))
    apply_workflow(
        bed, "slowly", [{"name": "slow", "stepRef": "slow"}, {"name": "after", "stepRef": "echo"}]
    )
    uid = start_run(bed, "slowly-1", "slowly", {})
    wait_until(lambda: bed.server.calls("/slow", run_uid=uid), what="the slow step to be called")

    merge_patch(bed.cluster, "workflowrun", "slowly-1", bed.namespace, {"spec": {"cancel": True}})

    run = wait_finished(bed, "slowly-1")
    assert run["status"]["phase"] == "Cancelled", run["status"]
    cancelled = condition(run, "Succeeded")
    assert (cancelled["status"], cancelled["reason"]) == ("False", "Cancelled")
    assert step_status(run, "after").get("phase") != "Succeeded"
    assert bed.server.calls("/echo", run_uid=uid) == []
    wait_event(bed.cluster, bed.namespace, "WorkflowRun", "slowly-1", reason="Cancelled")


def test_cancelling_a_run_waiting_to_retry_ends_it_without_waiting_out_the_backoff(
    bed: StepBed,
) -> None:
    bed.server.answer("/unavailable", Answer(503, json={"error": "down"}))
    patient = {"limit": 5, "backoff": {"initialSeconds": 60, "maxSeconds": 60}}
    apply_workflow(bed, "patient", [{"name": "call", "stepRef": "unavailable", "retry": patient}])
    uid = start_run(bed, "patient-1", "patient", {})
    wait_until(lambda: bed.server.calls("/unavailable", run_uid=uid), what="the first attempt")

    began = time.monotonic()
    merge_patch(bed.cluster, "workflowrun", "patient-1", bed.namespace, {"spec": {"cancel": True}})

    run = wait_finished(bed, "patient-1", timeout=20)
    assert time.monotonic() - began < 20  # far less than the 60 s backoff
    assert run["status"]["phase"] == "Cancelled", run["status"]
    assert step_status(run, "call")["phase"] == "Cancelled"
    assert len(bed.server.calls("/unavailable", run_uid=uid)) == 1


def test_a_quick_run_shows_its_start_in_status_and_posts_only_its_final_event(
    bed: StepBed,
) -> None:
    apply_workflow(bed, "noted", [{"name": "only", "stepRef": "echo"}])
    start_run(bed, "noted-1", "noted", {"hello": "world"})

    run = wait_finished(bed, "noted-1")

    assert run["status"]["phase"] == "Succeeded", run["status"]
    assert run["status"]["startedAt"] <= run["status"]["finishedAt"]
    succeeded = wait_event(bed.cluster, bed.namespace, "WorkflowRun", "noted-1", reason="Succeeded")
    assert succeeded["type"] == "Normal"
    reasons = [
        e["reason"] for e in events_about(bed.cluster, bed.namespace, "WorkflowRun", "noted-1")
    ]
    assert "Started" not in reasons


def test_a_run_whose_first_step_is_slow_shows_running_and_posts_a_started_event(
    bed: StepBed,
) -> None:
    bed.server.answer("/sluggish", Answer(json={"late": True}, delay=4))
    apply_workflow(
        bed, "unhurried", [{"name": "wait", "stepRef": "sluggish", "timeoutSeconds": 10}]
    )
    start_run(bed, "unhurried-1", "unhurried", {})

    def running() -> Manifest | None:
        run = get(bed.cluster, "workflowrun", "unhurried-1", bed.namespace)
        return run if run and run.get("status", {}).get("phase") == "Running" else None

    shown = wait_until(running, timeout=10, what="the run to show Running during its first step")
    assert shown["status"]["startedAt"]
    assert condition(shown, "Succeeded")["reason"] == "Running"
    started = wait_event(bed.cluster, bed.namespace, "WorkflowRun", "unhurried-1", reason="Started")
    assert started["type"] == "Normal"
    assert "unhurried" in started["message"]
    assert wait_finished(bed, "unhurried-1")["status"]["phase"] == "Succeeded"


def test_a_run_over_its_workflow_time_limit_fails_timed_out_naming_the_step(
    bed: StepBed,
) -> None:
    bed.server.answer("/slow", Answer(json={"slow": True}, delay=5))
    apply_workflow(
        bed, "limited",
        [{"name": "first", "stepRef": "echo"},
         {"name": "long", "stepRef": "slow", "timeoutSeconds": 30}],
        timeoutSeconds=2,
    )  # fmt: skip
    began = time.monotonic()
    uid = start_run(bed, "limited-1", "limited", {})

    run = wait_finished(bed, "limited-1")

    assert time.monotonic() - began < 5  # the step's own 30 s never came into it
    assert run["status"]["phase"] == "Failed", run["status"]
    failed = condition(run, "Succeeded")
    assert (failed["status"], failed["reason"]) == ("False", "TimedOut")
    assert "'long'" in failed["message"]
    assert step_status(run, "first")["phase"] == "Succeeded"
    assert step_status(run, "long")["phase"] == "Failed"
    assert len(bed.server.calls("/slow", run_uid=uid)) == 1


def test_a_checkpoint_interval_writes_the_steps_finished_within_it_together(
    bed: StepBed,
) -> None:
    bed.server.answer("/slow", Answer(json={"slow": True}, delay=1.5))
    bed.server.answer("/sluggish", Answer(json={"late": True}, delay=3))
    apply_workflow(
        bed, "batched",
        [{"name": "a", "stepRef": "slow"}, {"name": "b", "stepRef": "echo"},
         {"name": "c", "stepRef": "sluggish", "timeoutSeconds": 10}],
        checkpointIntervalSeconds=60,
    )  # fmt: skip
    uid = start_run(bed, "batched-1", "batched", {"n": 1})
    wait_until(lambda: bed.server.calls("/sluggish", run_uid=uid), what="step c to be called")

    # a and b are done, but within the interval: their checkpoint is still held.
    during = get(bed.cluster, "workflowrun", "batched-1", bed.namespace)
    assert during is not None
    assert during["status"]["phase"] == "Running"  # the start was written after its grace
    done = [r["name"] for r in during["status"].get("steps", []) if r["phase"] == "Succeeded"]
    assert done == []

    run = wait_finished(bed, "batched-1")
    assert run["status"]["phase"] == "Succeeded", run["status"]
    assert [step_status(run, name)["phase"] for name in "abc"] == ["Succeeded"] * 3
    assert run["status"]["output"] == {"late": True}


def test_a_run_survives_the_operator_killed_mid_step_and_the_step_is_recalled_with_its_key(
    bed: StepBed, tmp_path: Path
) -> None:
    # The first call never answers in time: the operator dies while waiting for it.
    bed.server.answer("/hold", Answer(json={"late": True}, delay=60), lambda got: {"held": got})
    apply_workflow(
        bed, "durable",
        [{"name": "first", "stepRef": "echo", "input": '{"n": input.n + 1}'},
         {"name": "hold", "stepRef": "hold", "timeoutSeconds": 60},
         {"name": "last", "stepRef": "echo"}],
    )  # fmt: skip
    uid = start_run(bed, "durable-1", "durable", {"n": 1})
    wait_until(lambda: bed.server.calls("/hold", run_uid=uid), what="the hold step to be called")
    checkpoint = get(bed.cluster, "workflowrun", "durable-1", bed.namespace)
    assert checkpoint is not None
    assert step_status(checkpoint, "first")["phase"] == "Succeeded"

    bed.operator.kill()
    bed.operator = restart(bed.operator, tmp_path / "restarted.log")

    run = wait_finished(bed, "durable-1")
    assert run["status"]["phase"] == "Succeeded", run["status"]
    assert run["status"]["output"] == {"held": {"n": 2}}
    holds = bed.server.calls("/hold", run_uid=uid)
    assert [c.headers["Idempotency-Key"] for c in holds] == [f"{uid}/hold"] * 2
    # The call in flight when the operator died counts: the repeated one is attempt 2, not 1.
    assert [c.headers["Stepline-Attempt"] for c in holds] == ["1", "2"]
    assert [c.body for c in holds] == [{"n": 2}, {"n": 2}]
    # The step finished before the crash is not called again; the one after it runs once.
    assert len(bed.server.calls("/echo", run_uid=uid)) == 2
    assert [c.headers["Idempotency-Key"] for c in bed.server.calls("/echo", run_uid=uid)] == [
        f"{uid}/first", f"{uid}/last",
    ]  # fmt: skip
    assert step_status(run, "first")["attempts"] == 1
    # The restarted operator followed the run once it knew the Workflow: it never said it missing.
    events = events_about(bed.cluster, bed.namespace, "WorkflowRun", "durable-1")
    reasons = {event["reason"] for event in events}
    assert "WorkflowNotFound" not in reasons, reasons
    assert "Succeeded" in reasons


def test_a_run_resumed_after_its_workflow_changed_runs_the_definition_it_started_with(
    bed: StepBed, tmp_path: Path
) -> None:
    bed.server.answer("/hold", Answer(json={"late": True}, delay=60), lambda got: {"held": got})
    steps = [
        {"name": "first", "stepRef": "echo"},
        {"name": "hold", "stepRef": "hold", "timeoutSeconds": 60},
        {"name": "last", "stepRef": "echo"},
    ]
    apply_workflow(bed, "pinned", steps)
    uid = start_run(bed, "pinned-1", "pinned", {"n": 1})
    wait_until(lambda: bed.server.calls("/hold", run_uid=uid), what="the hold step to be called")
    bed.operator.kill()
    # Edited while no operator runs: its last step now calls another service.
    changed = [*steps[:2], {"name": "last", "stepRef": "score"}]
    bed.cluster.apply({
        "apiVersion": "stepline.io/v1alpha1", "kind": "Workflow",
        "metadata": {"name": "pinned", "namespace": bed.namespace}, "spec": {"steps": changed},
    })  # fmt: skip
    workflow = get(bed.cluster, "workflow", "pinned", bed.namespace)
    assert workflow is not None
    assert workflow["metadata"]["generation"] == 2
    bed.operator = restart(bed.operator, tmp_path / "restarted.log")

    run = wait_finished(bed, "pinned-1")
    assert run["status"]["phase"] == "Succeeded", run["status"]
    assert run["status"]["workflowGeneration"] == 1
    assert run["status"]["workflowSpec"]["steps"][2]["stepRef"] == "echo"
    # The definition it started with, to the end: the old last step, never the new one.
    assert [c.headers["Idempotency-Key"] for c in bed.server.calls("/echo", run_uid=uid)] == [
        f"{uid}/first", f"{uid}/last",
    ]  # fmt: skip
    assert bed.server.calls("/score", run_uid=uid) == []
    # A run started now takes the new definition.
    bed.server.answer("/score")  # echoes
    uid = start_run(bed, "pinned-2", "pinned", {"n": 1})
    run = wait_finished(bed, "pinned-2")
    assert run["status"]["workflowGeneration"] == 2, run["status"]
    assert len(bed.server.calls("/score", run_uid=uid)) == 1
