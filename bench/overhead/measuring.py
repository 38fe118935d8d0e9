"""Latency and throughput of an async chain at a given concurrency: the measuring half of the
overhead benchmarks, shared by `transports.py` and `compare.py`.

A chain is `async def chain(payload) -> result`. `measure()` keeps `concurrency` runs in flight
for `seconds` (after a warm-up that fills connection pools), timing each run with
`time.perf_counter`, and reports runs/s, latency quantiles (nearest rank) and this process's CPU
time per run. The development machines are shared, so `measure_rounds()` interleaves the
candidates over several rounds (rotating which goes first), and `measure_side_by_side()` keeps,
per candidate, the round of median throughput: a burst of someone else's load then hits every
candidate alike instead of one of them.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Chain = Callable[[Any], Awaitable[Any]]
PAYLOAD = {"user": {"id": "u-1", "name": "Ada"}, "order": {"symbol": "ACME", "quantity": 10}}


@dataclass(frozen=True)
class Measurement:
    runs: int
    seconds: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_run: float

    @property
    def runs_per_second(self) -> float:
        return self.runs / self.seconds


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile of already sorted values."""
    rank = max(math.ceil(q * len(sorted_values)), 1)
    return sorted_values[rank - 1]


async def measure(
    chain: Chain,
    *,
    concurrency: int,
    seconds: float,
    warmup_seconds: float = 0.5,
    clock: Callable[[], float] = time.process_time,
) -> Measurement:
    """`clock` gives the CPU seconds charged to the chain: this process's by default."""
    await _drive(chain, concurrency=concurrency, seconds=warmup_seconds)
    cpu = clock()
    latencies, elapsed = await _drive(chain, concurrency=concurrency, seconds=seconds)
    cpu = clock() - cpu
    latencies.sort()
    return Measurement(
        runs=len(latencies),
        seconds=elapsed,
        p50_ms=quantile(latencies, 0.50) * 1000,
        p99_ms=quantile(latencies, 0.99) * 1000,
        cpu_ms_per_run=cpu / len(latencies) * 1000,
    )


async def measure_rounds(
    chains: Mapping[str, Chain],
    *,
    concurrency: int,
    seconds: float,
    rounds: int,
    clocks: Mapping[str, Callable[[], float]] | None = None,
) -> dict[str, list[Measurement]]:
    """Each chain measured `rounds` times, interleaved: round r starts with the r-th chain (in
    rotation), so that no chain always runs first, or always right after the same other one.
    `clocks` names a CPU clock per chain, for chains whose work is done in other processes."""
    names = list(chains)
    results: dict[str, list[Measurement]] = {name: [] for name in names}
    for round_number in range(rounds):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            clock = (clocks or {}).get(name, time.process_time)
            results[name].append(
                await measure(chains[name], concurrency=concurrency, seconds=seconds, clock=clock)
            )
    return results


async def measure_side_by_side(
    chains: Mapping[str, Chain],
    *,
    concurrency: int,
    seconds: float,
    rounds: int,
    clocks: Mapping[str, Callable[[], float]] | None = None,
) -> dict[str, Measurement]:
    """`measure_rounds`, and per chain its median-throughput round."""
    results = await measure_rounds(
        chains, concurrency=concurrency, seconds=seconds, rounds=rounds, clocks=clocks
    )
    return {name: median_round(rounds_of) for name, rounds_of in results.items()}


def median_round(rounds: Sequence[Measurement]) -> Measurement:
    return sorted(rounds, key=lambda m: m.runs_per_second)[len(rounds) // 2]


async def _drive(chain: Chain, *, concurrency: int, seconds: float) -> tuple[list[float], float]:
    latencies: list[float] = []
    started = time.perf_counter()
    until = started + seconds

    async def worker() -> None:
        while time.perf_counter() < until:
            began = time.perf_counter()
            await chain(PAYLOAD)
            latencies.append(time.perf_counter() - began)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started
