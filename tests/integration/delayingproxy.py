"""A TCP proxy that delays what the API server sends and can stall both ways: a throttled or
hung API server, as the operator sees it, while the real one answers at once.

`DelayingProxy(upstream).start()` listens on a free loopback port and forwards every
connection to `upstream` byte for byte, so TLS passes through untouched (the API server's
certificate names 127.0.0.1, whatever the port). Each chunk read from the server waits a random
delay in `delay_range` before it is written to the client; as the next chunk is read only then,
one connection's answers queue behind each other, and a stream (a watch) arrives in late
batches. `stall()` holds every byte in either direction until `flow()`, which delivers them: a
request its client gave up on meanwhile may still reach the server, as on a real network.
It serves from a thread with an event loop of its own, so synchronous tests can use it while
the operator (another process) talks through it. `write_kubeconfig_through()` writes a copy of
a kubeconfig whose server is the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

CHUNK = 65536


class DelayingProxy:
    def __init__(self, upstream: tuple[str, int], *, delay_range: tuple[float, float]) -> None:
        self.upstream = upstream
        self.delay_range = delay_range
        self.port = 0  # known once started
        self.delayed_chunks = 0  # chunks from the server written after their delay
        self._random = random.Random(19)  # noqa: S311 - delays, not secrets
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._flowing = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._pumps: set[asyncio.Task[None]] = set()
        self._serving: set[asyncio.Task[None]] = set()

    def start(self) -> DelayingProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def stop(self) -> None:
        self._call(self._shut_down())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def stall(self) -> None:
        """From now on no byte passes either way, until `flow()`."""
        self._loop.call_soon_threadsafe(self._flowing.clear)

    def flow(self) -> None:
        self._loop.call_soon_threadsafe(self._flowing.set)

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _listen(self) -> None:
        self._flowing.set()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shut_down(self) -> None:
        if self._server is not None:
            self._server.close()
        # Cancelling the pumps ends each connection; its handler then returns by itself (a
        # cancelled handler is logged as an error by asyncio's server).
        for pump in self._pumps:
            pump.cancel()
        await asyncio.gather(*self._serving, return_exceptions=True)

    async def _serve(self, client: asyncio.StreamReader, to_client: asyncio.StreamWriter) -> None:
        try:
            server, to_server = await asyncio.open_connection(*self.upstream)
        except OSError:
            to_client.close()
            return
        serving = asyncio.current_task()
        assert serving is not None
        self._serving.add(serving)
        pumps = {
            asyncio.create_task(self._pump(client, to_server, delayed=False)),
            asyncio.create_task(self._pump(server, to_client, delayed=True)),
        }
        self._pumps |= pumps
        # Either side closing ends the connection: the proxy half-closes nothing.
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for pump in pumps:
            pump.cancel()
        for writer in (to_client, to_server):
            writer.close()
        self._pumps -= pumps
        self._serving.discard(serving)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, delayed: bool
    ) -> None:
        with contextlib.suppress(OSError):
            while chunk := await reader.read(CHUNK):
                if delayed:
                    await asyncio.sleep(self._random.uniform(*self.delay_range))
                await self._flowing.wait()
                writer.write(chunk)
                await writer.drain()
                self.delayed_chunks += delayed


def write_kubeconfig_through(proxy: DelayingProxy, kubeconfig: Path, copy: Path) -> Path:
    """Writes to `copy` the kubeconfig with its clusters' server at the proxy; returns `copy`."""
    config = yaml.safe_load(kubeconfig.read_text())
    for entry in config["clusters"]:
        entry["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
    copy.write_text(yaml.safe_dump(config))
    return copy


def upstream_of(kubeconfig: Path) -> tuple[str, int]:
    """The host and port of the (single) API server the kubeconfig names."""
    (entry,) = yaml.safe_load(kubeconfig.read_text())["clusters"]
    url = urlsplit(entry["cluster"]["server"])
    return url.hostname or "127.0.0.1", url.port or 443
