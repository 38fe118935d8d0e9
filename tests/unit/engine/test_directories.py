"""The in-memory step directory, and waiting for a step to become ready."""

from __future__ import annotations

import asyncio

from stepline.engine import StepIndex
from stepline.engine.directories import wait_for_ready_step
from tests.unit.engine.stepservers import FakeClock, build_service_step


def test_a_step_is_found_by_namespace_and_name() -> None:
    index = StepIndex([build_service_step("user-validation")])

    assert index.find_step("shop", "user-validation") is not None
    assert index.find_step("bank", "user-validation") is None


def test_a_step_is_ready_by_its_ready_condition_unless_readiness_is_assumed() -> None:
    unready = build_service_step("user-validation", ready=False)

    assert not StepIndex().is_step_ready(unready)
    assert StepIndex(assume_ready=True).is_step_ready(unready)


async def test_a_waiter_is_woken_when_the_step_is_put_ready() -> None:
    index = StepIndex([build_service_step("user-validation", ready=False)])
    waiting = asyncio.create_task(index.wait_for_ready_step("shop", "user-validation", timeout=5))
    await asyncio.sleep(0.01)
    assert not waiting.done()

    index.put(build_service_step("user-validation"))

    step = await asyncio.wait_for(waiting, 1)
    assert step is not None
    assert index.is_step_ready(step)


async def test_a_wait_for_a_step_that_stays_unready_ends_empty_after_its_timeout() -> None:
    index = StepIndex([build_service_step("user-validation", ready=False)])

    assert await index.wait_for_ready_step("shop", "user-validation", timeout=0.05) is None


class Polled:
    """A directory without waiting; it turns ready on the third look."""

    def __init__(self) -> None:
        self.looks = 0

    def find_step(self, namespace: str, name: str) -> object:
        self.looks += 1
        return build_service_step(name, namespace=namespace, ready=self.looks >= 3)

    def is_step_ready(self, step: object) -> bool:
        return StepIndex().is_step_ready(step)  # type: ignore[arg-type]


async def test_a_directory_that_cannot_wait_is_polled_through_the_clock() -> None:
    clock = FakeClock()
    directory = Polled()

    step = await wait_for_ready_step(
        directory, "shop", "user-validation", timeout=1, clock=clock, poll_seconds=0.1
    )  # type: ignore[arg-type]

    assert step is not None
    assert directory.looks == 3
    assert clock.sleeps == [0.1, 0.1]
