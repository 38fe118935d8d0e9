"""A run page's live updates (`…/runs/{name}/updates?version=`): answered at once with a newer
version and the replacement of `#run-live`, else at the run's next watch event, else
`unchanged` after the wait; `deleted` once the watch saw the run deleted; errors as JSON, the
body invoke's errors have."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from stepline.errors import KubeApiError
from stepline.ui import app as app_module
from stepline.ui.app import UiApp
from stepline.ui.live import RunFeed
from tests.unit.ui.cluster import (
    Reviewer,
    Runs,
    answer,
    get,
    header,
    request,
    run_body,
    succeeded,
)

RUN = "/ui/namespaces/shop/runs/trade-x7k2p"
UPDATES = f"{RUN}/updates"


@pytest.fixture
async def shown(app: UiApp, runs: Runs) -> UiApp:
    """The app after the run page was shown at version 7."""
    runs.put(run_body(succeeded("validation", 0, 0.1, {"approved": True}), version="7"))
    assert (await app(get(RUN))).status == 200
    return app


@pytest.fixture
def no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_module, "UPDATE_WAIT_SECONDS", 0)


async def settle() -> None:
    """Lets started requests run until each waits for an event (no time passes)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_viewer_behind_the_watch_gets_the_newer_version_and_html_at_once(
    shown: UiApp, feed: RunFeed
) -> None:
    feed.observe("MODIFIED", run_body(succeeded("validation", 0, 0.1, {"approved": True}),
                                      version="8", phase="Succeeded"))  # fmt: skip

    got = await shown(get(UPDATES, "version=7"))

    update = answer(got)
    assert got.status == 200
    assert header(got, "Cache-Control") == "no-store"
    assert (update["version"], update["live"]) == ("8", "finished")
    assert '<span class="phase phase-succeeded" id="run-phase">Succeeded</span>' in update["html"]
    assert '<tr data-step="validation"' in update["html"]
    assert "<html" not in update["html"]  # only what replaces #run-live


async def test_a_viewer_up_to_date_is_answered_at_the_runs_next_event(
    shown: UiApp, feed: RunFeed
) -> None:
    waiting = asyncio.create_task(shown(get(UPDATES, "version=7")))
    await settle()
    assert not waiting.done()

    feed.observe("MODIFIED", run_body(version="9", phase="Running"))

    update = answer(await waiting)
    assert (update["version"], update["live"]) == ("9", "live")


@pytest.mark.usefixtures("no_wait")
async def test_a_viewer_up_to_date_is_told_unchanged_after_the_wait(shown: UiApp) -> None:
    got = await shown(get(UPDATES, "version=7"))

    assert got.status == 200
    assert answer(got) == {"version": "7", "unchanged": True}


async def test_a_viewer_of_a_deleted_run_is_told_deleted_with_no_html(
    shown: UiApp, feed: RunFeed
) -> None:
    feed.observe("DELETED", run_body(version="8"))

    assert answer(await shown(get(UPDATES, "version=7"))) == {
        "version": "7",
        "live": "deleted",
        "html": "",
    }


async def test_a_run_no_longer_followed_is_read_again_and_followed(
    app: UiApp, runs: Runs, feed: RunFeed
) -> None:
    runs.put(run_body(version="12"))

    update = answer(await app(get(UPDATES, "version=7")))

    assert (update["version"], update["live"]) == ("12", "live")
    assert runs.reads == [("shop", "trade-x7k2p")]
    assert feed.latest("shop", "trade-x7k2p") is not None


async def test_a_run_no_longer_followed_and_gone_is_told_deleted(app: UiApp) -> None:
    assert answer(await app(get(UPDATES, "version=7")))["live"] == "deleted"


async def test_a_run_no_longer_followed_that_cannot_be_read_is_503(app: UiApp, runs: Runs) -> None:
    runs.failing = KubeApiError("timed out", status=0)

    got = await app(get(UPDATES, "version=7"))

    assert got.status == 503
    assert answer(got)["error"]["reason"] == "Unavailable"


@pytest.mark.parametrize("version", ["abc", "7;", "<b>", "-1"])
async def test_a_version_that_is_not_a_resource_version_is_400_in_json(
    shown: UiApp, version: str
) -> None:
    got = await shown(get(UPDATES, f"version={version}"))

    assert got.status == 400
    assert answer(got)["error"]["reason"] == "BadRequest"


async def test_a_parameter_updates_do_not_take_is_400_in_json_naming_it(shown: UiApp) -> None:
    got = await shown(get(UPDATES, "version=7&phase=Running"))

    assert got.status == 400
    assert answer(got)["error"]["reason"] == "BadRequest"
    assert "phase" in answer(got)["error"]["message"]


async def test_updates_posted_are_405_in_json_with_allow(shown: UiApp) -> None:
    got = await shown(request("POST", UPDATES))

    assert got.status == 405
    assert header(got, "Allow") == "GET, HEAD"
    assert answer(got)["error"] == {
        "reason": "MethodNotAllowed", "message": "POST is not allowed here; use GET, HEAD."
    }  # fmt: skip


async def test_updates_without_the_cookie_are_401_in_json_not_a_redirect(shown: UiApp) -> None:
    got = await shown(get(UPDATES, "version=7", cookie=None))

    assert got.status == 401
    assert answer(got)["error"]["message"].startswith("Sign in again")


async def test_updates_of_a_run_the_user_may_not_get_are_403_in_json_naming_the_verb(
    make_app: Callable[..., UiApp], reviewer: Reviewer
) -> None:
    reviewer.revoke("get", "workflowruns")

    got = await make_app()(get(UPDATES, "version=7"))

    assert got.status == 403
    assert "may not get workflowruns.stepline.io 'trade-x7k2p'" in answer(got)["error"]["message"]


async def test_updates_while_the_api_server_cannot_be_reached_are_503_in_json(
    app: UiApp, reviewer: Reviewer
) -> None:
    reviewer.failing = KubeApiError("connection refused", status=0)

    got = await app(get(UPDATES, "version=7"))

    assert got.status == 503
    assert "could not reach the Kubernetes API server" in answer(got)["error"]["message"]
