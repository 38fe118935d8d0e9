"""A step service that answers late and counts what arrives: each POST is noted under its
Idempotency-Key with the time it arrived (Unix seconds), then answered with its own body after
`--delay-s` seconds (aiohttp.web, one event loop). `GET /arrivals` returns
`{"<key>": [<time>, ...]}`: a call re-sent by a restarted operator is a second time under the
same key.

Run as a child process (`SlowStep`), so that the held calls do not share the measuring
process's CPU time:

    python bench/runs/slowstep.py --delay-s 600

prints one JSON line `{"port": N}` once it listens, then serves until stdin closes (the parent
closes it, or dies) or SIGTERM. A call whose client went away (the operator was stopped) is not
cancelled: it sleeps its time out and its answer goes nowhere, as a real slow service's would.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

HOST = "127.0.0.1"
KEY = "Idempotency-Key"


def build_app(delay: float) -> web.Application:
    arrivals: dict[str, list[float]] = {}

    async def call(request: web.Request) -> web.Response:
        arrivals.setdefault(request.headers.get(KEY, ""), []).append(time.time())
        body = await request.read()
        await asyncio.sleep(delay)
        return web.Response(body=body, content_type="application/json")

    async def report(_: web.Request) -> web.Response:
        return web.json_response(arrivals)

    app = web.Application()
    app.router.add_post("/", call)
    app.router.add_get("/arrivals", report)
    return app


async def serve(delay: float) -> None:
    # Held calls are not waited for at exit (the default waits a minute for them).
    runner = web.AppRunner(build_app(delay), access_log=None, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0, backlog=2048)
    await site.start()
    print(json.dumps({"port": runner.addresses[0][1]}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_reader(sys.stdin.fileno(), stop.set)  # EOF: the parent is gone
    await stop.wait()
    await runner.cleanup()


class SlowStep:
    """The service as a child process; `url` is its base URL (path `/`)."""

    def __init__(self, delay_s: float) -> None:
        argv = [sys.executable, str(Path(__file__)), "--delay-s", str(delay_s)]
        self._process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        stdout, stdin = self._process.stdout, self._process.stdin
        if stdout is None or stdin is None:
            raise RuntimeError("the slow step's pipes are missing")
        self._stdin = stdin
        line = stdout.readline()
        if not line:
            raise RuntimeError("the slow step did not start")
        self.url = f"http://{HOST}:{json.loads(line)['port']}/"

    def arrivals(self) -> dict[str, list[float]]:
        with urllib.request.urlopen(self.url + "arrivals", timeout=30) as answer:  # noqa: S310
            found: dict[str, list[float]] = json.load(answer)
        return found

    def close(self) -> None:
        self._stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def __enter__(self) -> SlowStep:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay-s", type=float, default=600.0, help="each answer's delay")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.delay_s))


if __name__ == "__main__":
    main()
