"""The finance example end to end: its manifests, its two services on loopback, and the engine
calling them as the operator would — the services standing in for their pods, as in the demo."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from finance import order_processing, user_validation
from finance.serving import build_step_app

from stepline.api import ServiceStep, StepPhase, Workflow, WorkflowRun
from stepline.engine import AiohttpTransport, Executor, RunRequest, RunStatus, StepIndex, build_plan
from tests.unit.examples.conftest import EXAMPLES, Serve, load_manifests

FINANCE = EXAMPLES / "finance"
NAMESPACE = "shop"


def load(path: Path) -> list[dict[str, Any]]:
    return load_manifests(path, namespace=NAMESPACE)


async def run_trade(serve: Serve, run_input: dict[str, Any]) -> Any:
    validation = await serve(build_step_app(user_validation.PATH, user_validation.score_user))
    decide = partial(order_processing.process_order, exchange="XNYS")
    orders = await serve(build_step_app(order_processing.PATH, decide))
    steps = StepIndex(
        (ServiceStep.from_body(doc) for doc in load(FINANCE / "servicesteps.yaml")),
        assume_ready=True,  # no operator here to report their readiness
    )
    (workflow,) = (Workflow.from_body(doc) for doc in load(FINANCE / "workflow.yaml"))
    overrides = {"user-validation": validation, "order-processing": orders}
    async with AiohttpTransport() as transport:
        executor = Executor(transport=transport, directory=steps, overrides=overrides)
        return await executor.execute(build_plan(workflow), RunRequest("uid-1", run_input))


async def test_the_example_run_validates_ada_and_accepts_her_order(serve: Serve) -> None:
    (document,) = load(FINANCE / "workflowrun.yaml")
    run = WorkflowRun.from_body(document)

    outcome = await run_trade(serve, run.spec.input)

    assert outcome.status is RunStatus.SUCCEEDED, outcome.message
    assert outcome.output["approved"] is True
    order = outcome.output["order"]
    assert order["status"] == "accepted"
    assert order["userId"] == "u-1001"
    assert order["notional"] == 1015.0
    assert order["exchange"] == "XNYS"


async def test_a_refused_user_skips_the_order_step_and_the_output_says_so(serve: Serve) -> None:
    run_input = {
        "user": {"id": "u-7", "country": "KP", "age": 40, "kycVerified": True},
        "order": {"symbol": "ACME", "side": "buy", "quantity": 1, "limitPrice": 10},
    }

    outcome = await run_trade(serve, run_input)

    assert outcome.status is RunStatus.SUCCEEDED
    assert outcome.output == {"approved": False, "order": None}
    assert [record.phase for record in outcome.records()] == [
        StepPhase.SUCCEEDED, StepPhase.SKIPPED,
    ]  # fmt: skip
