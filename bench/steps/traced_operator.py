"""`stepline run` under tracemalloc, for finding what the operator's memory holds.

    python bench/steps/traced_operator.py OUT_FILE run -n NAMESPACE

On SIGUSR1 it writes to OUT_FILE the traced total and the 25 largest allocation sites (by the
innermost 8 frames); bench.py sends it before stopping the operator (`--tracemalloc`). Tracing
slows the operator and adds its own memory: use it to see shares, not to measure RSS.
"""

from __future__ import annotations

import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType

from stepline.cli import main

FRAMES = 8


def dump(out: Path) -> None:
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(inclusive=False, filename_pattern=tracemalloc.__file__)]
    )
    current, peak = tracemalloc.get_traced_memory()
    lines = [f"traced: {current / 2**20:.1f} MiB now, {peak / 2**20:.1f} MiB peak"]
    for stat in snapshot.statistics("traceback")[:25]:
        lines.append(f"\n{stat.size / 2**20:.2f} MiB in {stat.count} blocks")
        lines.extend(f"    {frame}" for frame in stat.traceback.format()[-2 * FRAMES :])
    by_file = snapshot.statistics("filename")[:15]
    lines.append("\nby file:")
    lines.extend(f"  {s.size / 2**20:7.2f} MiB {s.traceback[0].filename}" for s in by_file)
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    target = Path(sys.argv[1])

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        dump(target)

    tracemalloc.start(FRAMES)
    signal.signal(signal.SIGUSR1, on_signal)
    sys.exit(main(sys.argv[2:]))
