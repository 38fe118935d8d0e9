"""The web view (docs/ui.md) in a real browser: Debian's headless Chromium through selenium, the
operator as a process with STEPLINE_UI=true on the real control plane, and real step services.

One operator serves the module, watching three namespaces: the finance example's (its
ServiceSteps, Workflow and both example runs, served by the example's own services on loopback,
as test_city.py serves the city's), the manufacturing example's, and one of the tests' own
workflows played by the programmable step server: `brief` holds its first step a few seconds (a
run to watch live), `pausing` a little longer (a run to cancel from its page: a cancel is
honoured between calls, so it ends when that call answers), `held` for minutes (a run viewed
while it runs, or deleted), `batch` answers at once (sixty runs, to page through). People sign
in with ServiceAccount tokens bound to Roles, as users grant them: `viewer` may get and list
workflows and runs, `canceller` may also patch runs. The browser hooks are those docs/ui.md
lists for tests.

Each page is screenshotted into the artefacts directory (browser.py); nothing is skipped: a
machine without Chromium or axe-core fails naming what to install.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiohttp import web
from selenium.webdriver import Chrome
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.e2e import expected
from tests.integration import browser
from tests.integration.localcluster import LocalCluster, wait_until
from tests.integration.operatorprocess import OperatorProcess
from tests.integration.stepobjects import API_VERSION, Manifest, get, service_step, wait_ready
from tests.integration.stepservices import (
    FINISHED_PHASES,
    ThreadedStepServer,
    account_token,
)
from tests.unit.engine.stepservers import Answer

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

pytestmark = pytest.mark.integration

BRIEF_HOLD_SECONDS = 6  # long enough to see the step Running, short enough to wait for
# A run is cancelled between calls, never during one (engine/calling.py): a run to cancel from
# the page holds its first call long enough to reach the button, and ends once it answers.
PAUSE_SECONDS = 12
LONG_HOLD_SECONDS = 240  # longer than any test that views a held run
PAGE_SIZE = 50  # docs/ui.md: the runs page shows 50 a page
BATCH_RUNS = 60
WAIT_SECONDS = 30  # for what the browser shows to follow the cluster
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


# --- the step services ------------------------------------------------------------------------


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


# --- the module's namespaces, operator and people --------------------------------------------


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


@pytest.fixture(scope="module")
def steps() -> Iterator[ThreadedStepServer]:
    server = ThreadedStepServer().start()
    server.answer("/hold-brief", Answer(json={"held": "briefly"}, delay=BRIEF_HOLD_SECONDS))
    server.answer("/hold-pause", Answer(json={"held": "a while"}, delay=PAUSE_SECONDS))
    server.answer("/hold-long", Answer(json={"held": "long"}, delay=LONG_HOLD_SECONDS))
    server.answer("/answer", lambda got: {"answered": got})
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def bed(
    cluster: LocalCluster,
    crds: None,
    steps: ThreadedStepServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[UiBed]:
    suffix = uuid.uuid4().hex[:6]
    namespaces = (f"t-ui-finance-{suffix}", f"t-ui-manufacturing-{suffix}", f"t-ui-{suffix}")
    for namespace in namespaces:
        cluster.kubectl("create", "namespace", namespace)
    services = ExampleServices().start()
    finance, manufacturing, work = namespaces
    finance_steps = example_names(FINANCE / "servicesteps.yaml")
    manufacturing_steps = example_names(MANUFACTURING / "servicesteps.yaml")
    overrides = {
        **{f"{finance}/{name}": services.urls[name] for name in finance_steps},
        **{f"{manufacturing}/{name}": services.urls[name] for name in manufacturing_steps},
        **{f"{work}/{name}": steps.base_url for name in OWN_STEPS},
    }
    log = tmp_path_factory.mktemp("ui") / "operator.log"
    operator = OperatorProcess(
        cluster,
        namespaces,
        log,
        extra_env={
            "STEPLINE_UI": "true",
            # Run statistics every 2 s, not 30: the workflows page shows a success rate sooner.
            "STEPLINE_RETENTION_INTERVAL_SECONDS": "2",
            "STEPLINE_ENDPOINT_OVERRIDES": json.dumps(overrides),
        },
    )
    opened = UiBed(cluster, operator, finance, manufacturing, work)
    try:
        operator.start()
        apply_examples(cluster, opened)
        apply_own_workflows(cluster, work)
        opened.tokens["viewer"] = grant(cluster, namespaces, "viewer", VIEWER_RULES)
        opened.tokens["canceller"] = grant(cluster, namespaces, "canceller", CANCELLER_RULES)
        yield opened
    finally:
        operator.stop()
        services.stop()
        for namespace in namespaces:
            cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture
def held_run(bed: UiBed) -> Iterator[str]:
    """The name of a run of `held`, Running (its first step held for minutes); cancelled after
    the test, if it is still there."""
    run = start_run(bed, "held")
    wait_phase(bed, bed.work, run, ("Running",))
    yield run
    bed.cluster.kubectl("patch", "workflowrun", run, "-n", bed.work, "--type=merge",
                        "-p", '{"spec": {"cancel": true}}', check=False)  # fmt: skip


@pytest.fixture
def chromium() -> Iterator[Chrome]:
    driver = browser.start_chromium()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def shoot(chromium: Chrome, request: pytest.FixtureRequest) -> Callable[[str], Path]:
    """Screenshots of this test's pages: shoot("runs") saves <test>--runs.png."""
    return lambda page: browser.screenshot(chromium, request.node.name, page)


# --- what the tests do in the browser ---------------------------------------------------------


def wait_for(
    driver: WebDriver, probe: Callable[[WebDriver], Any], what: str, timeout: float = WAIT_SECONDS
) -> Any:
    """Waits until `probe` returns something truthy; fails naming `what` and the page."""
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(probe)
    except Exception as exc:
        body = driver.find_element(By.TAG_NAME, "body").text[:2000]
        raise AssertionError(
            f"{what}: not within {timeout}s at {driver.current_url}; the page says:\n{body}"
        ) from exc


def address_has(fragment: str) -> Callable[[WebDriver], bool]:
    """A probe for `wait_for`: the page's address contains `fragment`."""
    return lambda driver: fragment in driver.current_url


def text_of(driver: WebDriver, css: str) -> str:
    """The visible text of the first element matching `css` ('' when there is none)."""
    found = driver.find_elements(By.CSS_SELECTOR, css)
    return found[0].text.strip() if found else ""


def present(css: str) -> Callable[[WebDriver], list[WebElement]]:
    """A probe for `wait_for`: the elements matching `css` (none: not yet)."""
    return lambda driver: driver.find_elements(By.CSS_SELECTOR, css)


def sign_in(driver: WebDriver, bed: UiBed, token: str) -> None:
    """Signs in at /ui/login as a person does: pastes the token, presses Sign in."""
    driver.get(bed.url("login"))
    submit_token(driver, token)
    wait_for(driver, present("button#sign-out"), "the Sign out button after signing in")


def submit_token(driver: WebDriver, token: str) -> None:
    """Pastes `token` into the sign-in form of the current page and presses Sign in."""
    form = wait_for(driver, present("form#login"), "the sign-in form")[0]
    form.find_element(By.CSS_SELECTOR, "textarea#token").send_keys(token)
    submit_button(form).click()


def submit_button(form: WebElement) -> WebElement:
    buttons = [
        b
        for b in form.find_elements(By.CSS_SELECTOR, "button, input[type=submit]")
        if (b.text or b.get_attribute("value") or "").strip() == "Sign in"
    ]
    assert len(buttons) == 1, "form#login has no single submit button labelled 'Sign in'"
    return buttons[0]


def open_page(driver: WebDriver, bed: UiBed, path: str) -> None:
    driver.get(bed.url(path))
    wait_for(
        driver,
        lambda d: d.find_elements(By.CSS_SELECTOR, "main#main h1, main#main"),
        f"<main id=main> on /ui/{path}",
    )


def rows(driver: WebDriver, css: str, attribute: str) -> list[str]:
    """The values of `attribute` of the rows matching `css`, in page order."""
    return [
        row.get_attribute(attribute) or "" for row in driver.find_elements(By.CSS_SELECTOR, css)
    ]


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


def step_phase(driver: WebDriver, step: str) -> str:
    return text_of(driver, f"table#timeline tr[data-step='{step}'] td.phase")


def unlabelled_controls(driver: WebDriver) -> list[str]:
    """The form controls of the page that have no label: no <label>, aria-label or
    aria-labelledby naming them (hidden inputs and buttons, named by their text, aside)."""
    found: list[str] = driver.execute_script(
        """
        const controls = document.querySelectorAll(
          "input:not([type=hidden]):not([type=submit]):not([type=button]), select, textarea");
        return [...controls].filter(c =>
            !(c.labels && [...c.labels].some(l => l.textContent.trim()))
            && !(c.getAttribute("aria-label") || "").trim()
            && !(c.getAttribute("aria-labelledby") || "").trim())
          .map(c => c.outerHTML.slice(0, 120));
        """
    )
    return found


# --- infrastructure: the browser and its checker, without the operator ----------------------


def test_starting_the_browser_without_chromium_fails_naming_the_install_script(
    tmp_path: Path,
) -> None:
    with pytest.raises(browser.BrowserNotInstalledError) as missing:
        browser.start_chromium(chromium=tmp_path / "chromium")

    assert "hack/install-apt.sh" in str(missing.value)
    assert "chromium" in str(missing.value)


def test_the_accessibility_check_without_axe_core_fails_naming_its_install_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEPLINE_CACHE", str(tmp_path))  # an empty cache

    with pytest.raises(browser.BrowserNotInstalledError) as missing:
        browser.axe_script()

    assert "hack/install-axe.sh" in str(missing.value)


def test_the_accessibility_check_finds_an_unlabelled_field_and_passes_a_labelled_one(
    chromium: Chrome,
) -> None:
    # The check must be able to fail, or passing it means nothing.
    page = (
        "data:text/html,<html lang=en><title>t</title><main><h1>t</h1><form><input id=bare>"
        "<label for=named>Named</label><input id=named></form></main>"
    )

    chromium.get(page)
    found = browser.blocking(browser.run_axe(chromium))

    assert [v["id"] for v in found] == ["label"], browser.describe_violations(found)
    assert [n["target"] for n in found[0]["nodes"]] == [["#bare"]]


# --- the web view ------------------------------------------------------------------------------


def test_signing_in_with_a_token_that_may_list_workflows_shows_the_finance_workflows_ready(
    bed: UiBed, chromium: Chrome, shoot: Callable[[str], Path]
) -> None:
    chromium.get(bed.url(f"namespaces/{bed.finance}/workflows"))
    wait_for(chromium, present("form#login"), "the sign-in form, asked for before signing in")
    shoot("sign-in")

    submit_token(chromium, bed.tokens["viewer"])
    wait_for(chromium, present("button#sign-out"), "the Sign out button after signing in")
    open_page(chromium, bed, f"namespaces/{bed.finance}/workflows")
    assert rows(chromium, "table#workflows tr[data-workflow]", "data-workflow") == ["trade"]
    trade = "table#workflows tr[data-workflow='trade']"
    assert text_of(chromium, f"{trade} td.ready") in ("True", "Ready", "yes")

    # One run succeeded and one failed: half of them, once the statistics are written.
    def rate() -> str | None:
        open_page(chromium, bed, f"namespaces/{bed.finance}/workflows")
        shown = text_of(chromium, f"{trade} td.success-rate")
        return shown if shown not in ("", "-") else None

    assert wait_until(rate, timeout=WAIT_SECONDS, what="a success rate") == "50%"
    shoot("workflows")
    cookie = chromium.get_cookie("stepline-token")
    assert cookie is not None, "no stepline-token cookie after signing in"
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Strict", "/ui/")
    assert bed.tokens["viewer"] not in chromium.page_source
    assert bed.tokens["viewer"] not in bed.operator.log_tail(2000)


def test_a_garbage_token_is_refused_at_the_sign_in_page_with_a_message(
    bed: UiBed, chromium: Chrome, shoot: Callable[[str], Path]
) -> None:
    chromium.get(bed.url("login"))
    form = wait_for(chromium, present("form#login"), "the sign-in form")[0]
    form.find_element(By.CSS_SELECTOR, "textarea#token").send_keys("not-a-token")
    submit_button(form).click()

    problem = wait_for(chromium, lambda d: text_of(d, "#problem"), "a problem named")
    shoot("refused")
    assert chromium.find_elements(By.CSS_SELECTOR, "form#login textarea#token")
    assert chromium.find_element(By.CSS_SELECTOR, "#problem").get_attribute("role") == "alert"
    assert "token" in problem.lower(), problem
    assert chromium.get_cookie("stepline-token") is None
    assert not chromium.find_elements(By.CSS_SELECTOR, "button#sign-out")


def test_signing_out_drops_the_token_and_the_next_page_asks_for_one_again(
    bed: UiBed, chromium: Chrome
) -> None:
    sign_in(chromium, bed, bed.tokens["viewer"])
    assert chromium.get_cookie("stepline-token") is not None

    chromium.find_element(By.ID, "sign-out").click()
    wait_for(chromium, lambda d: d.get_cookie("stepline-token") is None, "the cookie dropped")
    chromium.get(bed.url(f"namespaces/{bed.finance}/workflows"))

    wait_for(chromium, present("form#login"), "the sign-in form after signing out")
    assert not chromium.find_elements(By.CSS_SELECTOR, "table#workflows")


@pytest.mark.parametrize(
    "graph", [FINANCE_GRAPH, MANUFACTURING_GRAPH], ids=["finance", "manufacturing"]
)
def test_the_workflow_page_draws_one_node_per_step_with_its_service_step_and_its_waits(
    bed: UiBed, chromium: Chrome, shoot: Callable[[str], Path], graph: dict[str, Any]
) -> None:
    namespace = bed.finance if graph["example"] == "finance" else bed.manufacturing
    workflow = graph["workflow"]
    sign_in(chromium, bed, bed.tokens["viewer"])

    open_page(chromium, bed, f"namespaces/{namespace}/workflows/{workflow}")
    shoot(f"workflow-{workflow}")

    nodes = {
        node.get_attribute("data-node") or "": node
        for node in chromium.find_elements(By.CSS_SELECTOR, "#graph [data-node]")
    }
    assert sorted(nodes) == sorted(graph["nodes"])
    assert len(chromium.find_elements(By.CSS_SELECTOR, "#graph [data-node]")) == len(nodes)
    for step, node in nodes.items():
        service = graph["nodes"][step]
        # The ServiceStep by name, as a word of the .calls text ("calls user-validation", say).
        calls = node.find_element(By.CSS_SELECTOR, ".calls").text
        assert service in calls.split(), f"step {step}: .calls says {calls!r}"
        spec = (get(bed.cluster, "servicestep", service, namespace) or {})["spec"]
        wanted = spec["scaling"]["minReplicas"]  # kwok runs each pod: all of them ready
        replicas = node.find_element(By.CSS_SELECTOR, ".replicas").text
        shown = re.search(r"\b(\d+)/(\d+)\b", replicas)
        assert shown is not None, f"step {step}: .replicas says {replicas!r}, not N/M"
        assert shown.groups() == (str(wanted), str(wanted)), f"step {step}: {replicas!r}"
    edges = rows(chromium, "#graph [data-edge]", "data-edge")
    assert sorted(edges) == sorted(graph["edges"])


def test_the_finance_workflow_page_shows_that_an_accepted_order_is_undone_by_its_cancellation(
    bed: UiBed, chromium: Chrome
) -> None:
    # docs/ui.md: the graph shows compensations; the order step's is order-cancellation.
    sign_in(chromium, bed, bed.tokens["viewer"])

    open_page(chromium, bed, f"namespaces/{bed.finance}/workflows/trade")

    order = chromium.find_element(By.CSS_SELECTOR, "#graph [data-node='order']")
    shown = chromium.find_element(By.ID, "main").text
    assert "order-cancellation" in shown, (
        f"the page shows no compensation; the order node says {order.text!r}"
    )


def test_the_runs_page_filters_by_phase(
    bed: UiBed, chromium: Chrome, shoot: Callable[[str], Path]
) -> None:
    sign_in(chromium, bed, bed.tokens["viewer"])
    open_page(chromium, bed, f"namespaces/{bed.finance}/runs")
    assert set(rows(chromium, "table#runs tr[data-run]", "data-run")) == {
        "trade-ada-1",
        "trade-charles-1",
    }
    shoot("runs")

    for phase, shown in (("Failed", "trade-charles-1"), ("Succeeded", "trade-ada-1")):
        choose(chromium, "form#run-filters select#phase", phase)
        chromium.find_element(By.CSS_SELECTOR, "form#run-filters").submit()
        wait_for(chromium, address_has(f"phase={phase}"), f"the runs page at ?phase={phase}")
        shoot(f"runs-{phase}")
        assert rows(chromium, "table#runs tr[data-run]", "data-run") == [shown]
        assert text_of(chromium, f"table#runs tr[data-run='{shown}'] td.phase") == phase


def choose(driver: WebDriver, css: str, wanted: str) -> None:
    """Selects the option of the <select> whose value or text is `wanted`."""
    select = Select(driver.find_element(By.CSS_SELECTOR, css))
    options = [
        o for o in select.options if wanted in ((o.get_attribute("value") or ""), o.text.strip())
    ]
    assert options, f"{css} has no option {wanted!r}"
    select.select_by_visible_text(options[0].text)


def test_more_than_fifty_runs_are_paged_fifty_at_a_time(
    bed: UiBed, chromium: Chrome, shoot: Callable[[str], Path]
) -> None:
    names = [f"batch-{i:03d}" for i in range(BATCH_RUNS)]
    bed.cluster.apply(
        [
            {
                "apiVersion": API_VERSION,
                "kind": "WorkflowRun",
                "metadata": {"name": name, "namespace": bed.work},
                "spec": {"workflowRef": "batch", "input": {"i": i}},
            }
            for i, name in enumerate(names)
        ]
    )
    sign_in(chromium, bed, bed.tokens["viewer"])

    def listed() -> list[str] | None:
        open_page(chromium, bed, f"namespaces/{bed.work}/runs?workflow=batch")
        found = rows(chromium, "table#runs tr[data-run]", "data-run")
        return found if len(found) == PAGE_SIZE else None

    first = wait_until(listed, timeout=WAIT_SECONDS, what="a first page of 50 batch runs")
    shoot("runs-page-1")
    assert not chromium.find_elements(By.CSS_SELECTOR, "a[rel=prev]")
    chromium.find_element(By.CSS_SELECTOR, "a[rel=next]").click()
    wait_for(chromium, address_has("page=2"), "the second page")
    second = rows(chromium, "table#runs tr[data-run]", "data-run")
    shoot("runs-page-2")

    assert len(second) == BATCH_RUNS - PAGE_SIZE
    assert sorted(first + second) == names
    assert chromium.find_elements(By.CSS_SELECTOR, "a[rel=prev]")
    assert not chromium.find_elements(By.CSS_SELECTOR, "a[rel=next]")


@pytest.mark.parametrize(
    ("parameter", "attack"),
    [("phase", "<script>alert(1)</script>"), ("workflow", '"><img src=x onerror=alert(1)>')],
)
def test_a_query_value_carrying_markup_gets_a_400_page_that_shows_it_inert(
    bed: UiBed, chromium: Chrome, shoot: Callable[[str], Path], parameter: str, attack: str
) -> None:
    path = f"namespaces/{bed.finance}/runs"
    token = bed.tokens["viewer"]
    answer = httpx.get(
        bed.url(path), params={parameter: attack}, cookies={"stepline-token": token}, timeout=30
    )
    assert answer.status_code == 400, answer.text[:2000]
    assert attack not in answer.text  # escaped, never as markup
    browser.watch_dialogs(chromium)
    sign_in(chromium, bed, token)

    chromium.get(str(httpx.URL(bed.url(path), params={parameter: attack})))
    problem = wait_for(chromium, lambda d: text_of(d, "#problem"), "a problem named")
    shoot(f"injection-{parameter}")

    assert parameter in problem, problem
    assert browser.dialogs_opened(chromium) == []
    assert not chromium.find_elements(By.CSS_SELECTOR, "img[src='x'], img[onerror]")
    scripts = chromium.execute_script(
        "return [...document.scripts].map(s => s.src || s.textContent);"
    )
    assert not [s for s in scripts if "alert(1)" in s], scripts
    assert attack not in chromium.page_source


def test_the_run_page_follows_a_running_run_live_until_it_finishes_without_reloading(
    bed: UiBed, chromium: Chrome, shoot: Callable[[str], Path]
) -> None:
    sign_in(chromium, bed, bed.tokens["viewer"])
    run = start_run(bed, "brief")
    wait_phase(bed, bed.work, run, ("Running",))
    open_page(chromium, bed, f"namespaces/{bed.work}/runs/{run}")
    chromium.execute_script("window.__sameDocument = true;")  # gone if the page reloads
    assert text_of(chromium, "#run-phase") == "Running"
    assert text_of(chromium, "#live") == "live"
    assert step_phase(chromium, "done") == ""  # not started: no row yet
    shoot("run-live")

    wait_for(
        chromium,
        lambda d: text_of(d, "#live") == "finished",
        "#live to say finished",
        timeout=BRIEF_HOLD_SECONDS + WAIT_SECONDS,
    )
    shoot("run-finished")

    assert chromium.execute_script("return window.__sameDocument === true;"), "the page reloaded"
    assert step_phase(chromium, "wait") == "Succeeded"
    assert step_phase(chromium, "done") == "Succeeded"
    assert text_of(chromium, "#run-phase") == "Succeeded"
    assert wait_phase(bed, bed.work, run, FINISHED_PHASES)["status"]["phase"] == "Succeeded"


def test_the_run_page_timeline_shows_the_step_being_called_as_running(
    bed: UiBed, chromium: Chrome, shoot: Callable[[str], Path], held_run: str
) -> None:
    sign_in(chromium, bed, bed.tokens["viewer"])

    open_page(chromium, bed, f"namespaces/{bed.work}/runs/{held_run}")

    wait_for(chromium, lambda d: step_phase(d, "hold") == "Running", "step hold Running")
    shoot("step-running")
    assert step_phase(chromium, "after") in ("", "Pending")


def test_a_viewer_who_may_not_patch_runs_sees_cancel_disabled_with_the_reason(
    bed: UiBed, chromium: Chrome, shoot: Callable[[str], Path], held_run: str
) -> None:
    run = held_run
    sign_in(chromium, bed, bed.tokens["viewer"])

    open_page(chromium, bed, f"namespaces/{bed.work}/runs/{run}")
    shoot("cancel-disabled")

    cancel = chromium.find_element(By.CSS_SELECTOR, CANCEL)
    assert not cancel.is_enabled()
    reason_id = cancel.get_attribute("aria-describedby")
    assert reason_id == "why-cancel"
    reason = text_of(chromium, f"#{reason_id}")
    assert "patch" in reason, reason
    cancel_by_script(chromium)  # what a user forcing the disabled button would send
    time.sleep(1)
    assert wait_phase(bed, bed.work, run, ("Running",))["spec"].get("cancel") in (None, False)


def cancel_by_script(driver: WebDriver) -> None:
    """Submits the actions form with action=cancel even though the button is disabled."""
    driver.execute_script(
        """
        const button = document.querySelector("section#actions button[value=cancel]");
        button.disabled = false;
        button.click();
        """
    )


def test_a_person_who_may_patch_cancels_a_running_run_from_its_page(
    bed: UiBed, chromium: Chrome, shoot: Callable[[str], Path]
) -> None:
    sign_in(chromium, bed, bed.tokens["canceller"])
    run = start_run(bed, "pausing")
    wait_phase(bed, bed.work, run, ("Running",))
    open_page(chromium, bed, f"namespaces/{bed.work}/runs/{run}")
    shoot("cancel-enabled")

    chromium.find_element(By.CSS_SELECTOR, CANCEL).click()

    assert_cancelled_before_its_next_step(bed, run)
    wait_for(
        chromium,
        lambda d: text_of(d, "#run-phase") == "Cancelled",
        "#run-phase Cancelled",
        timeout=PAUSE_SECONDS + WAIT_SECONDS,
    )
    shoot("cancelled")
    # Sent with the person's own token: the API server recorded them as the one who patched.
    assert patched_by(bed, run) == f"system:serviceaccount:{bed.finance}:canceller"


def assert_cancelled_before_its_next_step(bed: UiBed, run: str) -> None:
    """The `pausing` run ends Cancelled (once its held call answers), its second step never
    called."""
    cancelled = wait_phase(bed, bed.work, run, ("Cancelled",))
    assert cancelled["spec"]["cancel"] is True
    after = [s for s in cancelled["status"].get("steps") or [] if s["name"] == "after"]
    assert [s["phase"] for s in after] in ([], ["Pending"], ["Cancelled"]), after


def patched_by(bed: UiBed, run: str) -> str | None:
    """The user the API server's audit log names for the latest patch of the run."""
    user = None
    for line in bed.cluster.audit_log.read_text().splitlines():
        if run not in line:
            continue
        event = json.loads(line)
        ref = event.get("objectRef") or {}
        what = (ref.get("resource"), ref.get("subresource"), ref.get("name"), event.get("verb"))
        if what == ("workflowruns", None, run, "patch"):
            user = event["user"]["username"]
    return user


def test_a_run_deleted_while_viewed_says_so_and_stops_updating(
    bed: UiBed, chromium: Chrome, shoot: Callable[[str], Path], held_run: str
) -> None:
    run = held_run
    sign_in(chromium, bed, bed.tokens["viewer"])
    open_page(chromium, bed, f"namespaces/{bed.work}/runs/{run}")
    assert text_of(chromium, "#live") == "live"

    bed.cluster.kubectl("delete", "workflowrun", run, "-n", bed.work)

    wait_for(chromium, lambda d: text_of(d, "#live") == "deleted", "#live to say deleted")
    shoot("deleted")
    asked = update_requests(chromium)
    time.sleep(3)  # several long-poll rounds, were it still asking

    assert update_requests(chromium) == asked, "the page still asks for updates of a deleted run"
    said = f"{text_of(chromium, '#problem')} {text_of(chromium, '#notice')}"
    assert "deleted" in said.lower(), f"#problem and #notice say: {said!r}"
    assert chromium.find_element(By.ID, "live").get_attribute("role") == "status"


def update_requests(driver: WebDriver) -> int:
    """How many requests for a run's live updates the page has made (and had answered)."""
    count: int = driver.execute_script(
        "return performance.getEntriesByType('resource')"
        ".filter(e => e.name.includes('/updates')).length;"
    )
    return count


def test_every_page_has_no_serious_accessibility_violation_and_every_control_a_label(
    bed: UiBed, chromium: Chrome, shoot: Callable[[str], Path], held_run: str
) -> None:
    run = held_run
    chromium.get(bed.url("login"))
    pages = {
        "sign-in": None,
        "namespaces": "",
        "workflows": f"namespaces/{bed.finance}/workflows",
        "workflow": f"namespaces/{bed.finance}/workflows/trade",
        "runs": f"namespaces/{bed.finance}/runs",
        "run": f"namespaces/{bed.finance}/runs/trade-charles-1",
        "running run": f"namespaces/{bed.work}/runs/{run}",
        "bad request": f"namespaces/{bed.finance}/runs?phase=Sleeping",
        "not found": f"namespaces/{bed.finance}/runs/no-such-run",
    }
    problems = {}
    for page, path in pages.items():
        if path is None:
            wait_for(chromium, present("form#login"), "sign-in")
        else:
            if not chromium.find_elements(By.CSS_SELECTOR, "button#sign-out"):
                sign_in(chromium, bed, bed.tokens["canceller"])
            open_page(chromium, bed, path)
        shoot(page)
        found = browser.blocking(browser.run_axe(chromium))
        if found:
            problems[page] = browser.describe_violations(found)
        unlabelled = unlabelled_controls(chromium)
        if unlabelled:
            problems[f"{page} (controls without a label)"] = "\n".join(unlabelled)

    assert not problems, "\n\n".join(f"{page}:\n{text}" for page, text in problems.items())


def test_signing_in_and_cancelling_a_run_work_with_the_keyboard_alone(
    bed: UiBed, chromium: Chrome, shoot: Callable[[str], Path]
) -> None:
    chromium.get(bed.url("login"))
    wait_for(chromium, present("form#login"), "sign-in")

    token = browser.tab_to(chromium, "textarea#token")
    token.send_keys(bed.tokens["canceller"])
    submit = browser.press_tab(chromium)
    assert submit == submit_button(chromium.find_element(By.CSS_SELECTOR, "form#login"))
    submit.send_keys(Keys.ENTER)
    wait_for(
        chromium,
        present("button#sign-out"),
        "signed in by keyboard",
    )
    run = start_run(bed, "pausing")
    wait_phase(bed, bed.work, run, ("Running",))
    open_page(chromium, bed, f"namespaces/{bed.work}/runs/{run}")
    cancel = browser.tab_to(chromium, CANCEL)
    shoot("cancel-focused")
    cancel.send_keys(Keys.ENTER)

    assert_cancelled_before_its_next_step(bed, run)


def test_a_run_page_shows_each_step_of_a_finished_run_and_its_phase(
    bed: UiBed, chromium: Chrome, shoot: Callable[[str], Path]
) -> None:
    sign_in(chromium, bed, bed.tokens["viewer"])

    open_page(chromium, bed, f"namespaces/{bed.finance}/runs/trade-charles-1")
    shoot("run-failed")

    assert text_of(chromium, "#run-phase") == "Failed"
    assert text_of(chromium, "#live") == "finished"
    run = get(bed.cluster, "workflowrun", "trade-charles-1", bed.finance) or {}
    recorded = {s["name"]: s["phase"] for s in run["status"]["steps"]}
    assert {step: step_phase(chromium, step) for step in recorded} == recorded
    assert re.search(r"account\.cash", chromium.find_element(By.ID, "timeline").text)
