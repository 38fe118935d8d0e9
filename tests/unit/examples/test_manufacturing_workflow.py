"""The manufacturing example end to end: its manifests, its three services on loopback, and the
engine calling them with the Workflow's own expressions, as the operator would."""

from __future__ import annotations

import copy
from functools import partial
from typing import Any

from aiohttp import web
from finance.serving import build_step_app
from manufacturing import device_monitoring, production_scheduling, quality_inspection

from stepline.api import ServiceStep, StepPhase, Workflow, WorkflowRun
from stepline.engine import AiohttpTransport, Executor, RunRequest, RunStatus, StepIndex, build_plan
from tests.unit.examples.conftest import EXAMPLES, Serve, load_manifests

MANUFACTURING = EXAMPLES / "manufacturing"
NAMESPACE = "factory"


def example_input() -> dict[str, Any]:
    (document,) = load_manifests(MANUFACTURING / "workflowrun.yaml", namespace=NAMESPACE)
    return copy.deepcopy(WorkflowRun.from_body(document).spec.input)


def service_apps() -> dict[str, web.Application]:
    """The ServiceSteps' names, each with the app its image runs, configured as its env says."""
    return {
        "device-monitoring": build_step_app(
            device_monitoring.PATH, device_monitoring.assess_devices
        ),
        "production-scheduling": build_step_app(
            production_scheduling.PATH,
            partial(production_scheduling.schedule_production, shift_hours=8),
        ),
        "quality-inspection": build_step_app(
            quality_inspection.PATH, partial(quality_inspection.inspect_quality, sample_rate=0.01)
        ),
    }


async def run_shift(serve: Serve, run_input: dict[str, Any]) -> Any:
    overrides = {name: await serve(app) for name, app in service_apps().items()}
    steps = StepIndex(
        (
            ServiceStep.from_body(doc)
            for doc in load_manifests(MANUFACTURING / "servicesteps.yaml", namespace=NAMESPACE)
        ),
        assume_ready=True,  # no operator here to report their readiness
    )
    (document,) = load_manifests(MANUFACTURING / "workflow.yaml", namespace=NAMESPACE)
    workflow = Workflow.from_body(document)
    async with AiohttpTransport() as transport:
        executor = Executor(transport=transport, directory=steps, overrides=overrides)
        return await executor.execute(build_plan(workflow), RunRequest("uid-1", run_input))


async def test_the_example_shift_runs_on_the_presses_and_passes_inspection(serve: Serve) -> None:
    outcome = await run_shift(serve, example_input())

    assert outcome.status is RunStatus.SUCCEEDED, outcome.message
    assert [device["status"] for device in outcome.output["devices"]] == [
        "healthy", "healthy", "degraded",
    ]  # fmt: skip
    assert {batch["deviceId"] for batch in outcome.output["batches"]} == {"press-1", "press-2"}
    assert sum(batch["quantity"] for batch in outcome.output["batches"]) == 550
    assert outcome.output["unscheduled"] == []
    inspection = outcome.output["inspection"]
    assert inspection["verdict"] == "pass"
    assert [(lot["sku"], lot["quantity"]) for lot in inspection["lots"]] == [
        ("GEAR-12", 400), ("SHAFT-3", 150),
    ]  # fmt: skip


async def test_a_part_out_of_tolerance_fails_the_inspection_but_not_the_run(serve: Serve) -> None:
    run_input = example_input()
    run_input["measurements"][1]["samplesMm"] = [30.04, 30.2]

    outcome = await run_shift(serve, run_input)

    assert outcome.status is RunStatus.SUCCEEDED
    assert outcome.output["inspection"]["verdict"] == "fail"
    assert outcome.output["inspection"]["lots"][1]["reasons"] == [
        "sample 2: 30.2 mm is outside 30 ± 0.1 mm"
    ]


async def test_with_no_healthy_device_nothing_is_scheduled_and_inspection_is_skipped(
    serve: Serve,
) -> None:
    run_input = example_input()
    for device in run_input["devices"]:
        device["readings"]["temperatureC"] = 95

    outcome = await run_shift(serve, run_input)

    assert outcome.status is RunStatus.SUCCEEDED, outcome.message
    assert outcome.output["batches"] == []
    assert outcome.output["inspection"] is None
    assert [item["reason"] for item in outcome.output["unscheduled"]] == ["no device", "no device"]
    assert [record.phase for record in outcome.records()] == [
        StepPhase.SUCCEEDED, StepPhase.SUCCEEDED, StepPhase.SKIPPED,
    ]  # fmt: skip


async def test_a_malformed_run_input_fails_the_run_with_the_services_field_and_reason(
    serve: Serve,
) -> None:
    run_input = example_input()
    del run_input["devices"][1]["ratePerHour"]

    outcome = await run_shift(serve, run_input)

    assert outcome.status is RunStatus.FAILED
    assert outcome.step == "scheduling"
    assert outcome.error.http_status == 400
    assert '"field":"devices[1].ratePerHour"' in outcome.error.body
