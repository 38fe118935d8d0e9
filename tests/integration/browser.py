"""A real browser for the web view's tests: Debian's headless Chromium driven through selenium.

`start_chromium()` launches /usr/bin/chromium through /usr/bin/chromedriver (the Debian packages
`chromium` and `chromium-driver`, which hack/install-apt.sh installs); either one missing
raises `BrowserNotInstalledError` naming that command, so a machine without them fails every
browser test loudly rather than skipping it. Nothing is downloaded: the driver's path is given,
so selenium's driver manager never runs.

Around it, what the tests look at: `screenshot()` saves a PNG named after the test into the
artefacts directory ($STEPLINE_ARTEFACTS, or .stepline/artefacts/ui/, outside git);
`run_axe()` injects axe-core (hack/install-axe.sh caches it, keyed by the version pinned there)
and returns its WCAG 2 A/AA violations, `assert_accessible()` fails naming every serious or
critical one; `press_tab()` moves the focus as a keyboard user does and returns what has it;
`watch_dialogs()` records any alert, confirm or prompt a page opens, for the injection tests.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

from tests.integration.localcluster import HACK, REPO

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# The page's size (the viewport): the README's screenshots are taken at it, and a fixed one
# keeps layouts comparable from run to run.
WINDOW_SIZE = (1280, 800)
PAGE_LOAD_TIMEOUT_SECONDS = 30
AXE_INSTALLER = HACK / "install-axe.sh"
# WCAG 2.0, 2.1 and 2.2 at levels A and AA: axe's tags for the rules that test them.
WCAG_TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa")
BLOCKING_IMPACTS = ("serious", "critical")


class BrowserNotInstalledError(RuntimeError):
    """Chromium, its driver or axe-core is not installed; the message says how to install it."""


def start_chromium(
    *, chromium: Path = CHROMIUM, chromedriver: Path = CHROMEDRIVER
) -> webdriver.Chrome:
    """A headless Chromium of WINDOW_SIZE; quit it when done. Raises
    `BrowserNotInstalledError` naming hack/install-apt.sh when either program is missing."""
    require_chromium(chromium=chromium, chromedriver=chromedriver)
    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # the tests run as root, where Chromium's sandbox cannot start
        "--disable-dev-shm-usage",  # /dev/shm is small in containers
        "--disable-gpu",
        "--no-first-run",
        "--lang=en-GB",
        f"--window-size={WINDOW_SIZE[0]},{WINDOW_SIZE[1]}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=str(chromedriver)), options=options)
    driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT_SECONDS)
    # --window-size sizes the window, the browser's own bars included: grow it by what they
    # take, so that pages (and screenshots) get WINDOW_SIZE.
    bars = driver.execute_script(
        "return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight];"
    )
    driver.set_window_size(WINDOW_SIZE[0] + bars[0], WINDOW_SIZE[1] + bars[1])
    return driver


def require_chromium(*, chromium: Path = CHROMIUM, chromedriver: Path = CHROMEDRIVER) -> None:
    """Raises `BrowserNotInstalledError` unless both programs are there and executable."""
    missing = [
        f"{path} (Debian package {package})"
        for path, package in ((chromium, "chromium"), (chromedriver, "chromium-driver"))
        if not os.access(path, os.X_OK)
    ]
    if missing:
        raise BrowserNotInstalledError(
            f"the browser tests need {' and '.join(missing)}: run hack/install-apt.sh as root "
            "(or: apt-get install chromium chromium-driver)"
        )


def artefacts_dir() -> Path:
    """Where screenshots go: $STEPLINE_ARTEFACTS, or .stepline/artefacts/ui/ (gitignored)."""
    given = os.environ.get("STEPLINE_ARTEFACTS")
    directory = Path(given) if given else REPO / ".stepline" / "artefacts" / "ui"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def screenshot(driver: WebDriver, test_name: str, page: str) -> Path:
    """Saves what the browser shows as <artefacts>/<test>--<page>.png; returns the path."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{test_name}--{page}").strip("-")
    path = artefacts_dir() / f"{stem}.png"
    if not driver.save_screenshot(str(path)):
        raise AssertionError(f"the browser saved no screenshot at {path}")
    return path


def axe_script() -> Path:
    """The cached axe.min.js of the version pinned in hack/install-axe.sh; raises
    `BrowserNotInstalledError` naming that script when it has not been fetched."""
    pinned = re.search(r"^AXE_CORE_VERSION=(\S+)$", AXE_INSTALLER.read_text(), re.MULTILINE)
    if pinned is None:
        raise AssertionError(f"{AXE_INSTALLER} pins no AXE_CORE_VERSION")
    cache = Path(os.environ.get("STEPLINE_CACHE") or Path.home() / ".cache" / "stepline")
    script = cache / f"axe-core-{pinned.group(1)}" / "axe.min.js"
    if not script.is_file():
        raise BrowserNotInstalledError(f"axe-core is not at {script}: run hack/install-axe.sh")
    return script


def run_axe(driver: WebDriver, *, context: str = "document") -> list[dict[str, Any]]:
    """axe-core's WCAG 2 A/AA violations on the current page (within the CSS selector
    `context`, or the whole document), as axe reports them: id, impact, help, nodes."""
    driver.execute_script(axe_script().read_text())
    result = driver.execute_async_script(
        """
        const [context, tags, done] = arguments;
        axe.run(context === "document" ? document : context,
                {runOnly: {type: "tag", values: tags}, resultTypes: ["violations"]})
          .then(found => done({violations: found.violations}))
          .catch(error => done({error: String(error)}));
        """,
        context,
        list(WCAG_TAGS),
    )
    if "error" in result:
        raise AssertionError(f"axe-core failed on {driver.current_url}: {result['error']}")
    return cast(list[dict[str, Any]], result["violations"])


def blocking(violations: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The violations of serious or critical impact."""
    return [v for v in violations if v.get("impact") in BLOCKING_IMPACTS]


def describe_violations(violations: Sequence[dict[str, Any]]) -> str:
    """One paragraph per violation: its rule, impact and help, and the elements it found."""
    lines = []
    for violation in violations:
        lines.append(f"{violation['id']} ({violation.get('impact')}): {violation['help']}")
        for node in violation.get("nodes", [])[:5]:
            target = " ".join(str(t) for t in node.get("target", []))
            summary = (node.get("failureSummary") or "").replace("\n", " ")
            lines.append(f"    at {target}: {summary}")
    return "\n".join(lines)


def assert_accessible(driver: WebDriver, page: str) -> None:
    """Fails naming every serious or critical WCAG 2 A/AA violation axe finds on the page."""
    found = blocking(run_axe(driver))
    assert not found, (
        f"axe-core found serious or critical violations on the {page} page "
        f"({driver.current_url}):\n{describe_violations(found)}"
    )


def press_tab(driver: WebDriver, *, backwards: bool = False) -> WebElement:
    """Presses Tab (Shift+Tab with `backwards`) as a keyboard user does; returns the element
    that then has the focus (document.activeElement)."""
    actions = ActionChains(driver)
    if backwards:
        actions.key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT)
    else:
        actions.send_keys(Keys.TAB)
    actions.perform()
    return driver.switch_to.active_element


def tab_to(driver: WebDriver, css: str, *, presses: int = 40) -> WebElement:
    """Presses Tab from the top of the page until the element matching `css` has the focus;
    returns it. Fails naming the elements visited when it is not reached in `presses`."""
    driver.execute_script("document.activeElement && document.activeElement.blur();")
    visited = []
    for _ in range(presses):
        focused = press_tab(driver)
        if driver.execute_script("return arguments[0].matches(arguments[1]);", focused, css):
            return focused
        visited.append(describe_element(driver, focused))
    raise AssertionError(
        f"Tab never reached {css} on {driver.current_url} in {presses} presses; "
        f"the focus went: {' -> '.join(visited)}"
    )


def describe_element(driver: WebDriver, element: WebElement) -> str:
    """tag#id.class[name] of the element, for messages."""
    described: str = driver.execute_script(
        """
        const e = arguments[0];
        let s = e.tagName.toLowerCase();
        if (e.id) s += "#" + e.id;
        if (typeof e.className === "string" && e.className)
          s += "." + e.className.trim().split(/\\s+/).join(".");
        if (e.getAttribute("name")) s += "[name=" + e.getAttribute("name") + "]";
        return s;
        """,
        element,
    )
    return described


DIALOG_WATCH = """
window.__steplineDialogs = [];
for (const kind of ["alert", "confirm", "prompt"]) {
  window[kind] = (message) => { window.__steplineDialogs.push(kind + ": " + message); };
}
"""


def watch_dialogs(driver: webdriver.Chrome) -> None:
    """From the next page load on, every alert(), confirm() and prompt() a page calls is recorded
    (and opens nothing): `dialogs_opened()` reads them. Installed before any script of the page
    runs, so an injected script running at load is caught too."""
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": DIALOG_WATCH})


def dialogs_opened(driver: WebDriver) -> list[str]:
    """The dialogs the current page opened since it loaded: recorded by `watch_dialogs`, or a
    real one still open (a page loaded before the watch)."""
    try:
        alert = driver.switch_to.alert
        text = alert.text
        alert.dismiss()
        return [f"open dialog: {text}"]
    except NoAlertPresentException:
        pass
    recorded = driver.execute_script("return window.__steplineDialogs || null;")
    if recorded is None:
        raise AssertionError("watch_dialogs() was not installed before this page loaded")
    return [str(entry) for entry in recorded]
