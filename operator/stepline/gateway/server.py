"""The operator's HTTP server (aiohttp, already there through kopf): invoke, /metrics, /healthz.

POST /v1/namespaces/{namespace}/workflows/{name}:invoke   run a workflow, answer its output
GET  /metrics                                              Prometheus exposition
GET  /healthz                                              200 once the server runs
"""

from __future__ import annotations

import json

from aiohttp import web

from stepline.api import MAX_INPUT_BYTES
from stepline.gateway.invoking import Invoker
from stepline.observability import Metrics, render_metrics

INVOKE_PATH = "/v1/namespaces/{namespace}/workflows/{name:[^/:]+}:invoke"
JSON = "application/json"
_INVOKER = web.AppKey("invoker", Invoker)
_METRICS = web.AppKey("metrics", Metrics)


def build_app(*, invoker: Invoker, metrics: Metrics) -> web.Application:
    # One byte over the cap reaches the handler, which answers 400 naming the limit.
    app = web.Application(client_max_size=MAX_INPUT_BYTES + 1)
    app[_INVOKER] = invoker
    app[_METRICS] = metrics
    app.router.add_post(INVOKE_PATH, invoke)
    app.router.add_get("/metrics", serve_metrics)
    app.router.add_get("/healthz", serve_health)
    return app


async def invoke(request: web.Request) -> web.Response:
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        body = b" " * (MAX_INPUT_BYTES + 1)
    match = request.match_info
    answer = await request.app[_INVOKER].invoke(match["namespace"], match["name"], body)
    # Bytes, not str: aiohttp sends bytes as they are, and wraps a str in a payload object first.
    return web.Response(
        status=answer.status, body=json.dumps(answer.body).encode(), content_type=JSON
    )


async def serve_metrics(request: web.Request) -> web.Response:
    exposition = render_metrics(
        request.app[_METRICS].registry, accept=request.headers.get("Accept")
    )
    response = web.Response(body=exposition.body)
    response.headers["Content-Type"] = exposition.content_type
    return response


async def serve_health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def start_server(app: web.Application, *, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
