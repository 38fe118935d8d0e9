"""Steps side by side (`Executor`, the module docstring of `executing`): independent steps run at
once up to the plan's parallelism, a join gets its dependencies' outputs, a failure stops new
steps and retries while the calls in flight end, and a resumed run calls again only what may
have been in flight. Against a real HTTP step server on loopback."""

from __future__ import annotations

import asyncio
from typing import Any

from stepline.api import Reason, StepPhase, StepRecord, Workflow
from stepline.engine import Executor, RunRequest, RunStatus, StepIndex, build_plan
from stepline.engine.runstate import describe_running
from stepline.httpclient.transports import AiohttpTransport
from tests.unit.engine.stepservers import T0, Answer, StepServer, build_service_step
from tests.unit.engine.test_executing import ListStore

NO_RETRY = {"limit": 0}
SLOW = 0.4  # seconds a slow step holds its answer: long enough for its siblings to arrive


def workflow(steps: list[dict[str, Any]], **spec: Any) -> Workflow:
    body = {"steps": steps, **spec}
    metadata = {"name": "city", "namespace": "shop", "generation": 1, "uid": "uid-city"}
    return Workflow.from_body({"metadata": metadata, "spec": body})


def executor(
    server: StepServer, transport: AiohttpTransport, *names: str, **retry: Any
) -> Executor:
    steps = [
        build_service_step(name, path=f"/{name}", retry=retry.get(name, NO_RETRY)) for name in names
    ]
    overrides = dict.fromkeys(names, server.base_url)
    return Executor(transport=transport, directory=StepIndex(steps), overrides=overrides)


def step(name: str, *depends_on: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "stepRef": name, "dependsOn": list(depends_on), **fields}


def phases(outcome: Any) -> dict[str, StepPhase]:
    return {state.name: state.phase for state in outcome.states}


async def test_independent_steps_run_at_once_and_a_join_gets_their_outputs_by_name(
    server: StepServer, transport: AiohttpTransport
) -> None:
    for name in ("traffic", "air", "complaints"):
        server.answer(f"/{name}", Answer(json={name: "ok"}, delay=SLOW))
    steps = [step("traffic"), step("air"), step("complaints"), step("report", "traffic", "air")]
    run = executor(server, transport, "traffic", "air", "complaints", "report")

    outcome = await run.execute(build_plan(workflow(steps)), RunRequest("r1", {"city": "Graz"}))

    assert outcome.status is RunStatus.SUCCEEDED
    assert server.most_in_flight == 3  # the three were held by the server at the same time
    assert [call.body for call in server.calls("/traffic")] == [{"city": "Graz"}]
    # A join without an input expression: an object of its dependencies' outputs, by name.
    assert server.calls("/report")[0].body == {"traffic": {"traffic": "ok"}, "air": {"air": "ok"}}
    # The run's output: the output of the last step in plan order that produced one.
    assert outcome.output == {"traffic": {"traffic": "ok"}, "air": {"air": "ok"}}


async def test_a_join_reads_each_dependency_through_its_input_expression(
    server: StepServer, transport: AiohttpTransport
) -> None:
    server.answer("/traffic", Answer(json={"jams": 3}))
    server.answer("/air", Answer(json={"aqi": 41}))
    report = step(
        "report",
        "traffic",
        "air",
        input="{'score': steps.traffic.output.jams + steps.air.output.aqi}",
    )
    run = executor(server, transport, "traffic", "air", "report")

    await run.execute(
        build_plan(workflow([step("traffic"), step("air"), report])), RunRequest("r1", {})
    )

    assert server.calls("/report")[0].body == {"score": 44}


async def test_parallelism_bounds_the_calls_of_one_run_in_flight(
    server: StepServer, transport: AiohttpTransport
) -> None:
    names = ["a", "b", "c", "d", "e"]
    for name in names:
        server.answer(f"/{name}", Answer(json={}, delay=0.1))
    run = executor(server, transport, *names)

    outcome = await run.execute(
        build_plan(workflow([step(name) for name in names], parallelism=2)), RunRequest("r1", {})
    )

    assert outcome.status is RunStatus.SUCCEEDED
    assert server.most_in_flight == 2
    assert sorted(call.path for call in server.received) == [f"/{name}" for name in names]


async def test_at_parallelism_one_steps_run_one_at_a_time_in_plan_order(
    server: StepServer, transport: AiohttpTransport
) -> None:
    names = ["a", "b", "c"]
    for name in names:
        server.answer(f"/{name}", Answer(json={name: 1}, delay=0.05))
    run = executor(server, transport, *names)

    await run.execute(
        build_plan(workflow([step("c", "a"), step("a"), step("b")], parallelism=1)),
        RunRequest("r1", {}),
    )

    assert server.most_in_flight == 1
    assert [call.path for call in server.received] == ["/a", "/c", "/b"]  # plan order


async def test_a_step_after_a_skipped_one_gets_what_the_skipped_one_would_have_been_given(
    server: StepServer, transport: AiohttpTransport
) -> None:
    server.answer("/a", Answer(json={"from": "a"}))
    chain = [
        {"name": "a", "stepRef": "a"},
        {"name": "b", "stepRef": "b", "when": "false"},
        {"name": "c", "stepRef": "c"},
    ]
    run = executor(server, transport, "a", "b", "c")

    outcome = await run.execute(build_plan(workflow(chain)), RunRequest("r1", {"x": 1}))

    assert phases(outcome)["b"] is StepPhase.SKIPPED
    assert server.calls("/c")[0].body == {"from": "a"}


async def test_a_failure_stops_new_steps_and_retries_and_lets_the_calls_in_flight_end(
    server: StepServer, transport: AiohttpTransport
) -> None:
    server.answer("/broken", Answer(status=400, json={"error": "no"}, delay=0.1))
    server.answer("/slow", Answer(json={"done": True}, delay=SLOW))
    # Would be tried again: its 503 comes after the failure, so it is not.
    server.answer("/flaky", Answer(status=503, json={}, delay=SLOW), Answer(json={}))
    steps = [step("broken"), step("slow"), step("flaky"), step("after", "slow")]
    run = executor(server, transport, "broken", "slow", "flaky", "after", flaky={"limit": 3})

    outcome = await run.execute(build_plan(workflow(steps)), RunRequest("r1", {}))

    assert outcome.status is RunStatus.FAILED
    assert outcome.step == "broken"
    assert phases(outcome) == {
        "broken": StepPhase.FAILED,
        "slow": StepPhase.SUCCEEDED,  # its call was in flight: its outcome is kept
        "flaky": StepPhase.CANCELLED,
        "after": StepPhase.PENDING,  # never started
    }
    states = {state.name: state for state in outcome.states}
    assert states["slow"].output == {"done": True}
    flaky = states["flaky"]
    assert flaky.attempts == 1
    assert flaky.error is not None
    assert flaky.error.reason == Reason.CANCELLED
    assert flaky.error.message == "not retried: step 'broken' failed the run"
    assert len(server.calls("/flaky")) == 1
    assert server.calls("/after") == []


async def test_a_cancelled_run_starts_nothing_more_and_its_calls_in_flight_end(
    server: StepServer, transport: AiohttpTransport
) -> None:
    server.answer("/a", Answer(json={"a": 1}, delay=SLOW))
    server.answer("/b", Answer(json={"b": 1}, delay=SLOW))
    run = executor(server, transport, "a", "b", "c")
    cancel = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.call_later(SLOW / 2, cancel.set)

    outcome = await run.execute(
        build_plan(workflow([step("a"), step("b"), step("c", "a", "b")])),
        RunRequest("r1", {}),
        cancel=cancel,
    )

    assert outcome.status is RunStatus.CANCELLED
    assert outcome.message == "run cancelled at step 'c'"
    assert phases(outcome) == {
        "a": StepPhase.SUCCEEDED, "b": StepPhase.SUCCEEDED, "c": StepPhase.PENDING,
    }  # fmt: skip
    assert server.calls("/c") == []


async def test_a_branch_that_ends_while_another_runs_is_checkpointed_with_the_other_running(
    server: StepServer, transport: AiohttpTransport
) -> None:
    server.answer("/slow", Answer(json={}, delay=SLOW))
    store = ListStore()
    run = executor(server, transport, "fast", "slow", "join")

    await run.execute(
        build_plan(workflow([step("fast"), step("slow"), step("join", "fast", "slow")])),
        RunRequest("r1", {}),
        store=store,
    )

    saved = [{r.name: r.phase for r in checkpoint.steps} for checkpoint in store.saved]
    assert saved == [
        # fast ended, slow still in flight: saved alone, so a restart does not call fast again
        {"fast": StepPhase.SUCCEEDED, "slow": StepPhase.RUNNING, "join": StepPhase.PENDING},
        # slow ended: join recorded Running before it starts
        {"fast": StepPhase.SUCCEEDED, "slow": StepPhase.SUCCEEDED, "join": StepPhase.RUNNING},
    ]
    assert [checkpoint.current_step for checkpoint in store.saved] == ["slow", "join"]
    assert [checkpoint.progress for checkpoint in store.saved] == ["1/3", "2/3"]


async def test_a_resumed_run_calls_again_only_the_steps_that_may_have_been_in_flight(
    server: StepServer, transport: AiohttpTransport
) -> None:
    records = [
        StepRecord(name="traffic", phase=StepPhase.SUCCEEDED, attempts=1, output={"jams": 3},
                   started_at=T0, finished_at=T0),
        StepRecord(name="air", phase=StepPhase.RUNNING, attempts=1, started_at=T0),
        StepRecord(name="complaints", phase=StepPhase.RUNNING, attempts=0, started_at=T0),
        StepRecord(name="report", phase=StepPhase.PENDING),
    ]  # fmt: skip
    steps = [step("traffic"), step("air"), step("complaints"),
             step("report", "traffic", "air", "complaints")]  # fmt: skip
    run = executor(server, transport, "traffic", "air", "complaints", "report")

    outcome = await run.execute(
        build_plan(workflow(steps)), RunRequest("uid-7", {}, resume_from=records)
    )

    assert outcome.status is RunStatus.SUCCEEDED
    assert server.calls("/traffic") == []
    attempts = {
        call.path: (call.headers["Stepline-Attempt"], call.headers["Idempotency-Key"])
        for call in server.received
    }
    assert attempts == {
        "/air": ("2", "uid-7/air"),
        "/complaints": ("2", "uid-7/complaints"),  # recorded Running: it may have been sent
        "/report": ("1", "uid-7/report"),
    }
    assert server.calls("/report")[0].body["traffic"] == {"jams": 3}


def test_the_steps_in_flight_are_shown_within_a_label_with_the_rest_counted() -> None:
    assert describe_running([]) is None
    assert describe_running(["traffic", "air"]) == "traffic,air"
    names = [f"step-number-{index:02}" for index in range(8)]
    shown = describe_running(names)
    assert shown is not None
    assert len(shown) <= 63
    assert shown.startswith("step-number-00,step-number-01,")
    kept = shown.count("step-number-")
    assert shown.endswith(f",+{8 - kept}")
