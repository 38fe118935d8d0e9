"""Tasks the controllers start and do not await (a status refresh later, a recheck once a grace
period is over), kept here so that the operator's stop cancels them.

Each runs in a context of its own. `create_task` would give it a copy of the caller's: in a kopf
handler, that holds the event's body, cause and patch for as long as the task lives (in a burst,
every step's at once; the allocator then keeps the memory they took). And each is remembered
until it ends: the event loop keeps only a weak reference to a task, and at shutdown kopf waits
5 s for any task still pending before cancelling it, which a task sleeping out a minute's grace
would otherwise cost every SIGTERM (bench/runs/RESULTS.md).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine
from typing import Any

_PENDING: set[asyncio.Task[None]] = set()


def detached(coroutine: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
    """Runs `coroutine` as a task of its own (module docstring)."""
    task = asyncio.create_task(coroutine, name=name, context=contextvars.Context())
    _PENDING.add(task)
    task.add_done_callback(_PENDING.discard)
    return task


async def cancel_detached() -> None:
    """Cancels every detached task still running, and waits for them to end."""
    tasks = list(_PENDING)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
