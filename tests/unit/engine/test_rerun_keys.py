"""`RunRequest.key_uid` (a rerun's: the first run's uid) keys every call of the run: its steps, the
elements of a forEach step and the compensations; the trace stays the run's own. Against a real
HTTP step server on loopback."""

from __future__ import annotations

from typing import Any

from stepline.api import Workflow
from stepline.engine import Executor, RunRequest, RunStatus, StepIndex, build_plan
from stepline.engine.tracing import derive_trace_id
from stepline.httpclient.transports import AiohttpTransport
from tests.unit.engine.stepservers import Answer, StepServer, build_service_step

SERVICES = ("order", "station", "settle", "cancel")


def workflow(steps: list[dict[str, Any]]) -> Workflow:
    metadata = {"name": "trade", "namespace": "shop", "generation": 1, "uid": "uid-trade"}
    return Workflow.from_body({"metadata": metadata, "spec": {"steps": steps}})


def executor(server: StepServer, transport: AiohttpTransport) -> Executor:
    steps = [build_service_step(name, path=f"/{name}", retry={"limit": 0}) for name in SERVICES]
    overrides = dict.fromkeys(SERVICES, server.base_url)
    return Executor(transport=transport, directory=StepIndex(steps), overrides=overrides)


TRADE = [
    {"name": "order", "stepRef": "order", "compensation": {"stepRef": "cancel"}},
    {"name": "stations", "stepRef": "station", "forEach": {"items": "input.stations"}},
    {"name": "settle", "stepRef": "settle"},
]


def keys(server: StepServer) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for call in server.received:
        found.setdefault(call.path, []).append(call.headers["Idempotency-Key"])
    return {path: sorted(keyed) for path, keyed in found.items()}


async def test_every_call_of_a_run_with_a_key_uid_is_keyed_by_it_and_traced_by_its_own_uid(
    server: StepServer, transport: AiohttpTransport
) -> None:
    server.answer("/order", Answer(json={"orderId": "o-1"}))
    server.answer("/station", Answer(json={"aqi": 1}))
    server.answer("/settle", Answer(status=409, json={"error": "insufficient funds"}))
    server.answer("/cancel", Answer(json={"cancelled": True}))
    request = RunRequest("uid-rerun", {"stations": ["a", "b"]}, key_uid="uid-root")

    outcome = await executor(server, transport).execute(build_plan(workflow(TRADE)), request)

    assert outcome.status is RunStatus.FAILED
    assert keys(server) == {
        "/order": ["uid-root/order"],
        "/station": ["uid-root/stations/0", "uid-root/stations/1"],
        "/settle": ["uid-root/settle"],
        "/cancel": ["uid-root/order/compensation"],
    }
    trace = derive_trace_id("uid-rerun")
    assert {call.headers["traceparent"].split("-")[1] for call in server.received} == {trace}


async def test_without_a_key_uid_the_calls_are_keyed_by_the_runs_uid(
    server: StepServer, transport: AiohttpTransport
) -> None:
    server.answer("/order", Answer(json={"orderId": "o-1"}))
    request = RunRequest("uid-1", {})

    steps = [{"name": "order", "stepRef": "order"}]
    outcome = await executor(server, transport).execute(build_plan(workflow(steps)), request)

    assert outcome.status is RunStatus.SUCCEEDED
    assert keys(server) == {"/order": ["uid-1/order"]}
