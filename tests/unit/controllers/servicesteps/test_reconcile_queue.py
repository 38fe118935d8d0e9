"""The reconcile queue of ServiceSteps (`reconciler.reconcile_soon`), on a virtual clock and a fake
API server: one task per step at a time, which runs once more when asked again meanwhile, waits
for the owned objects' first lists, backs off after failures until a reconcile succeeds, and
posts `Corrected` only for a step the API server still has. `reconcile_step` is replaced by a
script."""

from __future__ import annotations

import asyncio
import contextlib
import types
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from stepline.api import ServiceStep
from stepline.controllers.servicesteps import reconciler
from stepline.controllers.servicesteps.owned import OwnedStates
from stepline.controllers.servicesteps.reconciler import RetryLater, StepView, reconcile_soon
from stepline.errors import KubeApiError
from tests.unit.controllers.fakes import FakeKube, RecordedEvents, VirtualClock, settle
from tests.unit.resources.samples import UID, make_step

KEY = ("shop", "validate")


class ScriptedReconcile:
    """Stands in for `reconciler.reconcile_step`: each call takes the next outcome (an exception
    is raised, "wait" waits for `release`) and records the attempt it was given."""

    def __init__(self) -> None:
        self.outcomes: list[Any] = []
        self.attempts: list[int] = []
        self.release = asyncio.Event()

    async def __call__(
        self, runtime: Any, step: ServiceStep, view: StepView, *, attempt: int = 0
    ) -> None:
        self.attempts.append(attempt)
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if isinstance(outcome, BaseException):
            raise outcome
        if outcome == "wait":
            await self.release.wait()


class Queue:
    """The reconcile queue on a fake runtime that knows one step, `validate`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.kube = FakeKube()
        self.events = RecordedEvents()
        self.clock = VirtualClock()
        self.clock.install(monkeypatch, reconciler)
        self.reconcile = ScriptedReconcile()
        monkeypatch.setattr(reconciler, "reconcile_step", self.reconcile)
        owned = OwnedStates()
        owned.synced.set()
        self.runtime = types.SimpleNamespace(
            kube=self.kube, events=self.events, reconciling=self._reconciling, leads=lambda: True,
            servicesteps=types.SimpleNamespace(
                owned=owned, reconciles={}, reconciles_due={}, reconcile_slots=asyncio.Semaphore(4),
            ),
        )  # fmt: skip
        self.steps: dict[tuple[str, str], list[ServiceStep]] = {KEY: [make_step()]}
        self.view = StepView(steps=self.steps, owned=owned)

    def ask(self, why: str | None = None) -> None:
        reconcile_soon(self.runtime, KEY, self.view, why=why)  # type: ignore[arg-type]

    @contextlib.contextmanager
    def _reconciling(self, kind: str) -> Iterator[None]:
        yield


@pytest.fixture
async def queue(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Queue]:
    world = Queue(monkeypatch)
    yield world
    for task in list(world.runtime.servicesteps.reconciles.values()):
        task.cancel()
    await settle()


def step_body(uid: str = UID, **metadata: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": "shop", "name": "validate", "uid": uid, **metadata}}


async def test_asking_again_while_a_reconcile_runs_makes_one_more_however_often_it_is_asked(
    queue: Queue,
) -> None:
    queue.reconcile.outcomes = ["wait"]
    queue.ask()
    await settle()
    queue.ask()
    queue.ask()
    queue.ask()
    assert len(queue.runtime.servicesteps.reconciles) == 1

    queue.reconcile.release.set()
    await settle()

    assert queue.reconcile.attempts == [0, 0]
    assert queue.runtime.servicesteps.reconciles == {}  # done: the next ask starts a task again


async def test_no_reconcile_starts_before_every_owned_kind_was_listed(queue: Queue) -> None:
    queue.runtime.servicesteps.owned.synced.clear()
    queue.ask()
    await settle()
    assert queue.reconcile.attempts == []

    queue.runtime.servicesteps.owned.synced.set()
    await settle()

    assert queue.reconcile.attempts == [0]


async def test_a_failed_apply_is_tried_again_after_the_delay_it_asks_for(queue: Queue) -> None:
    queue.reconcile.outcomes = [RetryLater("quota", delay=30), RetryLater("quota", delay=60)]
    queue.ask()

    await queue.clock.advance(29.9)
    assert queue.reconcile.attempts == [0]
    await queue.clock.advance(0.1 + 60)

    assert queue.clock.sleeps == [30, 60]
    assert queue.reconcile.attempts == [0, 1, 2]  # each told how many failed before it
    assert queue.runtime.servicesteps.reconciles == {}


async def test_an_unanswered_status_write_backs_off_by_the_apply_retry_delays(
    queue: Queue,
) -> None:
    queue.reconcile.outcomes = [KubeApiError("503", status=503)] * 3
    queue.ask()

    await queue.clock.advance(5 + 10 + 20)

    assert queue.clock.sleeps == [5, 10, 20]
    assert queue.reconcile.attempts == [0, 1, 2, 3]


async def test_a_defect_is_logged_and_tried_again_later_all_the_same(queue: Queue) -> None:
    queue.reconcile.outcomes = [KeyError("spec")]
    queue.ask()

    await queue.clock.advance(60)

    assert queue.clock.sleeps == [10]
    assert queue.reconcile.attempts == [0, 1]


async def test_a_step_deleted_while_its_reconcile_waits_to_retry_is_given_up(
    queue: Queue,
) -> None:
    queue.reconcile.outcomes = [RetryLater("quota", delay=30)]
    queue.ask()
    await settle()
    del queue.steps[KEY]

    await queue.clock.advance(60)

    assert queue.reconcile.attempts == [0]
    assert queue.runtime.servicesteps.reconciles == {}


async def test_a_correction_is_posted_once_per_reason_for_a_step_the_api_server_has(
    queue: Queue,
) -> None:
    queue.kube.answers["get"] = [step_body()]
    queue.ask(why="Deployment validate was deleted")
    queue.ask(why="Deployment validate was deleted")
    queue.ask(why="Service validate was changed by someone else")

    await settle()

    assert queue.events.posted == [
        ("Normal", "Corrected", "Deployment validate was deleted"),
        ("Normal", "Corrected", "Service validate was changed by someone else"),
    ]
    assert queue.reconcile.attempts == [0]


@pytest.mark.parametrize(
    "current",
    [
        None,
        step_body(uid="another"),
        step_body(deletionTimestamp="2026-12-02T12:00:00Z"),
    ],
    ids=["gone", "replaced", "being-deleted"],
)
async def test_no_correction_for_a_step_the_index_still_has_but_the_api_server_does_not(
    queue: Queue, current: dict[str, Any] | None
) -> None:
    queue.kube.answers["get"] = [current]
    queue.ask(why="Deployment validate was deleted")

    await settle()

    assert queue.events.posted == []
    assert queue.reconcile.attempts == []


async def test_a_url_step_is_not_corrected(queue: Queue) -> None:
    queue.steps[KEY] = [make_step(url="https://validate.example/")]
    queue.ask(why="Deployment validate was deleted")

    await settle()

    assert queue.kube.called("get") == []
    assert (queue.events.posted, queue.reconcile.attempts) == ([], [])
