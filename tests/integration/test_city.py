"""The smart-city example through the operator, on the real control plane, as its README runs it:
the four real services of examples/city served on loopback (kwok's pods run nothing), the
example's own servicesteps.yaml and workflow.yaml applied, the operator started as a process with
endpoint overrides pointing at the services, and examples/city/workflowrun.yaml created.

The run succeeds with exactly the report the services' own functions compute with the Workflow's
wiring (`tests.e2e.expected.city_report`, the oracle the in-process test and the real pods are held
to), and the three readings, which wait for nothing, were called side by side: each arrived at
its service before any of them had answered, and the report after the last had.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from tests.e2e import expected
from tests.integration.localcluster import LocalCluster, wait_until
from tests.integration.operatorprocess import OperatorProcess
from tests.integration.stepobjects import Manifest, get, wait_ready
from tests.integration.stepservices import FINISHED_PHASES, step_status

# Importing tests.e2e.expected put examples/ on sys.path: the services are imported from there,
# as their images run them.
CITY = expected.EXAMPLES / "city"
from city import air_quality, city_report, service_complaints, traffic_flow  # noqa: E402
from finance.serving import build_step_app  # noqa: E402

pytestmark = pytest.mark.integration

READINGS = ("traffic", "air", "complaints")
# Each reading holds its answer this long (the services' own --wait-ms-per-call knob), so that
# side by side and one after another differ by seconds, not by scheduling noise.
READING_WAIT_MS = 1000
RUN_TIMEOUT = 60.0


@dataclass(frozen=True)
class Call:
    """One request a service received: its path, its Idempotency-Key, and when (monotonic
    seconds of this process) it arrived and was answered."""

    path: str
    key: str
    arrived: float
    answered: float


@dataclass
class CityServices:
    """The example's four services on loopback ports in this test's event loop, each request
    timed. `urls` maps each ServiceStep's name to its service's base URL."""

    urls: dict[str, str] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    runners: list[web.AppRunner] = field(default_factory=list)

    def of_run(self, uid: str, step: str) -> list[Call]:
        return [call for call in self.calls if call.key == f"{uid}/{step}"]


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def service_apps() -> dict[str, web.Application]:
    """The ServiceSteps' names, each with the app its image runs; the readings hold answers."""
    wait = READING_WAIT_MS
    return {
        "traffic-flow": build_step_app(
            traffic_flow.PATH, traffic_flow.assess_traffic, wait_ms_per_call=wait
        ),
        "air-quality": build_step_app(
            air_quality.PATH, air_quality.assess_air, wait_ms_per_call=wait
        ),
        "service-complaints": build_step_app(
            service_complaints.PATH, service_complaints.summarize_complaints, wait_ms_per_call=wait
        ),
        "city-report": build_step_app(city_report.PATH, city_report.report_city),
    }


@contextlib.asynccontextmanager
async def serving_city() -> AsyncIterator[CityServices]:
    services = CityServices()

    @web.middleware
    async def timed(request: web.Request, handler: Handler) -> web.StreamResponse:
        arrived = time.monotonic()
        response = await handler(request)
        key = request.headers.get("Idempotency-Key", "")
        services.calls.append(Call(request.path, key, arrived, time.monotonic()))
        return response

    try:
        for name, app in service_apps().items():
            app.middlewares.append(timed)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            services.runners.append(runner)
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            services.urls[name] = f"http://127.0.0.1:{runner.addresses[0][1]}"
        yield services
    finally:
        for runner in services.runners:
            await runner.cleanup()


def run_the_example_morning(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess
) -> Any:
    """Applies the example's ServiceSteps and Workflow, waits until they are Ready, creates its
    WorkflowRun and waits for it to finish; returns the run."""
    cluster.kubectl(
        "apply", "-n", namespace,
        "-f", str(CITY / "servicesteps.yaml"), "-f", str(CITY / "workflow.yaml"),
    )  # fmt: skip
    for document in yaml.safe_load_all((CITY / "servicesteps.yaml").read_text()):
        wait_ready(cluster, "servicestep", document["metadata"]["name"], namespace)
    wait_ready(cluster, "workflow", "city-report", namespace)
    cluster.kubectl("create", "-n", namespace, "-f", str(CITY / "workflowrun.yaml"))

    def finished() -> Manifest | None:
        run = get(cluster, "workflowrun", "riverton-morning", namespace)
        phase = ((run or {}).get("status") or {}).get("phase")
        return run if phase in FINISHED_PHASES else None

    try:
        return wait_until(finished, timeout=RUN_TIMEOUT, what="WorkflowRun riverton-morning")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\noperator log:\n{operator.log_tail()}") from exc


def example_input() -> Any:
    (run,) = yaml.safe_load_all((CITY / "workflowrun.yaml").read_text())
    return run["spec"]["input"]


def recorded(run: Manifest, step: str, moment: str) -> datetime:
    return datetime.fromisoformat(step_status(run, step)[moment])


async def test_the_example_morning_succeeds_with_the_services_report_its_readings_side_by_side(
    cluster: LocalCluster, crds: None, namespace: str, tmp_path: Path
) -> None:
    async with serving_city() as services:
        overrides = {f"{namespace}/{name}": url for name, url in services.urls.items()}
        operator = OperatorProcess(
            cluster, (namespace,), tmp_path / "operator.log",
            extra_env={"STEPLINE_ENDPOINT_OVERRIDES": json.dumps(overrides)},
        )  # fmt: skip
        # The services answer in this event loop: what blocks (kubectl, the operator's start)
        # waits in a thread meanwhile.
        await asyncio.to_thread(operator.start)
        try:
            run = await asyncio.to_thread(run_the_example_morning, cluster, namespace, operator)
        finally:
            await asyncio.to_thread(operator.stop)

    status = run["status"]
    assert status["phase"] == "Succeeded", json.dumps(status, indent=1)
    assert status["output"] == expected.city_report(example_input())
    assert status["output"]["status"] == "watch"
    assert status["progress"] == "4/4"
    uid = run["metadata"]["uid"]
    readings = [services.of_run(uid, step) for step in READINGS]
    assert [len(calls) for calls in readings] == [1, 1, 1], services.calls
    arrivals = [calls[0].arrived for calls in readings]
    answers = [calls[0].answered for calls in readings]
    # Side by side: every reading had arrived before the first of them answered.
    assert max(arrivals) < min(answers), (arrivals, answers)
    (report,) = services.of_run(uid, "report")
    assert report.arrived >= max(answers)
    # The run's own record says so too: each reading started before any of them finished.
    started = [recorded(run, step, "startedAt") for step in READINGS]
    finished = [recorded(run, step, "finishedAt") for step in READINGS]
    assert max(started) < min(finished), (started, finished)
    assert recorded(run, "report", "startedAt") >= max(finished)
