"""The web view's test bed (test_browser.py says what it is for): one operator with
STEPLINE_UI=true on the real control plane, watching the finance example's namespace (its
ServiceSteps, Workflow and both example runs, served by the example's own services on loopback),
the manufacturing example's, and one of the tests' own workflows played by the programmable step
server; the people who sign in (ServiceAccounts bound to Roles); runs started and waited for."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import yaml
from aiohttp import web

from tests.e2e import expected
from tests.integration.localcluster import LocalCluster, wait_until
from tests.integration.operatorprocess import OperatorProcess
from tests.integration.stepobjects import API_VERSION, Manifest, get, service_step, wait_ready
from tests.integration.stepservices import (
    FINISHED_PHASES,
    account_token,
)

# Importing tests.e2e.expected put examples/ on sys.path: the services are imported from there,
# as their images run them.
FINANCE = expected.EXAMPLES / "finance"
MANUFACTURING = expected.EXAMPLES / "manufacturing"
from finance import (  # noqa: E402
    order_cancellation,
    order_processing,
    trade_settlement,
    user_validation,
)
from finance.serving import build_step_app  # noqa: E402
from manufacturing import (  # noqa: E402
    device_monitoring,
    production_scheduling,
    quality_inspection,
)

BRIEF_HOLD_SECONDS = 6  # long enough to see the step Running, short enough to wait for


# A run is cancelled between calls, never during one (engine/calling.py): a run to cancel from
# the page holds its first call long enough to reach the button, and ends once it answers.
PAUSE_SECONDS = 12


LONG_HOLD_SECONDS = 240  # longer than any test that views a held run


PAGE_SIZE = 50  # docs/ui.md: the runs page shows 50 a page


BATCH_RUNS = 60


WAIT_SECONDS = 30  # for what the browser shows to follow the cluster
# How long the operator remembers an allowed viewer (STEPLINE_INVOKE_AUTH_ALLOWED_TTL_SECONDS):
# shorter than the default 10 s, so that a test waits less for a revocation to be seen.
ALLOWED_TTL_SECONDS = 3


# The tests' own ServiceSteps on the step server, each with its call timeout.
OWN_STEPS = {
    "hold-brief": BRIEF_HOLD_SECONDS + 20,
    "hold-pause": PAUSE_SECONDS + 20,
    "hold-long": LONG_HOLD_SECONDS + 60,
    "answer": 5,
}


CANCEL = "section#actions button[name=action][value=cancel]"


# The finance example's graph (docs/ui.md: one node per step, the ServiceStep behind each, an
# edge for what each waits for: a chain, as none of its steps names dependsOn).
FINANCE_GRAPH = {
    "example": "finance",
    "workflow": "trade",
    "nodes": {
        "validation": "user-validation",
        "order": "order-processing",
        "settlement": "trade-settlement",
    },
    "edges": {"validation->order", "order->settlement"},
}


MANUFACTURING_GRAPH = {
    "example": "manufacturing",
    "workflow": "production-shift",
    "nodes": {
        "monitoring": "device-monitoring",
        "scheduling": "production-scheduling",
        "inspection": "quality-inspection",
    },
    "edges": {"monitoring->scheduling", "scheduling->inspection"},
}


VIEWER_RULES = [
    {
        "apiGroups": ["stepline.io"],
        "resources": ["workflows", "workflowruns"],
        "verbs": ["get", "list", "watch"],
    },
]


CANCELLER_RULES = [
    *VIEWER_RULES,
    {"apiGroups": ["stepline.io"], "resources": ["workflowruns"], "verbs": ["patch"]},
]


def example_apps() -> dict[str, web.Application]:
    """Each example ServiceStep's name with the app its image runs (settings as its env gives)."""
    return {
        "user-validation": build_step_app(user_validation.PATH, user_validation.score_user),
        "order-processing": build_step_app(
            order_processing.PATH,
            partial(order_processing.process_order, exchange=expected.EXCHANGE),
        ),
        "trade-settlement": build_step_app(trade_settlement.PATH, trade_settlement.settle_trade),
        "order-cancellation": build_step_app(
            order_cancellation.PATH, order_cancellation.cancel_order
        ),
        "device-monitoring": build_step_app(
            device_monitoring.PATH, device_monitoring.assess_devices
        ),
        "production-scheduling": build_step_app(
            production_scheduling.PATH,
            partial(production_scheduling.schedule_production, shift_hours=expected.SHIFT_HOURS),
        ),
        "quality-inspection": build_step_app(
            quality_inspection.PATH,
            partial(quality_inspection.inspect_quality, sample_rate=expected.SAMPLE_RATE),
        ),
    }


class ExampleServices:
    """The examples' services on loopback ports, served from a thread of their own (the tests
    block on the browser meanwhile); `urls` maps each ServiceStep's name to its base URL."""

    def __init__(self) -> None:
        self.urls: dict[str, str] = {}
        self._runners: list[web.AppRunner] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> ExampleServices:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=10)
        return self

    async def _serve(self) -> None:
        for name, app in example_apps().items():
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            self._runners.append(runner)
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            self.urls[name] = f"http://127.0.0.1:{runner.addresses[0][1]}"

    def stop(self) -> None:
        async def shut_down() -> None:
            for runner in self._runners:
                await runner.cleanup()

        asyncio.run_coroutine_threadsafe(shut_down(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@dataclass
class UiBed:
    cluster: LocalCluster
    operator: OperatorProcess
    finance: str  # the namespaces
    manufacturing: str
    work: str
    tokens: dict[str, str] = field(default_factory=dict)  # person → bearer token

    def url(self, path: str) -> str:
        return f"{self.operator.base_url}/ui/{path.lstrip('/')}"


def example_names(path: Path) -> list[str]:
    return [d["metadata"]["name"] for d in yaml.safe_load_all(path.read_text()) if d]


def apply_examples(cluster: LocalCluster, bed: UiBed) -> None:
    """Both examples' ServiceSteps and Workflows, Ready, and the finance example's two runs
    (one that succeeds, one whose settlement is refused), finished."""
    for example, namespace in ((FINANCE, bed.finance), (MANUFACTURING, bed.manufacturing)):
        cluster.kubectl(
            "apply",
            "-n",
            namespace,
            "-f",
            str(example / "servicesteps.yaml"),
            "-f",
            str(example / "workflow.yaml"),
        )
    for example, namespace in ((FINANCE, bed.finance), (MANUFACTURING, bed.manufacturing)):
        for name in example_names(example / "servicesteps.yaml"):
            wait_ready(cluster, "servicestep", name, namespace)
        for name in example_names(example / "workflow.yaml"):
            wait_ready(cluster, "workflow", name, namespace)
    for run in ("workflowrun.yaml", "workflowrun-unsettled.yaml"):
        cluster.kubectl("create", "-n", bed.finance, "-f", str(FINANCE / run))
    for run in ("trade-ada-1", "trade-charles-1"):
        wait_phase(bed, bed.finance, run, FINISHED_PHASES)


def apply_own_workflows(cluster: LocalCluster, namespace: str) -> None:
    """The `brief`, `held` and `batch` workflows on the step server's paths, Ready."""
    steps = OWN_STEPS
    cluster.apply(
        [
            service_step(
                name,
                namespace,
                image="stepline/echo:0.1.0",
                path=f"/{name}",
                timeoutSeconds=timeout,
                retry={"limit": 0},
            )
            for name, timeout in steps.items()
        ]
    )
    workflows = {
        "brief": [{"name": "wait", "stepRef": "hold-brief"}, {"name": "done", "stepRef": "answer"}],
        "pausing": [
            {"name": "pause", "stepRef": "hold-pause"},
            {"name": "after", "stepRef": "answer"},
        ],
        "held": [{"name": "hold", "stepRef": "hold-long"}, {"name": "after", "stepRef": "answer"}],
        "batch": [{"name": "answer", "stepRef": "answer"}],
    }
    cluster.apply(
        [
            {
                "apiVersion": API_VERSION,
                "kind": "Workflow",
                "metadata": {"name": name, "namespace": namespace},
                # All kept: the paging test lists more runs than the default of 10.
                "spec": {"steps": steps, "retention": {"successfulRuns": 100, "failedRuns": 100}},
            }
            for name, steps in workflows.items()
        ]
    )
    for name in steps:
        wait_ready(cluster, "servicestep", name, namespace)
    for name in workflows:
        wait_ready(cluster, "workflow", name, namespace)


def grant(
    cluster: LocalCluster, namespaces: tuple[str, ...], person: str, rules: list[Manifest]
) -> str:
    """A ServiceAccount `person` (in the first namespace) with a Role of `rules` bound in each
    namespace, as a user grants it; returns its token."""
    home = namespaces[0]
    objects: list[Manifest] = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": person, "namespace": home},
        },
    ]
    for namespace in namespaces:
        meta = {"name": f"{person}-ui", "namespace": namespace}
        objects += [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": meta,
                "rules": rules,
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": meta,
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": meta["name"],
                },
                "subjects": [{"kind": "ServiceAccount", "name": person, "namespace": home}],
            },
        ]
    cluster.apply(objects)
    return account_token(cluster, home, person)


def wait_phase(bed: UiBed, namespace: str, run: str, phases: tuple[str, ...]) -> Manifest:
    """Waits for the run to be in one of `phases`; fails with what it last was."""
    seen: list[Manifest | None] = [None]

    def reached() -> Manifest | None:
        seen[0] = found = get(bed.cluster, "workflowrun", run, namespace)
        return found if ((found or {}).get("status") or {}).get("phase") in phases else None

    try:
        return wait_until(reached, timeout=60, what=f"WorkflowRun {namespace}/{run} in {phases}")
    except AssertionError as exc:
        last = seen[0] or {}
        shown = json.dumps({"spec": last.get("spec"), "status": last.get("status")}, indent=1)
        raise AssertionError(
            f"{exc}\nthe run was:\n{shown}\noperator log:\n{bed.operator.log_tail()}"
        ) from exc


def start_run(bed: UiBed, workflow: str) -> str:
    """A new WorkflowRun of one of the tests' own workflows; returns its name."""
    name = f"{workflow}-{uuid.uuid4().hex[:6]}"
    bed.cluster.apply(
        {
            "apiVersion": API_VERSION,
            "kind": "WorkflowRun",
            "metadata": {"name": name, "namespace": bed.work},
            "spec": {"workflowRef": workflow, "input": {"n": 1}},
        }
    )
    return name
