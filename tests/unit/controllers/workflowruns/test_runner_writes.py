"""When `runner.RunStatusWriter` writes a run's status, on a virtual clock and a fake API server:
held fields (a run's start, checkpoints within a Workflow's interval) go with the next write or
by themselves when their time is up, whichever comes first; the Started Event only when no
checkpoint came within the grace; each write guarded by the run's version, and a conflict with
another writer never overwritten."""

from __future__ import annotations

import types
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from stepline.api import StepPhase, StepRecord, WorkflowRun
from stepline.controllers.workflowruns import runner
from stepline.controllers.workflowruns.runner import RunProgress, RunStatusWriter
from stepline.engine import Checkpoint
from stepline.errors import KubeApiError, KubeConflictError, NotLeadingError
from tests.unit.controllers.fakes import FakeKube, RecordedEvents, VirtualClock, settle

STARTED = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
RUN = WorkflowRun.from_body({
    "apiVersion": "stepline.io/v1alpha1",
    "kind": "WorkflowRun",
    "metadata": {"name": "order-7", "namespace": "shop", "uid": "u-1", "generation": 2},
    "spec": {"workflowRef": "trade", "input": {}},
})  # fmt: skip


class Writing:
    """A status writer of one run on a fake runtime, with what it wrote and posted."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.kube = FakeKube()
        self.events = RecordedEvents()
        self.clock = VirtualClock()
        self.clock.install(monkeypatch, runner)
        runtime = types.SimpleNamespace(
            kube=self.kube,
            events=self.events,
            runs=types.SimpleNamespace(histories={}),
            metrics=None,
            leads=lambda: True,
        )
        self.writer = RunStatusWriter(runtime, RUN, RunProgress())  # type: ignore[arg-type]

    def writes(self) -> list[dict[str, Any]]:
        return [arguments[3] for arguments in self.kube.called("patch_status")]


@pytest.fixture
async def writing(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Writing]:
    world = Writing(monkeypatch)
    yield world
    world.writer.end()


def checkpoint(*done: str, current: str | None) -> Checkpoint:
    records = [StepRecord(name=name, phase=StepPhase.SUCCEEDED, attempts=1) for name in done]
    if current is not None:
        records.append(StepRecord(name=current, phase=StepPhase.RUNNING))
    return Checkpoint(run_uid="u-1", started_at=STARTED, current_step=current, steps=tuple(records))


async def test_held_fields_are_written_by_themselves_once_their_time_is_up(
    writing: Writing,
) -> None:
    writing.writer.hold(within=1.0, phase="Running", currentStep="validate")

    await writing.clock.advance(0.99)
    assert writing.writes() == []
    await writing.clock.advance(0.01)

    assert writing.writes() == [
        {"observedGeneration": 2, "phase": "Running", "currentStep": "validate"}
    ]


async def test_a_write_before_the_time_is_up_carries_what_is_held_and_nothing_follows(
    writing: Writing,
) -> None:
    writing.writer.hold(within=1.0, phase="Running", currentStep="validate")

    await writing.writer.write(currentStep="order")
    await writing.clock.advance(10)

    assert writing.writes() == [
        {"observedGeneration": 2, "phase": "Running", "currentStep": "order"}
    ]


async def test_a_sooner_hold_brings_the_write_forward_and_a_later_one_does_not_put_it_off(
    writing: Writing,
) -> None:
    writing.writer.hold(within=10.0, steps=["a"])
    writing.writer.hold(within=1.0, phase="Running")
    writing.writer.hold(within=30.0, currentStep="b")

    await writing.clock.advance(1.0)

    assert writing.writes() == [
        {"observedGeneration": 2, "steps": ["a"], "phase": "Running", "currentStep": "b"}
    ]
    await writing.clock.advance(60)
    assert len(writing.writes()) == 1


async def test_fields_whose_write_failed_are_kept_for_the_next_write(writing: Writing) -> None:
    writing.kube.answers["patch_status"] = [KubeApiError("503", status=503)]
    writing.writer.hold(within=1.0, phase="Running")
    await writing.clock.advance(1.0)

    await writing.writer.write(currentStep="order")

    assert writing.writes()[-1] == {
        "observedGeneration": 2, "phase": "Running", "currentStep": "order"
    }  # fmt: skip


async def test_checkpoints_within_the_interval_are_written_together_at_its_end(
    writing: Writing,
) -> None:
    writing.writer.checkpoint_interval = 5.0
    await writing.writer.save(checkpoint(current="validate"))
    await writing.clock.advance(2.0)
    await writing.writer.save(checkpoint("validate", current="order"))

    await writing.clock.advance(2.99)
    assert writing.writes() == []
    await writing.clock.advance(0.01)

    [status] = writing.writes()
    assert status["currentStep"] == "order"
    assert [step["name"] for step in status["steps"]] == ["validate", "order"]
    assert writing.writer.progress.steps == checkpoint("validate", current="order").steps


async def test_without_an_interval_each_checkpoint_is_written_at_once(writing: Writing) -> None:
    await writing.writer.save(checkpoint(current="validate"))
    await writing.writer.save(checkpoint("validate", current="order"))

    assert [status["currentStep"] for status in writing.writes()] == ["validate", "order"]


async def test_the_start_is_announced_when_no_checkpoint_came_within_the_grace(
    writing: Writing,
) -> None:
    def announce() -> None:
        writing.events.info({}, reason="Started", message="running workflow trade")

    writing.writer.announce_unless_saved(after=1.0, announce=announce)
    await writing.clock.advance(0.99)
    assert writing.events.posted == []

    await writing.clock.advance(0.01)

    assert writing.events.posted == [("Normal", "Started", "running workflow trade")]


async def test_a_checkpoint_within_the_grace_makes_the_started_event_unneeded(
    writing: Writing,
) -> None:
    writing.writer.announce_unless_saved(
        after=1.0, announce=lambda: writing.events.info({}, reason="Started", message="")
    )
    await writing.writer.save(checkpoint(current="validate"))

    await writing.clock.advance(10)

    assert writing.events.posted == []


async def test_after_the_end_nothing_is_written_or_announced_by_itself(writing: Writing) -> None:
    writing.writer.hold(within=1.0, startedAt=STARTED.isoformat())
    writing.writer.announce_unless_saved(
        after=1.0, announce=lambda: writing.events.info({}, reason="Started", message="")
    )

    writing.writer.end()
    await writing.clock.advance(10)

    assert (writing.writes(), writing.events.posted) == ([], [])
    await writing.writer.write(phase="Succeeded")  # what was held goes with the final write
    assert writing.writes() == [
        {"observedGeneration": 2, "startedAt": STARTED.isoformat(), "phase": "Succeeded"}
    ]


async def test_a_write_with_nothing_to_say_sends_nothing(writing: Writing) -> None:
    await writing.writer.write()
    await settle()

    assert writing.writes() == []


def run_body(
    version: str, *, steps: list[dict[str, Any]], phase: str = "Running"
) -> dict[str, Any]:
    return {
        "metadata": {"name": "order-7", "namespace": "shop", "uid": "u-1",
                     "resourceVersion": version},
        "status": {"phase": phase, "steps": steps},
    }  # fmt: skip


async def test_each_write_builds_on_the_version_the_last_one_answered(writing: Writing) -> None:
    writing.kube.answers["patch_status"] = [{"metadata": {"resourceVersion": "5"}}]

    await writing.writer.save(checkpoint(current="validate"))
    await writing.writer.save(checkpoint("validate", current="order"))

    assert writing.kube.versions_written == [None, "5"]


async def test_a_conflict_over_something_else_is_written_again_on_the_current_version(
    writing: Writing,
) -> None:
    # A label or spec.cancel changed the run meanwhile: its steps are as this task left them.
    writing.kube.answers["patch_status"] = [
        {"metadata": {"resourceVersion": "5"}},
        KubeConflictError("409", status=409),
        {"metadata": {"resourceVersion": "9"}},
    ]
    first = checkpoint(current="validate")
    await writing.writer.save(first)
    writing.kube.answers["get"] = [
        run_body("8", steps=[record.to_wire() for record in first.steps])
    ]

    await writing.writer.save(checkpoint("validate", current="order"))

    assert writing.kube.versions_written == [None, "5", "8"]
    assert writing.writes()[-1]["currentStep"] == "order"


@pytest.mark.parametrize(
    "current",
    [
        run_body("8", steps=[{"name": "validate", "phase": "Succeeded", "attempts": 1}]),
        run_body("8", steps=[], phase="Succeeded"),
    ],
    ids=["another writer recorded progress", "another writer finished it"],
)
async def test_a_conflict_with_another_writer_stops_without_overwriting(
    writing: Writing, current: dict[str, Any]
) -> None:
    writing.kube.answers["patch_status"] = [KubeConflictError("409", status=409)]
    writing.kube.answers["get"] = [current]

    with pytest.raises(NotLeadingError):
        await writing.writer.save(checkpoint(current="validate"))

    assert len(writing.writes()) == 1  # the refused one only
