"""CPU per request of the operator's HTTP server alone: its connection protocol fed one typical
invoke request at a time (as the benchmark's client sends it) over a transport that drops what is
written, no sockets, uvloop's loop, a handler that answers at once. What parsing, checking and
writing an answer cost, apart from the kernel and the rest of invoke; A/B between checkouts.

    .venv/bin/python bench/overhead/protocol.py --source /tmp/head --source /tmp/new

Each `--source` (a checkout or a `git archive` export; default: the installed package) runs in a
child process; the best of `--rounds` rounds of `--requests` requests is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REQUEST = (
    b"POST /v1/namespaces/bench/workflows/echo-1:invoke HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
    b"Content-Type: application/json\r\nAccept: */*\r\nAccept-Encoding: gzip, deflate\r\n"
    b"User-Agent: Python/3.11 aiohttp/3.14.5\r\nContent-Length: 80\r\n\r\n" + b"x" * 80
)


class DroppingTransport(asyncio.Transport):
    def write(self, data: Any) -> None:
        pass

    def is_closing(self) -> bool:
        return False


async def measure(requests: int, rounds: int) -> float:
    """Seconds of CPU per request, best round."""
    from stepline.gateway import serving  # noqa: PLC0415 (the child's checkout)

    answer = serving.Response(200, b'{"output": {}}')

    async def handler(request: Any) -> Any:
        return answer

    server = serving.HttpServer(handler, max_body_bytes=65536)
    # Checkouts before the strict server (4dadf71) have no public `connection()`.
    make = getattr(server, "connection", None) or (lambda: serving._Connection(server))
    connection = make()
    connection.connection_made(DroppingTransport())
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(requests):
            connection.data_received(REQUEST)
            await asyncio.sleep(0)  # the answer is written by the connection's task
        best = min(best, (time.process_time() - started) / requests)
    return best


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, action="append", help="a checkout to measure")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        import uvloop  # noqa: PLC0415

        print(f"{uvloop.run(measure(args.requests, args.rounds)) * 1e6:.2f}")
        return
    print("| source | µs CPU per request |\n|---|---|")
    for source in args.source or [None]:
        env = dict(os.environ)
        if source is not None:
            env["PYTHONPATH"] = str(source.resolve() / "operator")
        command = [sys.executable, __file__, "--child", f"--requests={args.requests}"]
        command.append(f"--rounds={args.rounds}")
        child = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
        print(f"| {source or 'installed'} | {child.stdout.strip()} |", flush=True)


if __name__ == "__main__":
    main()
