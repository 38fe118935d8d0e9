"""Which HTTP client should carry step calls? The candidates on the same 3-step loopback chain
of echo services, at concurrency 1 and 32, side by side in one process, alternating over several
rounds (`measuring`):

- `aiohttp`: aiohttp.ClientSession directly;
- `stepline aiohttp`: the engine's `AiohttpTransport` (that session behind `Transport.post`);
- `stepline http1`: the engine's `Http1Transport` (HTTP/1.1 on pooled asyncio connections,
  answers parsed by httptools), the operator's transport;
- `httpx+aiohttp`: httpx.AsyncClient on the `httpx-aiohttp` transport;
- `httpx`: plain httpx.AsyncClient (httpcore).

Each chain does what a step call must: POST the previous step's JSON, read the body, parse it;
the two `stepline` ones with the engine's headers and a timeout, as `StepClient` calls them.
`httpx-aiohttp` is not a Stepline dependency; install it to include that candidate:

    .venv/bin/pip install httpx-aiohttp
    .venv/bin/python bench/overhead/transports.py [--seconds 3] [--rounds 3] [--loop uvloop]

Results are recorded in RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from importlib import metadata
from typing import Any

import aiohttp
import httpx
from echo import EchoServices
from measuring import Chain, measure_side_by_side

from stepline.engine import AiohttpTransport, Http1Transport
from stepline.engine.tracing import build_call_headers

HEADERS = {"Content-Type": "application/json"}
POOL = 100  # connections kept open per client: above the highest concurrency measured


def chain_of(post: Chain, urls: Sequence[str]) -> Chain:
    async def chain(payload: Any) -> Any:
        for url in urls:
            payload = await post((url, payload))
        return payload

    return chain


@asynccontextmanager
async def aiohttp_post() -> AsyncIterator[Chain]:
    connector = aiohttp.TCPConnector(limit=POOL)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post(call: tuple[str, Any]) -> Any:
            url, payload = call
            async with session.post(url, data=json.dumps(payload), headers=HEADERS) as response:
                return json.loads(await response.read())

        yield post


@asynccontextmanager
async def httpx_post(*, on_aiohttp: bool) -> AsyncIterator[Chain]:
    limits = httpx.Limits(max_connections=POOL, max_keepalive_connections=POOL)
    if on_aiohttp:
        from httpx_aiohttp import HttpxAiohttpClient  # noqa: PLC0415 (optional candidate)

        client: httpx.AsyncClient = HttpxAiohttpClient(limits=limits)
    else:
        client = httpx.AsyncClient(limits=limits)
    async with client:

        async def post(call: tuple[str, Any]) -> Any:
            url, payload = call
            response = await client.post(url, content=json.dumps(payload), headers=HEADERS)
            return json.loads(response.content)

        yield post


@asynccontextmanager
async def stepline_post(transport: AiohttpTransport | Http1Transport) -> AsyncIterator[Chain]:
    headers = build_call_headers(
        idempotency_key="run/step",
        attempt=1,
        timeout=30,
        traceparent=f"00-{'1' * 32}-{'1' * 16}-01",
    )

    async def post(call: tuple[str, Any]) -> Any:
        url, payload = call
        body = json.dumps(payload).encode()
        reply = await transport.post(url, body, headers=headers, timeout=30)
        return json.loads(reply.body)

    async with transport:
        yield post


def candidates() -> dict[str, Any]:
    found: dict[str, Any] = {
        "aiohttp": aiohttp_post,
        "stepline aiohttp": lambda: stepline_post(AiohttpTransport(pool_size=POOL)),
        "stepline http1": lambda: stepline_post(Http1Transport(pool_size=POOL)),
    }
    try:
        metadata.version("httpx-aiohttp")
        found["httpx+aiohttp"] = lambda: httpx_post(on_aiohttp=True)
    except metadata.PackageNotFoundError:
        print("httpx-aiohttp is not installed: that candidate is left out")
    found["httpx"] = lambda: httpx_post(on_aiohttp=False)
    return found


async def compare(urls: Sequence[str], *, seconds: float, rounds: int) -> None:
    print("| client | concurrency | runs/s | p50 ms | p99 ms | CPU ms/run |")
    print("|---|---|---|---|---|---|")
    async with AsyncExitStack() as stack:
        chains = {
            name: chain_of(await stack.enter_async_context(open_post()), urls)
            for name, open_post in candidates().items()
        }
        for concurrency in (1, 32):
            results = await measure_side_by_side(
                chains, concurrency=concurrency, seconds=seconds, rounds=rounds
            )
            for name, result in results.items():
                print(
                    f"| {name} | {concurrency} | {result.runs_per_second:.0f} "
                    f"| {result.p50_ms:.2f} | {result.p99_ms:.2f} | {result.cpu_ms_per_run:.2f} |",
                    flush=True,
                )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per cell (median kept)")
    parser.add_argument(
        "--loop", choices=("asyncio", "uvloop"), default="asyncio", help="the event loop"
    )
    args = parser.parse_args(argv)
    versions = ", ".join(
        f"{name} {metadata.version(name)}"
        for name in ("aiohttp", "httptools", "uvloop", "httpx", "httpcore")
    )
    print(f"Python {platform.python_version()}, {versions}, {args.loop}'s event loop")
    loop_factory = None
    if args.loop == "uvloop":
        import uvloop  # noqa: PLC0415 (the operator's loop, not every platform's)

        loop_factory = uvloop.new_event_loop
    with EchoServices(3) as services, asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(compare(services.urls, seconds=args.seconds, rounds=args.rounds))


if __name__ == "__main__":
    main()
