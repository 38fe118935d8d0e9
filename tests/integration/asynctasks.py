"""Running one of the operator's loops (a watch, say) in a task for the length of a block."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any, Protocol


class Runnable(Protocol):
    def run(self) -> Coroutine[Any, Any, None]: ...


@contextlib.asynccontextmanager
async def running(loop: Runnable) -> AsyncIterator[None]:
    """`loop.run()` in a task while the block runs; cancelled and awaited after it."""
    task = asyncio.create_task(loop.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
