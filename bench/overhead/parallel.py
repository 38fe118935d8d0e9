"""Independent steps side by side: a run of three steps that each take 100 ms, with
`dependsOn: []` (a DAG: one run should take about one step's time) against the same three as a
chain (three steps' time) and against a hand-written `asyncio.gather` of the three POSTs (the
floor), measured in rounds side by side in this process (`measuring.measure_rounds`).

The three services run in a child process (`echo.py --delay-ms`); the engine calls them over
the operator's own transport (`Http1Transport`). Per cell: runs/s, p50 and p99 latency, this
process's CPU per run; and the DAG's p50 against the chain's and against the floor.

    .venv/bin/python bench/overhead/parallel.py [--seconds 2] [--rounds 5] [--delay-ms 100]

Results are recorded in RESULTS.md (section 12).
"""

from __future__ import annotations

import argparse
import asyncio
import platform
from collections.abc import Sequence
from typing import Any

import aiohttp
from compare import NAMESPACE, build_service_step
from echo import EchoServices
from measuring import Chain, Measurement, measure_side_by_side

from stepline.api import Workflow
from stepline.engine import Executor, Http1Transport, RunRequest, StepIndex, build_plan

STEPS = 3


def build_workflow(*, side_by_side: bool) -> Workflow:
    steps = [
        {
            "name": f"s{index}",
            "stepRef": f"echo-{index}",
            **({"dependsOn": []} if side_by_side else {}),
        }
        for index in range(STEPS)
    ]
    name = "dag" if side_by_side else "chain"
    return Workflow.from_body(
        {
            "metadata": {"name": name, "namespace": NAMESPACE, "generation": 1},
            "spec": {"steps": steps, "concurrency": 1000, "parallelism": STEPS},
        }
    )


def engine_run(executor: Executor, workflow: Workflow) -> Chain:
    plan = build_plan(workflow)
    counter = iter(range(10**12))

    async def run(payload: Any) -> Any:
        outcome = await executor.execute(plan, RunRequest(f"run-{next(counter)}", payload))
        if not outcome.succeeded:
            raise RuntimeError(outcome.message)
        return outcome.output

    return run


def gathered(session: aiohttp.ClientSession, urls: Sequence[str]) -> Chain:
    async def post(url: str, payload: Any) -> Any:
        async with session.post(url, json=payload) as response:
            return await response.json()

    async def run(payload: Any) -> Any:
        return await asyncio.gather(*(post(url, payload) for url in urls))

    return run


def row(name: str, concurrency: int, result: Measurement) -> str:
    return (
        f"| {concurrency} | {name} | {result.runs_per_second:.1f} | {result.p50_ms:.1f} "
        f"| {result.p99_ms:.1f} | {result.cpu_ms_per_run:.2f} |"
    )


async def compare(*, seconds: float, rounds: int, delay_ms: float) -> None:
    print(f"python {platform.python_version()}, {STEPS} steps of {delay_ms:g} ms each")
    print("| concurrency | run | runs/s | p50 ms | p99 ms | CPU ms/run |")
    print("|---|---|---|---|---|---|")
    with EchoServices(STEPS, delay_ms=delay_ms) as services:
        index = StepIndex(build_service_step(number) for number in range(STEPS))
        overrides = {f"echo-{number}": url for number, url in enumerate(services.urls)}
        async with Http1Transport() as transport, aiohttp.ClientSession() as session:
            executor = Executor(transport=transport, directory=index, overrides=overrides)
            chains = {
                "floor (asyncio.gather of 3 POSTs)": gathered(session, services.urls),
                "DAG (dependsOn: [])": engine_run(executor, build_workflow(side_by_side=True)),
                "chain": engine_run(executor, build_workflow(side_by_side=False)),
            }
            for concurrency in (1, 16):
                results = await measure_side_by_side(
                    chains, concurrency=concurrency, seconds=seconds, rounds=rounds
                )
                for name, result in results.items():
                    print(row(name, concurrency, result))
                floor, dag, chain = results.values()
                print(
                    f"| {concurrency} | DAG p50 / chain p50 = {dag.p50_ms / chain.p50_ms:.3f}; "
                    f"DAG p50 - floor p50 = {dag.p50_ms - floor.p50_ms:.2f} ms | | | | |"
                )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per chain and round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds, chains interleaved")
    parser.add_argument("--delay-ms", type=float, default=100.0, help="each step's time")
    args = parser.parse_args(argv)
    asyncio.run(compare(seconds=args.seconds, rounds=args.rounds, delay_ms=args.delay_ms))


if __name__ == "__main__":
    main()
