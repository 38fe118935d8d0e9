"""Synchronous invoke against the real control plane, the operator running as a process and the
steps served by real local HTTP servers: `POST …/workflows/{name}:invoke` answers the workflow's
output, and each way it can go wrong has its HTTP status and a JSON error naming the reason (and
the step, when a step is to blame).

One namespace, step server and operator serve the whole module (see stepservices.py).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from tests.integration.localcluster import wait_until
from tests.integration.stepobjects import wait_condition
from tests.integration.stepobjects import workflow as workflow_manifest
from tests.integration.stepservices import (
    StepBed,
    apply_workflow,
    module_step_bed,
    post_invoke,
)
from tests.unit.engine.stepservers import Answer

pytestmark = pytest.mark.integration

STEPS = ("greet", "shout", "failing", "sluggish", "blocking")
NO_RETRY = {"limit": 0}


bed = module_step_bed("invoke", STEPS)


def invoke(bed: StepBed, workflow: str, body: Any = None, *, raw: bytes | None = None) -> Any:
    payload = raw if raw is not None else json.dumps(body).encode()
    return post_invoke(bed.operator.base_url, bed.namespace, workflow, payload, token=bed.token)


def test_invoke_answers_the_output_of_the_chain(bed: StepBed) -> None:
    bed.server.answer("/greet", lambda got: {"greeting": f"hello {got['name']}"})
    bed.server.answer("/shout", lambda got: {"text": got["greeting"].upper() + "!" * got["n"]})
    apply_workflow(
        bed, "hello",
        [{"name": "greet", "stepRef": "greet"},
         {"name": "shout", "stepRef": "shout",
          "input": '{"greeting": steps.greet.output.greeting, "n": input.excitement}'}],
    )  # fmt: skip

    status, answer = invoke(bed, "hello", {"name": "ada", "excitement": 2})

    assert status == 200, answer
    assert answer["output"] == {"text": "HELLO ADA!!"}
    assert [(s["name"], s["phase"], s["attempts"]) for s in answer["steps"]] == [
        ("greet", "Succeeded", 1), ("shout", "Succeeded", 1),
    ]  # fmt: skip
    assert answer["durationSeconds"] >= 0
    asked = {"name": "ada", "excitement": 2}
    (greeted,) = [c for c in bed.server.calls("/greet") if c.body == asked]
    assert greeted.headers["Idempotency-Key"].endswith("/greet")


def test_invoking_an_unknown_workflow_answers_404(bed: StepBed) -> None:
    status, answer = invoke(bed, "no-such-workflow", {})

    assert status == 404, answer
    assert answer["error"]["reason"] == "WorkflowNotFound"
    assert "no-such-workflow" in answer["error"]["message"]


def test_invoking_a_workflow_that_is_not_ready_answers_409(bed: StepBed) -> None:
    bed.cluster.apply(
        workflow_manifest("orphan", bed.namespace, [{"name": "gone", "stepRef": "missing-step"}])
    )
    wait_condition(
        bed.cluster, "workflow", "orphan", bed.namespace, status="False", reason="StepNotFound"
    )

    status, answer = invoke(bed, "orphan", {})

    assert status == 409, answer
    assert answer["error"]["reason"] == "WorkflowNotReady"
    assert "missing-step" in answer["error"]["message"]


@pytest.mark.parametrize(
    ("body", "mentioning"),
    [
        (b"[1, 2]", "JSON object"),
        (b"{not json", "not usable JSON"),
        (b"", "the body is empty"),
        (b'{"a":' + b"[" * 2000 + b"]" * 2000 + b"}", "nest more than 64 deep"),
        (b'{"s": "\\ud800"}', "surrogate"),
    ],
)
def test_invoking_with_an_input_that_is_not_a_json_object_answers_400(
    bed: StepBed, body: bytes, mentioning: str
) -> None:
    status, answer = invoke(bed, "anything", raw=body)

    assert status == 400, answer
    assert answer["error"]["reason"] == "InvalidInput"
    assert mentioning in answer["error"]["message"]


def test_an_input_lacking_what_a_steps_input_expression_reads_answers_400_naming_the_step(
    bed: StepBed,
) -> None:
    apply_workflow(
        bed, "addressed",
        [{"name": "greet", "stepRef": "greet", "input": '{"name": input.user.name}'}],
    )  # fmt: skip

    status, answer = invoke(bed, "addressed", {"customer": {"name": "ada"}})

    assert status == 400, answer
    error = answer["error"]
    assert (error["step"], error["reason"]) == ("greet", "InvalidInput")
    assert "no such key: 'user'" in error["message"]
    assert all(call.body != {"name": "ada"} for call in bed.server.calls("/greet"))


def test_a_failing_step_answers_502_naming_the_step_and_its_status(bed: StepBed) -> None:
    bed.server.answer("/failing", Answer(503, json={"error": "database down"}))
    apply_workflow(
        bed, "doomed",
        [{"name": "greet", "stepRef": "greet", "input": '{"name": "x"}'},
         {"name": "store", "stepRef": "failing", "retry": NO_RETRY}],
    )  # fmt: skip

    status, answer = invoke(bed, "doomed", {})

    assert status == 502, answer
    error = answer["error"]
    assert (error["step"], error["httpStatus"], error["reason"]) == ("store", 503, "StepFailed")
    assert "'store'" in error["message"]
    assert "503" in error["message"]


def test_a_step_that_times_out_answers_504_naming_the_step(bed: StepBed) -> None:
    bed.server.answer("/sluggish", Answer(json={"late": True}, delay=5))
    apply_workflow(
        bed, "stalling",
        [{"name": "wait", "stepRef": "sluggish", "timeoutSeconds": 1, "retry": NO_RETRY}],
    )  # fmt: skip

    status, answer = invoke(bed, "stalling", {})

    assert status == 504, answer
    assert (answer["error"]["step"], answer["error"]["reason"]) == ("wait", "TimedOut")
    assert "'wait'" in answer["error"]["message"]


def test_an_invoke_over_the_workflows_time_limit_answers_504_naming_the_step(
    bed: StepBed,
) -> None:
    bed.server.answer("/sluggish", Answer(json={"late": True}, delay=5))
    apply_workflow(
        bed, "limited",
        [{"name": "greet", "stepRef": "greet"},
         {"name": "wait", "stepRef": "sluggish", "timeoutSeconds": 30, "retry": NO_RETRY}],
        timeoutSeconds=1,
    )  # fmt: skip

    began = time.monotonic()
    status, answer = invoke(bed, "limited", {"name": "ada"})

    assert time.monotonic() - began < 4  # neither the step's 30 s nor its 5 s answer
    assert status == 504, answer
    assert (answer["error"]["step"], answer["error"]["reason"]) == ("wait", "TimedOut")


def test_an_invoke_over_the_concurrency_limit_answers_429(bed: StepBed) -> None:
    bed.server.answer("/blocking", Answer(json={"done": True}, delay=1.5))
    apply_workflow(bed, "single", [{"name": "block", "stepRef": "blocking"}], concurrency=1)
    first: list[Any] = []
    running = threading.Thread(target=lambda: first.append(invoke(bed, "single", {"i": 1})))
    running.start()
    try:
        wait_until(lambda: bed.server.calls("/blocking"), what="the first invoke to be running")

        status, answer = invoke(bed, "single", {"i": 2})

        assert status == 429, answer
        assert answer["error"]["reason"] == "ConcurrencyLimit"
    finally:
        running.join(timeout=30)
    assert first == [(200, first[0][1])]
    assert first[0][1]["output"] == {"done": True}
    assert [c.body for c in bed.server.calls("/blocking")] == [{"i": 1}]
