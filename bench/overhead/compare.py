"""What Stepline costs per step: chains of 1, 3 and 10 trivial echo services on loopback, called
side by side in one run

- (a) `direct`: the fastest hand-written Python chain — aiohttp's client, one pooled session,
  each output POSTed as the next input;
- (b) `engine`: the same chain as a Workflow run by Stepline's executor in this process (plan,
  run slot, directory look-up, endpoint resolution, headers, retries armed, records kept);
- (c) `invoke`: the same chain through the operator's invoke endpoint over HTTP, with
  `--kubeconfig` (a local control plane with the CRDs): a namespace with ServiceSteps `echo-0…9`
  and Workflows `echo-1`, `echo-3`, `echo-10` is created, an operator process started on it
  with its endpoint overrides pointing at the echo services (`../harness.py`), and each chain is
  one POST to `.../workflows/echo-<n>:invoke`. `--operator-profile FILE` runs that operator
  under cProfile; `--operator-source DIR` runs it from another checkout, and given twice runs
  two operators side by side, their chains alternating in each round (an A/B of commits on a
  machine whose load changes).

at concurrency 1 and 32. The echo services run in a child process (`echo.py`), so that they do not
share this process's CPU time. Per cell: runs/s, p50 and p99 latency; per step, the overhead
`(engine - direct) / steps` at p50 and at p99 (a difference of quantiles, not a quantile of
differences); and the throughput ratio engine / direct; the same for invoke. CPU per run is this
process's, plus the operator's for invoke.

    .venv/bin/python bench/overhead/compare.py [--seconds 5] [--profile] [--kubeconfig FILE]

`--profile` also runs the 3-step engine chain at concurrency 1 under cProfile and prints where
the time goes. Results are recorded in RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import platform
import pstats
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import aiohttp
from echo import EchoServices
from measuring import Chain, Measurement, measure, measure_side_by_side

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import harness

from stepline.api import Condition, ConditionStatus, ConditionType, Reason, ServiceStep, Workflow
from stepline.engine import (
    AiohttpTransport,
    Executor,
    Plan,
    RunRequest,
    RunSlots,
    StepIndex,
    build_plan,
)

CHAINS = (1, 3, 10)
CONCURRENCY = (1, 32)
NAMESPACE = "bench"
HEADERS = {"Content-Type": "application/json"}


def direct_chain(session: aiohttp.ClientSession, urls: Sequence[str]) -> Chain:
    """(a) The chain written by hand: nothing but POST, read, parse."""

    async def chain(payload: Any) -> Any:
        for url in urls:
            body = json.dumps(payload).encode()
            async with session.post(url, data=body, headers=HEADERS) as response:
                payload = json.loads(await response.read())
        return payload

    return chain


def engine_chain(executor: Executor, plan: Plan, slots: RunSlots) -> Chain:
    """(b) The chain as a workflow run by the engine, as invoke will run it (minus HTTP in)."""

    async def chain(payload: Any) -> Any:
        async with slots.hold(plan.key, limit=plan.concurrency, wait=False):
            outcome = await executor.execute(plan, RunRequest(uid=str(uuid.uuid4()), input=payload))
        if not outcome.succeeded:
            raise RuntimeError(outcome.message)
        return outcome.output

    return chain


def invoke_chain(
    session: aiohttp.ClientSession, base_url: str, namespace: str, steps: int
) -> Chain:
    """(c) The chain through the operator's invoke endpoint: one POST, the operator calls the
    steps (Workflow `echo-<steps>` in `namespace`, steps overridden to the echo services)."""
    url = f"{base_url}/v1/namespaces/{namespace}/workflows/echo-{steps}:invoke"

    async def chain(payload: Any) -> Any:
        async with session.post(
            url, data=json.dumps(payload).encode(), headers=HEADERS
        ) as response:
            if response.status != 200:
                raise RuntimeError(f"invoke: {response.status} {await response.text()}")
            return json.loads(await response.read())["output"]

    return chain


@dataclass(frozen=True)
class Operator:
    """An operator process serving invoke for chain `chain`."""

    chain: str
    base_url: str
    namespace: str
    pid: int


@contextmanager
def start_operator(
    kubeconfig: str, urls: Sequence[str], *, profile: str, source: Path | None, chain: str
) -> Iterator[Operator]:
    """A namespace of echo steps and workflows, and an operator on it (from `source`)."""
    with (
        harness.echo_namespace(kubeconfig, max(CHAINS), CHAINS) as namespace,
        harness.operator(
            kubeconfig,
            namespace,
            urls,
            Path(tempfile.gettempdir()) / f"stepline-{namespace}.log",
            profile=profile,
            source=source,
        ) as (process, base_url),
    ):
        print(f"{chain}: operator from {source or 'the installed package'} at {base_url}")
        yield Operator(chain, base_url, namespace, process.pid)


def client_and_operator_cpu(pid: int) -> Callable[[], float]:
    """What invoke costs in CPU: this client's time and the operator process's."""
    return lambda: time.process_time() + harness.process_cpu(pid)


def build_service_step(index: int) -> ServiceStep:
    step = ServiceStep.from_body(
        {
            "metadata": {"name": f"echo-{index}", "namespace": NAMESPACE},
            "spec": {"image": "bench/echo:1", "path": "/"},
        }
    )
    ready = Condition(
        type=ConditionType.READY,
        status=ConditionStatus.TRUE,
        reason=Reason.AVAILABLE,
        message="ready",
        last_transition_time=datetime.now(UTC),
    )
    step.status.conditions = [ready]
    return step


def build_workflow(steps: int) -> Workflow:
    chain = [{"name": f"s{index}", "stepRef": f"echo-{index}"} for index in range(steps)]
    return Workflow.from_body(
        {
            "metadata": {"name": f"echo-{steps}", "namespace": NAMESPACE, "generation": 1},
            "spec": {"steps": chain, "concurrency": 1000},
        }
    )


def build_executor(urls: Sequence[str], transport: AiohttpTransport) -> Executor:
    index = StepIndex(build_service_step(number) for number in range(len(urls)))
    overrides = {f"echo-{number}": url for number, url in enumerate(urls)}
    return Executor(transport=transport, directory=index, overrides=overrides)


def describe(name: str, steps: int, concurrency: int, result: Measurement) -> str:
    return (
        f"| {steps} | {concurrency} | {name} | {result.runs_per_second:.0f} "
        f"| {result.p50_ms:.2f} | {result.p99_ms:.2f} | {result.cpu_ms_per_run:.2f} |"
    )


def summarise(
    name: str, steps: int, concurrency: int, direct: Measurement, engine: Measurement
) -> str:
    per_step_p50 = (engine.p50_ms - direct.p50_ms) / steps
    per_step_p99 = (engine.p99_ms - direct.p99_ms) / steps
    per_step_cpu = (engine.cpu_ms_per_run - direct.cpu_ms_per_run) / steps
    ratio = engine.runs_per_second / direct.runs_per_second
    cpu_ratio = direct.cpu_ms_per_run / engine.cpu_ms_per_run
    return (
        f"| {steps} | {concurrency} | {name} | {per_step_p50:.3f} | {per_step_p99:.3f} "
        f"| {per_step_cpu:.3f} | {ratio:.2f} | {cpu_ratio:.2f} |"
    )


async def compare(
    urls: Sequence[str],
    *,
    seconds: float,
    rounds: int,
    operators: Sequence[Operator] = (),
) -> None:
    summaries = []
    print("| steps | concurrency | chain | runs/s | p50 ms | p99 ms | CPU ms/run |")
    print("|---|---|---|---|---|---|---|")
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000)) as session,
        AiohttpTransport() as transport,
    ):
        executor = build_executor(urls, transport)
        slots = RunSlots()
        for steps in CHAINS:
            plan = build_plan(build_workflow(steps))
            clocks = {}
            chains = {
                "direct": direct_chain(session, urls[:steps]),
                "engine": engine_chain(executor, plan, slots),
            }
            for operator in operators:
                name = operator.chain
                chains[name] = invoke_chain(session, operator.base_url, operator.namespace, steps)
                clocks[name] = client_and_operator_cpu(operator.pid)
            for concurrency in CONCURRENCY:
                results = await measure_side_by_side(
                    chains, concurrency=concurrency, seconds=seconds, rounds=rounds, clocks=clocks
                )
                for name, result in results.items():
                    print(describe(name, steps, concurrency, result), flush=True)
                summaries.extend(
                    summarise(name, steps, concurrency, results["direct"], result)
                    for name, result in results.items()
                    if name != "direct"
                )
    print(
        "\n| steps | concurrency | chain | overhead/step p50 ms | overhead/step p99 ms "
        "| CPU/step ms | runs/s vs direct | by CPU vs direct |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(summaries))


async def profile(urls: Sequence[str], *, seconds: float) -> str:
    async with AiohttpTransport() as transport:
        executor = build_executor(urls, transport)
        chain = engine_chain(executor, build_plan(build_workflow(3)), RunSlots())
        await measure(chain, concurrency=1, seconds=0.5)
        profiler = cProfile.Profile()
        profiler.enable()
        await measure(chain, concurrency=1, seconds=seconds, warmup_seconds=0)
        profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).sort_stats("tottime")
    stats.print_stats(30)
    return out.getvalue()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per cell (median kept)")
    parser.add_argument(
        "--kubeconfig", help="(c): a local control plane with the CRDs; starts an operator there"
    )
    parser.add_argument("--operator-profile", help="(c): run the operator under cProfile to FILE")
    parser.add_argument(
        "--operator-source",
        type=Path,
        action="append",
        help="(c): run the operator from this checkout's operator/ (`git worktree add`); twice: "
        "two operators side by side, chains `invoke:<folder name>` (an A/B of commits)",
    )
    parser.add_argument("--profile", action="store_true", help="profile the 3-step engine chain")
    args = parser.parse_args(argv)
    versions = ", ".join(f"{name} {metadata.version(name)}" for name in ("aiohttp", "stepline"))
    print(f"Python {platform.python_version()}, {versions}")
    print(harness.uptime())
    with EchoServices(max(CHAINS)) as services, ExitStack() as stack:
        operators = []
        if args.kubeconfig:
            sources = args.operator_source or [None]
            for source in sources:
                chain, profile = "invoke", args.operator_profile or ""
                if len(sources) > 1:
                    chain = f"invoke:{source.name}"
                    profile = profile and f"{profile}.{source.name}"
                operator = stack.enter_context(
                    start_operator(
                        args.kubeconfig, services.urls, profile=profile, source=source, chain=chain
                    )
                )
                operators.append(operator)
        asyncio.run(
            compare(services.urls, seconds=args.seconds, rounds=args.rounds, operators=operators)
        )
        if args.profile:
            print(asyncio.run(profile(services.urls, seconds=args.seconds)))
    print(harness.uptime())


if __name__ == "__main__":
    main()
