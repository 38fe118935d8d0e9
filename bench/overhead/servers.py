"""Kept HTTP servers in front of the operator's routes, to measure against its own
(`gateway/serving.py`) in one run: `gateway.py --server builtin --server aiohttp --server uvicorn`.

Each serves the same `App` (`gateway/server.py`): the request becomes the App's `Request`, its
`Response` is written back, so the routes, the invoker and the engine are the operator's own and
only the HTTP server differs. aiohttp.web is what the operator ran before its own server;
uvicorn runs a plain ASGI app on httptools (the same parser the operator's server uses) in
uvloop. Used only here: the operator itself imports neither adapter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

Handler = Callable[[Any], Awaitable[Any]]


async def start_aiohttp(handler: Handler, *, host: str, port: int, max_body: int) -> None:
    """Serves `handler` with aiohttp.web until the process ends."""
    from stepline.gateway.serving import Request  # noqa: PLC0415 (the child's checkout)

    async def handle(request: web.Request) -> web.Response:
        headers = {name.lower(): value for name, value in request.headers.items()}
        ours = Request(request.method, request.path, headers, await request.read())
        answer = await handler(ours)
        return web.Response(
            status=answer.status, body=answer.body, headers=dict(answer.headers),
            content_type=answer.content_type.split(";")[0],
        )  # fmt: skip

    app = web.Application(client_max_size=max_body)
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()


async def start_uvicorn(handler: Handler, *, host: str, port: int, max_body: int) -> None:
    """Serves `handler` as an ASGI app under uvicorn (httptools, uvloop) in the running loop."""
    import uvicorn  # noqa: PLC0415 (bench only)

    from stepline.gateway.serving import KEEPALIVE_SECONDS, Request, json_error  # noqa: PLC0415

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if size > max_body:
            answer = json_error(413, "InputTooLarge", f"the body is over {max_body} bytes")
        else:
            request = Request(scope["method"], scope["path"], headers, b"".join(chunks))
            answer = await handler(request)
        head = [(b"content-type", answer.content_type.encode())]
        head += [(k.encode(), v.encode()) for k, v in answer.headers]
        await send({"type": "http.response.start", "status": answer.status, "headers": head})
        await send({"type": "http.response.body", "body": answer.body})

    config = uvicorn.Config(
        app, host=host, port=port, loop="none", http="httptools", lifespan="off",
        access_log=False, log_level="warning", timeout_keep_alive=KEEPALIVE_SECONDS,
    )  # fmt: skip
    server = uvicorn.Server(config)
    asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
