"""The finance example end to end: its manifests, its four services on loopback, and the engine
calling them as the operator would — the services standing in for their pods, as in the demo.
A trade the account can pay is settled; one it cannot fails at the settlement, and its accepted
order is cancelled by the `order` step's compensation."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from finance import order_cancellation, order_processing, trade_settlement, user_validation
from finance.serving import build_step_app

from stepline.api import ServiceStep, StepPhase, Workflow, WorkflowRun
from stepline.engine import AiohttpTransport, Executor, RunRequest, RunStatus, StepIndex, build_plan
from tests.unit.examples.conftest import EXAMPLES, Serve, load_manifests

FINANCE = EXAMPLES / "finance"
NAMESPACE = "shop"


def load(path: Path) -> list[dict[str, Any]]:
    return load_manifests(path, namespace=NAMESPACE)


def example_input(file: str) -> Any:
    (document,) = load(FINANCE / file)
    return WorkflowRun.from_body(document).spec.input


@dataclass
class Cancellations:
    """order-cancellation's decide, remembering each request and its Idempotency-Key."""

    received: list[tuple[dict[str, Any], str | None]] = field(default_factory=list)

    def __call__(self, body: dict[str, Any], key: str | None) -> tuple[int, Any]:
        self.received.append((body, key))
        return order_cancellation.cancel_order(body, key)


async def run_trade(
    serve: Serve, run_input: dict[str, Any], cancellations: Cancellations | None = None
) -> Any:
    decide_order = partial(order_processing.process_order, exchange="XNYS")
    cancel = cancellations or Cancellations()
    overrides = {
        "user-validation": await serve(
            build_step_app(user_validation.PATH, user_validation.score_user)
        ),
        "order-processing": await serve(build_step_app(order_processing.PATH, decide_order)),
        "trade-settlement": await serve(
            build_step_app(trade_settlement.PATH, trade_settlement.settle_trade)
        ),
        "order-cancellation": await serve(build_step_app(order_cancellation.PATH, cancel)),
    }
    steps = StepIndex(
        (ServiceStep.from_body(doc) for doc in load(FINANCE / "servicesteps.yaml")),
        assume_ready=True,  # no operator here to report their readiness
    )
    (workflow,) = (Workflow.from_body(doc) for doc in load(FINANCE / "workflow.yaml"))
    async with AiohttpTransport() as transport:
        executor = Executor(transport=transport, directory=steps, overrides=overrides)
        return await executor.execute(build_plan(workflow), RunRequest("uid-1", run_input))


async def test_the_example_run_accepts_adas_order_and_settles_it_from_her_account(
    serve: Serve,
) -> None:
    outcome = await run_trade(serve, example_input("workflowrun.yaml"))

    assert outcome.status is RunStatus.SUCCEEDED, outcome.message
    assert outcome.output["approved"] is True
    order = outcome.output["order"]
    assert order["status"] == "accepted"
    assert order["userId"] == "u-1001"
    assert order["notional"] == 1015.0
    assert order["exchange"] == "XNYS"
    settlement = outcome.output["settlement"]
    assert settlement["settlementId"].startswith("stl-")
    assert (settlement["orderId"], settlement["status"]) == (order["orderId"], "settled")
    assert settlement["cashAfter"] == 25000 - 1015.0


async def test_a_refused_user_skips_the_order_and_the_settlement_and_the_output_says_so(
    serve: Serve,
) -> None:
    run_input = {
        "user": {"id": "u-7", "country": "KP", "age": 40, "kycVerified": True},
        "order": {"symbol": "ACME", "side": "buy", "quantity": 1, "limitPrice": 10},
        "account": {"id": "acc-7", "cash": 100},
    }

    outcome = await run_trade(serve, run_input)

    assert outcome.status is RunStatus.SUCCEEDED
    assert outcome.output == {"approved": False, "order": None, "settlement": None}
    assert [record.phase for record in outcome.records()] == [
        StepPhase.SUCCEEDED, StepPhase.SKIPPED, StepPhase.SKIPPED,
    ]  # fmt: skip


async def test_the_unsettled_example_fails_at_the_settlement_naming_the_accounts_cash(
    serve: Serve,
) -> None:
    outcome = await run_trade(serve, example_input("workflowrun-unsettled.yaml"))

    assert outcome.status is RunStatus.FAILED
    assert outcome.step == "settlement"
    assert outcome.error.http_status == 409
    assert '"field":"account.cash"' in outcome.error.body
    assert "insufficient funds: notional 12000.00 exceeds cash 5000.00" in outcome.error.body
    phases = {record.name: record.phase for record in outcome.records()}
    assert phases["order"] is StepPhase.SUCCEEDED


async def test_the_unsettled_examples_accepted_order_is_cancelled_once_under_its_key(
    serve: Serve,
) -> None:
    cancellations = Cancellations()

    outcome = await run_trade(serve, example_input("workflowrun-unsettled.yaml"), cancellations)

    order = next(record for record in outcome.records() if record.name == "order").output
    assert cancellations.received == [
        (
            {"orderId": order["orderId"], "userId": "u-1002", "reason": "trade not settled"},
            "uid-1/order/compensation",
        )
    ]
    assert outcome.status is RunStatus.FAILED
