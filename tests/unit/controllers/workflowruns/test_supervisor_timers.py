"""The run supervisor over time, on a virtual clock and a fake API server: a run whose status
cannot be written waits (doubling backoff), is read again and resumed with what its task kept;
one the API server refuses, or a defect of ours, fails the run at once; watch events start,
cancel and stop run tasks. `drive_run` (the engine's side) is replaced by a script."""

from __future__ import annotations

import asyncio
import types
from collections.abc import AsyncIterator
from typing import Any

import pytest

from stepline.api import MAX_INPUT_BYTES, WorkflowRun
from stepline.controllers.workflowruns import supervisor
from stepline.controllers.workflowruns.runner import RunProgress
from stepline.controllers.workflowruns.supervisor import RunSupervisor
from stepline.errors import KubeApiError, KubeConflictError, NotLeadingError
from stepline.observability import Metrics
from tests.unit.controllers.fakes import FakeKube, RecordedEvents, VirtualClock, settle

UNAVAILABLE = KubeApiError("PATCH …/status: 503 Service Unavailable", status=503)
FORBIDDEN = KubeApiError("PATCH …/status: 422 status.phase: Unsupported value", status=422)


def run_body(uid: str = "u-1", **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "stepline.io/v1alpha1",
        "kind": "WorkflowRun",
        "metadata": {"name": "order-7", "namespace": "shop", "uid": uid, "generation": 1},
        "spec": {"workflowRef": "trade", "input": {}},
        "status": status,
    }


class ScriptedDriver:
    """Stands in for `running.drive_run`: each call takes the next outcome of `outcomes` (an
    exception is raised; "wait" waits for the run's cancel event; anything else returns) and
    records what it was given."""

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[tuple[WorkflowRun, RunProgress, asyncio.Event]] = []

    async def __call__(
        self,
        runtime: Any,
        run: WorkflowRun,
        *,
        cancel: asyncio.Event,
        find_workflow: Any,
        progress: RunProgress,
        suspend: asyncio.Event | None = None,
    ) -> None:
        self.calls.append((run, progress, cancel))
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if isinstance(outcome, BaseException):
            raise outcome
        if outcome == "wait":
            await cancel.wait()


class Supervised:
    """A supervisor on a fake runtime, with what it did."""

    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, driver: ScriptedDriver, *, run_limit: int = 500
    ) -> None:
        self.kube = FakeKube()
        self.events = RecordedEvents()
        self.clock = VirtualClock()
        self.clock.install(monkeypatch, supervisor)
        monkeypatch.setattr(supervisor, "drive_run", driver)
        self.driver = driver
        self.leading = True
        self.metrics = Metrics()
        self.decided: set[tuple[str, str, str]] = set()  # (namespace, run, step) decided
        approvals = types.SimpleNamespace(decision_for=self._decision_for)
        runtime = types.SimpleNamespace(
            kube=self.kube, events=self.events, leads=lambda: self.leading,
            metrics=self.metrics, approvals=approvals,
            settings=types.SimpleNamespace(run_limit=run_limit),
        )  # fmt: skip
        self.supervisor = RunSupervisor(runtime, find_workflow=lambda namespace, name: None)  # type: ignore[arg-type]

    def _decision_for(self, namespace: str, run: str, step: str, **_: Any) -> object | None:
        return object() if (namespace, run, step) in self.decided else None

    def waiting(self, reason: str) -> float | None:
        """The `stepline_runs_waiting` sample of the run_body run's workflow for `reason`."""
        labels = {"namespace": "shop", "workflow": "trade", "reason": reason}
        return self.metrics.registry.get_sample_value("stepline_runs_waiting", labels)

    def status_writes(self) -> list[dict[str, Any]]:
        return [arguments[3] for arguments in self.kube.called("patch_status")]


@pytest.fixture
async def supervised(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Supervised]:
    world = Supervised(monkeypatch, ScriptedDriver())
    yield world
    await world.supervisor.shutdown()


async def test_a_run_whose_status_could_not_be_written_resumes_after_a_pause_with_its_progress(
    supervised: Supervised,
) -> None:
    supervised.driver.outcomes = [UNAVAILABLE, None]
    supervised.kube.answers["get"] = [run_body(phase="Running")]
    supervised.supervisor.follow_event("ADDED", run_body())
    await supervised.clock.advance(0.99)
    assert len(supervised.driver.calls) == 1  # not before its pause is over

    await supervised.clock.advance(0.01)

    assert supervised.clock.sleeps == [1.0]
    assert supervised.kube.called("get") == [("WorkflowRun", "shop", "order-7")]
    [(_, first, _), (resumed, second, _)] = supervised.driver.calls
    assert second is first  # the progress the task kept goes on with the run
    assert resumed.status.phase == "Running"  # the run as the API server holds it now
    assert supervised.status_writes() == []


async def test_resuming_backs_off_doubling_up_to_the_maximum(supervised: Supervised) -> None:
    supervised.driver.outcomes = [UNAVAILABLE] * 8
    supervised.kube.answers["get"] = [run_body()] * 8
    supervised.supervisor.follow_event("ADDED", run_body())

    await supervised.clock.advance(1 + 2 + 4 + 8 + 16 + 30 + 30 + 30)

    assert supervised.clock.sleeps == [1, 2, 4, 8, 16, 30, 30, 30]
    assert len(supervised.driver.calls) == 9


async def test_reading_the_run_again_waits_for_the_api_server_to_answer(
    supervised: Supervised,
) -> None:
    supervised.driver.outcomes = [UNAVAILABLE, None]
    supervised.kube.answers["get"] = [UNAVAILABLE, UNAVAILABLE, run_body()]
    supervised.supervisor.follow_event("ADDED", run_body())

    await supervised.clock.advance(60)

    # The resume pause, then the reads' own backoff, counted from their first failure.
    assert supervised.clock.sleeps == [1.0, 1.0, 2.0]
    assert len(supervised.kube.called("get")) == 3
    assert len(supervised.driver.calls) == 2


@pytest.mark.parametrize(
    ("now", "why"),
    [
        (None, "deleted meanwhile"),
        (run_body(uid="u-2"), "replaced by another run of the same name"),
        (run_body(phase="Succeeded"), "finished meanwhile, by an earlier write that landed"),
    ],
)
async def test_a_run_that_is_gone_replaced_or_finished_when_read_again_is_not_resumed(
    supervised: Supervised, now: dict[str, Any] | None, why: str
) -> None:
    supervised.driver.outcomes = [UNAVAILABLE]
    supervised.kube.answers["get"] = [now]
    supervised.supervisor.follow_event("ADDED", run_body())

    await supervised.clock.advance(60)

    assert len(supervised.driver.calls) == 1, why
    assert supervised.status_writes() == []


async def test_a_status_the_api_server_refuses_fails_the_run_at_once_and_is_not_retried(
    supervised: Supervised,
) -> None:
    supervised.driver.outcomes = [FORBIDDEN]
    supervised.supervisor.follow_event("ADDED", run_body())

    await supervised.clock.advance(60)

    assert len(supervised.driver.calls) == 1
    assert supervised.clock.sleeps == []
    [status] = supervised.status_writes()
    assert status["phase"] == "Failed"
    [condition] = status["conditions"]
    assert condition["reason"] == "InternalError"
    assert "its status could not be written" in condition["message"]
    assert supervised.events.posted == [("Warning", "Failed", condition["message"])]


async def test_a_defect_of_the_operator_fails_the_run_naming_the_exception(
    supervised: Supervised,
) -> None:
    supervised.driver.outcomes = [ZeroDivisionError("division by zero")]
    supervised.supervisor.follow_event("ADDED", run_body())

    await supervised.clock.advance(60)

    assert len(supervised.driver.calls) == 1
    [status] = supervised.status_writes()
    assert "ZeroDivisionError: division by zero" in status["conditions"][0]["message"]


async def test_a_failure_is_written_once_the_api_server_answers_again(
    supervised: Supervised,
) -> None:
    supervised.driver.outcomes = [FORBIDDEN]
    supervised.kube.answers["patch_status"] = [UNAVAILABLE, UNAVAILABLE, {}]
    supervised.supervisor.follow_event("ADDED", run_body())

    await supervised.clock.advance(2.9)
    assert len(supervised.kube.called("patch_status")) == 2
    assert supervised.events.posted == []  # no Event before the status says so

    await supervised.clock.advance(0.1)

    assert supervised.clock.sleeps == [1.0, 2.0]
    assert len(supervised.kube.called("patch_status")) == 3
    assert [reason for _, reason, _ in supervised.events.posted] == ["Failed"]


async def test_a_run_deleted_before_its_failure_was_written_gets_no_event(
    supervised: Supervised,
) -> None:
    supervised.driver.outcomes = [FORBIDDEN]
    supervised.kube.answers["patch_status"] = [KubeApiError("404 Not Found", status=404)]
    supervised.supervisor.follow_event("ADDED", run_body())

    await supervised.clock.advance(60)

    assert len(supervised.kube.called("patch_status")) == 1
    assert supervised.events.posted == []


async def test_an_admitted_run_the_operator_cannot_execute_is_failed_for_its_reason(
    supervised: Supervised,
) -> None:
    body = run_body()
    body["spec"]["input"] = {"pad": "x" * MAX_INPUT_BYTES}
    supervised.supervisor.follow_event("ADDED", body)

    await settle()

    assert supervised.driver.calls == []
    [status] = supervised.status_writes()
    assert status["conditions"][0]["reason"] == "InputTooLarge"
    assert [reason for _, reason, _ in supervised.events.posted] == ["Failed"]


async def test_setting_cancel_on_a_running_run_reaches_its_task(supervised: Supervised) -> None:
    supervised.driver.outcomes = ["wait"]
    supervised.supervisor.follow_event("ADDED", run_body())
    await settle()
    [(_, _, cancel)] = supervised.driver.calls
    supervised.supervisor.follow_event("MODIFIED", run_body(phase="Running"))
    assert not cancel.is_set()  # our own checkpoint coming back

    cancelled = run_body(phase="Running")
    cancelled["spec"]["cancel"] = True
    supervised.supervisor.follow_event("MODIFIED", cancelled)

    assert cancel.is_set()


async def test_a_deleted_run_stops_its_task_without_writing_its_status(
    supervised: Supervised,
) -> None:
    supervised.driver.outcomes = ["wait"]
    supervised.supervisor.follow_event("ADDED", run_body())
    await settle()

    supervised.supervisor.follow_event("DELETED", run_body())
    await settle()

    assert supervised.status_writes() == []
    supervised.supervisor.follow_event("ADDED", run_body())  # one task per run, then none
    await settle()
    assert len(supervised.driver.calls) == 2


async def test_events_of_a_run_this_process_finished_start_nothing(
    supervised: Supervised,
) -> None:
    supervised.supervisor.follow_event("ADDED", run_body())
    await settle()
    supervised.supervisor.follow_event("MODIFIED", run_body(phase="Running"))  # a late echo
    supervised.supervisor.follow_event("MODIFIED", run_body(phase="Succeeded"))
    await settle()

    assert len(supervised.driver.calls) == 1


async def test_a_run_task_that_is_running_gets_no_second_task(supervised: Supervised) -> None:
    supervised.driver.outcomes = ["wait"]
    supervised.supervisor.follow_event("ADDED", run_body())
    supervised.supervisor.follow_event("MODIFIED", run_body(phase="Running"))
    await settle()

    assert len(supervised.driver.calls) == 1


async def test_a_run_the_api_server_refuses_to_read_again_is_failed(
    supervised: Supervised,
) -> None:
    supervised.driver.outcomes = [UNAVAILABLE]
    supervised.kube.answers["get"] = [KubeApiError("GET …: 403 Forbidden", status=403)]
    supervised.supervisor.follow_event("ADDED", run_body())

    await supervised.clock.advance(60)

    [status] = supervised.status_writes()
    assert status["conditions"][0]["reason"] == "InternalError"


async def test_a_standby_starts_no_run_and_fails_none(supervised: Supervised) -> None:
    supervised.leading = False
    supervised.supervisor.follow_event("ADDED", run_body())
    unreadable = {
        **run_body("u-2"),
        "spec": {"workflowRef": "trade", "input": "x" * MAX_INPUT_BYTES},
    }
    supervised.supervisor.follow_event("ADDED", unreadable)
    await settle()

    assert supervised.driver.calls == []
    assert supervised.status_writes() == []


async def test_a_run_task_refused_past_the_fence_ends_quietly_for_the_leader_to_resume(
    supervised: Supervised,
) -> None:
    supervised.driver.outcomes = [NotLeadingError("not sent, this replica does not lead")]
    supervised.supervisor.follow_event("ADDED", run_body())
    supervised.leading = False  # another replica took the Lease over

    await supervised.clock.advance(60)

    assert len(supervised.driver.calls) == 1
    assert supervised.status_writes() == []  # not failed: the new leader resumes it
    assert supervised.events.posted == []


async def test_a_run_left_while_the_fence_lapsed_is_resumed_when_this_replica_still_leads(
    supervised: Supervised,
) -> None:
    # The fence lapsed (the loop stalled past the renew deadline), then the Lease was renewed:
    # there is no takeover to resume the run, so this replica does.
    supervised.driver.outcomes = [NotLeadingError("not sent: the fence lapsed"), None]
    supervised.kube.answers["get"] = [run_body(phase="Running")]
    supervised.supervisor.follow_event("ADDED", run_body())

    await supervised.clock.advance(60)

    assert len(supervised.driver.calls) == 2
    assert supervised.status_writes() == []


async def test_a_failure_is_not_written_over_a_run_another_writer_finished(
    supervised: Supervised,
) -> None:
    supervised.driver.outcomes = [RuntimeError("a defect")]
    supervised.kube.answers["patch_status"] = [KubeConflictError("409", status=409)]
    supervised.kube.answers["get"] = [run_body(phase="Succeeded")]
    supervised.supervisor.follow_event("ADDED", run_body())

    await supervised.clock.advance(60)

    assert len(supervised.status_writes()) == 1  # the refused write only
    assert supervised.events.posted == []


def queued_body(index: int, **spec: Any) -> dict[str, Any]:
    body = run_body(uid=f"u-{index}")
    body["metadata"].update(name=f"order-{index}", resourceVersion=str(100 + index))
    body["spec"].update(spec)
    return body


async def test_runs_over_the_run_limit_wait_with_no_task_and_start_in_order_as_runs_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = Supervised(monkeypatch, ScriptedDriver("wait", "wait", "wait"), run_limit=2)
    try:
        for index in range(1, 5):
            world.supervisor.follow_event("ADDED", queued_body(index))
        await settle()
        started = [run.metadata.uid for run, _, _ in world.driver.calls]
        assert started == ["u-1", "u-2"]
        assert world.waiting("queued") == 2
        # Each queued run says so, on the version it was seen at: never over its task's status.
        assert [write["phase"] for write in world.status_writes()] == ["Pending", "Pending"]
        assert world.kube.versions_written == ["103", "104"]
        world.kube.answers["get"] = [queued_body(3)]
        world.driver.calls[0][2].set()  # u-1 ends: u-3's turn
        await settle()
        assert [run.metadata.uid for run, _, _ in world.driver.calls] == ["u-1", "u-2", "u-3"]
        assert world.kube.called("get") == [("WorkflowRun", "shop", "order-3")]
        assert world.waiting("queued") == 1
    finally:
        await world.supervisor.shutdown()
    assert world.waiting("queued") == 0


async def test_a_queued_run_deleted_leaves_the_queue_and_one_cancelled_goes_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = Supervised(monkeypatch, ScriptedDriver("wait", "wait"), run_limit=1)
    try:
        for index in range(1, 4):
            world.supervisor.follow_event("ADDED", queued_body(index))
        await settle()
        assert world.waiting("queued") == 2
        world.supervisor.follow_event("DELETED", queued_body(2))
        world.supervisor.follow_event("MODIFIED", queued_body(3, cancel=True))
        await settle()
        assert [run.metadata.uid for run, _, _ in world.driver.calls] == ["u-1", "u-3"]
        assert world.driver.calls[1][2].is_set()  # told to cancel
        assert world.waiting("queued") == 0
    finally:
        await world.supervisor.shutdown()
