"""Runs parked from their raw status (`parking.read_parking`), and the supervisor parking them
without a task, a parse or a write: a restarted leader picks 1,000 waiting runs up from its list
alone. Whatever the status cannot vouch for goes to a task, as before."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stepline.controllers.workflowruns.parking import Parking, read_parking
from stepline.observability import WaitReasonLabel
from tests.unit.controllers.workflowruns.test_supervisor_timers import (
    ScriptedDriver,
    Supervised,
    run_body,
)

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
SINCE = NOW - timedelta(hours=1)


def wait(step: str = "release", *, deadline: datetime | str, since: datetime = SINCE) -> Any:
    at = deadline.isoformat() if isinstance(deadline, datetime) else deadline
    return {"step": step, "since": since.isoformat(), "deadline": at, "message": "ok?"}


def waiting(*waits: Any, **spec: Any) -> dict[str, Any]:
    body = run_body(phase="Waiting", waitingFor=list(waits))
    body["spec"].update(spec)
    return body


def suspended(**spec: Any) -> dict[str, Any]:
    body = run_body(phase="Suspended")
    body["spec"].update(spec)
    return body


def never_decided(*_: Any) -> bool:
    return False


def test_a_waiting_run_parks_until_its_earliest_deadline() -> None:
    body = waiting(
        wait("release", deadline=NOW + timedelta(hours=5)),
        wait("audit", deadline=NOW + timedelta(hours=2)),
    )

    parking = read_parking(body, now=NOW, decided=never_decided)

    assert parking == Parking(WaitReasonLabel.APPROVAL, deadline=NOW + timedelta(hours=2))


def test_a_suspended_run_that_stays_suspended_parks_with_no_deadline() -> None:
    parking = read_parking(suspended(suspend=True), now=NOW, decided=never_decided)

    assert parking == Parking(WaitReasonLabel.SUSPENDED)


def test_a_decided_wait_goes_to_a_task_and_the_question_names_the_wait() -> None:
    asked: list[tuple[str, str, str, datetime]] = []

    def decided(namespace: str, run: str, step: str, since: datetime) -> bool:
        asked.append((namespace, run, step, since))
        return step == "audit"

    body = waiting(
        wait("release", deadline=NOW + timedelta(hours=5)),
        wait("audit", deadline=NOW + timedelta(hours=2)),
    )

    assert read_parking(body, now=NOW, decided=decided) is None
    assert asked == [
        ("shop", "order-7", "release", SINCE),
        ("shop", "order-7", "audit", SINCE),
    ]


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (waiting(wait(deadline=NOW)), "its deadline has come: the task fails the step"),
        (waiting(wait(deadline=NOW + timedelta(hours=1)), cancel=True), "to cancel"),
        (waiting(wait(deadline=NOW + timedelta(hours=1)), suspend=True), "waiting and suspended"),
        (waiting(), "Waiting with nothing it waits for"),
        (waiting(wait(deadline="tomorrow")), "an unreadable deadline"),
        (waiting(wait(deadline="2026-12-07T12:00:00")), "a deadline without a zone"),
        (waiting({"step": "release"}), "a wait without its times"),
        (waiting("release"), "a wait that is not an object"),
        (suspended(suspend=False), "resumed"),
        (suspended(suspend=True, cancel=True), "to cancel"),
        (run_body(phase="Running"), "a step may be in flight"),
        (run_body(phase="Pending"), "not started"),
        (run_body(), "no status yet"),
    ],
)
def test_what_the_status_cannot_vouch_for_goes_to_a_task(body: dict[str, Any], why: str) -> None:
    assert read_parking(body, now=NOW, decided=never_decided) is None, why


@pytest.fixture
async def supervised(monkeypatch: pytest.MonkeyPatch) -> Any:
    world = Supervised(monkeypatch, ScriptedDriver())
    yield world
    await world.supervisor.shutdown()


def in_hours(hours: float) -> datetime:
    return datetime.now(UTC) + timedelta(hours=hours)


async def test_a_waiting_run_taken_over_is_parked_with_no_task_no_write_and_is_counted(
    supervised: Supervised,
) -> None:
    supervised.supervisor.follow_event("ADDED", waiting(wait(deadline=in_hours(1))))
    await asyncio.sleep(0)

    assert supervised.driver.calls == []
    assert supervised.kube.calls == []
    assert supervised.supervisor.parked == 1
    assert supervised.waiting("approval") == 1
    # Its own echo, or a relist, leaves it parked.
    supervised.supervisor.follow_event("MODIFIED", waiting(wait(deadline=in_hours(1))))
    assert supervised.supervisor.parked == 1
    assert supervised.driver.calls == []


async def park_then_decide(supervised: Supervised) -> dict[str, Any]:
    """A run parked from its Waiting status, then woken by a decision of its wait; its body."""
    body = waiting(wait(deadline=in_hours(1)))
    supervised.supervisor.follow_event("ADDED", body)
    supervised.decided.add(("shop", "order-7", "release"))
    supervised.kube.answers["get"] = [body]
    supervised.supervisor.wake("shop", "order-7")
    await asyncio.sleep(0.01)
    return body


async def test_a_decision_wakes_a_run_parked_from_its_status(supervised: Supervised) -> None:
    await park_then_decide(supervised)

    assert len(supervised.driver.calls) == 1
    assert supervised.supervisor.parked == 0
    assert supervised.waiting("approval") == 0


async def test_a_woken_runs_task_is_still_the_runs_a_cancel_reaches_it(
    supervised: Supervised,
) -> None:
    supervised.driver.outcomes = ["wait"]
    body = await park_then_decide(supervised)
    assert len(supervised.driver.calls) == 1

    # The reading task handed the run over and ended: the run's own task must still be known,
    # not untracked with the run taken for finished (a cancel was then ignored).
    supervised.supervisor.follow_event(
        "MODIFIED", {**body, "spec": {**body["spec"], "cancel": True}}
    )
    await asyncio.sleep(0.01)
    assert supervised.driver.calls[0][2].is_set()


async def test_a_deadline_reached_while_parked_gives_the_run_a_task(
    supervised: Supervised,
) -> None:
    deadline = datetime.now(UTC) + timedelta(milliseconds=50)
    body = waiting(wait(deadline=deadline))
    supervised.supervisor.follow_event("ADDED", body)
    supervised.kube.answers["get"] = [body]
    assert supervised.driver.calls == []

    await asyncio.sleep(0.2)

    assert len(supervised.driver.calls) == 1  # the task fails the step: its timeout passed
    assert supervised.waiting("approval") == 0


async def test_a_suspended_run_parked_from_its_status_goes_on_when_resumed(
    supervised: Supervised,
) -> None:
    supervised.supervisor.follow_event("ADDED", suspended(suspend=True))
    assert supervised.waiting("suspended") == 1

    supervised.supervisor.follow_event("MODIFIED", suspended(suspend=False))
    await asyncio.sleep(0)

    assert len(supervised.driver.calls) == 1
    assert supervised.waiting("suspended") == 0


async def test_a_parked_run_deleted_or_left_to_another_leader_is_no_longer_counted(
    supervised: Supervised,
) -> None:
    supervised.supervisor.follow_event("ADDED", suspended(suspend=True))
    other = waiting(wait(deadline=in_hours(1)))
    other["metadata"]["uid"] = "u-2"
    supervised.supervisor.follow_event("ADDED", other)
    assert supervised.supervisor.parked == 2

    supervised.supervisor.follow_event("DELETED", suspended(suspend=True))
    assert supervised.waiting("suspended") == 0
    await supervised.supervisor.shutdown()  # it stops leading: the new leader parks it

    assert supervised.waiting("approval") == 0
    assert supervised.supervisor.parked == 0
