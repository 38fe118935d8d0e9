"""`stepline run` that reports what its memory holds, for finding where the RSS goes.

    python bench/steps/inspected_operator.py OUT_FILE [--tracemalloc] run -n NAMESPACE

On SIGUSR1 it writes to OUT_FILE: open sockets, asyncio tasks, the live objects by type, the
Kubernetes object bodies still alive and what holds them; with --tracemalloc also the traced
total and the largest allocation sites (innermost 8 frames). bench.py sends the signal before
it stops the operator (`--inspect`). Tracing slows the operator several times over and adds
memory of its own: use it to see shares, not to measure RSS or time.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
import tracemalloc
from collections import Counter
from pathlib import Path
from types import FrameType

from stepline.cli import main

FRAMES = 8


def report() -> list[str]:
    sockets = sum(
        os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        for fd in os.listdir("/proc/self/fd")
        if os.path.exists(f"/proc/self/fd/{fd}")
    )
    try:
        tasks = len(asyncio.all_tasks(asyncio.get_running_loop()))
    except RuntimeError:
        tasks = -1
    objects = gc.get_objects()
    by_type = Counter(type(o).__name__ for o in objects)
    lines = [
        f"sockets {sockets}, asyncio tasks {tasks}, allocated blocks {sys.getallocatedblocks()}",
        "live objects by type:",
        *(f"  {count:8d} {name}" for name, count in by_type.most_common(15)),
    ]
    return lines + describe_held_bodies(objects)


def describe_held_bodies(objects: list[object]) -> list[str]:
    """Kubernetes objects (dicts with metadata.uid) still alive, and what holds them: the types
    of their referrers, two levels up."""
    bodies = [
        o
        for o in objects
        if type(o) is dict and isinstance(o.get("metadata"), dict) and "uid" in o["metadata"]
    ]
    holders: Counter[str] = Counter()
    for body in bodies:
        for first in gc.get_referrers(body):
            if first is bodies or first is objects:
                continue
            second = [r for r in gc.get_referrers(first) if r is not bodies and r is not objects]
            name = type(first).__name__
            if type(first) is dict:
                name = "dict[" + ",".join(sorted(map(str, first))[:4]) + "]"
            holders[f"{name} <- {'/'.join(sorted({type(r).__name__ for r in second[:5]}))}"] += 1
    lines = [f"{len(bodies)} object bodies alive; their holders:"]
    lines.extend(f"  {count:6d} {what}" for what, count in holders.most_common(15))
    return lines


def traced() -> list[str]:
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(inclusive=False, filename_pattern=tracemalloc.__file__)]
    )
    current, peak = tracemalloc.get_traced_memory()
    lines = [f"traced: {current / 2**20:.1f} MiB now, {peak / 2**20:.1f} MiB peak"]
    for stat in snapshot.statistics("traceback")[:20]:
        lines.append(f"{stat.size / 2**20:.2f} MiB in {stat.count} blocks")
        lines.extend(f"    {frame}" for frame in stat.traceback.format()[-2 * FRAMES :])
    lines.append("by file:")
    lines.extend(
        f"  {s.size / 2**20:7.2f} MiB {s.traceback[0].filename}"
        for s in snapshot.statistics("filename")[:15]
    )
    return lines


if __name__ == "__main__":
    target, arguments = Path(sys.argv[1]), sys.argv[2:]
    tracing = "--tracemalloc" in arguments
    if tracing:
        arguments.remove("--tracemalloc")
        tracemalloc.start(FRAMES)

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        target.write_text("\n".join(report() + (traced() if tracing else [])) + "\n")

    signal.signal(signal.SIGUSR1, on_signal)
    sys.exit(main(arguments))
