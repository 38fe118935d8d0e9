"""Steps side by side through the operator, on the real control plane: independent steps of a
WorkflowRun are called at once and a join gets their outputs; a failing branch stops what comes
after it while its sibling's call ends; and the operator killed while two branches are in flight
and a third has finished resumes the two under their keys and calls the finished one never
again.

One namespace, step server and operator serve the module (see stepservices.py); each test reads
only the calls of its own run (by Idempotency-Key).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stepline.engine.elements import decode_bitmap
from tests.integration.localcluster import wait_until
from tests.integration.stepobjects import Manifest, events_about, get
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

STEPS = ("traffic", "air", "complaints", "report", "broken", "stations")
SLOW = 1.0  # seconds a branch holds its answer: its siblings are called meanwhile


bed = module_step_bed("parallel", STEPS)


def city(bed: StepBed, name: str) -> None:
    apply_workflow(
        bed, name,
        [{"name": "traffic", "stepRef": "traffic", "dependsOn": []},
         {"name": "air", "stepRef": "air", "dependsOn": [], "timeoutSeconds": 60},
         {"name": "complaints", "stepRef": "complaints", "dependsOn": [], "timeoutSeconds": 60},
         {"name": "report", "stepRef": "report", "dependsOn": ["traffic", "air", "complaints"]}],
        parallelism=3,
    )  # fmt: skip


def test_independent_steps_are_called_at_once_and_the_join_gets_all_their_outputs(
    bed: StepBed,
) -> None:
    for name in ("traffic", "air", "complaints"):
        bed.server.answer(f"/{name}", Answer(json={name: "read"}, delay=SLOW))
    bed.server.answer("/report", lambda readings: {"report": sorted(readings)})
    city(bed, "city")

    uid = start_run(bed, "city-1", "city", {"cityId": "riverton"})
    run = wait_finished(bed, "city-1")

    assert run["status"]["phase"] == "Succeeded", run["status"]
    assert run["status"]["output"] == {"report": ["air", "complaints", "traffic"]}
    assert run["status"]["progress"] == "4/4"
    arrivals = sorted(
        bed.server.calls(f"/{name}", run_uid=uid)[0].at for name in ("traffic", "air", "complaints")
    )
    # All three were called before the first of them could answer.
    assert arrivals[-1] - arrivals[0] < SLOW, arrivals
    (report,) = bed.server.calls("/report", run_uid=uid)
    assert report.body == {name: {name: "read"} for name in ("traffic", "air", "complaints")}
    assert report.at >= arrivals[-1] + SLOW * 0.9  # after the slowest branch had answered


def test_a_failing_branch_stops_the_steps_after_it_while_its_siblings_call_ends(
    bed: StepBed,
) -> None:
    bed.server.answer("/broken", Answer(status=400, json={"error": "no such district"}))
    bed.server.answer("/traffic", Answer(json={"traffic": "read"}, delay=SLOW))
    apply_workflow(
        bed, "failing",
        [{"name": "broken", "stepRef": "broken", "dependsOn": [], "retry": {"limit": 0}},
         {"name": "traffic", "stepRef": "traffic", "dependsOn": []},
         {"name": "report", "stepRef": "report", "dependsOn": ["broken", "traffic"]}],
    )  # fmt: skip

    uid = start_run(bed, "failing-1", "failing", {})
    run = wait_finished(bed, "failing-1")

    assert run["status"]["phase"] == "Failed", run["status"]
    assert step_status(run, "broken")["phase"] == "Failed"
    assert step_status(run, "broken")["error"]["httpStatus"] == 400
    # Its call was in flight when broken failed: it ended, and its output is kept.
    assert step_status(run, "traffic")["phase"] == "Succeeded"
    assert step_status(run, "traffic")["output"] == {"traffic": "read"}
    assert step_status(run, "report")["phase"] == "Pending"
    assert bed.server.calls("/report", run_uid=uid) == []
    reasons = [
        e["reason"] for e in events_about(bed.cluster, bed.namespace, "WorkflowRun", "failing-1")
    ]
    assert "StepFailed" in reasons


def test_the_operator_killed_mid_branch_resumes_the_branches_in_flight_and_nothing_else(
    bed: StepBed, tmp_path: Path
) -> None:
    # air and complaints never answer in time the first time: the operator dies meanwhile.
    held = Answer(json={"late": True}, delay=60)
    bed.server.answer("/traffic", Answer(json={"traffic": "read"}))
    bed.server.answer("/air", held, Answer(json={"air": "read"}))
    bed.server.answer("/complaints", held, Answer(json={"complaints": "read"}))
    bed.server.answer("/report", lambda readings: {"report": sorted(readings)})
    city(bed, "durable-city")
    uid = start_run(bed, "durable-city-1", "durable-city", {})

    def checkpointed() -> bool:
        run = get(bed.cluster, "workflowrun", "durable-city-1", bed.namespace) or {}
        steps = {s["name"]: s["phase"] for s in (run.get("status") or {}).get("steps") or []}
        return steps.get("traffic") == "Succeeded" and steps.get("air") == "Running"

    wait_until(
        lambda: (
            bed.server.calls("/air", run_uid=uid) and bed.server.calls("/complaints", run_uid=uid)
        ),
        what="both slow branches to be called",
    )
    wait_until(checkpointed, what="the finished branch to be checkpointed")
    bed.operator.kill()
    bed.operator = restart(bed.operator, tmp_path / "restarted.log")

    run = wait_finished(bed, "durable-city-1", timeout=60)

    assert run["status"]["phase"] == "Succeeded", run["status"]
    assert run["status"]["output"] == {"report": ["air", "complaints", "traffic"]}
    assert len(bed.server.calls("/traffic", run_uid=uid)) == 1  # finished before: never again
    for branch in ("air", "complaints"):
        calls = bed.server.calls(f"/{branch}", run_uid=uid)
        assert [c.headers["Idempotency-Key"] for c in calls] == [f"{uid}/{branch}"] * 2
        # The call in flight when the operator died counts: the repeated one is attempt 2.
        assert [c.headers["Stepline-Attempt"] for c in calls] == ["1", "2"]
    assert len(bed.server.calls("/report", run_uid=uid)) == 1


def test_a_foreach_step_calls_each_element_within_its_parallelism_in_order(bed: StepBed) -> None:
    bed.server.answer("/stations", Answer(json={"read": True}, delay=0.2))
    apply_workflow(
        bed, "stations",
        [{"name": "air", "stepRef": "stations",
          "forEach": {"items": "input.stations", "parallelism": 4},
          "input": '{"station": item, "position": index}'}],
    )  # fmt: skip

    uid = start_run(bed, "stations-1", "stations", {"stations": [f"s{i}" for i in range(20)]})
    run = wait_finished(bed, "stations-1")

    assert run["status"]["phase"] == "Succeeded", run["status"]
    assert run["status"]["output"] == [{"read": True}] * 20
    assert bed.server.server.most_in_flight_at["/stations"] == 4
    calls = bed.server.calls("/stations", run_uid=uid)
    assert sorted(c.headers["Idempotency-Key"] for c in calls) == sorted(
        f"{uid}/air/{index}" for index in range(20)
    )
    items = step_status(run, "air")["items"]
    assert (items["total"], items["succeeded"], items["failed"]) == (20, 20, 0)


def test_the_operator_killed_mid_foreach_calls_again_only_the_elements_not_checkpointed(
    bed: StepBed, tmp_path: Path
) -> None:
    quick, held = Answer(json={"read": True}, delay=0.5), Answer(json={"late": True}, delay=60)
    bed.server.answer("/complaints", *[quick] * 6, held, held, Answer(json={"read": True}))
    apply_workflow(
        bed, "districts",
        [{"name": "complaints", "stepRef": "complaints", "timeoutSeconds": 60,
          "forEach": {"items": "input.districts", "parallelism": 2}}],
    )  # fmt: skip
    uid = start_run(bed, "districts-1", "districts", {"districts": list(range(10))})

    def saved_items() -> Manifest | None:
        run = get(bed.cluster, "workflowrun", "districts-1", bed.namespace) or {}
        steps = (run.get("status") or {}).get("steps") or []
        items = next((s.get("items") for s in steps if s["name"] == "complaints"), None)
        return items if items and items["succeeded"] >= 2 and items["running"] == 2 else None

    items = wait_until(saved_items, what="elements checkpointed while two are held", timeout=30)
    wait_until(lambda: len(bed.server.calls("/complaints", run_uid=uid)) >= 8, what="the holds")
    checkpointed = decode_bitmap(items["completed"], 10)
    bed.operator.kill()
    bed.operator = restart(bed.operator, tmp_path / "restarted.log")

    run = wait_finished(bed, "districts-1", timeout=60)

    assert run["status"]["phase"] == "Succeeded", run["status"]
    assert len(run["status"]["output"]) == 10
    by_key: dict[str, list[str]] = {}
    for call in bed.server.calls("/complaints", run_uid=uid):
        by_key.setdefault(call.headers["Idempotency-Key"], []).append(
            call.headers["Stepline-Attempt"]
        )
    assert sorted(by_key) == sorted(f"{uid}/complaints/{index}" for index in range(10))
    for index in checkpointed:  # recorded completed: never called again
        assert by_key[f"{uid}/complaints/{index}"] == ["1"], index
    for index in items["inFlight"]:  # in flight when it died: again, at attempt 2
        assert by_key[f"{uid}/complaints/{index}"] == ["1", "2"], index
