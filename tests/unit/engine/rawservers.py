"""An HTTP server on 127.0.0.1 that answers with exact bytes, for the answers that a well-behaved
server such as aiohttp.web never sends: garbage, 100 Continue, a body framed by the connection's
end, a connection closed instead of answering.

`answer(*raws)` queues the answers, one per request, over all connections; the last one
repeats. The server counts the connections it accepted (`connections`) and the ones whose client
hung up (`hung_up`), and keeps each request's bytes (`requests`).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

HOST = "127.0.0.1"
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length: *(\d+)\r\n", re.IGNORECASE)


@dataclass(frozen=True)
class Raw:
    """One answer: `parts` written one after another (a pause between them, so that the client
    reads them apart), after `delay` seconds; then the connection closed if `close`."""

    parts: tuple[bytes, ...] = ()
    delay: float = 0.0
    close: bool = False


def ok(body: bytes = b"{}", *, headers: str = "") -> Raw:
    """A 200 with a Content-Length, kept alive; `headers` are extra lines, each ending in CRLF."""
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{headers}\r\n"
    return Raw((head.encode() + body,))


@dataclass
class RawServer:
    connections: int = 0
    hung_up: int = 0
    requests: list[bytes] = field(default_factory=list)
    port: int = 0
    _script: list[Raw] = field(default_factory=lambda: [ok()])
    _server: asyncio.Server | None = None
    _handlers: dict[asyncio.Task[None], asyncio.StreamWriter] = field(default_factory=dict)

    def url(self, path: str = "/") -> str:
        return f"http://{HOST}:{self.port}{path}"

    def answer(self, *raws: Raw) -> None:
        self._script = list(raws)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._handlers.values():
            writer.close()  # a handler waiting to read or to answer sees the end at once
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers[handler] = writer
        self.connections += 1
        try:
            while await self._answer_one(reader, writer):
                pass
        finally:
            writer.close()
            self._handlers.pop(handler, None)

    async def _answer_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Reads a request and answers it; false when the connection is to end."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            found = _CONTENT_LENGTH.search(head)
            body = await reader.readexactly(int(found.group(1)) if found else 0)
        except (asyncio.IncompleteReadError, ConnectionError):
            self.hung_up += 1
            return False
        self.requests.append(head + body)
        raw = self._script.pop(0) if len(self._script) > 1 else self._script[0]
        if raw.delay and await self._hangs_up_within(reader, raw.delay):
            self.hung_up += 1
            return False
        for number, part in enumerate(raw.parts):
            if number:
                await asyncio.sleep(0.02)
            writer.write(part)
            await writer.drain()
        return not raw.close

    @staticmethod
    async def _hangs_up_within(reader: asyncio.StreamReader, seconds: float) -> bool:
        """Waits `seconds`, unless the client hangs up first (then true)."""
        try:
            return await asyncio.wait_for(reader.read(1), seconds) == b""
        except TimeoutError:
            return False
        except ConnectionError:
            return True
