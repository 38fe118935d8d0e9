"""Trivial echo services for the overhead benchmarks: each answers a POST of JSON with the same
JSON, on its own loopback port, as a step service would (aiohttp.web, one event loop); and takes
OTLP/HTTP batches of spans at /v1/traces, as a collector would.

Run as a child process so that the services do not share the measuring process's CPU time:

    python bench/overhead/echo.py --count 10 [--delay-ms 100]

prints one JSON line `{"ports": [...]}` once every port listens, then serves until stdin closes
(the parent closes it, or dies) or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

HOST = "127.0.0.1"


async def echo(request: web.Request) -> web.Response:
    return web.Response(body=await request.read(), content_type="application/json")


def build_app(delay: float = 0.0) -> web.Application:
    """Echoes at once, or after `delay` seconds (a step that takes its time)."""

    async def late_echo(request: web.Request) -> web.Response:
        body = await request.read()
        await asyncio.sleep(delay)
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_post("/", late_echo if delay else echo)
    app.router.add_post("/v1/traces", take_spans)
    return app


async def take_spans(request: web.Request) -> web.Response:
    """An OTLP/HTTP collector that keeps up: reads a batch of spans, answers an empty success."""
    await request.read()
    return web.Response(body=b"{}", content_type="application/json")


async def serve(count: int, delay: float = 0.0) -> None:
    runners = []
    ports = []
    for _ in range(count):
        runner = web.AppRunner(build_app(delay), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, HOST, 0, backlog=1024)
        await site.start()
        runners.append(runner)
        ports.append(runner.addresses[0][1])
    print(json.dumps({"ports": ports}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_reader(sys.stdin.fileno(), stop.set)  # EOF: the parent is gone
    await stop.wait()
    for runner in runners:
        await runner.cleanup()


class EchoServices:
    """The echo services as a child process; `urls` are their base URLs (path `/`)."""

    def __init__(self, count: int, *, delay_ms: float = 0.0) -> None:
        self._process = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__)),
                "--count",
                str(count),
                "--delay-ms",
                str(delay_ms),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        stdout, self._stdin = self._process.stdout, self._process.stdin
        if stdout is None or self._stdin is None:
            raise RuntimeError("the echo services' pipes are missing")
        line = stdout.readline()
        if not line:
            raise RuntimeError("the echo services did not start")
        self.urls: list[str] = [f"http://{HOST}:{port}/" for port in json.loads(line)["ports"]]

    def close(self) -> None:
        self._stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()

    def __enter__(self) -> EchoServices:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3, help="how many services (ports)")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="each answer's delay")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.count, args.delay_ms / 1000))


if __name__ == "__main__":
    main()
