"""The executor against real step servers on loopback: data passing, skipping, failures, retries,
timeouts, checkpoints and resuming, cancellation, readiness."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stepline.api import MAX_JSON_DEPTH, Reason, RunPhase, StepPhase
from stepline.engine import (
    AiohttpTransport,
    Checkpoint,
    Executor,
    RunObservation,
    RunRequest,
    RunStatus,
    StepIndex,
    StepObservation,
    Unready,
    build_plan,
)
from stepline.engine.loads import StepLoads
from tests.unit.engine.stepservers import (
    Answer,
    FakeClock,
    StepServer,
    build_service_step,
    build_workflow,
)

RETRY_FAST = {"limit": 2, "backoff": {"initialSeconds": 0.01, "factor": 2, "maxSeconds": 0.05}}
CHAIN = [
    {"name": "validation", "stepRef": "user-validation"},
    {"name": "scoring", "stepRef": "risk-scoring"},
    {"name": "order", "stepRef": "order-processing"},
]


class ListStore:
    """A RunStore that keeps every checkpoint."""

    def __init__(self) -> None:
        self.saved: list[Checkpoint] = []

    async def save(self, checkpoint: Checkpoint) -> None:
        self.saved.append(checkpoint)


class ListObserver:
    def __init__(self) -> None:
        self.steps: list[StepObservation] = []
        self.runs: list[RunObservation] = []

    def observe_step(self, observation: StepObservation) -> None:
        self.steps.append(observation)

    def observe_run(self, observation: RunObservation) -> None:
        self.runs.append(observation)


def build_index(server: StepServer, **ready: bool) -> StepIndex:
    """The three steps of CHAIN, deployed, at /<name> of `server` (through overrides)."""
    names = ("user-validation", "risk-scoring", "order-processing")
    return StepIndex(
        build_service_step(
            name, path=f"/{name}", retry=RETRY_FAST, timeout_seconds=1, ready=ready.get(name, True)
        )
        for name in names
    )


def build_executor(
    server: StepServer,
    transport: AiohttpTransport,
    *,
    index: StepIndex | None = None,
    **options: Any,
) -> Executor:
    return Executor(
        transport=transport,
        directory=index or build_index(server),
        overrides={"shop/user-validation": server.base_url, "risk-scoring": server.base_url,
                   "order-processing": server.base_url},
        **options,
    )  # fmt: skip


async def test_a_chain_passes_the_run_input_to_the_first_step_and_each_output_to_the_next(
    server: StepServer, transport: AiohttpTransport
) -> None:
    server.answer("/user-validation", lambda body: {"validated": body})
    server.answer("/risk-scoring", lambda body: {"scored": body})
    server.answer("/order-processing", lambda body: {"ordered": body})
    executor = build_executor(server, transport)

    outcome = await executor.execute(build_plan(build_workflow(CHAIN)), RunRequest("r1", {"x": 1}))

    assert outcome.status is RunStatus.SUCCEEDED
    assert outcome.reason is Reason.SUCCEEDED
    assert [request.body for request in server.received] == [
        {"x": 1},
        {"validated": {"x": 1}},
        {"scored": {"validated": {"x": 1}}},
    ]
    assert outcome.output == {"ordered": {"scored": {"validated": {"x": 1}}}}
    assert [record.phase for record in outcome.records()] == [StepPhase.SUCCEEDED] * 3


async def test_an_input_expression_combines_the_run_input_with_an_earlier_steps_output(
    server: StepServer, transport: AiohttpTransport
) -> None:
    server.answer("/user-validation", Answer(json={"approved": True, "riskScore": 12}))
    steps = [
        {"name": "validation", "stepRef": "user-validation", "input": '{"user": input.user}'},
        {
            "name": "order",
            "stepRef": "order-processing",
            "input": '{"user": input.user, "order": input.order, '
            '"riskScore": steps.validation.output.riskScore}',
        },
    ]
    run_input = {"user": {"id": "u-1"}, "order": {"symbol": "ACME"}}
    executor = build_executor(server, transport)

    await executor.execute(build_plan(build_workflow(steps)), RunRequest("r1", run_input))

    assert server.calls("/user-validation")[0].body == {"user": {"id": "u-1"}}
    assert server.calls("/order-processing")[0].body == {
        "user": {"id": "u-1"},
        "order": {"symbol": "ACME"},
        "riskScore": 12,
    }


async def test_a_step_whose_when_is_false_is_skipped_and_the_next_gets_the_last_output(
    server: StepServer, transport: AiohttpTransport
) -> None:
    server.answer("/user-validation", Answer(json={"approved": False}))
    steps = [
        {"name": "validation", "stepRef": "user-validation"},
        {"name": "scoring", "stepRef": "risk-scoring", "when": "steps.validation.output.approved"},
        {"name": "order", "stepRef": "order-processing"},
    ]
    executor = build_executor(server, transport)

    outcome = await executor.execute(build_plan(build_workflow(steps)), RunRequest("r1", {}))

    assert server.calls("/risk-scoring") == []
    assert server.calls("/order-processing")[0].body == {"approved": False}
    scoring = outcome.records()[1]
    assert scoring.phase is StepPhase.SKIPPED
    assert scoring.output is None
    assert scoring.attempts == 0


async def test_the_output_expression_shapes_the_run_result_and_sees_skipped_steps(
    server: StepServer, transport: AiohttpTransport
) -> None:
    server.answer("/user-validation", Answer(json={"approved": False}))
    steps = [
        {"name": "validation", "stepRef": "user-validation"},
        {
            "name": "order",
            "stepRef": "order-processing",
            "when": "steps.validation.output.approved",
        },
    ]
    output = (
        '{"approved": steps.validation.output.approved, '
        '"order": has(steps.order.output) ? steps.order.output : null}'
    )
    executor = build_executor(server, transport)

    outcome = await executor.execute(
        build_plan(build_workflow(steps, output=output)), RunRequest("r1", {})
    )

    assert outcome.output == {"approved": False, "order": None}


async def test_a_step_answering_500_then_200_succeeds_with_two_attempts(
    server: StepServer, transport: AiohttpTransport
) -> None:
    server.answer("/risk-scoring", Answer(500, json={"error": "busy"}), Answer(json={"ok": True}))
    executor = build_executor(server, transport)

    outcome = await executor.execute(build_plan(build_workflow(CHAIN)), RunRequest("r1", {}))

    assert outcome.status is RunStatus.SUCCEEDED
    assert [record.attempts for record in outcome.records()] == [1, 2, 1]
    keys = {request.headers["Idempotency-Key"] for request in server.calls("/risk-scoring")}
    assert keys == {"r1/scoring"}


async def test_a_4xx_fails_the_run_at_once_naming_the_step_and_status(
    server: StepServer, transport: AiohttpTransport
) -> None:
    server.answer("/risk-scoring", Answer(422, json={"error": "no score for a minor"}))
    executor = build_executor(server, transport)

    outcome = await executor.execute(build_plan(build_workflow(CHAIN)), RunRequest("r1", {}))

    assert outcome.status is RunStatus.FAILED
    assert outcome.phase is RunPhase.FAILED
    assert outcome.reason is Reason.STEP_FAILED
    assert outcome.step == "scoring"
    assert outcome.http_status == 422
    assert len(server.calls("/risk-scoring")) == 1
    assert server.calls("/order-processing") == []
    assert outcome.message.startswith(
        f"step 'scoring': POST {server.url('/risk-scoring')} returned 422 after 1 attempt"
    )
    assert outcome.error is not None
    assert outcome.error.reason == Reason.CLIENT_ERROR
    assert outcome.error.body is not None
    assert "no score for a minor" in outcome.error.body
    records = outcome.records()
    assert [record.phase for record in records] == [
        StepPhase.SUCCEEDED, StepPhase.FAILED, StepPhase.PENDING,
    ]  # fmt: skip


async def test_a_step_that_always_times_out_fails_the_run_as_timed_out_naming_the_step(
    server: StepServer, transport: AiohttpTransport
) -> None:
    server.answer("/order-processing", Answer(json={}, delay=1.5))
    index = build_index(server)
    index.put(build_service_step("order-processing", path="/order-processing",
                                 timeout_seconds=1, retry={"limit": 0}))  # fmt: skip
    executor = build_executor(server, transport, index=index)

    outcome = await executor.execute(build_plan(build_workflow(CHAIN)), RunRequest("r1", {}))

    assert outcome.status is RunStatus.TIMED_OUT
    assert outcome.phase is RunPhase.FAILED
    assert outcome.reason is Reason.TIMED_OUT
    assert outcome.step == "order"
    assert outcome.error is not None
    assert outcome.error.reason == Reason.TIMEOUT
    assert "step 'order'" in outcome.message
    assert "no answer within 1s" in outcome.message


async def test_the_run_deadline_cuts_the_call_timeout_and_ends_the_run_as_timed_out(
    server: StepServer, transport: AiohttpTransport
) -> None:
    server.answer("/user-validation", Answer(json={}, delay=0.5))
    executor = build_executor(server, transport)

    outcome = await executor.execute(
        build_plan(build_workflow(CHAIN)), RunRequest("r1", {}, deadline_seconds=0.2)
    )

    assert outcome.status is RunStatus.TIMED_OUT
    assert outcome.step == "validation"
    assert outcome.duration_seconds < 0.5
    deadline = float(server.calls("/user-validation")[0].headers["Stepline-Deadline"])
    assert 0 < deadline <= 0.2


async def test_every_call_carries_the_key_attempt_deadline_and_one_trace_per_run(
    server: StepServer, transport: AiohttpTransport
) -> None:
    executor = build_executor(server, transport)

    await executor.execute(build_plan(build_workflow(CHAIN)), RunRequest("run-uid-7", {}))

    headers = [request.headers for request in server.received]
    assert [h["Idempotency-Key"] for h in headers] == [
        "run-uid-7/validation", "run-uid-7/scoring", "run-uid-7/order",
    ]  # fmt: skip
    assert {h["Stepline-Attempt"] for h in headers} == {"1"}
    assert all(0 < float(h["Stepline-Deadline"]) <= 1.0 for h in headers)
    traces = {h["traceparent"].split("-")[1] for h in headers}
    spans = {h["traceparent"].split("-")[2] for h in headers}
    assert len(traces) == 1
    assert len(spans) == 3


async def test_a_checkpoint_is_saved_after_every_step_but_the_last(
    server: StepServer, transport: AiohttpTransport
) -> None:
    store = ListStore()
    executor = build_executor(server, transport)

    outcome = await executor.execute(
        build_plan(build_workflow(CHAIN)), RunRequest("r1", {"x": 1}), store=store
    )

    assert [checkpoint.current_step for checkpoint in store.saved] == ["scoring", "order"]
    first = store.saved[0]
    assert first.phase is RunPhase.RUNNING
    assert [record.phase for record in first.steps] == [
        StepPhase.SUCCEEDED, StepPhase.RUNNING, StepPhase.PENDING,
    ]  # fmt: skip
    assert first.steps[0].output == {"x": 1}
    assert first.steps[0].output_info is not None
    assert first.steps[0].duration_seconds is not None
    assert len(outcome.records()) == 3


async def test_a_resumed_run_calls_only_the_unfinished_step_again_under_the_same_key(
    server: StepServer, transport: AiohttpTransport
) -> None:
    server.answer("/order-processing", lambda body: {"ordered": body})
    store = ListStore()
    executor = build_executor(server, transport)
    plan = build_plan(build_workflow(CHAIN))
    await executor.execute(plan, RunRequest("r1", {"x": 1}), store=store)
    checkpoint = store.saved[1]  # as if the operator died while calling "order"
    first_key = server.calls("/order-processing")[0].headers["Idempotency-Key"]
    server.received.clear()

    outcome = await executor.execute(
        plan,
        RunRequest("r1", {"x": 1}, resume_from=checkpoint.steps, started_at=checkpoint.started_at),
    )

    assert [request.path for request in server.received] == ["/order-processing"]
    assert server.received[0].headers["Idempotency-Key"] == first_key
    assert server.received[0].body == {"x": 1}  # the recorded output of "scoring"
    assert outcome.status is RunStatus.SUCCEEDED
    assert outcome.output == {"ordered": {"x": 1}}


async def test_the_step_a_checkpoint_names_as_current_is_called_again_as_attempt_two(
    server: StepServer, transport: AiohttpTransport
) -> None:
    store = ListStore()
    executor = build_executor(server, transport)
    plan = build_plan(build_workflow(CHAIN))
    await executor.execute(plan, RunRequest("r1", {"x": 1}), store=store)
    checkpoint = store.saved[1]  # the operator died while calling "order": attempt 1 was sent
    assert checkpoint.current_step == "order"
    server.received.clear()

    await executor.execute(
        plan,
        RunRequest(
            "r1", {"x": 1}, resume_from=checkpoint.steps, interrupted_step=checkpoint.current_step
        ),
    )

    assert [request.path for request in server.received] == ["/order-processing"]
    assert server.received[0].headers["Stepline-Attempt"] == "2"


async def test_a_step_answering_json_nested_to_the_limit_passes_it_on_whole(
    server: StepServer, transport: AiohttpTransport
) -> None:
    deep: Any = 1
    for _ in range(MAX_JSON_DEPTH):
        deep = [deep]
    server.answer("/user-validation", Answer(json=deep))
    store = ListStore()
    executor = build_executor(server, transport)
    plan = build_plan(build_workflow(CHAIN))

    outcome = await executor.execute(plan, RunRequest("r1", {}), store=store)

    assert outcome.status is RunStatus.SUCCEEDED
    assert server.calls("/risk-scoring")[0].body == deep
    assert store.saved[0].steps[0].output == deep  # and it can be recorded in the status


async def test_a_resumed_run_calls_again_a_step_whose_output_was_too_large_to_record(
    server: StepServer, transport: AiohttpTransport
) -> None:
    big = {"blob": "x" * 20_000}
    server.answer("/user-validation", Answer(json=big))
    store = ListStore()
    executor = build_executor(server, transport)
    plan = build_plan(build_workflow(CHAIN))
    await executor.execute(plan, RunRequest("r1", {}), store=store)
    checkpoint = store.saved[0]
    assert checkpoint.steps[0].output is None
    assert checkpoint.steps[0].output_info is not None
    assert checkpoint.steps[0].output_info.truncated
    server.received.clear()

    outcome = await executor.execute(plan, RunRequest("r1", {}, resume_from=checkpoint.steps))

    assert [request.path for request in server.received] == [
        "/user-validation", "/risk-scoring", "/order-processing",
    ]  # fmt: skip
    assert server.received[0].headers["Idempotency-Key"] == "r1/validation"
    assert server.received[0].headers["Stepline-Attempt"] == "2"
    assert outcome.output == big


async def test_a_run_cancelled_between_steps_ends_cancelled_without_calling_further_steps(
    server: StepServer, transport: AiohttpTransport
) -> None:
    cancel = asyncio.Event()

    def validate_then_cancel(body: Any) -> Any:
        cancel.set()
        return body

    server.answer("/user-validation", validate_then_cancel)
    executor = build_executor(server, transport)

    outcome = await executor.execute(
        build_plan(build_workflow(CHAIN)), RunRequest("r1", {}), cancel=cancel
    )

    assert outcome.status is RunStatus.CANCELLED
    assert outcome.phase is RunPhase.CANCELLED
    assert outcome.reason is Reason.CANCELLED
    assert outcome.step == "scoring"
    assert [request.path for request in server.received] == ["/user-validation"]
    assert [record.phase for record in outcome.records()] == [
        StepPhase.SUCCEEDED, StepPhase.PENDING, StepPhase.PENDING,
    ]  # fmt: skip


async def test_a_run_cancelled_while_waiting_to_retry_ends_cancelled_at_that_step(
    server: StepServer, transport: AiohttpTransport
) -> None:
    server.answer("/user-validation", Answer(503))
    index = build_index(server)
    slow_retry = {"limit": 5, "backoff": {"initialSeconds": 30, "maxSeconds": 30}}
    index.put(build_service_step("user-validation", path="/user-validation", retry=slow_retry))
    executor = build_executor(server, transport, index=index)
    cancel = asyncio.Event()

    running = asyncio.create_task(
        executor.execute(build_plan(build_workflow(CHAIN)), RunRequest("r1", {}), cancel=cancel)
    )
    while not server.received:
        await asyncio.sleep(0.01)
    cancel.set()
    outcome = await asyncio.wait_for(running, 5)

    assert outcome.status is RunStatus.CANCELLED
    assert outcome.step == "validation"
    assert outcome.records()[0].phase is StepPhase.CANCELLED
    assert outcome.records()[0].attempts == 1


async def test_a_step_without_ready_endpoints_fails_fast_when_told_not_to_wait(
    server: StepServer, transport: AiohttpTransport
) -> None:
    index = build_index(server, **{"risk-scoring": False})
    executor = build_executor(server, transport, index=index, unready=Unready.FAIL)

    outcome = await executor.execute(build_plan(build_workflow(CHAIN)), RunRequest("r1", {}))

    assert outcome.status is RunStatus.FAILED
    assert outcome.step == "scoring"
    assert outcome.error is not None
    assert outcome.error.reason == Reason.NO_READY_ENDPOINTS
    assert "no ready endpoints" in outcome.message
    assert server.calls("/risk-scoring") == []


async def test_a_step_without_ready_endpoints_is_called_once_it_becomes_ready(
    server: StepServer, transport: AiohttpTransport
) -> None:
    index = build_index(server, **{"risk-scoring": False})
    executor = build_executor(server, transport, index=index, unready=Unready.WAIT)

    running = asyncio.create_task(
        executor.execute(build_plan(build_workflow(CHAIN)), RunRequest("r1", {}))
    )
    await asyncio.sleep(0.1)
    assert server.calls("/risk-scoring") == []
    index.put(build_service_step("risk-scoring", path="/risk-scoring", timeout_seconds=1))
    outcome = await asyncio.wait_for(running, 5)

    assert outcome.status is RunStatus.SUCCEEDED
    assert len(server.calls("/risk-scoring")) == 1


class PollingDirectory:
    """A directory that cannot wait: the engine polls it through its clock."""

    def __init__(self, index: StepIndex) -> None:
        self.index = index
        self.asked = 0

    def find_step(self, namespace: str, name: str) -> Any:
        self.asked += 1
        return self.index.find_step(namespace, name)

    def is_step_ready(self, step: Any) -> bool:
        return self.index.is_step_ready(step)


async def test_waiting_for_ready_endpoints_gives_up_after_the_steps_timeout(
    server: StepServer, transport: AiohttpTransport, clock: FakeClock
) -> None:
    directory = PollingDirectory(build_index(server, **{"user-validation": False}))
    executor = Executor(transport=transport, directory=directory, clock=clock)

    outcome = await executor.execute(build_plan(build_workflow(CHAIN)), RunRequest("r1", {}))

    assert outcome.status is RunStatus.FAILED
    assert outcome.error is not None
    assert outcome.error.reason == Reason.NO_READY_ENDPOINTS
    assert "within 1s" in outcome.message
    assert sum(clock.sleeps) == pytest.approx(1.0)
    assert directory.asked > 5


async def test_a_missing_servicestep_fails_the_step_with_step_not_found(
    server: StepServer, transport: AiohttpTransport
) -> None:
    executor = build_executor(server, transport, index=StepIndex())

    outcome = await executor.execute(build_plan(build_workflow(CHAIN)), RunRequest("r1", {}))

    assert outcome.step == "validation"
    assert outcome.error is not None
    assert outcome.error.reason == Reason.STEP_NOT_FOUND
    assert outcome.message == "step 'validation': ServiceStep shop/user-validation not found"


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("input.user.id", Reason.INVALID_INPUT),  # reads the run input alone
        ('{"id": input.user.id, "seen": steps.validation.phase}', Reason.EXPRESSION_ERROR),
    ],
)
async def test_an_expression_failing_on_the_run_data_fails_its_step_naming_who_is_to_blame(
    server: StepServer, transport: AiohttpTransport, expression: str, reason: Reason
) -> None:
    steps = [{"name": "validation", "stepRef": "user-validation", "input": expression}]
    executor = build_executor(server, transport)

    outcome = await executor.execute(build_plan(build_workflow(steps)), RunRequest("r1", {}))

    assert outcome.status is RunStatus.FAILED
    assert outcome.step == "validation"
    assert outcome.error is not None
    assert outcome.error.reason == reason
    assert "spec.steps[0].input" in outcome.message
    assert server.received == []


async def test_the_observer_sees_every_step_with_its_attempts_and_the_run(
    server: StepServer, transport: AiohttpTransport
) -> None:
    server.answer("/risk-scoring", Answer(503), Answer(json={}))
    observer = ListObserver()
    executor = build_executor(server, transport, observer=observer)

    await executor.execute(build_plan(build_workflow(CHAIN)), RunRequest("r1", {}))

    assert [(o.step, o.phase, o.attempts) for o in observer.steps] == [
        ("validation", StepPhase.SUCCEEDED, 1),
        ("scoring", StepPhase.SUCCEEDED, 2),
        ("order", StepPhase.SUCCEEDED, 1),
    ]
    assert all(o.workflow == "trade" and o.namespace == "shop" for o in observer.steps)
    (run,) = observer.runs
    assert run.status is RunStatus.SUCCEEDED
    assert run.seconds > 0
    assert run.resumed is False


async def test_a_cancelled_task_propagates_and_leaves_the_run_to_resume(
    server: StepServer, transport: AiohttpTransport
) -> None:
    server.answer("/user-validation", Answer(json={}, delay=5))
    observer = ListObserver()
    executor = build_executor(server, transport, observer=observer)
    running = asyncio.create_task(
        executor.execute(build_plan(build_workflow(CHAIN)), RunRequest("r1", {}))
    )
    while not server.received:
        await asyncio.sleep(0.01)

    running.cancel()

    with pytest.raises(asyncio.CancelledError):
        await running
    assert observer.runs == []


async def test_an_adaptive_timeout_cuts_a_call_at_a_multiple_of_the_steps_p99(
    server: StepServer, transport: AiohttpTransport
) -> None:
    flow = build_workflow([{"name": "order", "stepRef": "order-processing"}])
    index = build_index(server)
    adaptive = {"multiplier": 3, "floorSeconds": 0.3}
    index.put(build_service_step("order-processing", path="/order-processing", timeout_seconds=5,
                                 retry={"limit": 0}, adaptiveTimeout=adaptive))  # fmt: skip
    executor = build_executor(server, transport, index=index, loads=StepLoads())
    server.answer("/order-processing", Answer(json={}, delay=1.0))
    # Before 20 calls are observed, the step's own timeoutSeconds (5 s): a 1 s call succeeds.
    first = await executor.execute(build_plan(flow), RunRequest("r0", {}))
    assert first.status is RunStatus.SUCCEEDED
    server.answer("/order-processing", Answer(json={}))
    for i in range(120):  # the 1 s call is now above the 99th percentile of the last 121
        assert (await executor.execute(build_plan(flow), RunRequest(f"q{i}", {}))).succeeded
    # Now p99 is milliseconds: the limit is the floor, 0.3 s, and the 1 s call times out.
    server.answer("/order-processing", Answer(json={}, delay=1.0))
    slow = await executor.execute(build_plan(flow), RunRequest("r1", {}))
    assert slow.status is RunStatus.TIMED_OUT
    assert "no answer within 0.3s" in slow.message


async def test_a_workflow_steps_own_timeout_wins_over_an_adaptive_one(
    server: StepServer, transport: AiohttpTransport
) -> None:
    flow = build_workflow([{"name": "order", "stepRef": "order-processing", "timeoutSeconds": 3}])
    index = build_index(server)
    index.put(build_service_step("order-processing", path="/order-processing", timeout_seconds=5,
                                 adaptiveTimeout={"floorSeconds": 0.1}))  # fmt: skip
    loads = StepLoads()
    for _ in range(30):
        loads.record_duration(("shop", "order-processing"), 0.001)
    executor = build_executor(server, transport, index=index, loads=loads)
    server.answer("/order-processing", Answer(json={}, delay=0.5))
    outcome = await executor.execute(build_plan(flow), RunRequest("r1", {}))
    assert outcome.status is RunStatus.SUCCEEDED
