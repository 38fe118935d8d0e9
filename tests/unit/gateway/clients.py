"""A client that writes exact bytes to a server on 127.0.0.1 and reads its answers one by one:
for what aiohttp's client never sends (pipelined, malformed, oversized, half-sent or trickled
requests)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class RawClient:
    """One connection; `send()` bytes, `answer()` reads one answer (headers and, unless
    `head_only`, a Content-Length body), `closed()` tells whether the server closed it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def connect(cls, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection(HOST, port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def answer(self, *, head_only: bool = False) -> Answer:
        head = await self._reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if head_only else int(headers.get("content-length", "0"))
        body = await self._reader.readexactly(length)
        return Answer(int(status_line.split()[1]), headers, body)

    async def closed(self) -> bool:
        """Whether the server closed the connection (reads, and drops, what is left first)."""
        try:
            await self._reader.read()
        except ConnectionResetError:
            return True
        return self._reader.at_eof()

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError):  # the server may have reset it
            await self._writer.wait_closed()

    async def trickle(self, pieces: Iterable[bytes], *, pause: float) -> None:
        """Sends `pieces` one by one, `pause` seconds apart (as separate reads, as a network
        delivers them), until done or the server hangs up."""
        with contextlib.suppress(ConnectionError):
            for piece in pieces:
                await self.send(piece)
                await asyncio.sleep(pause)


def post(path: str, body: bytes, *, headers: str = "") -> bytes:
    """A POST with a Content-Length; `headers`: extra lines, each ending in CRLF."""
    head = f"POST {path} HTTP/1.1\r\nHost: test\r\n{headers}Content-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def get(path: str, *, headers: str = "", method: str = "GET", version: str = "1.1") -> bytes:
    return f"{method} {path} HTTP/{version}\r\nHost: test\r\n{headers}\r\n".encode()
