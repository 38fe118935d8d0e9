"""One reconcile of a schedule against a scripted API and a clock the test sets: what it
creates, cancels, deletes and writes, and the Events and metrics it leaves. No waiting."""

from __future__ import annotations

import types
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from stepline.api import WorkflowSchedule
from stepline.controllers.runtime import StatusMemory
from stepline.controllers.workflowschedules.memory import ScheduleMemory
from stepline.controllers.workflowschedules.reconciler import reconcile_schedule
from stepline.errors import KubeConflictError
from stepline.observability import Metrics
from tests.unit.controllers.fakes import FakeKube, RecordedEvents

CREATED = datetime(2026, 5, 1, 11, 58, 30, tzinfo=UTC)
UID = "0b7c2a52-5c1e-4b47-9a55-2f4f0c2d9d11"
KEY = ("factory", "monitor")


class ScheduleKube(FakeKube):
    """FakeKube, with the creates, applies and deletes a schedule makes."""

    def __init__(self) -> None:
        super().__init__()
        self.existing: set[str] = set()

    async def create(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        self.calls.append(("create", (dict(manifest),)))
        name = manifest["metadata"]["name"]
        if name in self.existing:
            raise KubeConflictError(f"workflowruns {name!r} already exists", status=409)
        self.existing.add(name)
        return dict(manifest)

    async def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        self.calls.append(("apply", (dict(manifest),)))
        return dict(manifest)

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        self.calls.append(("delete", (kind, namespace, name)))
        return True


class World:
    def __init__(self, now: datetime) -> None:
        self.now = now
        self.kube = ScheduleKube()
        self.events = RecordedEvents()
        self.metrics = Metrics()
        self.runtime = types.SimpleNamespace(
            schedules=ScheduleMemory(clock=lambda: self.now), statuses=StatusMemory(),
            kube=self.kube, events=self.events, metrics=self.metrics,
        )  # fmt: skip
        self.workflows = {"device-check"}

    def put(self, status: dict[str, Any] | None = None, **spec: Any) -> None:
        body = {
            "apiVersion": "stepline.io/v1alpha1", "kind": "WorkflowSchedule",
            "metadata": {"name": "monitor", "namespace": "factory", "uid": UID, "generation": 1,
                         "creationTimestamp": CREATED.isoformat()},
            "spec": {"workflowRef": "device-check", "schedule": "* * * * *", **spec},
            "status": status or {},
        }  # fmt: skip
        self.runtime.schedules.schedules[KEY] = WorkflowSchedule.from_body(body)

    def run(self, name: str, phase: str, *, minute: datetime, finished: bool = False) -> None:
        body = {
            "metadata": {
                "name": name, "namespace": "factory", "uid": f"uid-{name}",
                "labels": {"stepline.io/schedule": "monitor"},
                "annotations": {"stepline.io/scheduled-time": minute.isoformat()},
                "ownerReferences": [{"kind": "WorkflowSchedule", "uid": UID, "controller": True}],
            },
            "spec": {"workflowRef": "device-check"},
            "status": {"phase": phase,
                       **({"finishedAt": (minute + timedelta(seconds=5)).isoformat()}
                          if finished else {})},
        }  # fmt: skip
        self.runtime.schedules.runs.record("ADDED", body)

    async def reconcile(self) -> datetime | None:
        return await reconcile_schedule(
            self.runtime,  # type: ignore[arg-type]
            KEY,
            workflow_exists=lambda namespace, name: name in self.workflows,
        )

    def status(self) -> dict[str, Any]:
        (*_, (_, _, _, written)) = self.kube.called("patch_status")
        return dict(written)

    def sample(self, outcome: str) -> float | None:
        return self.metrics.registry.get_sample_value(
            "stepline_schedule_runs_total",
            {"namespace": "factory", "schedule": "monitor", "outcome": outcome},
        )


def at(minute: int, second: int = 0) -> datetime:
    return datetime(2026, 5, 1, 12, minute, second, tzinfo=UTC)


async def test_a_due_time_creates_its_run_writes_the_status_and_sets_the_next_time() -> None:
    world = World(now=at(0, 0))
    world.put()
    assert await world.reconcile() == at(1)
    ((manifest,),) = world.kube.called("create")
    assert manifest["metadata"]["name"] == f"monitor-{int(at(0).timestamp()) // 60}"
    assert manifest["metadata"]["annotations"] == {
        "stepline.io/scheduled-time": "2026-05-01T12:00:00Z"
    }
    assert manifest["metadata"]["ownerReferences"][0]["uid"] == UID
    status = world.status()
    assert (status["lastScheduleTime"], status["nextScheduleTime"]) == (
        "2026-05-01T12:00:00Z", "2026-05-01T12:01:00Z",
    )  # fmt: skip
    assert status["conditions"][0]["reason"] == "Scheduled"
    assert [e[1] for e in world.events.posted] == ["RunStarted"]
    assert world.sample("started") == 1
    assert (
        world.metrics.registry.get_sample_value(
            "stepline_schedule_next_run_timestamp_seconds",
            {"namespace": "factory", "schedule": "monitor"},
        )
        == at(1).timestamp()
    )


async def test_a_second_reconcile_of_the_same_time_starts_nothing_though_the_body_lags() -> None:
    world = World(now=at(0, 0))
    world.put()  # the body kopf shows still has no lastScheduleTime after our write
    await world.reconcile()
    world.now = at(0, 2)
    await world.reconcile()
    assert len(world.kube.called("create")) == 1
    assert world.sample("started") == 1


async def test_a_run_left_by_an_earlier_try_is_taken_as_started_and_not_counted_again() -> None:
    world = World(now=at(0, 1))
    world.put()
    world.kube.existing.add(f"monitor-{int(at(0).timestamp()) // 60}")
    await world.reconcile()
    assert world.status()["lastScheduleTime"] == "2026-05-01T12:00:00Z"
    assert world.events.posted == []
    assert world.sample("started") is None


async def test_an_operator_back_after_an_hour_starts_one_run_for_the_latest_time() -> None:
    world = World(now=at(30, 10))
    world.put(status={"lastScheduleTime": "2026-05-01T11:30:00Z"})
    await world.reconcile()
    ((manifest,),) = world.kube.called("create")
    assert manifest["metadata"]["annotations"]["stepline.io/scheduled-time"] == (
        "2026-05-01T12:30:00Z"
    )


async def test_past_the_starting_deadline_the_time_is_recorded_missed_and_nothing_runs() -> None:
    world = World(now=at(30, 10))
    world.put(status={"lastScheduleTime": "2026-05-01T11:30:00Z"}, startingDeadlineSeconds=5)
    assert await world.reconcile() == at(31)
    assert world.kube.called("create") == []
    assert world.status()["lastSkip"] == {
        "time": "2026-05-01T12:30:00Z",
        "reason": "DeadlineExceeded",
    }
    (posted,) = world.events.posted
    assert posted[:2] == ("Warning", "MissedSchedule")
    assert world.sample("missed") == 1


async def test_replace_cancels_the_active_run_by_its_one_field_then_starts() -> None:
    world = World(now=at(1, 0))
    world.put(status={"lastScheduleTime": "2026-05-01T12:00:00Z"}, concurrencyPolicy="Replace")
    world.run("monitor-old", "Running", minute=at(0))
    await world.reconcile()
    ((cancel,),) = world.kube.called("apply")
    assert cancel["metadata"]["name"] == "monitor-old"
    assert cancel["spec"] == {"cancel": True}
    assert [name for name, _ in world.kube.calls if name in {"apply", "create"}] == [
        "apply",
        "create",
    ]
    assert [e[1] for e in world.events.posted] == ["RunReplaced"]
    assert world.sample("replaced") == 1


async def test_forbid_skips_while_a_run_is_active_and_lists_it() -> None:
    world = World(now=at(1, 0))
    world.put(status={"lastScheduleTime": "2026-05-01T12:00:00Z"}, concurrencyPolicy="Forbid")
    world.run("monitor-old", "Running", minute=at(0))
    await world.reconcile()
    assert world.kube.called("create") == []
    status = world.status()
    assert status["lastSkip"]["reason"] == "Forbid"
    assert (status["activeCount"], status["active"]) == (
        1, [{"name": "monitor-old", "uid": "uid-monitor-old"}],
    )  # fmt: skip
    assert world.sample("skipped") == 1


async def test_finished_runs_beyond_the_history_limits_are_deleted_oldest_first() -> None:
    world = World(now=at(10, 30))
    world.put(status={"lastScheduleTime": "2026-05-01T12:10:00Z"}, successfulRunsHistoryLimit=1)
    for minute in (7, 8, 9):
        world.run(f"monitor-{minute}", "Succeeded", minute=at(minute), finished=True)
    world.run("monitor-6", "Failed", minute=at(6), finished=True)
    await world.reconcile()
    deleted = [name for _, _, name in world.kube.called("delete")]
    assert deleted == ["monitor-7", "monitor-8"]  # the one failed run is within its limit of 1
    assert world.status()["lastSuccessfulTime"] == "2026-05-01T12:09:05Z"


async def test_a_schedule_the_operator_cannot_run_says_why_once_and_sets_no_timer() -> None:
    world = World(now=at(0, 0))
    world.put(schedule="5-3 * * * *")
    assert await world.reconcile() is None
    ready = world.status()["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSchedule")
    assert ready["message"].startswith("spec.schedule: the range 5-3 of the minute field")
    assert [e[:2] for e in world.events.posted] == [("Warning", "InvalidSchedule")]
    assert world.kube.called("create") == []
    world.now = at(5)
    await world.reconcile()
    assert len(world.events.posted) == 1  # nothing changed: no second Event


async def test_a_missing_workflow_skips_the_time_and_turns_ready_false() -> None:
    world = World(now=at(0, 0))
    world.workflows = set()
    world.put()
    await world.reconcile()
    status = world.status()
    assert status["lastSkip"]["reason"] == "WorkflowNotFound"
    assert status["conditions"][0]["reason"] == "WorkflowNotFound"
    assert world.kube.called("create") == []
    assert {e[1] for e in world.events.posted} == {"RunSkipped", "WorkflowNotFound"}


async def test_a_suspended_schedule_has_no_next_time_and_no_gauge() -> None:
    world = World(now=at(0, 0))
    world.put(suspend=True)
    assert await world.reconcile() is None
    status = world.status()
    assert "nextScheduleTime" not in status
    assert status["conditions"][0]["reason"] == "Suspended"
    assert (
        world.metrics.registry.get_sample_value(
            "stepline_schedule_next_run_timestamp_seconds",
            {"namespace": "factory", "schedule": "monitor"},
        )
        is None
    )
