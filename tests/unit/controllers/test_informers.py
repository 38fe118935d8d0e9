"""The list-and-watch loop (`informers.Follower`) on a virtual clock and a fake API server: a
watch whose version is gone (`410 Gone`) lists again at once, and the list reports the objects
deleted while nobody watched; a watch the server ends is reopened where it left off; failures
back off, with jitter. And `runs.RunWatch`: a run deleted during a lost watch stops its task."""

from __future__ import annotations

import asyncio
import types
from collections.abc import AsyncIterator
from typing import Any

import pytest

from stepline.controllers import informers
from stepline.controllers.informers import Follower
from stepline.controllers.servicesteps.owned import DEPLOYMENT
from stepline.controllers.workflowruns.watch import RunWatch
from stepline.errors import KubeApiError
from tests.unit.controllers.fakes import FakeKube, VirtualClock, settle

GONE = KubeApiError("too old resource version: 10 (2074)", status=410, reason="Expired")
UNAVAILABLE = KubeApiError("GET …: 503 Service Unavailable", status=503)


def obj(name: str, version: str = "1", **extra: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": "shop", "name": name, "resourceVersion": version}, **extra}


def page(*items: dict[str, Any], version: str, more: str | None = None) -> dict[str, Any]:
    metadata = {"resourceVersion": version, **({"continue": more} if more else {})}
    return {"items": list(items), "metadata": metadata}


def event(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "object": body}


class Following:
    """A follower of Deployments in `shop`, observing into `seen` as (event type, name)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.kube = FakeKube()
        self.clock = VirtualClock()
        self.clock.install(monkeypatch, informers)
        self.seen: list[tuple[str, str]] = []
        self.listed = 0
        self.follower = Follower(
            self.kube, DEPLOYMENT, "shop", label_selector=None, timeout_seconds=300,
            observe=self._observe, tombstone=lambda ns, name, remembered: obj(name, remembered),
            on_listed=self._on_listed,
        )  # fmt: skip
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.follower.run())

    def watched_from(self) -> list[str]:
        return [arguments[2] for arguments in self.kube.called("watch")]

    def _observe(self, event_type: str, body: dict[str, Any]) -> str:
        if body.get("spec", {}).get("unreadable"):
            raise ValueError("cannot read it")
        self.seen.append((event_type, body["metadata"]["name"]))
        return "remembered"

    def _on_listed(self) -> None:
        self.listed += 1


@pytest.fixture
async def follows(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Following]:
    world = Following(monkeypatch)
    yield world
    if world.task is not None:
        world.task.cancel()
        await asyncio.gather(world.task, return_exceptions=True)


async def test_a_lost_version_lists_again_at_once_and_reports_what_was_deleted_meanwhile(
    follows: Following,
) -> None:
    follows.kube.answers["list_page"] = [
        page(obj("a"), obj("b"), version="10"),
        page(obj("a", "30"), version="31"),  # b was deleted while nobody watched
    ]
    follows.kube.answers["watch"] = [[event("MODIFIED", obj("a", "11")), GONE]]
    follows.start()

    await settle()

    assert follows.seen == [
        ("ADDED", "a"), ("ADDED", "b"), ("MODIFIED", "a"), ("ADDED", "a"), ("DELETED", "b"),
    ]  # fmt: skip
    assert follows.watched_from() == ["10", "31"]  # the new list's version, not the lost one
    assert follows.clock.sleeps == []
    assert follows.listed == 1  # start-up is told of the first list only


async def test_a_watch_the_server_ends_is_reopened_where_it_left_off_without_a_list(
    follows: Following,
) -> None:
    follows.kube.answers["list_page"] = [page(obj("a"), version="10")]
    bookmark = {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "15"}}}
    follows.kube.answers["watch"] = [[event("MODIFIED", obj("a", "12")), bookmark], []]
    follows.start()

    await settle()

    assert follows.watched_from() == ["10", "15", "15"]
    assert len(follows.kube.called("list_page")) == 1
    assert follows.seen == [("ADDED", "a"), ("MODIFIED", "a")]  # a bookmark is no event


async def test_a_deletion_seen_by_the_watch_is_not_reported_again_by_the_next_list(
    follows: Following,
) -> None:
    follows.kube.answers["list_page"] = [page(obj("a"), version="10"), page(version="20")]
    follows.kube.answers["watch"] = [[event("DELETED", obj("a", "11")), GONE]]
    follows.start()

    await settle()

    assert follows.seen == [("ADDED", "a"), ("DELETED", "a")]


async def test_objects_on_a_later_page_of_the_list_are_not_taken_for_deleted(
    follows: Following,
) -> None:
    follows.kube.answers["list_page"] = [
        page(obj("a"), obj("b"), version="10"),
        page(obj("a"), version="20", more="page-2"),
        page(obj("b"), version="20"),
    ]
    follows.kube.answers["watch"] = [[GONE]]
    follows.start()

    await settle()

    assert [token for _, _, token in follows.kube.called("list_page")] == [None, None, "page-2"]
    assert ("DELETED", "a") not in follows.seen
    assert ("DELETED", "b") not in follows.seen
    assert follows.watched_from() == ["10", "20"]


async def test_a_second_lost_version_in_a_row_waits_before_listing_again(
    follows: Following,
) -> None:
    follows.kube.answers["list_page"] = [page(version="10"), page(version="20"), page(version="30")]
    follows.kube.answers["watch"] = [[GONE], [GONE]]
    follows.start()
    await settle()
    assert len(follows.kube.called("list_page")) == 2
    [pause] = follows.clock.sleeps
    assert 2 * 0.8 <= pause <= 2 * 1.2  # the second failure's delay, with jitter

    await follows.clock.advance(pause)

    assert len(follows.kube.called("list_page")) == 3
    assert follows.watched_from() == ["10", "20", "30"]


async def test_failures_back_off_doubling_with_jitter_up_to_the_maximum(
    follows: Following,
) -> None:
    follows.kube.answers["list_page"] = [UNAVAILABLE] * 7 + [page(version="10")]
    follows.start()

    await follows.clock.advance(7 * 36)

    expected = [1, 2, 4, 8, 16, 30, 30]
    assert len(follows.clock.sleeps) == len(expected)
    for pause, delay in zip(follows.clock.sleeps, expected, strict=True):
        assert delay * 0.8 <= pause <= delay * 1.2
    assert follows.watched_from() == ["10"]


async def test_a_watch_that_ran_resets_the_backoff(follows: Following) -> None:
    follows.kube.answers["list_page"] = [UNAVAILABLE, UNAVAILABLE, page(version="10")]
    follows.kube.answers["watch"] = [[], [UNAVAILABLE]]
    follows.start()

    await follows.clock.advance(60)

    assert len(follows.clock.sleeps) == 3
    assert follows.clock.sleeps[2] <= 1.2  # the first failure since the watch ran


UNREADABLE = {"spec": {"unreadable": True}}  # the observer fails on it


async def test_an_observer_that_fails_on_one_object_does_not_end_the_watch(
    follows: Following,
) -> None:
    follows.kube.answers["list_page"] = [page(obj("broken", **UNREADABLE), obj("a"), version="10")]
    follows.kube.answers["watch"] = [
        [event("MODIFIED", obj("broken", "11", **UNREADABLE)), event("ADDED", obj("b", "12"))]
    ]
    follows.start()

    await settle()

    assert follows.seen == [("ADDED", "a"), ("ADDED", "b")]


async def test_an_object_the_observer_fails_on_in_a_relist_is_not_reported_deleted(
    follows: Following,
) -> None:
    follows.kube.answers["list_page"] = [
        page(obj("a"), version="10"),
        page(obj("a", "20", **UNREADABLE), version="21"),
    ]
    follows.kube.answers["watch"] = [[GONE]]
    follows.start()

    await settle()

    assert follows.watched_from() == ["10", "21"]
    assert ("DELETED", "a") not in follows.seen


class RecordingSupervisor:
    def __init__(self) -> None:
        self.events: list[tuple[str | None, dict[str, Any]]] = []

    def follow_event(self, event_type: str | None, body: dict[str, Any]) -> None:
        self.events.append((event_type, body))


def run_obj(name: str, uid: str) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "shop", "name": name, "uid": uid, "resourceVersion": "1"},
        "spec": {"workflowRef": "trade"},
    }


async def test_a_run_deleted_during_a_lost_watch_reaches_the_supervisor_as_deleted_by_its_uid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kube = FakeKube()
    VirtualClock().install(monkeypatch, informers)
    kube.answers["list_page"] = [
        page(run_obj("order-7", "u-7"), run_obj("order-8", "u-8"), version="10"),
        page(run_obj("order-8", "u-8"), version="20"),
    ]
    kube.answers["watch"] = [[GONE]]
    supervisor = RecordingSupervisor()
    settings = types.SimpleNamespace(namespaces=["shop"], watch_server_timeout_seconds=300)
    metrics = types.SimpleNamespace(mark_watch_event=lambda kind: None)
    runtime = types.SimpleNamespace(kube=kube, settings=settings, metrics=metrics)
    index = types.SimpleNamespace(record=lambda event_type, body: None)
    task = asyncio.create_task(RunWatch(runtime, supervisor, index=index).run())  # type: ignore[arg-type]

    await settle()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    [tombstone] = [body for event_type, body in supervisor.events if event_type == "DELETED"]
    assert tombstone["metadata"] == {"namespace": "shop", "name": "order-7", "uid": "u-7"}
    assert tombstone["spec"] == {"workflowRef": "trade"}
