"""Compensation (`engine.compensating`, `Executor._compensate`): a failed or cancelled run undoes
the steps that succeeded, one at a time, latest finished first, each under its own key and
retry policy; the first compensation that fails stops the sequence; a resumed run goes on
where the undoing stopped. Against a real HTTP step server on loopback."""

from __future__ import annotations

import asyncio
from typing import Any

from stepline.api import (
    CompensationRecord,
    CompensationSummary,
    Reason,
    RunPhase,
    StepError,
    StepPhase,
    StepRecord,
    Workflow,
)
from stepline.engine import Executor, RunRequest, RunStatus, StepIndex, build_plan
from stepline.engine.compensating import undo_order
from stepline.engine.metering import MetricsObserver
from stepline.httpclient.transports import AiohttpTransport
from stepline.observability import Metrics
from tests.unit.engine.stepservers import T0, Answer, FakeClock, StepServer, build_service_step
from tests.unit.engine.test_executing import ListStore

SERVICES = ("order", "settle", "cancel-order", "a", "b", "c", "undo", "fail")
QUICK_RETRY = {"limit": 2, "backoff": {"initialSeconds": 0.01, "maxSeconds": 0.01}}


def workflow(steps: list[dict[str, Any]]) -> Workflow:
    metadata = {"name": "trade", "namespace": "shop", "generation": 1, "uid": "uid-trade"}
    return Workflow.from_body({"metadata": metadata, "spec": {"steps": steps}})


def executor(
    server: StepServer,
    transport: AiohttpTransport,
    *,
    clock: FakeClock | None = None,
    metrics: Metrics | None = None,
) -> Executor:
    steps = [
        build_service_step(name, path=f"/{name}", retry=QUICK_RETRY if name == "undo" else
                           {"limit": 0})
        for name in SERVICES
    ]  # fmt: skip
    overrides = dict.fromkeys(SERVICES, server.base_url)
    timing: dict[str, Any] = {} if clock is None else {"clock": clock, "jitter": lambda: 0.0}
    if metrics is not None:
        timing["observer"] = MetricsObserver(metrics)
    return Executor(transport=transport, directory=StepIndex(steps), overrides=overrides, **timing)


def keys(server: StepServer, path: str) -> list[str]:
    return [call.headers["Idempotency-Key"] for call in server.calls(path)]


TRADE = [
    {
        "name": "order",
        "stepRef": "order",
        "compensation": {
            "stepRef": "cancel-order",
            "input": '{"orderId": step.output.orderId, "amount": step.input.amount, '
            '"user": input.user}',
        },
    },
    {"name": "settle", "stepRef": "settle"},
]


async def test_a_failed_run_undoes_the_step_that_succeeded_and_says_so(
    server: StepServer, transport: AiohttpTransport
) -> None:
    server.answer("/order", Answer(json={"orderId": "o-1", "status": "accepted"}))
    server.answer("/settle", Answer(status=409, json={"error": "insufficient funds"}))
    server.answer("/cancel-order", Answer(json={"status": "cancelled"}))
    store = ListStore()

    outcome = await executor(server, transport).execute(
        build_plan(workflow(TRADE)), RunRequest("uid-1", {"user": "ada", "amount": 12}), store=store
    )

    assert outcome.status is RunStatus.FAILED
    assert outcome.reason is Reason.STEP_FAILED
    assert outcome.message.endswith("; undone: order")
    # What the compensation saw: what the step answered, what it was sent, and the run input.
    (cancel,) = server.calls("/cancel-order")
    assert cancel.body == {"orderId": "o-1", "amount": 12, "user": "ada"}
    assert cancel.headers["Idempotency-Key"] == "uid-1/order/compensation"
    assert outcome.compensation is not None
    assert (outcome.compensation.phase, outcome.compensation.cause) == (
        StepPhase.SUCCEEDED, "StepFailed",
    )  # fmt: skip
    assert (outcome.compensation.steps, outcome.compensation.succeeded) == (1, 1)
    order = outcome.records()[0]
    assert order.phase is StepPhase.SUCCEEDED
    assert order.compensation is not None
    assert (order.compensation.phase, order.compensation.order) == (StepPhase.SUCCEEDED, 1)
    assert order.compensation.output_info is not None
    # The undoing was checkpointed as it began: phase Compensating, the undo Running.
    compensating = [c for c in store.saved if c.phase is RunPhase.COMPENSATING]
    assert compensating
    first = compensating[0].steps[0].compensation
    assert first is not None
    assert first.phase is StepPhase.RUNNING


async def test_steps_are_undone_latest_finished_first(
    server: StepServer, transport: AiohttpTransport
) -> None:
    undo = {"stepRef": "undo", "input": "step.output"}
    steps = [
        {"name": "a", "stepRef": "a", "compensation": undo},
        {"name": "b", "stepRef": "b", "compensation": undo},
        {"name": "c", "stepRef": "c", "compensation": undo},
        {"name": "fail", "stepRef": "fail"},
    ]
    for name in ("a", "b", "c"):
        server.answer(f"/{name}", Answer(json={"undo": name}))
    server.answer("/fail", Answer(status=400, json={}))

    outcome = await executor(server, transport).execute(
        build_plan(workflow(steps)), RunRequest("uid-1", {})
    )

    assert [call.body for call in server.calls("/undo")] == [
        {"undo": "c"}, {"undo": "b"}, {"undo": "a"},
    ]  # fmt: skip
    assert outcome.message.endswith("; undone: c, b, a")
    orders = {r.name: r.compensation.order for r in outcome.records() if r.compensation}
    assert orders == {"c": 1, "b": 2, "a": 3}


async def test_a_failed_compensation_stops_the_undoing_and_fails_the_run_saying_where(
    server: StepServer, transport: AiohttpTransport
) -> None:
    steps = [
        {"name": "a", "stepRef": "a", "compensation": {"stepRef": "undo"}},
        {"name": "b", "stepRef": "b", "compensation": {"stepRef": "undo", "retry": {"limit": 0}}},
        {"name": "fail", "stepRef": "fail"},
    ]
    server.answer("/fail", Answer(status=400, json={}))
    server.answer("/undo", Answer(status=422, json={"error": "already shipped"}))

    outcome = await executor(server, transport).execute(
        build_plan(workflow(steps)), RunRequest("uid-1", {})
    )

    assert outcome.status is RunStatus.FAILED
    assert outcome.reason is Reason.COMPENSATION_FAILED
    assert "compensation failed at step 'b'" in outcome.message
    assert keys(server, "/undo") == ["uid-1/b/compensation"]  # a was never undone
    records = {record.name: record for record in outcome.records()}
    b_undo, a_undo = records["b"].compensation, records["a"].compensation
    assert b_undo is not None
    assert a_undo is not None
    assert b_undo.phase is StepPhase.FAILED
    assert b_undo.error is not None
    assert b_undo.error.http_status == 422
    assert (a_undo.phase, a_undo.reason) == (StepPhase.SKIPPED, "EarlierCompensationFailed")
    assert outcome.compensation is not None
    assert (outcome.compensation.phase, outcome.compensation.failed) == (StepPhase.FAILED, 1)


async def test_the_compensations_of_an_undone_run_are_counted_by_outcome(
    server: StepServer, transport: AiohttpTransport
) -> None:
    steps = [
        {"name": "a", "stepRef": "a", "compensation": {"stepRef": "undo"}},
        {"name": "b", "stepRef": "b", "compensation": {"stepRef": "cancel-order"}},
        {"name": "fail", "stepRef": "fail"},
    ]
    server.answer("/fail", Answer(status=400, json={}))
    server.answer("/cancel-order", Answer(json={"status": "cancelled"}))
    server.answer("/undo", Answer(status=422, json={"error": "already shipped"}))
    metrics = Metrics()

    await executor(server, transport, metrics=metrics).execute(
        build_plan(workflow(steps)), RunRequest("uid-1", {})
    )

    def counted(outcome: str) -> float | None:
        labels = {"namespace": "shop", "workflow": "trade", "outcome": outcome}
        return metrics.registry.get_sample_value("stepline_compensations_total", labels)

    assert (counted("succeeded"), counted("failed")) == (1, 1)  # b undone, then a failed


async def test_a_compensation_is_retried_under_one_key(
    server: StepServer, transport: AiohttpTransport
) -> None:
    steps = [{"name": "a", "stepRef": "a", "compensation": {"stepRef": "undo"}},
             {"name": "fail", "stepRef": "fail"}]  # fmt: skip
    server.answer("/fail", Answer(status=400, json={}))
    server.answer("/undo", Answer(status=503, json={}), Answer(json={}))

    outcome = await executor(server, transport).execute(
        build_plan(workflow(steps)), RunRequest("uid-1", {})
    )

    assert outcome.reason is Reason.STEP_FAILED
    assert keys(server, "/undo") == ["uid-1/a/compensation"] * 2
    assert [c.headers["Stepline-Attempt"] for c in server.calls("/undo")] == ["1", "2"]
    undo = outcome.records()[0].compensation
    assert undo is not None
    assert (undo.phase, undo.attempts) == (StepPhase.SUCCEEDED, 2)


async def test_a_compensation_whose_when_is_false_is_skipped(
    server: StepServer, transport: AiohttpTransport
) -> None:
    undo = {"stepRef": "undo", "when": 'step.output.status == "accepted"'}
    steps = [{"name": "a", "stepRef": "a", "compensation": undo},
             {"name": "fail", "stepRef": "fail"}]  # fmt: skip
    server.answer("/a", Answer(json={"status": "rejected"}))
    server.answer("/fail", Answer(status=400, json={}))

    outcome = await executor(server, transport).execute(
        build_plan(workflow(steps)), RunRequest("uid-1", {})
    )

    assert server.calls("/undo") == []
    undo_record = outcome.records()[0].compensation
    assert undo_record is not None
    assert (undo_record.phase, undo_record.reason) == (StepPhase.SKIPPED, "WhenFalse")
    assert outcome.reason is Reason.STEP_FAILED


async def test_a_cancelled_run_undoes_what_it_did(
    server: StepServer, transport: AiohttpTransport
) -> None:
    steps = [{"name": "a", "stepRef": "a", "compensation": {"stepRef": "undo"}},
             {"name": "b", "stepRef": "b"}]  # fmt: skip
    server.answer("/a", Answer(json={"done": "a"}, delay=0.2))
    cancel = asyncio.Event()
    asyncio.get_running_loop().call_later(0.1, cancel.set)

    outcome = await executor(server, transport).execute(
        build_plan(workflow(steps)), RunRequest("uid-1", {}), cancel=cancel
    )

    assert outcome.status is RunStatus.CANCELLED
    assert [call.body for call in server.calls("/undo")] == [{"done": "a"}]
    assert outcome.compensation is not None
    assert outcome.compensation.cause == "Cancelled"


async def test_the_succeeded_elements_of_a_failed_foreach_step_are_undone_latest_first(
    server: StepServer, transport: AiohttpTransport
) -> None:
    steps = [{
        "name": "a", "stepRef": "a",
        "forEach": {"items": "input.orders", "parallelism": 1},
        "compensation": {"stepRef": "undo", "input": '{"order": step.input, "at": index}'},
    }]  # fmt: skip
    ok = Answer(json={"placed": True})
    server.answer("/a", ok, ok, ok, Answer(status=400, json={}))

    outcome = await executor(server, transport).execute(
        build_plan(workflow(steps)), RunRequest("uid-1", {"orders": ["x", "y", "z", "w"]})
    )

    assert outcome.status is RunStatus.FAILED
    assert [call.body for call in server.calls("/undo")] == [
        {"order": "z", "at": 2}, {"order": "y", "at": 1}, {"order": "x", "at": 0},
    ]  # fmt: skip
    assert keys(server, "/undo") == [f"uid-1/a/{index}/compensation" for index in (2, 1, 0)]


async def test_a_run_resumed_while_compensating_goes_on_where_the_undoing_stopped(
    server: StepServer, transport: AiohttpTransport
) -> None:
    undo = {"stepRef": "undo"}
    steps = [{"name": "a", "stepRef": "a", "compensation": undo},
             {"name": "b", "stepRef": "b", "compensation": undo},
             {"name": "fail", "stepRef": "fail"}]  # fmt: skip
    error = StepError(reason=Reason.CLIENT_ERROR, message="step 'fail': 400", http_status=400)
    records = [
        StepRecord(name="a", phase=StepPhase.SUCCEEDED, attempts=1, output={"a": 1},
                   finished_at=T0,
                   compensation=CompensationRecord(step_ref="undo", phase=StepPhase.PENDING)),
        StepRecord(name="b", phase=StepPhase.SUCCEEDED, attempts=1, output={"b": 1},
                   finished_at=T0,
                   compensation=CompensationRecord(step_ref="undo", phase=StepPhase.RUNNING,
                                                   order=1, attempts=1)),
        StepRecord(name="fail", phase=StepPhase.FAILED, attempts=1, error=error),
    ]  # fmt: skip
    summary = CompensationSummary(
        phase=StepPhase.RUNNING, cause="StepFailed", message="step 'fail': 400", steps=2
    )

    outcome = await executor(server, transport).execute(
        build_plan(workflow(steps)),
        RunRequest("uid-7", {}, resume_from=records, compensation=summary),
    )

    assert server.calls("/a") == server.calls("/b") == server.calls("/fail") == []
    calls = [(c.headers["Idempotency-Key"], c.headers["Stepline-Attempt"])
             for c in server.calls("/undo")]  # fmt: skip
    # b's undo may have been in flight: again, at attempt 2; then a's, afresh.
    assert calls == [("uid-7/b/compensation", "2"), ("uid-7/a/compensation", "1")]
    assert outcome.status is RunStatus.FAILED
    assert outcome.message == "step 'fail': 400; undone: b, a"
    assert outcome.error == error
    phases = {record.name: record.phase for record in outcome.records()}
    assert phases == {"a": StepPhase.SUCCEEDED, "b": StepPhase.SUCCEEDED, "fail": StepPhase.FAILED}


def test_the_undo_order_is_latest_finished_first_ties_in_reverse_plan_order() -> None:
    t1, t2 = T0.replace(second=1), T0.replace(second=2)
    finished = {"a": t1, "b": t2, "c": t1, "d": None}

    assert undo_order(finished, ["a", "b", "c", "d"]) == ["b", "c", "a", "d"]


async def test_a_compensations_own_retry_policy_and_backoff_are_followed(
    server: StepServer, transport: AiohttpTransport
) -> None:
    retry = {"limit": 5, "backoff": {"initialSeconds": 2, "factor": 3, "maxSeconds": 5},
             "retryOn": ["TooManyRequests"]}  # fmt: skip
    steps = [{"name": "a", "stepRef": "a", "compensation": {"stepRef": "undo", "retry": retry}},
             {"name": "fail", "stepRef": "fail"}]  # fmt: skip
    server.answer("/fail", Answer(status=400, json={}))
    server.answer("/undo", Answer(429), Answer(429), Answer(503))
    clock = FakeClock()

    outcome = await executor(server, transport, clock=clock).execute(
        build_plan(workflow(steps)), RunRequest("uid-1", {})
    )

    assert clock.sleeps == [2.0, 5.0]  # 2, then 2 x 3 cut to maxSeconds
    undo = outcome.records()[0].compensation
    assert undo is not None
    assert (undo.phase, undo.attempts) == (StepPhase.FAILED, 3)
    assert undo.error is not None
    assert "ServerError is not in the step's retry.retryOn" in undo.error.message
    assert outcome.reason is Reason.COMPENSATION_FAILED


async def test_a_compensation_call_is_bounded_by_its_own_timeout(
    server: StepServer, transport: AiohttpTransport
) -> None:
    undo = {"stepRef": "undo", "timeoutSeconds": 1, "retry": {"limit": 0}}
    steps = [{"name": "a", "stepRef": "a", "compensation": undo},
             {"name": "fail", "stepRef": "fail"}]  # fmt: skip
    server.answer("/fail", Answer(status=400, json={}))
    server.answer("/undo", Answer(json={}, delay=3))

    outcome = await executor(server, transport).execute(
        build_plan(workflow(steps)), RunRequest("uid-1", {})
    )

    record = outcome.records()[0].compensation
    assert record is not None
    assert record.error is not None
    assert (record.phase, record.error.reason) == (StepPhase.FAILED, "Timeout")
