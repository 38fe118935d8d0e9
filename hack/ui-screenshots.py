"""The README's screenshots of the web view, taken from a running `make demo`.

    make demo            # in one shell; wait for "the web view" in what it prints
    .venv/bin/python hack/ui-screenshots.py

Signs in with the token the demo wrote (.stepline/demo/viewer.token) in Debian's headless
Chromium (the browser tests' own, tests/integration/browser.py) and writes
docs/images/ui-workflow.png (the finance workflow's graph) and docs/images/ui-run.png (one of
its runs). `--all DIR` also writes the namespace's workflows and runs pages into DIR.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.integration.browser import start_chromium  # noqa: E402

NAMESPACE, WORKFLOW, RUN = "finance", "trade", "trade-charles-1"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default="http://127.0.0.1:18080", help="the demo's")
    parser.add_argument("--token", type=Path, default=ROOT / ".stepline/demo/viewer.token")
    parser.add_argument("--images", type=Path, default=ROOT / "docs/images")
    parser.add_argument("--all", type=Path, help="also the workflows and runs pages, here")
    args = parser.parse_args()
    if not args.token.exists():
        parser.error(f"no token at {args.token}: start `make demo` first, it writes one")
    token = args.token.read_text().strip()
    base = f"{args.address}/ui/namespaces/{NAMESPACE}"
    driver = start_chromium()
    wait = WebDriverWait(driver, 30)
    try:
        driver.get(f"{args.address}/ui/login?next=/ui/namespaces/{NAMESPACE}/workflows/{WORKFLOW}")
        driver.find_element(By.ID, "token").send_keys(token)
        driver.find_element(By.CSS_SELECTOR, "#login button[type=submit]").click()
        wait.until(lambda d: d.find_elements(By.ID, "graph"))
        shots = {args.images / "ui-workflow.png": None, args.images / "ui-run.png": f"runs/{RUN}"}
        if args.all is not None:
            args.all.mkdir(parents=True, exist_ok=True)
            shots |= {args.all / "ui-workflows.png": "workflows", args.all / "ui-runs.png": "runs"}
        for path, page in shots.items():
            if page is not None:
                driver.get(f"{base}/{page}")
                wait.until(lambda d: d.find_elements(By.ID, "main"))
            driver.save_screenshot(str(path))
            print(path)
    finally:
        driver.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
