"""Run slots: the per-workflow concurrency limit, waiting or refusing."""

from __future__ import annotations

import asyncio

import pytest

from stepline.engine import RunRefusedError, RunSlots


async def test_runs_within_the_limit_hold_slots_at_once_and_give_them_back() -> None:
    slots = RunSlots()

    async with slots.hold("shop/trade", limit=2), slots.hold("shop/trade", limit=2):
        assert slots.held("shop/trade") == 2

    assert slots.held("shop/trade") == 0


async def test_over_the_limit_a_run_that_will_not_wait_is_refused() -> None:
    slots = RunSlots()

    async with slots.hold("shop/trade", limit=1):
        with pytest.raises(RunRefusedError, match="1 runs already in progress") as refused:
            async with slots.hold("shop/trade", limit=1, wait=False):
                pass

    assert refused.value.workflow == "shop/trade"
    assert refused.value.limit == 1


async def test_workflows_have_separate_slots() -> None:
    slots = RunSlots()

    async with slots.hold("shop/trade", limit=1), slots.hold("shop/refund", limit=1, wait=False):
        assert slots.held("shop/refund") == 1


async def test_over_the_limit_runs_wait_and_get_slots_first_come_first_served() -> None:
    slots = RunSlots()
    started: list[str] = []
    release = asyncio.Event()

    async def run(name: str) -> None:
        async with slots.hold("shop/trade", limit=1):
            started.append(name)
            await release.wait()

    first = asyncio.create_task(run("first"))
    await asyncio.sleep(0)
    later = [asyncio.create_task(run(name)) for name in ("second", "third")]
    await asyncio.sleep(0.01)
    assert started == ["first"]
    assert slots.waiting("shop/trade") == 2

    release.set()
    await asyncio.gather(first, *later)

    assert started == ["first", "second", "third"]
    assert slots.held("shop/trade") == 0


async def test_a_waiting_run_that_is_cancelled_leaves_the_queue() -> None:
    slots = RunSlots()
    async with slots.hold("shop/trade", limit=1):
        waiting = asyncio.create_task(slots.hold("shop/trade", limit=1).__aenter__())
        await asyncio.sleep(0.01)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert slots.waiting("shop/trade") == 0

    assert slots.held("shop/trade") == 0


async def test_a_raised_limit_applies_to_the_next_run() -> None:
    slots = RunSlots()

    async with slots.hold("shop/trade", limit=1), slots.hold("shop/trade", limit=2, wait=False):
        assert slots.held("shop/trade") == 2
