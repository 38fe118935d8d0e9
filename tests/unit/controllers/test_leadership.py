"""`leadership.lead_forever`: the leader's work starts when this replica becomes the leader and
stops, every writer with it, when it stops leading; at shutdown the Events still queued are kept
for the final flush. On a scripted elector, with the work itself replaced by recorders."""

from __future__ import annotations

import asyncio
import types
from collections.abc import AsyncIterator
from typing import Any

import pytest

from stepline.controllers import leadership
from tests.unit.controllers.fakes import settle


class ScriptedElector:
    """Leads when told to (`lead()`), stands by when told to (`lose()`)."""

    def __init__(self) -> None:
        self._leading, self._lost = asyncio.Event(), asyncio.Event()
        self._lost.set()
        self.ran = False

    async def run(self) -> None:
        self.ran = True
        await asyncio.Event().wait()

    def lead(self) -> None:
        self._lost.clear()
        self._leading.set()

    def lose(self) -> None:
        self._leading.clear()
        self._lost.set()

    async def wait_leading(self) -> None:
        await self._leading.wait()

    async def wait_lost(self) -> None:
        await self._lost.wait()


class Runs:
    def __init__(self) -> None:
        self.shutdowns = 0

    async def shutdown(self) -> None:
        self.shutdowns += 1


class Events:
    def __init__(self) -> None:
        self.queued = 3

    def drop_queued(self) -> int:
        dropped, self.queued = self.queued, 0
        return dropped


class Leader:
    """`lead_forever` on a fake runtime, with its work recorded."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.elector = ScriptedElector()
        self.started: list[str] = []
        self.running: dict[str, asyncio.Task[Any]] = {}
        self.forgotten = 0
        self.supervisor = Runs()
        self.runtime = types.SimpleNamespace(
            elector=self.elector, events=Events(), forget_writes=self._forget,
            settings=types.SimpleNamespace(approvals=True),
            servicesteps=types.SimpleNamespace(
                reconciles={}, status_refreshes={}, reconciles_due={("shop", "a"): []},
            ),
        )  # fmt: skip

        def forever(name: str) -> Any:
            async def work(*args: Any, **kwargs: Any) -> None:
                self.started.append(name)
                await asyncio.Event().wait()

            return work

        async def resync(*args: Any, **kwargs: Any) -> None:
            self.started.append("resync")

        monkeypatch.setattr(leadership, "check_external_steps_forever", forever("checks"))
        monkeypatch.setattr(leadership, "keep_runs_forever", forever("retention"))
        monkeypatch.setattr(leadership, "schedule_forever", forever("schedules"))
        monkeypatch.setattr(leadership, "judge_forever", forever("judgments"))
        monkeypatch.setattr(leadership, "resync", resync)

    def _forget(self) -> None:
        self.forgotten += 1

    def writer(self, kind: str) -> asyncio.Task[None]:
        """A reconcile or status refresh under way."""
        task = asyncio.create_task(asyncio.Event().wait())
        getattr(self.runtime.servicesteps, kind)[("shop", kind)] = task
        return task  # type: ignore[return-value]


@pytest.fixture
async def leader(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Leader]:
    world = Leader(monkeypatch)
    task = asyncio.create_task(
        leadership.lead_forever(
            world.runtime,  # type: ignore[arg-type]
            supervisor=world.supervisor,  # type: ignore[arg-type]
            view=None,  # type: ignore[arg-type]
            workflows={},
            runs=None,  # type: ignore[arg-type]
        )
    )
    world.running["lead_forever"] = task
    await settle()
    yield world
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_standby_runs_the_election_and_nothing_else(leader: Leader) -> None:
    assert leader.elector.ran
    assert leader.started == []
    assert leader.forgotten == 0


async def test_the_leader_forgets_what_it_wrote_resyncs_and_starts_its_loops(
    leader: Leader,
) -> None:
    leader.elector.lead()
    await settle()

    assert leader.forgotten == 1
    assert sorted(leader.started) == ["checks", "judgments", "resync", "retention", "schedules"]


async def test_stepping_down_stops_every_writer_and_drops_queued_events(leader: Leader) -> None:
    leader.elector.lead()
    await settle()
    reconcile, refresh = leader.writer("reconciles"), leader.writer("status_refreshes")

    leader.elector.lose()
    await settle()

    assert reconcile.cancelled()
    assert refresh.cancelled()
    assert leader.runtime.servicesteps.status_refreshes == {}
    assert leader.runtime.servicesteps.reconciles_due == {}
    assert leader.supervisor.shutdowns == 1
    assert leader.runtime.events.queued == 0

    leader.elector.lead()  # and it leads again later: all afresh
    await settle()
    assert leader.forgotten == 2
    assert leader.started.count("resync") == 2


async def test_at_shutdown_the_leader_keeps_its_queued_events_for_the_final_flush(
    leader: Leader,
) -> None:
    leader.elector.lead()
    await settle()

    task = leader.running["lead_forever"]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    assert leader.supervisor.shutdowns == 1
    assert leader.runtime.events.queued == 3
