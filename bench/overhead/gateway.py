"""The operator's own CPU per invoke, steps left out: its HTTP server, the Invoker, the engine,
JSON and metrics, A/B between checkouts of the operator.

Each `--source DIR` (a checkout, e.g. from `git worktree add`; default: the installed package)
is served by a child process running that checkout's `stepline.gateway.server` (`build_app`,
`start_server`) in uvloop's loop, with a real `Invoker`, `Executor`, `MetricsObserver` and
`RunSlots`, and Workflows `echo-1`, `echo-3`, `echo-10` whose steps are answered at once by an
in-process transport that returns the request body (no step traffic at all). This process POSTs
invoke requests with aiohttp's client at concurrency 1 and 32, interleaving the children round
by round (`measuring.measure_rounds`), and reports runs/s and **the child's CPU per invoke**
(from /proc): the figure that a loaded, shared machine moves least. With two children or more it
also prints each against the first, round by round: a ratio of two figures measured seconds
apart, which a change of load moves far less than either figure.

    .venv/bin/python bench/overhead/gateway.py --source /tmp/base --source /tmp/new [--seconds 2]

With `--server` given (builtin, aiohttp, uvicorn; repeatable), one child per server kind (and
source): the operator's own HTTP server against kept ones (`servers.py`), all serving the same
routes. A `--source` that is an export of a commit (`git archive`) keeps the measurement clear of
uncommitted edits in the working tree.
`--steps` and `--concurrency` keep only some cells, for more rounds of the one that decides:

    .venv/bin/python bench/overhead/gateway.py --server builtin --server uvicorn \
        --server aiohttp --steps 1 --concurrency 32 --seconds 1.5 --rounds 15

With `--auth` given (off, cached; repeatable), one child per mode: `off` serves invoke without
an authorizer (STEPLINE_INVOKE_AUTH=false), `cached` with the operator's `Authorizer`, its
reviews answered "allowed" in-process; the client sends one bearer token throughout, so after
the first review (and one per TTL) every invoke is checked from the cache: what authentication
costs an invoke in steady state. (A review itself is two API requests, ~1-2 ms on a local API
server, paid once per token, namespace and workflow per TTL.)

    .venv/bin/python bench/overhead/gateway.py --auth off --auth cached --rounds 9
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import inspect
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import servers
from compare import CONCURRENCY, NAMESPACE, build_service_step, build_workflow
from measuring import Chain, Measurement, measure_rounds, median_round

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import harness

CHAINS = (1, 3, 10)
HOST = "127.0.0.1"
TOKEN = "bench-token"  # noqa: S105 (no secret: the children's reviewer accepts any)


class InstantTransport:
    """A step that answers 200 with what it was sent, without any I/O."""

    async def post(
        self, url: str, body: bytes, *, headers: Mapping[str, str], timeout: float
    ) -> Any:
        from stepline.engine import Reply  # noqa: PLC0415 (the child's checkout, old or new)

        return Reply(200, body)

    async def aclose(self) -> None:
        return None


class AllowingReviewer:
    """The API server's reviews, answered at once: the token is valid, its user may invoke."""

    async def review(
        self, api_version: str, kind: str, spec: Mapping[str, Any], *, timeout: float | None
    ) -> dict[str, Any]:
        if kind == "TokenReview":
            return {"authenticated": True, "user": {"username": "bench", "groups": []}}
        return {"allowed": True}


def build_authorizer(auth: str) -> Any:
    """None (no token checked), or the operator's Authorizer with the default TTLs."""
    if auth == "off":
        return None
    from stepline.gateway.authorizing import Authorizer  # noqa: PLC0415 (the child's checkout)
    from stepline.settings import Settings  # noqa: PLC0415

    defaults = Settings()
    return Authorizer(
        AllowingReviewer(),
        allowed_ttl=defaults.invoke_auth_allowed_ttl_seconds,
        denied_ttl=defaults.invoke_auth_denied_ttl_seconds,
    )


async def serve(port: int, server: str, auth: str) -> None:
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
    # Checkouts from before issue 16's invoke authentication served /metrics on the invoke port;
    # later ones take an authorizer (None: no token asked), and later still the metrics that
    # count its refusals.
    parameters = inspect.signature(build_app).parameters
    if "authorizer" in parameters:
        counted = {"metrics": metrics} if "metrics" in parameters else {}
        app = build_app(invoker=invoker, authorizer=build_authorizer(auth), **counted)
    elif auth == "off":
        app = build_app(invoker=invoker, metrics=metrics)
    else:
        raise SystemExit("this checkout has no invoke authentication to measure")
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


def start_child(
    source: Path | None, server: str, auth: str = "off"
) -> tuple[subprocess.Popen[str], str]:
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = str(source.resolve() / "operator")
    port = harness.free_port()
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), "--server", server, "--auth", auth],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    if child.stdout is None or not child.stdout.readline():  # its port line: it listens
        raise RuntimeError(f"the operator from {source} did not start")
    return child, f"http://{HOST}:{port}"


def invoke_chain(session: aiohttp.ClientSession, url: str) -> Chain:
    """One invoke per run: POST the payload, expect 200, return the output. The bearer token
    goes to every child alike; one without an authorizer ignores it."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}

    async def chain(payload: Any) -> Any:
        body = json.dumps(payload).encode()
        async with session.post(url, data=body, headers=headers) as answer:
            if answer.status != 200:
                raise RuntimeError(await answer.text())
            return json.loads(await answer.read())["output"]

    return chain


async def drive(
    targets: Mapping[str, tuple[int, str]],
    *,
    cells: Sequence[tuple[int, int]],
    seconds: float,
    rounds: int,
) -> None:
    """Measures every cell (steps, concurrency) over all servers, then prints each server's
    median round and, per cell, each server against the first one round by round."""
    measured: dict[tuple[int, int], dict[str, list[Measurement]]] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000)) as session:
        for steps, concurrency in cells:
            path = f"/v1/namespaces/{NAMESPACE}/workflows/echo-{steps}:invoke"
            chains = {name: invoke_chain(session, url + path) for name, (_, url) in targets.items()}
            clocks = {
                name: functools.partial(harness.process_cpu, pid)
                for name, (pid, _) in targets.items()
            }
            measured[(steps, concurrency)] = await measure_rounds(
                chains, concurrency=concurrency, seconds=seconds, rounds=rounds, clocks=clocks
            )
    print_medians(measured)
    if len(targets) > 1:
        print_ratios(measured, baseline=next(iter(targets)))


def print_medians(measured: Mapping[tuple[int, int], Mapping[str, list[Measurement]]]) -> None:
    print("\n| steps | c | operator | runs/s | p50 ms | p99 ms | operator CPU ms/invoke |")
    print("|---|---|---|---|---|---|---|")
    for (steps, concurrency), by_server in measured.items():
        for name, rounds_of in by_server.items():
            result = median_round(rounds_of)
            print(
                f"| {steps} | {concurrency} | {name} | {result.runs_per_second:.0f} "
                f"| {result.p50_ms:.2f} | {result.p99_ms:.2f} | {result.cpu_ms_per_run:.3f} |"
            )


def print_ratios(
    measured: Mapping[tuple[int, int], Mapping[str, list[Measurement]]], *, baseline: str
) -> None:
    """Each server's runs/s and CPU per invoke over the baseline's in the same round (measured
    seconds apart, so a change of load hits both): the median, the range, and every round."""
    print(f"\n| steps | c | operator | runs/s vs {baseline}: median (min-max) | CPU/invoke vs "
          f"{baseline}: median | runs/s per round |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for (steps, concurrency), by_server in measured.items():
        base = by_server[baseline]
        for name, rounds_of in by_server.items():
            if name == baseline:
                continue
            paired = list(zip(rounds_of, base, strict=True))
            speed = sorted(m.runs_per_second / b.runs_per_second for m, b in paired)
            cpu = sorted(m.cpu_ms_per_run / b.cpu_ms_per_run for m, b in paired)
            pairs = " ".join(f"{m.runs_per_second:.0f}/{b.runs_per_second:.0f}" for m, b in paired)
            print(
                f"| {steps} | {concurrency} | {name} | {statistics.median(speed):.3f} "
                f"({speed[0]:.2f}-{speed[-1]:.2f}) | {statistics.median(cpu):.3f} | {pairs} |"
            )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, action="append", help="a checkout to measure")
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per cell (median kept)")
    parser.add_argument(
        "--server", action="append", choices=("builtin", "aiohttp", "uvicorn"),
        help="the HTTP server in front of the operator's routes (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--steps", type=int, action="append", choices=CHAINS,
        help="only chains of this many steps (repeatable; default: 1, 3 and 10)",
    )  # fmt: skip
    parser.add_argument(
        "--concurrency", type=int, action="append",
        help="only this concurrency (repeatable; default: 1 and 32)",
    )  # fmt: skip
    parser.add_argument(
        "--auth", action="append", choices=("off", "cached"),
        help="invoke without authentication, or with it and its verdicts cached (repeatable)",
    )  # fmt: skip
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the child
    args = parser.parse_args(argv)
    if args.serve:
        import uvloop  # noqa: PLC0415

        uvloop.run(serve(args.serve, (args.server or ["builtin"])[0], (args.auth or ["off"])[0]))
        return
    print(harness.uptime())
    children = {}
    sources = args.source or [None]
    try:
        for source in sources:
            for server in args.server or ["builtin"]:
                for auth in args.auth or ["off"]:
                    name = (source.name if source else "installed") if len(sources) > 1 else ""
                    parts = (name, args.server and server, args.auth and f"auth-{auth}")
                    name = "/".join(part for part in parts if part)
                    children[name or "installed"] = start_child(source, server, auth)
        targets = {name: (child.pid, url) for name, (child, url) in children.items()}
        cells = [
            (steps, concurrency)
            for steps in args.steps or CHAINS
            for concurrency in args.concurrency or CONCURRENCY
        ]
        asyncio.run(drive(targets, cells=cells, seconds=args.seconds, rounds=args.rounds))
    finally:
        for child, _ in children.values():
            if child.stdin is not None:
                child.stdin.close()
            child.wait(timeout=10)
    print(harness.uptime())


if __name__ == "__main__":
    main()
