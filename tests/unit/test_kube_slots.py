"""kube.Slots: the API client's connection slots, given to status writes after other requests."""

from __future__ import annotations

import asyncio

from stepline.kube import FIRST, LATER, Slots


async def test_a_free_slot_is_taken_at_once_and_given_back() -> None:
    slots = Slots(1)
    async with slots.turn(LATER):
        pass
    async with asyncio.timeout(1):
        async with slots.turn(FIRST):
            pass


async def test_waiters_are_served_first_by_priority_then_in_the_order_they_came() -> None:
    slots, served = Slots(1), []

    async def wait(name: str, priority: int) -> None:
        async with slots.turn(priority):
            served.append(name)

    async with slots.turn(FIRST):  # the one connection is busy while they queue
        waiters = [
            asyncio.create_task(wait("status-1", LATER)),
            asyncio.create_task(wait("apply-1", FIRST)),
            asyncio.create_task(wait("status-2", LATER)),
            asyncio.create_task(wait("apply-2", FIRST)),
        ]
        await asyncio.sleep(0)
    await asyncio.gather(*waiters)

    assert served == ["apply-1", "apply-2", "status-1", "status-2"]


async def test_a_waiter_cancelled_as_it_is_served_passes_its_slot_on() -> None:
    slots, served = Slots(1), []

    async def wait(name: str) -> None:
        async with slots.turn(FIRST):
            served.append(name)

    holder = slots.turn(FIRST)
    await holder.__aenter__()
    first = asyncio.create_task(wait("first"))
    second = asyncio.create_task(wait("second"))
    await asyncio.sleep(0)
    await holder.__aexit__(None, None, None)  # hands the slot to `first`...
    first.cancel()  # ...which is cancelled before it runs again
    async with asyncio.timeout(1):
        await second
    assert served == ["second"]
    assert first.cancelled()
