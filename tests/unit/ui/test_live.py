"""`RunFeed`: the latest body of each run a page shows, kept from the run watch; a viewer's
update request answered at once when there is another version, else at the run's next event,
else after its timeout with nothing; runs nobody asks after forgotten — on a fake clock.

`asyncio.sleep(0)` below only lets a started waiter run until it blocks; no test waits for time
to pass (a timeout of 0 expires at the waiter's first pause)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stepline.ui.live import KEEP_SECONDS, SWEEP_SECONDS, RunFeed, RunUpdate, version_of
from tests.unit.gateway.reviewers import Clock

WAIT = 30.0  # a waiter's timeout that never expires in these tests


def body(version: str, *, name: str = "r-1", phase: str = "Running") -> dict[str, Any]:
    return {
        "metadata": {"namespace": "shop", "name": name, "resourceVersion": version},
        "status": {"phase": phase},
    }


async def blocked(feed: RunFeed, version: str, name: str = "r-1") -> asyncio.Task[Any]:
    waiter = asyncio.create_task(feed.wait_newer("shop", name, version, timeout=WAIT))
    await asyncio.sleep(0)
    assert not waiter.done(), "the waiter answered before any event"
    return waiter


def test_the_version_of_a_body_is_its_resource_version_or_blank() -> None:
    assert version_of(body("12")) == "12"
    assert version_of({"metadata": {}}) == ""
    assert version_of({}) == ""


async def test_a_viewer_showing_an_older_version_is_answered_at_once_with_the_latest(
    feed: RunFeed,
) -> None:
    feed.follow("shop", "r-1", body("5"))
    feed.observe("MODIFIED", body("6", phase="Succeeded"))

    update = await feed.wait_newer("shop", "r-1", "5", timeout=WAIT)

    assert update == RunUpdate(body("6", phase="Succeeded"), "6")


async def test_a_viewer_showing_the_latest_version_waits_for_the_runs_next_event(
    feed: RunFeed,
) -> None:
    feed.follow("shop", "r-1", body("5"))
    waiter = await blocked(feed, "5")

    feed.observe("MODIFIED", body("6", name="r-2"))  # another run: not this one's event
    await asyncio.sleep(0)
    assert not waiter.done()
    feed.observe("MODIFIED", body("7"))

    assert await waiter == RunUpdate(body("7"), "7")


async def test_several_viewers_of_one_run_are_all_answered_by_its_event(feed: RunFeed) -> None:
    feed.follow("shop", "r-1", body("5"))
    first, second = await blocked(feed, "5"), await blocked(feed, "5")

    feed.observe("MODIFIED", body("6"))

    assert [await first, await second] == [RunUpdate(body("6"), "6")] * 2


async def test_a_viewer_is_answered_none_when_nothing_changes_within_its_timeout(
    feed: RunFeed,
) -> None:
    feed.follow("shop", "r-1", body("5"))

    assert await feed.wait_newer("shop", "r-1", "5", timeout=0) is None
    assert feed.latest("shop", "r-1") == RunUpdate(body("5"), "5")


async def test_a_deleted_run_is_answered_with_no_body_to_waiting_and_later_viewers(
    feed: RunFeed,
) -> None:
    feed.follow("shop", "r-1", body("5"))
    waiter = await blocked(feed, "5")

    feed.observe("DELETED", body("6"))

    assert await waiter == RunUpdate(None, "5")
    assert await feed.wait_newer("shop", "r-1", "5", timeout=WAIT) == RunUpdate(None, "5")


async def test_wake_all_answers_every_waiting_viewer_with_what_it_has(feed: RunFeed) -> None:
    feed.follow("shop", "r-1", body("5"))
    feed.follow("shop", "r-2", body("8", name="r-2"))
    one, two = await blocked(feed, "5"), await blocked(feed, "8", name="r-2")

    feed.wake_all()

    assert await one == RunUpdate(body("5"), "5")
    assert await two == RunUpdate(body("8", name="r-2"), "8")


async def test_waiting_for_a_run_not_followed_is_a_key_error(feed: RunFeed) -> None:
    feed.follow("shop", "r-1", body("5"))

    with pytest.raises(KeyError):
        await feed.wait_newer("shop", "r-2", "5", timeout=WAIT)
    with pytest.raises(KeyError):
        await feed.wait_newer("bank", "r-1", "5", timeout=WAIT)


def test_events_of_runs_not_followed_are_not_kept(feed: RunFeed) -> None:
    feed.observe("ADDED", body("1"))
    feed.follow("shop", "r-1", body("5"))
    feed.observe("ADDED", body("2", name="r-2"))
    feed.observe("MODIFIED", {"metadata": {"name": "r-1"}})  # no namespace: not shop's r-1

    assert len(feed) == 1
    assert feed.latest("shop", "r-2") is None
    assert feed.latest("shop", "r-1") == RunUpdate(body("5"), "5")


def test_an_older_body_from_a_late_read_does_not_replace_a_newer_one_from_the_watch(
    feed: RunFeed,
) -> None:
    feed.follow("shop", "r-1", body("5"))
    feed.observe("MODIFIED", body("9", phase="Succeeded"))

    feed.follow("shop", "r-1", body("7"))  # a second page's GET, answered before the event

    assert feed.latest("shop", "r-1") == RunUpdate(body("9", phase="Succeeded"), "9")


def test_versions_are_compared_as_numbers_not_as_text(feed: RunFeed) -> None:
    feed.follow("shop", "r-1", body("9"))
    feed.follow("shop", "r-1", body("10"))
    feed.follow("shop", "r-1", body("8"))

    assert feed.latest("shop", "r-1") == RunUpdate(body("10"), "10")


async def test_a_newer_body_from_a_read_replaces_the_kept_one_and_answers_the_waiters(
    feed: RunFeed,
) -> None:
    feed.follow("shop", "r-1", body("5"))
    waiter = await blocked(feed, "5")

    feed.follow("shop", "r-1", body("6"))

    assert await waiter == RunUpdate(body("6"), "6")


def test_a_read_does_not_bring_back_a_run_the_watch_saw_deleted(feed: RunFeed) -> None:
    feed.follow("shop", "r-1", body("5"))
    feed.observe("DELETED", body("5"))

    feed.follow("shop", "r-1", body("6"))

    assert feed.latest("shop", "r-1") == RunUpdate(None, "5")


def test_a_run_nobody_asked_after_for_keep_seconds_is_forgotten(clock: Clock) -> None:
    feed = RunFeed(keep_seconds=KEEP_SECONDS, clock=clock)
    feed.follow("shop", "old", body("1", name="old"))
    clock.now += KEEP_SECONDS - 5
    feed.follow("shop", "kept", body("1", name="kept"))

    clock.now += SWEEP_SECONDS  # old: asked longer than KEEP_SECONDS ago; kept: not
    feed.follow("shop", "new", body("1", name="new"))

    assert feed.latest("shop", "old") is None
    assert feed.latest("shop", "kept") is not None
    assert len(feed) == 2


def test_runs_are_swept_at_most_every_sweep_seconds(clock: Clock) -> None:
    feed = RunFeed(keep_seconds=1, clock=clock)
    clock.now += SWEEP_SECONDS  # the first sweep is due
    feed.follow("shop", "r-1", body("1"))
    clock.now += SWEEP_SECONDS - 1  # r-1 is stale, but the last sweep was just now

    feed.follow("shop", "r-2", body("1", name="r-2"))
    assert len(feed) == 2
    clock.now += 1
    feed.follow("shop", "r-3", body("1", name="r-3"))

    assert feed.latest("shop", "r-1") is None
    assert len(feed) == 2


async def test_a_viewers_request_counts_as_asking_after_the_run(clock: Clock) -> None:
    feed = RunFeed(keep_seconds=KEEP_SECONDS, clock=clock)
    feed.follow("shop", "r-1", body("1"))
    clock.now += KEEP_SECONDS - 1
    assert await feed.wait_newer("shop", "r-1", "1", timeout=0) is None

    clock.now += KEEP_SECONDS - 1
    feed.follow("shop", "r-2", body("1", name="r-2"))

    assert feed.latest("shop", "r-1") is not None
