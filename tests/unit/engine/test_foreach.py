"""forEach steps (`Executor._call_elements`, `engine.elements`): one call per element with its own
key, at most the step's parallelism in flight, the outputs in order; bad items fail the step
naming the field; the first failed element fails the step and names the element; a resumed run
calls only the elements not completed; the record stays small whatever the list. Against a real
HTTP step server on loopback."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stepline.api import (
    MAX_FOREACH_ITEMS,
    ItemsSummary,
    Reason,
    StepError,
    StepPhase,
    StepRecord,
    Workflow,
    record_payload,
)
from stepline.engine import Executor, PlanError, RunRequest, RunStatus, StepIndex, build_plan
from stepline.engine.elements import ElementProgress, decode_bitmap, encode_bitmap
from stepline.httpclient.transports import AiohttpTransport
from tests.unit.engine.stepservers import T0, Answer, FakeClock, StepServer, build_service_step
from tests.unit.engine.test_executing import ListStore


def workflow(steps: list[dict[str, Any]], **spec: Any) -> Workflow:
    metadata = {"name": "city", "namespace": "shop", "generation": 1, "uid": "uid-city"}
    return Workflow.from_body({"metadata": metadata, "spec": {"steps": steps, **spec}})


def executor(
    server: StepServer, transport: AiohttpTransport, *names: str, clock: FakeClock | None = None
) -> Executor:
    steps = [build_service_step(name, path=f"/{name}", retry={"limit": 0}) for name in names]
    timing: dict[str, Any] = {} if clock is None else {"clock": clock, "jitter": lambda: 0.0}
    overrides = dict.fromkeys(names, server.base_url)
    return Executor(transport=transport, directory=StepIndex(steps), overrides=overrides, **timing)


def stations(**for_each: Any) -> dict[str, Any]:
    return {
        "name": "stations",
        "stepRef": "station",
        "forEach": {"items": "input.stations", **for_each},
        "input": '{"station": item, "position": index, "city": input.city}',
    }


async def test_each_element_is_one_call_with_its_own_key_and_the_outputs_come_in_order(
    server: StepServer, transport: AiohttpTransport
) -> None:
    server.answer("/station", Answer(json={"aqi": 1}, delay=0.05))
    server.answer("/station", lambda got: {"aqi": len(got["station"]), "at": got["position"]})
    run_input = {"city": "graz", "stations": ["a", "bb", "ccc", "dddd", "e"]}

    outcome = await executor(server, transport, "station").execute(
        build_plan(workflow([stations(parallelism=2)])), RunRequest("uid-1", run_input)
    )

    assert outcome.status is RunStatus.SUCCEEDED
    assert outcome.output == [{"aqi": n, "at": i} for i, n in enumerate([1, 2, 3, 4, 1])]
    calls = server.calls("/station")
    assert sorted(call.headers["Idempotency-Key"] for call in calls) == [
        f"uid-1/stations/{index}" for index in range(5)
    ]
    assert {call.body["position"]: call.body["station"] for call in calls} == dict(
        enumerate(run_input["stations"])
    )
    assert all(call.body["city"] == "graz" for call in calls)


async def test_elements_in_flight_are_bounded_by_the_steps_parallelism(
    server: StepServer, transport: AiohttpTransport
) -> None:
    server.answer("/station", Answer(json={}, delay=0.1))

    outcome = await executor(server, transport, "station").execute(
        build_plan(workflow([stations(parallelism=3)])),
        RunRequest("uid-1", {"city": "g", "stations": list(range(9))}),
    )

    assert outcome.status is RunStatus.SUCCEEDED
    assert server.most_in_flight == 3
    assert len(server.calls("/station")) == 9


async def test_without_an_input_expression_an_element_is_sent_as_it_is(
    server: StepServer, transport: AiohttpTransport
) -> None:
    step = {"name": "stations", "stepRef": "station", "forEach": {"items": "input.stations"}}

    outcome = await executor(server, transport, "station").execute(
        build_plan(workflow([step])), RunRequest("uid-1", {"stations": [{"id": 1}, {"id": 2}]})
    )

    assert outcome.output == [{"id": 1}, {"id": 2}]  # the echo of each element


async def test_an_empty_list_succeeds_with_an_empty_output_and_no_call(
    server: StepServer, transport: AiohttpTransport
) -> None:
    outcome = await executor(server, transport, "station").execute(
        build_plan(workflow([stations()])), RunRequest("uid-1", {"city": "g", "stations": []})
    )

    assert outcome.status is RunStatus.SUCCEEDED
    assert outcome.output == []
    assert server.received == []


@pytest.mark.parametrize(
    ("stations_value", "says"),
    [
        ({"a": 1}, "spec.steps[0].forEach.items (step 'stations'): must be a list, not a map"),
        ("abc", "spec.steps[0].forEach.items (step 'stations'): must be a list, not a string"),
        (
            list(range(MAX_FOREACH_ITEMS + 1)),
            f"{MAX_FOREACH_ITEMS + 1} elements, more than the {MAX_FOREACH_ITEMS} allowed",
        ),
    ],
)
async def test_items_that_are_no_list_or_too_many_fail_the_step_naming_the_field(
    server: StepServer, transport: AiohttpTransport, stations_value: Any, says: str
) -> None:
    outcome = await executor(server, transport, "station").execute(
        build_plan(workflow([stations()])),
        RunRequest("uid-1", {"city": "g", "stations": stations_value}),
    )

    assert outcome.status is RunStatus.FAILED
    assert outcome.error is not None
    assert outcome.error.reason == Reason.INVALID_ITEMS
    assert says in outcome.error.message
    assert server.received == []


async def test_the_first_failed_element_fails_the_step_and_no_new_element_starts(
    server: StepServer, transport: AiohttpTransport
) -> None:
    step = {
        "name": "stations",
        "stepRef": "station",
        "forEach": {"items": "input.stations", "parallelism": 1},
        "input": "item",
    }
    run = executor(server, transport, "station")
    # Elements 0 and 1 succeed, 2 is refused (400: not retried).
    ok, refused = Answer(json={"ok": True}), Answer(status=400, json={"error": "unknown station"})
    server.answer("/station", ok, ok, refused, ok)

    outcome = await run.execute(
        build_plan(workflow([step])), RunRequest("uid-1", {"stations": list(range(6))})
    )

    assert outcome.status is RunStatus.FAILED
    assert outcome.error is not None
    assert outcome.error.message.startswith("element 2 of 6: ")
    assert outcome.error.http_status == 400
    assert len(server.calls("/station")) == 3  # at parallelism 1, nothing after element 2
    (state,) = outcome.states
    assert state.phase is StepPhase.FAILED
    summary = state.to_record().items
    assert summary is not None
    assert (summary.total, summary.succeeded, summary.failed) == (6, 2, 1)
    assert [(error.index, error.http_status) for error in summary.errors] == [(2, 400)]
    assert decode_bitmap(summary.completed, 6) == {0, 1}


async def test_a_resumed_step_calls_only_the_elements_not_completed(
    server: StepServer, transport: AiohttpTransport
) -> None:
    partial = [{"done": 0}, None, {"done": 2}, None]
    record = StepRecord(
        name="stations",
        phase=StepPhase.RUNNING,
        attempts=2,
        started_at=T0,
        output=partial,
        items=ItemsSummary(
            total=4, succeeded=2, running=1, completed=encode_bitmap({0, 2}, 4), in_flight=[1]
        ),
    )
    server.answer("/station", lambda got: {"done": got["position"]})

    outcome = await executor(server, transport, "station").execute(
        build_plan(workflow([stations()])),
        RunRequest("uid-9", {"city": "g", "stations": [10, 11, 12, 13]}, resume_from=[record]),
    )

    assert outcome.output == [{"done": index} for index in range(4)]
    attempts = {
        call.headers["Idempotency-Key"]: call.headers["Stepline-Attempt"]
        for call in server.calls("/station")
    }
    # Element 1 was in flight when the run stopped: called again at attempt 2; 3 afresh.
    assert attempts == {"uid-9/stations/1": "2", "uid-9/stations/3": "1"}


async def test_element_ends_are_checkpointed_at_most_once_a_second(
    server: StepServer, transport: AiohttpTransport
) -> None:
    clock = FakeClock()

    def answer(got: dict[str, Any]) -> Any:
        clock.time += 0.6  # each element takes 0.6 s on the run's clock
        return {"at": got["position"]}

    server.answer("/station", answer)
    store = ListStore()
    steps = [{"name": "first", "stepRef": "first"}, stations(parallelism=1)]

    await executor(server, transport, "first", "station", clock=clock).execute(
        build_plan(workflow(steps)),
        RunRequest("uid-1", {"city": "g", "stations": [0, 1, 2, 3]}),
        store=store,
    )

    progress = [
        (items.succeeded, items.in_flight)
        for checkpoint in store.saved
        if (items := checkpoint.steps[1].items) is not None
    ]
    # Before the step started (first's end, at 0 s) nothing of it; then once a second has
    # passed (element 2 starting at 1.2 s); the step's end goes with the run's final status.
    assert progress == [(2, [2])]
    assert store.saved[-1].steps[1].output == [{"at": 0}, {"at": 1}, None, None]


def test_item_and_index_exist_only_in_a_foreach_steps_input() -> None:
    misplaced = [
        {"name": "first", "stepRef": "first", "input": "item"},
        {**stations(), "when": "index > 0"},
    ]

    with pytest.raises(PlanError) as refused:
        build_plan(workflow(misplaced))

    messages = [(problem.field, problem.message) for problem in refused.value.problems]
    assert messages == [
        ("spec.steps[0].input", "undeclared reference to 'item' (expressions see input and steps)"),
        ("spec.steps[1].when", "undeclared reference to 'index' (expressions see input and steps)"),
    ]


def test_the_bitmap_round_trips_and_a_thousand_elements_summary_stays_small() -> None:
    done = set(range(0, MAX_FOREACH_ITEMS, 3))
    bitmap = encode_bitmap(done, MAX_FOREACH_ITEMS)
    assert decode_bitmap(bitmap, MAX_FOREACH_ITEMS) == done
    assert len(bitmap) <= 168
    assert decode_bitmap("not base64!", 10) == set()

    progress = ElementProgress(total=MAX_FOREACH_ITEMS)
    for index in range(MAX_FOREACH_ITEMS):
        if index % 100 == 7:
            error = StepError(reason=Reason.CLIENT_ERROR, message="x" * 4000, http_status=400)
            progress.fail(index, error, 3)
        else:
            progress.succeed(index, {"i": index}, 1)
    progress.in_flight = set(range(500))
    summary = progress.summary()

    assert (summary.succeeded, summary.failed, summary.max_attempts) == (990, 10, 3)
    assert [error.index for error in summary.errors] == [7, 107, 207, 307, 407]
    assert len(summary.in_flight) == 100
    assert len(json.dumps(summary.to_wire())) < 3000  # beside the output's 16 KiB
    _, info = record_payload(progress.output_list())
    assert info.size_bytes < 16 * 1024
