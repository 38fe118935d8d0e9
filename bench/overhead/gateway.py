"""The operator's own CPU per invoke, steps left out: its HTTP server, the Invoker, the engine,
JSON and metrics, A/B between checkouts of the operator.

Each `--source DIR` (a checkout, e.g. from `git worktree add`; default: the installed package)
is served by a child process running that checkout's `stepline.gateway.server` (`build_app`,
`start_server`) in uvloop's loop, with a real `Invoker`, `Executor`, `MetricsObserver` and
`RunSlots`, and Workflows `echo-1`, `echo-3`, `echo-10` whose steps are answered at once by an
in-process transport that returns the request body (no step traffic at all). This process POSTs
invoke requests with aiohttp's client at concurrency 1 and 32, alternating between the children
round by round, and reports runs/s and **the child's CPU per invoke** (from /proc): the figure
that a loaded, shared machine moves least.

    .venv/bin/python bench/overhead/gateway.py --source /tmp/base --source /tmp/new [--seconds 2]

With `--server` given (builtin, aiohttp, uvicorn; repeatable), one child per server kind over
the installed package instead: the operator's own HTTP server against kept ones (`servers.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import servers
from compare import CONCURRENCY, NAMESPACE, build_service_step, build_workflow
from measuring import measure_side_by_side

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import harness

CHAINS = (1, 3, 10)
HOST = "127.0.0.1"


class InstantTransport:
    """A step that answers 200 with what it was sent, without any I/O."""

    async def post(
        self, url: str, body: bytes, *, headers: Mapping[str, str], timeout: float
    ) -> Any:
        from stepline.engine.transports import Reply  # noqa: PLC0415 (the child's checkout)

        return Reply(200, body)

    async def aclose(self) -> None:
        return None


async def serve(port: int, server: str) -> None:
    """The child: the operator's HTTP side on `port`, behind `server`, until stdin closes."""
    from stepline.api import Condition, ConditionStatus, ConditionType, Reason  # noqa: PLC0415
    from stepline.engine import Executor, RunSlots, StepIndex, build_plan  # noqa: PLC0415
    from stepline.engine.metering import MetricsObserver  # noqa: PLC0415
    from stepline.gateway.invoking import Invoker  # noqa: PLC0415
    from stepline.gateway.server import build_app, start_server  # noqa: PLC0415
    from stepline.observability import Metrics  # noqa: PLC0415

    metrics = Metrics()
    workflows, plans = {}, {}
    for steps in CHAINS:
        workflow = build_workflow(steps)
        workflow.status.conditions = [
            Condition(
                type=ConditionType.READY, status=ConditionStatus.TRUE, reason=Reason.AVAILABLE,
                message="ready", last_transition_time=build_service_step(0).status.conditions[0]
                .last_transition_time,
            )
        ]  # fmt: skip
        workflows[(NAMESPACE, workflow.metadata.name)] = workflow
        plans[workflow.metadata.name] = build_plan(workflow)
    executor = Executor(
        transport=InstantTransport(),
        directory=StepIndex(build_service_step(index) for index in range(max(CHAINS))),
        overrides={f"echo-{index}": f"http://{HOST}:1/" for index in range(max(CHAINS))},
        observer=MetricsObserver(metrics),
    )
    invoker = Invoker(
        executor=executor,
        slots=RunSlots(),
        find_workflow=lambda namespace, name: workflows.get((namespace, name)),
        plan_of=lambda workflow: plans[workflow.metadata.name],
        deadline_seconds=60,
        metrics=metrics,
    )
    app = build_app(invoker=invoker, metrics=metrics)
    if server == "builtin":
        await start_server(app, host=HOST, port=port)
    else:
        from stepline.api import MAX_INPUT_BYTES  # noqa: PLC0415

        start = {"aiohttp": servers.start_aiohttp, "uvicorn": servers.start_uvicorn}[server]
        await start(app, host=HOST, port=port, max_body=MAX_INPUT_BYTES)
    print(json.dumps({"port": port}), flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_reader(sys.stdin.fileno(), stop.set)
    await stop.wait()


def start_child(source: Path | None, server: str) -> tuple[subprocess.Popen[str], str]:
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = str(source.resolve() / "operator")
    port = harness.free_port()
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), "--server", server],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    if child.stdout is None or not child.stdout.readline():  # its port line: it listens
        raise RuntimeError(f"the operator from {source} did not start")
    return child, f"http://{HOST}:{port}"


async def drive(servers: Mapping[str, tuple[int, str]], *, seconds: float, rounds: int) -> None:
    payload_headers = {"Content-Type": "application/json"}
    print("| steps | c | operator | runs/s | p50 ms | p99 ms | operator CPU ms/invoke |")
    print("|---|---|---|---|---|---|---|")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000)) as session:
        for steps in CHAINS:
            chains, clocks = {}, {}
            for name, (pid, base_url) in servers.items():
                url = f"{base_url}/v1/namespaces/{NAMESPACE}/workflows/echo-{steps}:invoke"

                async def chain(payload: Any, url: str = url) -> Any:
                    body = json.dumps(payload).encode()
                    async with session.post(url, data=body, headers=payload_headers) as answer:
                        if answer.status != 200:
                            raise RuntimeError(await answer.text())
                        return json.loads(await answer.read())["output"]

                chains[name] = chain
                clocks[name] = lambda pid=pid: harness.process_cpu(pid)
            for concurrency in CONCURRENCY:
                results = await measure_side_by_side(
                    chains, concurrency=concurrency, seconds=seconds, rounds=rounds, clocks=clocks
                )
                for name, result in results.items():
                    print(
                        f"| {steps} | {concurrency} | {name} | {result.runs_per_second:.0f} "
                        f"| {result.p50_ms:.2f} | {result.p99_ms:.2f} "
                        f"| {result.cpu_ms_per_run:.3f} |",
                        flush=True,
                    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, action="append", help="a checkout to measure")
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per cell (median kept)")
    parser.add_argument(
        "--server", action="append", choices=("builtin", "aiohttp", "uvicorn"),
        help="the HTTP server in front of the installed package's routes (repeatable)",
    )  # fmt: skip
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the child
    args = parser.parse_args(argv)
    if args.serve:
        import uvloop  # noqa: PLC0415

        uvloop.run(serve(args.serve, (args.server or ["builtin"])[0]))
        return
    print(harness.uptime())
    children = {}
    try:
        if args.server:
            for server in args.server:
                children[server] = start_child(None, server)
        for source in args.source or ([] if args.server else [None]):
            child, base_url = start_child(source, "builtin")
            children[source.name if source else "installed"] = (child, base_url)
        servers = {name: (child.pid, url) for name, (child, url) in children.items()}
        asyncio.run(drive(servers, seconds=args.seconds, rounds=args.rounds))
    finally:
        for child, _ in children.values():
            if child.stdin is not None:
                child.stdin.close()
            child.wait(timeout=10)
    print(harness.uptime())


if __name__ == "__main__":
    main()
