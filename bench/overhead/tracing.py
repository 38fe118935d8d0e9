"""What tracing costs a step: a 3-step chain run by the engine with tracing off, on at a
sampling ratio of 0 (spans made, none kept), and on at 1 (every span kept and exported over
OTLP/HTTP, as the operator does), measured in rounds side by side in this process
(`measuring.measure_side_by_side`).

The steps are echo services in a child process (`echo.py`), called over the operator's own
transport (`Http1Transport`). The exporter is the operator's (`observability.otlp`, OTLP/JSON
over HTTP), sending to another echo service of that child process, which takes every batch (a
collector that keeps up, answering `{}`): its encoding and sending run in this process's export
thread, so this process's CPU per run counts them. Per cell: runs/s, p50 and p99 latency, CPU
per run; and per step, the CPU above tracing off (a run of 3 steps has 4 spans: the run and 3
call attempts).

    .venv/bin/python bench/overhead/tracing.py [--seconds 2] [--rounds 5]

Results are recorded in RESULTS.md (section 13). Issue 18's goal: at most 0.1 ms per step at a
ratio of 1, nothing measurable at 0.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
from collections.abc import Sequence

from compare import NAMESPACE, build_service_step
from echo import EchoServices
from measuring import Measurement, measure_side_by_side
from parallel import engine_run

from stepline.api import Workflow
from stepline.engine import Executor, Http1Transport, StepIndex
from stepline.observability.otlp import OtlpJsonExporter
from stepline.observability.tracing import DISABLED, Tracing

STEPS = 3


def build_chain() -> Workflow:
    steps = [{"name": f"s{index}", "stepRef": f"echo-{index}"} for index in range(STEPS)]
    return Workflow.from_body(
        {
            "metadata": {"name": "chain", "namespace": NAMESPACE, "generation": 1},
            "spec": {"steps": steps, "concurrency": 1000},
        }
    )


def row(name: str, concurrency: int, result: Measurement, off: Measurement) -> str:
    per_step = (result.cpu_ms_per_run - off.cpu_ms_per_run) / STEPS
    return (
        f"| {concurrency} | {name} | {result.runs_per_second:.1f} | {result.p50_ms:.2f} "
        f"| {result.p99_ms:.2f} | {result.cpu_ms_per_run:.3f} | {per_step:+.3f} |"
    )


async def compare(*, seconds: float, rounds: int) -> None:
    print(f"python {platform.python_version()}, a chain of {STEPS} echo steps")
    print("| concurrency | tracing | runs/s | p50 ms | p99 ms | CPU ms/run | CPU ms/step vs off |")
    print("|---|---|---|---|---|---|---|")
    with EchoServices(STEPS + 1) as services:
        index = StepIndex(build_service_step(number) for number in range(STEPS))
        overrides = {f"echo-{number}": url for number, url in enumerate(services.urls[:STEPS])}
        collector = services.urls[STEPS].rstrip("/") + "/v1/traces"
        tracings = {
            "off": DISABLED,
            "on, ratio 0": Tracing(OtlpJsonExporter(collector), ratio=0.0),
            "on, ratio 1": Tracing(OtlpJsonExporter(collector), ratio=1.0),
        }
        async with Http1Transport() as transport:
            chains = {
                name: engine_run(
                    Executor(
                        transport=transport, directory=index, overrides=overrides, tracing=tracing
                    ),
                    build_chain(),
                )
                for name, tracing in tracings.items()
            }
            for concurrency in (1, 16):
                results = await measure_side_by_side(
                    chains, concurrency=concurrency, seconds=seconds, rounds=rounds
                )
                for name, result in results.items():
                    print(row(name, concurrency, result, results["off"]))
        for tracing in tracings.values():
            tracing.shutdown()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per cell and round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds, cells interleaved")
    args = parser.parse_args(argv)
    asyncio.run(compare(seconds=args.seconds, rounds=args.rounds))


if __name__ == "__main__":
    main()
