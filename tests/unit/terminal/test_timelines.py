"""`render_timeline`: a run's body as the text `stepline describe` prints: the run's phase,
reason, message and times, then a row per step in start order with what it gave, and under it
what a row cannot hold (an error's message, an approval's question, forEach elements,
compensations); every line within the width."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from stepline.terminal.errors import RefusedError
from stepline.terminal.timelines import render_timeline, terminal_width

STARTED = "2026-12-07T06:00:00Z"


def at(seconds: float) -> str:
    """A timestamp `seconds` after the run started, as the operator writes them."""
    moment = datetime(2026, 12, 7, 6, 0, 0, tzinfo=UTC).timestamp() + seconds
    return datetime.fromtimestamp(moment, UTC).isoformat()


def run_body(*steps: dict[str, Any], **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "stepline.io/v1alpha1",
        "kind": "WorkflowRun",
        "metadata": {"name": "trade-x7k2p", "namespace": "shop"},
        "spec": {"workflowRef": "trade", "input": {"account": "a-1"}},
        "status": {"phase": "Running", "startedAt": STARTED, "steps": list(steps), **status},
    }


def succeeded(name: str, start: float, took: float, output: Any, **more: Any) -> dict[str, Any]:
    return {
        "name": name, "phase": "Succeeded", "attempts": 1, "startedAt": at(start),
        "finishedAt": at(start + took), "durationSeconds": took, "output": output, **more,
    }  # fmt: skip


def failed_condition(reason: str, message: str) -> list[dict[str, Any]]:
    return [{"type": "Succeeded", "status": "False", "reason": reason, "message": message,
             "lastTransitionTime": at(3)}]  # fmt: skip


def test_a_failed_run_reads_as_its_phase_reason_message_and_a_row_per_step() -> None:
    run = run_body(
        succeeded("order", 0.01, 0.12, {"id": "o-1"}),
        {"name": "settlement", "phase": "Failed", "attempts": 2, "startedAt": at(0.2),
         "durationSeconds": 2.8,
         "error": {"reason": "ServerError", "httpStatus": 503, "body": '{"error": "ledger"}',
                   "message": "POST http://settlement.shop.svc:8080/ returned 503 after 2 "
                   "attempts"}},
        {"name": "audit", "phase": "Pending"},
        phase="Failed", finishedAt=at(3.21), durationSeconds=3.21,
        conditions=failed_condition("StepFailed", "step 'settlement' failed: returned 503"),
    )  # fmt: skip
    assert render_timeline(run) == (
        "Run:        trade-x7k2p (namespace shop)\n"
        "Workflow:   trade\n"
        "Phase:      Failed (StepFailed), 1/3 steps done\n"
        "Message:    step 'settlement' failed: returned 503\n"
        "Started:    2026-12-07 06:00:00Z\n"
        "Duration:   3.21s\n"
        "\n"
        "STEP        PHASE      START   DURATION  ATTEMPTS  RESULT\n"
        'order       Succeeded  +10ms   120ms     1         {"id":"o-1"}\n'
        "settlement  Failed     +200ms  2.80s     2         ServerError (HTTP 503)\n"
        "    POST http://settlement.shop.svc:8080/ returned 503 after 2 attempts\n"
        '    body: {"error": "ledger"}\n'
        "audit       Pending    -       -         -         not started\n"
    )


def test_steps_are_listed_in_the_order_they_started_and_those_not_started_last() -> None:
    run = run_body(
        {"name": "report", "phase": "Pending"},
        succeeded("air", 0.3, 0.1, 1),
        succeeded("traffic", 0.1, 0.5, 2),
        {"name": "archive", "phase": "Pending"},
    )
    rows = render_timeline(run).split("STEP")[1].splitlines()[1:]
    assert [row.split()[0] for row in rows] == ["traffic", "air", "report", "archive"]


def test_a_skipped_step_shows_why_it_was_skipped() -> None:
    definition = {"steps": [{"name": "vip", "stepRef": "vip", "when": "input.tier == 'gold'"}]}
    run = run_body(
        {"name": "vip", "phase": "Skipped", "startedAt": at(0), "durationSeconds": 0.001},
        workflowSpec=definition,
    )
    text = render_timeline(run)
    assert "vip   Skipped  +0ms   1ms       -         skipped: its `when` was false\n" in text
    assert "    when: input.tier == 'gold'\n" in text


def test_a_waiting_approval_step_shows_its_question_and_who_may_decide() -> None:
    approvers = (
        "a user with verb approve on workflows.stepline.io/trade in shop: stepline approve "
        "trade-x7k2p --step release -n shop"
    )
    run = run_body(
        succeeded("order", 0, 0.1, {"id": "o-1"}),
        {"name": "release", "phase": "Waiting", "startedAt": at(0.1)},
        phase="Waiting",
        waitingFor=[{"step": "release", "since": at(0.1), "deadline": at(86400.1),
                     "message": "Release 3 batches", "approvers": approvers}],
    )  # fmt: skip
    text = render_timeline(run, now=datetime(2026, 12, 7, 6, 1, 0, tzinfo=UTC))
    assert "release  Waiting    +100ms  59.9s     -         waiting for a person\n" in text
    assert "    asks: Release 3 batches\n" in text
    assert "    since 2026-12-07 06:00:00Z, until 2026-12-08 06:00:00Z\n" in text
    assert "    who may decide: a user with verb approve on workflows.stepline.io/trade" in text


def test_a_decided_approval_step_shows_who_decided_and_why() -> None:
    decision = {"decision": "Reject", "user": "alice", "reason": "batch 3 is short of steel"}
    run = run_body(
        {"name": "release", "phase": "Failed", "startedAt": at(0), "durationSeconds": 60,
         "approval": decision, "error": {"reason": "Rejected", "message": "rejected by alice"}},
        phase="Failed",
    )  # fmt: skip
    assert "rejected by alice: batch 3 is short of steel\n" in render_timeline(run)


def test_a_foreach_step_shows_its_elements_progress_and_first_failures() -> None:
    items = {
        "total": 10, "succeeded": 7, "failed": 1, "running": 2, "maxAttempts": 3,
        "errors": [{"index": 4, "reason": "ServerError", "httpStatus": 502,
                    "message": "POST http://station/ returned 502 after 3 attempts"}],
    }  # fmt: skip
    run = run_body(
        {"name": "stations", "phase": "Running", "attempts": 9, "startedAt": at(0),
         "items": items, "output": [1, None]},
    )  # fmt: skip
    text = render_timeline(run)
    assert "    elements: 7 of 10 succeeded, 1 failed, 2 running, at most 3 attempts each\n" in text
    assert (
        "    element 4: ServerError (HTTP 502): POST http://station/ returned 502 after 3 "
        "attempts\n"
    ) in text


def test_compensations_are_shown_under_the_steps_they_undo_and_summed_up_for_the_run() -> None:
    undo = {"stepRef": "order-cancellation", "phase": "Failed", "order": 1, "attempts": 3,
            "startedAt": at(3), "finishedAt": at(4.5),
            "error": {"reason": "ServerError", "message": "returned 500"}}  # fmt: skip
    run = run_body(
        succeeded("order", 0, 0.1, {"id": "o-1"}, compensation=undo),
        phase="Failed",
        compensation={"phase": "Failed", "cause": "StepFailed", "steps": 1, "failed": 1},
    )
    text = render_timeline(run)
    assert "Undoing:    Failed: 0 of 1 steps undone, 1 failed (because StepFailed)\n" in text
    assert (
        "    compensation #1 (order-cancellation): Failed after 1.50s, 3 attempts; "
        "ServerError: returned 500\n"
    ) in text


def test_an_output_is_one_line_cut_to_the_width() -> None:
    output = {"lines": ["a" * 30, "b" * 30, "c" * 30], "note": "x\ny"}
    text = render_timeline(run_body(succeeded("report", 0, 1, output)))
    row = next(line for line in text.splitlines() if line.startswith("report"))
    assert len(row) == 100
    assert row.endswith('{"lines":["aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","bbbbbbbbb…')


def test_every_line_fits_in_the_width_whatever_the_messages() -> None:
    long = "word " * 400
    run = run_body(
        {"name": "settlement", "phase": "Failed", "attempts": 2, "startedAt": at(0),
         "error": {"reason": "ServerError", "message": long, "body": long[:1000]}},
        phase="Failed", conditions=failed_condition("StepFailed", long),
    )  # fmt: skip
    for width in (80, 100):
        lines = render_timeline(run, width=width).splitlines()
        assert max(len(line) for line in lines) <= width
        assert any(line.endswith("…") for line in lines)


def test_a_truncated_output_shows_its_size_and_preview() -> None:
    info = {"sizeBytes": 40000, "sha256": "0" * 64, "truncated": True, "preview": '{"rows":[1,'}
    text = render_timeline(run_body(succeeded("export", 0, 1, None, outputInfo=info)))
    assert '(40000 bytes, not recorded) {"rows":[1,\n' in text


def test_a_running_run_shows_its_time_so_far_and_the_running_steps_attempt() -> None:
    run = run_body({"name": "slow", "phase": "Running", "attempts": 2, "startedAt": at(1)})
    text = render_timeline(run, now=datetime(2026, 12, 7, 6, 0, 31, tzinfo=UTC))
    assert "Duration:   31.0s so far\n" in text
    assert "slow  Running  +1.00s  30.0s     2         running (attempt 2)\n" in text


def test_a_succeeded_run_shows_its_output_and_a_rerun_its_source() -> None:
    run = run_body(
        succeeded("order", 0, 0.1, {"id": "o-1"}, reusedFrom="trade-1"),
        phase="Succeeded", output={"settled": True}, durationSeconds=0.5,
        rerun={"of": "trade-1", "rootUID": "u-1", "reusedSteps": ["order"]},
    )  # fmt: skip
    text = render_timeline(run)
    assert 'Output:     {"settled":true}\n' in text
    assert "Rerun of:   trade-1 (steps reused: order)\n" in text
    assert "    reused from trade-1: not called again\n" in text


def test_a_run_not_started_says_so() -> None:
    run = run_body()
    del run["status"]
    text = render_timeline(run)
    assert "Phase:      Pending\n" in text
    assert "Started:    not yet\n" in text
    assert text.endswith("\nno step has a record yet\n")


def test_a_cancel_requested_on_a_running_run_is_shown() -> None:
    run = run_body({"name": "slow", "phase": "Running", "attempts": 1, "startedAt": at(0)})
    run["spec"]["cancel"] = True
    assert "Cancel:     requested: no new step starts; calls in flight end\n" in render_timeline(
        run
    )


def test_a_status_that_cannot_be_read_is_refused_naming_the_run() -> None:
    run = run_body({"name": "x", "phase": "Exploded"})
    with pytest.raises(RefusedError, match="WorkflowRun 'trade-x7k2p': its status cannot be read"):
        render_timeline(run)


@pytest.mark.parametrize(("columns", "width"), [("140", 140), ("100", 100), ("40", 80)])
def test_the_timeline_follows_the_terminals_width_but_never_narrower_than_80(
    monkeypatch: pytest.MonkeyPatch, columns: str, width: int
) -> None:
    monkeypatch.setenv("COLUMNS", columns)

    assert terminal_width() == width


def test_a_step_named_as_being_called_before_any_record_shows_running() -> None:
    # The start of a run writes currentStep before the first checkpoint writes any record.
    text = render_timeline(run_body(currentStep="hold"), now=datetime.fromisoformat(at(30)))

    assert "no step has a record yet" not in text
    assert "hold  Running" in text
    assert "running (attempt 1)" in text


def test_a_pending_record_of_a_step_being_called_shows_running_and_a_finished_run_ignores_it() -> (
    None
):
    pending = ({"name": "a", "phase": "Pending"}, {"name": "b", "phase": "Pending"})
    running = render_timeline(run_body(*pending, currentStep="a,+1"))
    done = render_timeline(run_body(*pending, currentStep="a", phase="Cancelled"))

    assert [line.split()[:2] for line in running.splitlines()[-2:]] == [
        ["a", "Running"], ["b", "Pending"],
    ]  # fmt: skip
    assert [line.split()[:2] for line in done.splitlines()[-2:]] == [
        ["a", "Pending"], ["b", "Pending"],
    ]  # fmt: skip
