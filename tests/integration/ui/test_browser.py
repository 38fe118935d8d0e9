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

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver import Chrome
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.integration import browser
from tests.integration.localcluster import wait_until
from tests.integration.stepobjects import API_VERSION, get
from tests.integration.stepservices import (
    FINISHED_PHASES,
)
from tests.integration.ui.bed import (
    ALLOWED_TTL_SECONDS,
    BATCH_RUNS,
    BRIEF_HOLD_SECONDS,
    CANCEL,
    FINANCE_GRAPH,
    MANUFACTURING_GRAPH,
    PAGE_SIZE,
    PAUSE_SECONDS,
    VIEWER_RULES,
    WAIT_SECONDS,
    UiBed,
    grant,
    wait_phase,
)
from tests.integration.ui.driving import (
    address_has,
    assert_cancelled_before_its_next_step,
    cancel_by_script,
    choose,
    open_new_run,
    open_page,
    patched_by,
    present,
    rows,
    sign_in,
    step_phase,
    submit_button,
    submit_token,
    text_of,
    unlabelled_controls,
    update_requests,
    wait_for,
)

pytestmark = pytest.mark.integration


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
    run = open_new_run(chromium, bed, "brief")
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


def test_a_person_who_may_patch_cancels_a_running_run_from_its_page(
    bed: UiBed, chromium: Chrome, shoot: Callable[[str], Path]
) -> None:
    sign_in(chromium, bed, bed.tokens["canceller"])
    run = open_new_run(chromium, bed, "pausing")
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


def test_a_viewer_whose_permission_is_taken_away_sees_the_updates_stop_with_the_reason(
    bed: UiBed, chromium: Chrome, shoot: Callable[[str], Path], held_run: str
) -> None:
    run = held_run
    sign_in(chromium, bed, grant(bed.cluster, (bed.work,), "revoked", VIEWER_RULES))
    open_page(chromium, bed, f"namespaces/{bed.work}/runs/{run}")
    assert text_of(chromium, "#live") == "live"

    bed.cluster.kubectl("delete", "rolebinding", "revoked-ui", "-n", bed.work)
    time.sleep(ALLOWED_TTL_SECONDS + 1)  # the operator remembers an allowed viewer this long
    # An event of the run answers the update request parked since before the revocation; the
    # page's next one is checked again, and refused.
    bed.cluster.kubectl("annotate", "workflowrun", run, "-n", bed.work, "viewed=revoked")

    wait_for(chromium, lambda d: text_of(d, "#live") == "stopped", "#live to say stopped")
    shoot("updates-stopped")
    problem = text_of(chromium, "#problem")
    assert problem.startswith("Updates stopped: "), problem
    assert "may not get workflowruns.stepline.io" in problem, problem
    asked = update_requests(chromium)
    time.sleep(3)
    assert update_requests(chromium) == asked, "the page keeps asking after a 403"


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
    run = open_new_run(chromium, bed, "pausing")
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
