"""The operator's HTTP routes, served by `serving.HttpServer` on two ports.

The invoke port (`App`; STEPLINE_HTTP_PORT):

POST /v1/namespaces/{namespace}/workflows/{name}:invoke   run a workflow, answer its output
GET  /healthz                                              200 once the server runs
GET, POST /ui/…                                            the web view (`stepline.ui`), when
                                                           it is turned on (STEPLINE_UI)

The metrics port (`MetricsApp`; STEPLINE_METRICS_PORT), apart so that scraping needs no token:

GET  /metrics                                              Prometheus exposition
GET  /healthz                                              200 once the server runs
GET  /readyz                                               200 once this replica's caches are
                                                           warm, else 503; says its role
                                                           (leader or standby)

Invoke needs a bearer token allowed to `invoke` the Workflow when the app has an `Authorizer`
(`authorizing`): 401 (with `WWW-Authenticate: Bearer`), 403 or 503 otherwise, checked before
the body is looked at, and counted (`stepline_invoke_refusals_total{status}`). GET routes answer
HEAD too (headers only). Any other path: 404; another method on a known path: 405 with `Allow`;
every error with the JSON body of invoke's errors (`invoking`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from stepline.api import MAX_INPUT_BYTES
from stepline.engine.encoding import encode_json
from stepline.gateway.authorizing import Authorizer, Verdict
from stepline.gateway.invoking import Invoker, error_answer, input_too_large
from stepline.gateway.serving import Handler, HttpServer, Request, Response, json_error
from stepline.observability import Metrics, render_metrics

_HEALTHY = Response(200, b'{"status": "ok"}')


@dataclass(frozen=True)
class ReadinessReport:
    """Whether this replica serves invoke yet, and its role: `leader` (it also writes) or
    `standby` (it serves invoke; the leader writes)."""

    ready: bool
    role: str
    detail: str


def _always_ready() -> ReadinessReport:
    return ReadinessReport(ready=True, role="leader", detail="serving")


class App:
    """The handler of the invoke port: one method per route. Without an `authorizer`, anyone
    who reaches the port may invoke (STEPLINE_INVOKE_AUTH=false); its refusals are counted in
    `metrics`. `ui`: the web view's handler, given every request under /ui/."""

    def __init__(
        self,
        *,
        invoker: Invoker,
        authorizer: Authorizer | None,
        metrics: Metrics,
        ui: Handler | None = None,
    ) -> None:
        self._invoker = invoker
        self._authorizer = authorizer
        self._metrics = metrics
        self._ui = ui

    async def __call__(self, request: Request) -> Response:
        path = request.path
        if path.endswith(":invoke") and (workflow := parse_invoke_path(path)) is not None:
            if request.method != "POST":
                return _not_allowed(request, "POST")
            return await self.invoke(request, *workflow)
        if path == "/healthz":
            return _healthz(request)
        if self._ui is not None and (path == "/ui" or path.startswith("/ui/")):
            return await self._ui(request)
        return json_error(404, "NotFound", f"no route for {path}")

    async def invoke(self, request: Request, namespace: str, name: str) -> Response:
        if self._authorizer is not None:
            header = request.headers.get("authorization")
            verdict = await self._authorizer.authorize(header, namespace, name)
            if not verdict.allowed:
                self._metrics.record_invoke_refused(status=verdict.status)
                return refusal(verdict)
        if request.body_too_large:
            answer = input_too_large(request.body_size)
        else:
            traceparent = request.headers.get("traceparent")
            answer = await self._invoker.invoke(
                namespace, name, request.body, traceparent=traceparent
            )
        headers = (("Stepline-Trace-Id", answer.trace_id),) if answer.trace_id else ()
        return Response(answer.status, encode_json(answer.body), headers=headers)


class MetricsApp:
    """The handler of the metrics port: /metrics, /healthz and /readyz, no token asked."""

    def __init__(
        self, *, metrics: Metrics, readiness: Callable[[], ReadinessReport] = _always_ready
    ) -> None:
        self._metrics = metrics
        self._readiness = readiness

    async def __call__(self, request: Request) -> Response:
        if request.path == "/metrics":
            if request.method not in ("GET", "HEAD"):
                return _not_allowed(request, "GET, HEAD")
            return self.serve_metrics(request)
        if request.path == "/healthz":
            return _healthz(request)
        if request.path == "/readyz":
            if request.method not in ("GET", "HEAD"):
                return _not_allowed(request, "GET, HEAD")
            report = self._readiness()
            body = {"ready": report.ready, "role": report.role, "detail": report.detail}
            return Response(200 if report.ready else 503, encode_json(body))
        return json_error(404, "NotFound", f"no route for {request.path}")

    def serve_metrics(self, request: Request) -> Response:
        exposition = render_metrics(self._metrics.registry, accept=request.headers.get("accept"))
        return Response(200, exposition.body, content_type=exposition.content_type)


def refusal(verdict: Verdict) -> Response:
    """The answer to a caller the authorizer refused; a 401 names the scheme to use."""
    body = encode_json(error_answer(verdict.status, verdict.reason, verdict.message).body)
    headers = (("WWW-Authenticate", "Bearer"),) if verdict.status == 401 else ()
    return Response(verdict.status, body, headers=headers)


def parse_invoke_path(path: str) -> tuple[str, str] | None:
    """(namespace, name) of `/v1/namespaces/{namespace}/workflows/{name}:invoke`, else None."""
    parts = path.split("/")
    if len(parts) != 6 or parts[:3] != ["", "v1", "namespaces"] or parts[4] != "workflows":
        return None
    namespace, name = parts[3], parts[5].removesuffix(":invoke")
    if not namespace or not name or ":" in name or name == parts[5]:
        return None
    return namespace, name


def _not_allowed(request: Request, allowed: str) -> Response:
    message = f"{request.method} is not allowed on {request.path}; use {allowed}"
    refusal = json_error(405, "MethodNotAllowed", message)
    return Response(405, refusal.body, headers=(("Allow", allowed),))


def _healthz(request: Request) -> Response:
    if request.method not in ("GET", "HEAD"):
        return _not_allowed(request, "GET, HEAD")
    return _HEALTHY


def build_app(
    *, invoker: Invoker, authorizer: Authorizer | None, metrics: Metrics, ui: Handler | None = None
) -> App:
    return App(invoker=invoker, authorizer=authorizer, metrics=metrics, ui=ui)


def build_metrics_app(
    *, metrics: Metrics, readiness: Callable[[], ReadinessReport] = _always_ready
) -> MetricsApp:
    return MetricsApp(metrics=metrics, readiness=readiness)


async def start_server(app: App | MetricsApp, *, host: str, port: int) -> HttpServer:
    """Listens on (host, port); a body over the input cap is answered 400 naming the limit."""
    server = HttpServer(app, max_body_bytes=MAX_INPUT_BYTES)
    await server.start(host, port)
    return server
