"""The smart-city example end to end: its manifests, its four services on loopback, and the engine
calling them with the Workflow's own expressions, as the operator would. The three readings wait
for nothing and the report joins them; nothing here depends on whether the engine calls the three
one after another or side by side."""

from __future__ import annotations

import copy
from typing import Any

from aiohttp import web
from city import air_quality, city_report, service_complaints, traffic_flow
from finance.serving import build_step_app

from stepline.api import ServiceStep, StepPhase, Workflow, WorkflowRun
from stepline.engine import AiohttpTransport, Executor, RunRequest, RunStatus, StepIndex, build_plan
from stepline.engine.expressions import build_activation
from tests.e2e import expected
from tests.unit.examples.conftest import EXAMPLES, Serve, load_manifests

CITY = EXAMPLES / "city"
NAMESPACE = "city"
BRANCHES = ("traffic", "air", "complaints")


def example_input() -> dict[str, Any]:
    (document,) = load_manifests(CITY / "workflowrun.yaml", namespace=NAMESPACE)
    return copy.deepcopy(WorkflowRun.from_body(document).spec.input)


def example_workflow() -> Workflow:
    (document,) = load_manifests(CITY / "workflow.yaml", namespace=NAMESPACE)
    return Workflow.from_body(document)


def service_apps() -> dict[str, web.Application]:
    """The ServiceSteps' names, each with the app its image runs."""
    return {
        "traffic-flow": build_step_app(traffic_flow.PATH, traffic_flow.assess_traffic),
        "air-quality": build_step_app(air_quality.PATH, air_quality.assess_air),
        "service-complaints": build_step_app(
            service_complaints.PATH, service_complaints.summarize_complaints
        ),
        "city-report": build_step_app(city_report.PATH, city_report.report_city),
    }


async def run_morning(serve: Serve, run_input: dict[str, Any]) -> Any:
    overrides = {name: await serve(app) for name, app in service_apps().items()}
    steps = StepIndex(
        (
            ServiceStep.from_body(doc)
            for doc in load_manifests(CITY / "servicesteps.yaml", namespace=NAMESPACE)
        ),
        assume_ready=True,  # no operator here to report their readiness
    )
    async with AiohttpTransport() as transport:
        executor = Executor(transport=transport, directory=steps, overrides=overrides)
        return await executor.execute(
            build_plan(example_workflow()), RunRequest("uid-1", run_input)
        )


def test_the_three_readings_wait_for_nothing_and_the_report_for_all_three() -> None:
    plan = build_plan(example_workflow())

    assert {step.name: step.depends_on for step in plan.steps} == {
        "traffic": (), "air": (), "complaints": (), "report": BRANCHES,
    }  # fmt: skip


def test_each_branch_is_sent_its_part_of_the_input_and_the_join_every_branchs_output() -> None:
    run_input = example_input()
    outputs = {branch: {"cityId": "riverton", "from": branch} for branch in BRANCHES}
    activation = build_activation(
        run_input=run_input,
        phases=dict.fromkeys(BRANCHES, "Succeeded") | {"report": "Pending"},
        outputs=outputs,
    )
    compiled = build_plan(example_workflow()).expressions

    sent = {step: compiled.evaluate_input(step, activation, default=None) for step in outputs}
    joined = compiled.evaluate_input("report", activation, default=None)

    assert sent == {
        "traffic": {"cityId": "riverton", "segments": run_input["traffic"]["segments"]},
        "air": {"cityId": "riverton", "stations": run_input["air"]["stations"]},
        "complaints": {
            "cityId": "riverton",
            "asOf": "2026-12-07T07:30:00Z",
            "complaints": run_input["complaints"],
        },
    }
    assert joined == {"cityId": "riverton"} | outputs


async def test_the_example_morning_is_on_watch_with_one_flag_in_three_districts(
    serve: Serve,
) -> None:
    outcome = await run_morning(serve, example_input())

    assert outcome.status is RunStatus.SUCCEEDED, outcome.message
    assert [record.phase for record in outcome.records()] == [StepPhase.SUCCEEDED] * 4
    report = outcome.output
    # What the services' own functions compute with the Workflow's wiring: the oracle the
    # operator's runs (tests/integration/test_city.py) and the real pods' are held to too.
    assert report == expected.city_report(example_input())
    assert report["status"] == "watch"
    assert {d["district"]: d["flags"] for d in report["districts"]} == {
        "harbour": ["air-quality"],
        "hillside": [],
        "old-town": ["congestion"],
        "university": ["complaint-hotspot"],
    }
    assert report["actions"][-1] == "chase the overdue complaints (2): c-105, c-106"
    assert report["summary"] == (
        "riverton: watch. Air moderate, congestion index 0.34, open complaints 8 (2 overdue). "
        "Flagged: harbour (air-quality); old-town (congestion); university (complaint-hotspot)."
    )


async def test_very_poor_air_at_the_docks_turns_the_morning_into_an_alert(serve: Serve) -> None:
    run_input = example_input()
    run_input["air"]["stations"][1]["no2"] = 260

    outcome = await run_morning(serve, run_input)

    assert outcome.status is RunStatus.SUCCEEDED, outcome.message
    assert outcome.output["status"] == "alert"
    assert outcome.output["actions"][0] == (
        "issue a city-wide air-quality alert: the air is very-poor"
    )


async def test_a_malformed_branch_input_fails_the_run_with_the_services_field_and_reason(
    serve: Serve,
) -> None:
    run_input = example_input()
    run_input["complaints"][2]["category"] = "parking"

    outcome = await run_morning(serve, run_input)

    assert outcome.status is RunStatus.FAILED
    assert outcome.step == "complaints"
    assert outcome.error.http_status == 400
    assert '"field":"complaints[2].category"' in outcome.error.body
    phases = {record.name: record.phase for record in outcome.records()}
    assert phases["report"] is not StepPhase.SUCCEEDED
