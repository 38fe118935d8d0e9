"""The browser tests' fixtures: the step server, the bed (bed.py), a run held Running,
headless Chromium (tests/integration/browser.py) and its screenshots."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium.webdriver import Chrome

from tests.integration import browser
from tests.integration.localcluster import LocalCluster
from tests.integration.operatorprocess import OperatorProcess
from tests.integration.stepservices import (
    ThreadedStepServer,
)
from tests.integration.ui.bed import (
    ALLOWED_TTL_SECONDS,
    BRIEF_HOLD_SECONDS,
    CANCELLER_RULES,
    FINANCE,
    LONG_HOLD_SECONDS,
    MANUFACTURING,
    OWN_STEPS,
    PAUSE_SECONDS,
    VIEWER_RULES,
    ExampleServices,
    UiBed,
    apply_examples,
    apply_own_workflows,
    example_names,
    grant,
    start_run,
    wait_phase,
)
from tests.unit.engine.stepservers import Answer


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
            # A revoked permission is seen within 3 s, not 10 (the default).
            "STEPLINE_INVOKE_AUTH_ALLOWED_TTL_SECONDS": str(ALLOWED_TTL_SECONDS),
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
