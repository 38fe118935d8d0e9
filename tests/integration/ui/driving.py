"""What the browser tests do in the browser: sign in, open a page, wait for what it shows,
read its rows, phases and controls."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.integration.ui.bed import WAIT_SECONDS, UiBed, start_run, wait_phase


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


def open_new_run(driver: WebDriver, bed: UiBed, workflow: str) -> str:
    """Starts a run of `workflow` (in the tests' own namespace), opens its page once it is
    Running, and returns its name."""
    run = start_run(bed, workflow)
    wait_phase(bed, bed.work, run, ("Running",))
    open_page(driver, bed, f"namespaces/{bed.work}/runs/{run}")
    return run


def rows(driver: WebDriver, css: str, attribute: str) -> list[str]:
    """The values of `attribute` of the rows matching `css`, in page order."""
    return [
        row.get_attribute(attribute) or "" for row in driver.find_elements(By.CSS_SELECTOR, css)
    ]


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


def choose(driver: WebDriver, css: str, wanted: str) -> None:
    """Selects the option of the <select> whose value or text is `wanted`."""
    select = Select(driver.find_element(By.CSS_SELECTOR, css))
    options = [
        o for o in select.options if wanted in ((o.get_attribute("value") or ""), o.text.strip())
    ]
    assert options, f"{css} has no option {wanted!r}"
    select.select_by_visible_text(options[0].text)


def cancel_by_script(driver: WebDriver) -> None:
    """Submits the actions form with action=cancel even though the button is disabled."""
    driver.execute_script(
        """
        const button = document.querySelector("section#actions button[value=cancel]");
        button.disabled = false;
        button.click();
        """
    )


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


def update_requests(driver: WebDriver) -> int:
    """How many requests for a run's live updates the page has made (and had answered)."""
    count: int = driver.execute_script(
        "return performance.getEntriesByType('resource')"
        ".filter(e => e.name.includes('/updates')).length;"
    )
    return count
