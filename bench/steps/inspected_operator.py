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
import collections
import ctypes
import gc
import os
import signal
import sys
import tempfile
import tracemalloc
import types
from collections import Counter
from pathlib import Path
from types import FrameType

from stepline.cli import main

FRAMES = 8
# Objects whose referrers are looked up, at most, per kind: each look-up scans every object the
# collector tracks, and 1,000 steps mean millions of them.
SAMPLE = 40


class MallInfo2(ctypes.Structure):
    """glibc's struct mallinfo2 (all size_t)."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
            "fordblks", "keepcost",
        )
    ]  # fmt: skip


def describe_heaps() -> list[str]:
    """glibc's view (in use vs free but kept: fragmentation) and pymalloc's (small objects)."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    info = libc.mallinfo2()
    mib = 2**20
    lines = [
        f"malloc: heap {info.arena / mib:.1f} MiB (in use {info.uordblks / mib:.1f}, free "
        f"{info.fordblks / mib:.1f}), mmapped {info.hblkhd / mib:.1f} MiB in {info.hblks} blocks"
    ]
    # _debugmallocstats writes to the C-level stderr: point file descriptor 2 at a file.
    with tempfile.TemporaryFile("w+") as stats:
        saved = os.dup(2)
        try:
            os.dup2(stats.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        stats.seek(0)
        lines.extend(
            f"pymalloc: {line.strip()}"
            for line in stats.read().splitlines()
            if line.startswith(
                (
                    "# arenas allocated current",
                    "# bytes in allocated blocks",
                    "# bytes in available blocks",
                    "Total",
                )
            )
            or "unused pools" in line
        )
    return lines


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
    sizes: Counter[str] = Counter()
    for o in objects:
        sizes[type(o).__name__] += sys.getsizeof(o)
    lines = [
        f"sockets {sockets}, asyncio tasks {tasks}, allocated blocks {sys.getallocatedblocks()}",
        f"objects tracked by gc: {len(objects)}, {sum(sizes.values()) / 2**20:.1f} MiB shallow",
        "live objects by type (count, shallow MiB):",
        *(
            f"  {by_type[name]:8d} {size / 2**20:7.2f} {name}"
            for name, size in sizes.most_common(20)
        ),
    ]
    functions = Counter(
        f"{obj.__module__}.{obj.__qualname__}"
        for obj in objects
        if isinstance(obj, types.FunctionType)
    )
    lines += [
        "functions by name (the most numerous: closures made per object):",
        *(f"  {count:8d} {name}" for name, count in functions.most_common(8)),
    ]
    report = [
        *lines,
        *describe_heaps(),
        *describe_held_bodies(objects),
        *describe_holders(objects, "Patch"),
        *describe_holders(objects, "Body"),
    ]
    report += describe_roots(objects)
    del objects
    freed = gc.collect()
    return [*report, f"after gc.collect() ({freed} unreachable objects freed):", *describe_heaps()]


ROOTS = ("ResourceMemories", "OperatorIndexers", "Runtime", "StepIndex", "CollectorRegistry")


def deep_size(root: object, seen: set[int]) -> int:
    """Bytes reachable from `root` through containers, instance dicts and slots; what `seen`
    already holds is not counted again (types, modules and functions are never followed)."""
    size, stack = 0, [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type | types.ModuleType | types.FunctionType):
            continue
        seen.add(id(obj))
        size += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset | collections.deque):
            stack.extend(obj)
        else:
            stack.extend(getattr(obj, "__dict__", {}).values())
            for slot in getattr(type(obj), "__slots__", ()):
                if isinstance(slot, str) and hasattr(obj, slot):
                    stack.append(getattr(obj, slot))
    return size


def describe_roots(objects: list[object]) -> list[str]:
    """Deep sizes of the long-lived structures (in this order, shared parts counted once)."""
    seen: set[int] = {id(objects)}
    lines = ["deep sizes of long-lived structures:"]
    for name in ROOTS:
        for obj in (o for o in objects if type(o).__name__ == name):
            lines.append(f"  {deep_size(obj, seen) / 2**20:7.2f} MiB {name}")
    return lines


def describe_holders(objects: list[object], type_name: str) -> list[str]:
    """What holds the live objects of one type: their referrers, three levels up."""
    found = [o for o in objects if type(o).__name__ == type_name]
    holders: Counter[str] = Counter()
    skip = {id(found), id(objects)}
    for obj in found[:SAMPLE]:
        firsts = [r for r in gc.get_referrers(obj) if id(r) not in skip]
        skip.add(id(firsts))
        for first in firsts:
            seconds = [r for r in gc.get_referrers(first) if id(r) not in skip]
            skip.add(id(seconds))
            chain = [_name(first), "/".join(sorted({_name(r) for r in seconds[:6]}))]
            for second in seconds[:2]:
                thirds = [r for r in gc.get_referrers(second) if id(r) not in skip]
                chain.append("/".join(sorted({_name(r) for r in thirds[:6]})))
            holders[" <- ".join(chain)] += 1
    lines = [f"{len(found)} {type_name} objects alive; the holders of {SAMPLE} at most:"]
    lines.extend(f"  {count:6d} {what}" for what, count in holders.most_common(12))
    return lines


def describe_held_bodies(objects: list[object]) -> list[str]:
    """Kubernetes objects (dicts with metadata.uid) still alive, and what holds them: the types
    of their referrers, two levels up."""
    bodies = [
        o
        for o in objects
        if type(o) is dict and isinstance(o.get("metadata"), dict) and "uid" in o["metadata"]
    ]
    holders: Counter[str] = Counter()
    for body in bodies[:SAMPLE]:
        for first in gc.get_referrers(body):
            if first is bodies or first is objects:
                continue
            second = [r for r in gc.get_referrers(first) if r is not bodies and r is not objects]
            holders[f"{_name(first)} <- {'/'.join(sorted({_name(r) for r in second[:6]}))}"] += 1
    lines = [f"{len(bodies)} object bodies alive; the holders of {SAMPLE} at most:"]
    lines.extend(f"  {count:6d} {what}" for what, count in holders.most_common(15))
    return lines


def _name(obj: object) -> str:
    """A type name; a dict shows some of its keys, a frame its function."""
    if type(obj) is dict:
        return "dict[" + ",".join(sorted(map(str, obj))[:5]) + "]"
    if isinstance(obj, types.FrameType):
        return f"frame:{obj.f_code.co_name}"
    return type(obj).__name__


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
