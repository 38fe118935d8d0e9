"""Fixtures of the gateway's tests: an `HttpServer` on 127.0.0.1 with a handler that records
what it was asked and answers as the test says."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from stepline.gateway.serving import HttpServer, Request, Response
from tests.unit.gateway.clients import HOST

MAX_BODY_BYTES = 1000


class Recorder:
    """Answers 200 with what it got as JSON: method, path, body, headers, and the query. A
    request to /fail raises; one to /snowman answers a header no HTTP/1.1 head can carry; one
    to /hold waits until `release` is set; `requests` keeps them all."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.release = asyncio.Event()
        self.holding = asyncio.Event()

    async def __call__(self, request: Request) -> Response:
        self.requests.append(request)
        if request.path == "/fail":
            raise RuntimeError("a handler's bug")
        if request.path == "/snowman":
            return Response(303, b"", headers=(("Location", "/\u2603"),))
        if request.path == "/hold":
            self.holding.set()
            await self.release.wait()
        got = {
            "method": request.method,
            "path": request.path,
            "body": request.body.decode(),
            "tooLarge": request.body_too_large,
            "size": request.body_size,
            "query": request.query,
        }
        return Response(200, json.dumps(got).encode())


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def server(recorder: Recorder) -> AsyncIterator[HttpServer]:
    started = HttpServer(recorder, max_body_bytes=MAX_BODY_BYTES)
    await started.start(HOST, 0)
    yield started
    recorder.release.set()
    await started.close(timeout=5)
