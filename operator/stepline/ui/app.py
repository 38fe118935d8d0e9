"""The web view's handler: every request under /ui/ on the invoke port (docs/ui.md).

Who is asking: the bearer token kept in the `stepline-token` cookie since the sign-in page,
checked (a TokenReview) and authorised per page and per button (SubjectAccessReviews) by the
same `Authorizer` as invoke; verdicts are kept as invoke's are. Without an authorizer
(STEPLINE_INVOKE_AUTH=false) the pages are open and the actions disabled.

What it shows comes from the operator's caches (`Catalog`); a run page reads its run once from
the API server and then follows it through the run watch (`live.RunFeed`). An action is sent to
the API server with the user's own token (`KubeApi.acting_as`), never the operator's.

A form is accepted only from a page of the view itself: the cookie is `SameSite=Strict`, and a
POST whose Origin (or, without one, Referer) names another host is refused.
"""

from __future__ import annotations

import importlib.resources
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from stepline.api import API_VERSION, RunPhase, RunStatistics, Workflow
from stepline.api import Verdict as Decision
from stepline.deciding import record_decision
from stepline.errors import DecisionError, KubeApiError, RerunError
from stepline.gateway.authorizing import ALLOWED, Authorizer, Verdict
from stepline.gateway.serving import Request, Response, json_error
from stepline.kube import KubeApi
from stepline.resubmitting import check_rerunnable, create_rerun
from stepline.terminal.cancelling import cancel_run
from stepline.terminal.errors import RefusedError
from stepline.terminal.graphs import graph_of
from stepline.ui import graph as drawing
from stepline.ui import pages
from stepline.ui.catalog import Catalog, RunRow
from stepline.ui.html import HTML_TYPE, SECURITY_HEADERS
from stepline.ui.pages import FINISHED, Action
from stepline.ui.queries import (
    ACTIONS,
    PAGE_SIZE,
    SINCE,
    BadRequest,
    Route,
    RunFilter,
    Target,
    check_token,
    cookie_value,
    parse_form,
    parse_path,
    parse_query,
    parse_run_filter,
    safe_next,
)

logger = logging.getLogger(__name__)

COOKIE = "stepline-token"
COOKIE_FLAGS = "HttpOnly; SameSite=Strict"  # no script reads it; no other site sends it
SESSION_SECONDS = 8 * 3600
UPDATE_WAIT_SECONDS = 25.0  # a viewer's update request waits at most this long for a change
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
NO_AUTH = (
    "Actions need a signed-in user, and the operator runs with STEPLINE_INVOKE_AUTH=false: "
    "there is no one to act as (docs/ui.md)"
)
DONE = {
    "cancel": "Cancel requested: no new step starts; the calls in flight end.",
    "suspend": "Suspend requested: the run stops between steps.",
    "resume": "Resume requested.",
    "rerun": "This run was created as a rerun.",
    "approve": "Approved.",
    "reject": "Rejected.",
}
# What each action needs of the user: (verb, resource, whose name: "run", "workflow" or "").
NEEDS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "cancel": (("patch", "workflowruns", "run"),),
    "suspend": (("patch", "workflowruns", "run"),),
    "resume": (("patch", "workflowruns", "run"),),
    "rerun": (("create", "workflowruns", ""),),
    "approve": (("create", "approvals", ""), ("approve", "workflows", "workflow")),
    "reject": (("create", "approvals", ""), ("approve", "workflows", "workflow")),
}


@dataclass(frozen=True)
class Session:
    """Who asks: their token (None when there is no sign-in) and user name."""

    token: str | None
    user: str | None

    @property
    def header(self) -> str | None:
        return None if self.token is None else f"Bearer {self.token}"


class _Answer(Exception):  # noqa: N818 (not a failure: a page to answer with at once)
    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def html(status: int, body: bytes, *headers: tuple[str, str]) -> Response:
    return Response(status, body, content_type=HTML_TYPE, headers=SECURITY_HEADERS + headers)


def redirect(location: str, *headers: tuple[str, str]) -> Response:
    return Response(303, b"", content_type=HTML_TYPE, headers=(("Location", location), *headers))


def _load_static() -> dict[str, tuple[bytes, str]]:
    folder = importlib.resources.files("stepline.ui") / "static"
    found = {}
    for item in folder.iterdir():
        suffix = "." + item.name.rpartition(".")[2]
        if suffix in STATIC_TYPES:
            found[item.name] = (item.read_bytes(), STATIC_TYPES[suffix])
    return found


class UiApp:
    def __init__(
        self,
        catalog: Catalog,
        *,
        authorizer: Authorizer | None,
        kube: KubeApi,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._catalog = catalog
        self._authorizer = authorizer
        self._kube = kube
        self._now = clock
        self._static = _load_static()

    async def __call__(self, request: Request) -> Response:
        try:
            return await self._answer(request)
        except _Answer as answer:
            return answer.response
        except BadRequest as exc:
            return html(400, pages.problem_page("Bad request", str(exc), user=None, back="/ui/"))
        except RefusedError as exc:  # a run's status this operator's model cannot read
            message = f"{exc}. `kubectl get -o yaml` shows it as it is."
            return html(500, pages.problem_page("Cannot be shown", message, user=None, back="/ui/"))

    async def _answer(self, request: Request) -> Response:
        target = parse_path(request.path)
        if target is None:
            message = f"There is no page at {request.path}."
            return html(404, pages.problem_page("Not found", message, user=None, back="/ui/"))
        route = target.route
        if route is Route.STATIC:
            return self._asset(request, target.name)
        if route is Route.LOGIN:
            return await self._login(request)
        if route is Route.LOGOUT:
            _only(request, "POST")
            self._check_origin(request)
            expired = f"{COOKIE}=; Path=/ui/; Max-Age=0; {COOKIE_FLAGS}"
            return redirect("/ui/login", ("Set-Cookie", expired))
        return await self._signed_in(request, target)

    async def _signed_in(self, request: Request, target: Target) -> Response:
        """A page or update of a signed-in user (or of anyone, without authentication)."""
        route = target.route
        json = route is Route.UPDATES  # asked by the run page's script: errors in JSON
        session = await self._session(request, json=json)
        handlers: dict[Route, Callable[[Request, Session, Target], Awaitable[Response]]] = {
            Route.HOME: self._home,
            Route.WORKFLOWS: self._workflows,
            Route.WORKFLOW: self._workflow,
            Route.RUNS: self._runs,
            Route.RUN: self._run,
            Route.UPDATES: self._updates,
            Route.ACTION: self._act,
        }
        try:
            if route is not Route.ACTION:
                _only(request, "GET", "HEAD", json=json)
            return await handlers[route](request, session, target)
        except BadRequest as exc:  # the user is known here: the page says who is signed in
            if json:
                return _json_error(400, str(exc))
            page = pages.problem_page("Bad request", str(exc), user=session.user, back="/ui/")
            return html(400, page)

    # who asks

    async def _session(self, request: Request, *, json: bool) -> Session:
        if self._authorizer is None:
            return Session(token=None, user=None)
        token = cookie_value(request.headers.get("cookie"), COOKIE)
        verdict = await self._authorizer.identify(None if token is None else f"Bearer {token}")
        if verdict.allowed:
            return Session(token=token, user=verdict.user)
        if verdict.status == 503:
            raise _Answer(self._unavailable(verdict, None, json=json))
        if json:
            raise _Answer(_json_error(401, "Sign in again: the token is missing or not accepted"))
        where = request.path + (f"?{request.query}" if request.query else "")
        raise _Answer(redirect(f"/ui/login?next={quote(where, safe='/')}"))

    async def _allow(
        self,
        session: Session,
        verb: str,
        resource: str,
        namespace: str,
        name: str = "",
        *,
        json: bool = False,
    ) -> None:
        """Answers 403 (or 503) at once unless the user may."""
        verdict = await self._verdict(session, verb, resource, namespace, name)
        if verdict.allowed:
            return
        if verdict.status == 503:
            raise _Answer(self._unavailable(verdict, session.user, json=json))
        if json:
            raise _Answer(_json_error(verdict.status, verdict.message))
        page = pages.problem_page("Forbidden", verdict.message, user=session.user, back="/ui/")
        raise _Answer(html(403, page))

    async def _verdict(
        self, session: Session, verb: str, resource: str, namespace: str, name: str = ""
    ) -> Verdict:
        if self._authorizer is None:
            return ALLOWED
        return await self._authorizer.authorize(
            session.header, namespace, name, verb=verb, resource=resource
        )

    def _unavailable(self, verdict: Verdict, user: str | None, *, json: bool) -> Response:
        message = (
            "The operator could not reach the Kubernetes API server to check who you are or "
            "what you may see; try again in a moment."
        )
        if json:
            return _json_error(503, message)
        return html(503, pages.problem_page("API server unreachable", message, user=user))

    async def _login(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            _only(request, "GET", "HEAD", "POST")
            return await self._sign_in(request)
        given = parse_query(request.query, ("next",))
        if self._authorizer is None:
            return redirect(safe_next(given.get("next")))
        return html(200, pages.login_page(safe_next(given.get("next"))))

    async def _sign_in(self, request: Request) -> Response:
        self._check_origin(request)
        form = parse_form(request.body, ("token", "next"))
        next_path = safe_next(form.get("next"))
        if self._authorizer is None:
            return redirect(next_path)
        try:
            token = check_token(form.get("token", ""))
        except BadRequest as exc:
            return html(400, pages.login_page(next_path, problem=str(exc)))
        verdict = await self._authorizer.identify(f"Bearer {token}")
        if verdict.status == 503:
            return self._unavailable(verdict, None, json=False)
        if not verdict.allowed:
            problem = (
                "The Kubernetes API server does not accept this token (invalid, expired, or "
                "issued for another audience)."
            )
            return html(401, pages.login_page(next_path, problem=problem))
        cookie = f"{COOKIE}={token}; Path=/ui/; Max-Age={SESSION_SECONDS}; {COOKIE_FLAGS}"
        return redirect(next_path, ("Set-Cookie", cookie))

    def _check_origin(self, request: Request) -> None:
        """Refuses a form posted from another site (module docstring)."""
        host = request.headers.get("host", "")
        origin = request.headers.get("origin") or request.headers.get("referer")
        if origin is None or origin == "null":
            if origin == "null":
                raise _Answer(html(403, pages.problem_page(
                    "Forbidden", "A form from an opaque origin is not accepted.", user=None
                )))  # fmt: skip
            return
        if urlsplit(origin).netloc != host:
            message = "This form was sent from another site; it is not accepted."
            raise _Answer(html(403, pages.problem_page("Forbidden", message, user=None)))

    # pages

    def _asset(self, request: Request, name: str) -> Response:
        _only(request, "GET", "HEAD")
        found = self._static.get(name)
        if found is None:
            return html(404, pages.problem_page("Not found", f"No asset {name}.", user=None))
        body, content_type = found
        headers = (("Cache-Control", "public, max-age=3600"), ("X-Content-Type-Options", "nosniff"))
        return Response(200, body, content_type=content_type, headers=headers)

    async def _home(self, request: Request, session: Session, target: Target) -> Response:
        parse_query(request.query, ())
        counts: dict[str, int] = {}
        for workflow in self._catalog.workflows():
            namespace = workflow.metadata.namespace or ""
            counts[namespace] = counts.get(namespace, 0) + 1
        shown = []
        for namespace in sorted(counts):
            verdict = await self._verdict(session, "list", "workflows", namespace)
            if verdict.status == 503:
                return self._unavailable(verdict, session.user, json=False)
            if verdict.allowed:
                shown.append((namespace, counts[namespace]))
        return html(200, pages.home_page(shown, user=session.user))

    async def _workflows(self, request: Request, session: Session, target: Target) -> Response:
        parse_query(request.query, ())
        namespace = target.namespace
        self._check_watched(namespace, session)
        await self._allow(session, "list", "workflows", namespace)
        found = sorted(
            (w for w in self._catalog.workflows() if w.metadata.namespace == namespace),
            key=lambda w: w.metadata.name or "",
        )
        if not found:
            message = (
                f"There is no workflow in namespace {namespace!r}: the namespace may not exist, "
                "or holds none yet."
            )
            return html(
                404, pages.problem_page("Not found", message, user=session.user, back="/ui/")
            )
        runs = self._catalog.runs
        shown = [
            (w, runs.statistics(namespace, w.metadata.name or "") or _written(w)) for w in found
        ]
        page = pages.workflows_page(namespace, shown, user=session.user, notice=self._stale())
        return html(200, page)

    async def _workflow(self, request: Request, session: Session, target: Target) -> Response:
        parse_query(request.query, ())
        namespace, name = target.namespace, target.name
        self._check_watched(namespace, session)
        await self._allow(session, "get", "workflows", namespace, name)
        workflow = self._catalog.workflow(namespace, name)
        if workflow is None:
            message = f"There is no workflow {name!r} in namespace {namespace!r}."
            back = pages.workflows_href(namespace)
            return html(404, pages.problem_page("Not found", message, user=session.user, back=back))
        graph = graph_of(workflow)
        replicas: dict[str, tuple[int | None, int | None]] = {}
        for step in graph.steps:
            for ref in (step.calls, step.undone_by):
                found = self._catalog.service_step(namespace, ref) if ref else None
                if ref and found is not None and found.status is not None:
                    status = found.status
                    replicas[ref] = (status.ready_replicas, status.desired_replicas)
        of = drawing.replicas_from(replicas)
        steps = [
            (
                step.name,
                step.calls or "approval by a person",
                (of(step.calls) or "unknown") if step.calls else "-",
                ", ".join(step.after) or "starts with the run",
                step.when or (step.for_each and f"for each of {step.for_each}") or "-",
                step.undone_by or "-",
            )
            for step in graph.steps
        ]
        recent = self._rows(namespace, RunFilter(workflow=name))[: pages.RECENT_RUNS]
        page = pages.workflow_page(
            namespace, workflow, graph=drawing.draw(graph, of), steps=steps, recent=recent,
            now=self._now(), user=session.user,
        )  # fmt: skip
        return html(200, page)

    async def _runs(self, request: Request, session: Session, target: Target) -> Response:
        chosen = parse_run_filter(request.query)
        namespace = target.namespace
        self._check_watched(namespace, session)
        await self._allow(session, "list", "workflowruns", namespace)
        rows = self._rows(namespace, chosen)
        start = (chosen.page - 1) * PAGE_SIZE
        names = sorted(
            w.metadata.name or ""
            for w in self._catalog.workflows()
            if w.metadata.namespace == namespace
        )
        page = pages.runs_page(
            namespace, rows[start : start + PAGE_SIZE], chosen=chosen, total=len(rows),
            workflows=names, now=self._now(), user=session.user, notice=self._stale(),
        )  # fmt: skip
        return html(200, page)

    def _rows(self, namespace: str, chosen: RunFilter) -> list[RunRow]:
        now = self._now()
        oldest = now - SINCE[chosen.since] if chosen.since else None
        rows = [
            row
            for row in self._catalog.runs.rows_in(namespace)
            if (not chosen.workflow or row.workflow == chosen.workflow)
            and (chosen.phase is None or row.phase is chosen.phase)
            and (oldest is None or (row.created is not None and row.created >= oldest))
        ]
        far = datetime.min.replace(tzinfo=UTC)
        rows.sort(key=lambda row: (row.created or far, row.name), reverse=True)
        return rows

    async def _run(self, request: Request, session: Session, target: Target) -> Response:
        given = parse_query(request.query, ("done",))
        done = given.get("done", "")
        if done and done not in DONE:
            raise BadRequest(f"done {done!r} is not one of: {', '.join(DONE)}")
        namespace, name = target.namespace, target.name
        self._check_watched(namespace, session)
        await self._allow(session, "get", "workflowruns", namespace, name)
        run = await self._read_run(namespace, name, session)
        self._catalog.feed.follow(namespace, name, run)
        actions = await self._actions(session, run)
        page = pages.run_page(
            namespace, run, actions=actions, now=self._now(), user=session.user,
            notice=DONE.get(done),
        )  # fmt: skip
        return html(200, page)

    async def _read_run(self, namespace: str, name: str, session: Session) -> dict[str, Any]:
        try:
            run = await self._catalog.read_run(namespace, name)
        except KubeApiError as exc:
            logger.warning("the web view could not read run %s/%s: %s", namespace, name, exc)
            message = (
                f"The operator could not read run {name!r} from the Kubernetes API server "
                f"({'no answer' if exc.status == 0 else f'HTTP {exc.status}'}); try again in a "
                "moment."
            )
            page = pages.problem_page("API server unreachable", message, user=session.user,
                                      back=pages.runs_href(namespace))  # fmt: skip
            raise _Answer(html(503, page)) from exc
        if run is None:
            message = (
                f"There is no run {name!r} in namespace {namespace!r}: it may have been deleted."
            )
            back = pages.runs_href(namespace)
            raise _Answer(
                html(404, pages.problem_page("Not found", message, user=session.user, back=back))
            )
        return run

    async def _updates(self, request: Request, session: Session, target: Target) -> Response:
        given = parse_query(request.query, ("version",))
        version = given.get("version", "")
        if not version.isdigit() and version:
            raise BadRequest(f"version {version!r} is not a resourceVersion")
        namespace, name = target.namespace, target.name
        await self._allow(session, "get", "workflowruns", namespace, name, json=True)
        feed = self._catalog.feed
        try:
            update = await feed.wait_newer(namespace, name, version, timeout=UPDATE_WAIT_SECONDS)
        except KeyError:  # not followed (the operator restarted, or nobody asked for a minute)
            try:
                run = await self._catalog.read_run(namespace, name)
            except KubeApiError:
                return _json_error(503, "the Kubernetes API server could not be reached")
            if run is None:
                body = pages.updates_answer(namespace, None, version, actions=(), now=self._now())
                return Response(200, body, headers=(("Cache-Control", "no-store"),))
            feed.follow(namespace, name, run)
            update = feed.latest(namespace, name)
        if update is None:  # nothing new within the wait: the viewer asks again
            unchanged = f'{{"version": "{version}", "unchanged": true}}'.encode()
            return Response(200, unchanged, headers=(("Cache-Control", "no-store"),))
        run = None if update.body is None else dict(update.body)
        actions = await self._actions(session, run) if run is not None else []
        try:
            body = pages.updates_answer(
                namespace, run, update.version, actions=actions, now=self._now()
            )
        except RefusedError as exc:
            return _json_error(500, str(exc))
        return Response(200, body, headers=(("Cache-Control", "no-store"),))

    # actions

    async def _actions(self, session: Session, run: dict[str, Any]) -> list[Action]:
        meta, spec = run.get("metadata") or {}, run.get("spec") or {}
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        try:
            phase = RunPhase((run.get("status") or {}).get("phase") or RunPhase.PENDING)
        except ValueError:
            phase = RunPhase.PENDING
        ended = f"The run has ended ({phase.value})"
        states: list[Action] = [
            Action("cancel", "Cancel", ended if phase in FINISHED else
                   "A cancel is already requested" if spec.get("cancel") else None),
            Action("suspend", "Suspend", ended if phase in FINISHED else
                   "The run is already suspended" if spec.get("suspend") else None),
            Action("resume", "Resume", None if spec.get("suspend") and phase not in FINISHED
                   else "The run is not suspended"),
            Action("rerun", "Rerun", _rerun_refusal(name, run)),
        ]  # fmt: skip
        waiting = pages.waiting_steps(run)
        asks = waiting or ([""] if pages.has_approval_steps(run) else [])
        for step in asks:
            why = None if step else "No step waits for an approval now"
            suffix = f" {step}" if step and len(waiting) > 1 else ""
            states.append(Action("approve", f"Approve{suffix}", why, step=step))
            states.append(Action("reject", f"Reject{suffix}", why, step=step))
        names = {"run": name, "workflow": str(spec.get("workflowRef", "")), "": ""}
        decided = []
        for action in states:
            reason = action.reason
            if reason is None and self._authorizer is None:
                reason = NO_AUTH
            for verb, resource, whose in NEEDS[action.action] if reason is None else ():
                verdict = await self._verdict(session, verb, resource, namespace, names[whose])
                if not verdict.allowed:
                    reason = verdict.message or "The permission could not be checked"
                    break
            decided.append(Action(action.action, action.label, reason, action.step))
        return decided

    async def _act(self, request: Request, session: Session, target: Target) -> Response:
        _only(request, "POST")
        self._check_origin(request)
        form = parse_form(request.body, ("action", "step", "reason"))
        action = form.get("action", "")
        if action not in ACTIONS:
            raise BadRequest(f"action {action!r} is not one of: {', '.join(ACTIONS)}")
        namespace, name = target.namespace, target.name
        back = pages.run_href(namespace, name)
        if session.token is None:
            return html(403, pages.problem_page("Forbidden", NO_AUTH, user=None, back=back))
        run = await self._read_run(namespace, name, session)
        for verb, resource, whose in NEEDS[action]:
            subject = {"run": name, "workflow": str((run.get("spec") or {}).get("workflowRef", ""))}
            await self._allow(session, verb, resource, namespace, subject.get(whose, ""))
        try:
            async with self._kube.acting_as(session.token) as kube:
                created = await _perform(kube, action, namespace, name, form)
        except (RefusedError, RerunError, DecisionError) as exc:
            page = pages.problem_page("Not done", str(exc), user=session.user, back=back)
            return html(409, page)
        except KubeApiError as exc:
            status = exc.status if exc.status in (403, 404, 409, 422) else 503
            message = f"The Kubernetes API server refused it: {exc}" if exc.status else (
                "The Kubernetes API server could not be reached; nothing was done.")  # fmt: skip
            return html(
                status, pages.problem_page("Not done", message, user=session.user, back=back)
            )
        logger.info("web view: %s %s of run %s/%s", session.user, action, namespace, name)
        where = pages.run_href(namespace, created or name)
        return redirect(f"{where}?done={action}")

    def _check_watched(self, namespace: str, session: Session) -> None:
        watched = self._catalog.watched_namespaces
        if watched and namespace not in watched:
            message = (
                f"The operator does not watch namespace {namespace!r} (it watches "
                f"{', '.join(watched)})."
            )
            raise _Answer(html(404, pages.problem_page("Not found", message, user=session.user,
                                                        back="/ui/")))  # fmt: skip

    def _stale(self) -> str | None:
        if self._catalog.caches_warm():
            return None
        return "The operator is still reading the cluster: this page may not show everything yet."


async def _perform(
    kube: KubeApi, action: str, namespace: str, name: str, form: dict[str, str]
) -> str | None:
    """Does `action` with the user's client; the name of a run it created, if any."""
    if action == "cancel":
        await cancel_run(kube, namespace, name)
    elif action in ("suspend", "resume"):
        patch = {"spec": {"suspend": action == "suspend"}}
        await kube.merge_patch(API_VERSION, "WorkflowRun", namespace, name, patch)
    elif action == "rerun":
        return await create_rerun(kube, namespace, name, name=None)
    else:
        verdict = Decision.APPROVE if action == "approve" else Decision.REJECT
        step = form.get("step", "")
        if not step:
            raise BadRequest("an approval names the waiting step (field 'step')")
        reason = form.get("reason") or None
        await record_decision(kube, namespace, name, step=step, verdict=verdict, reason=reason)
    return None


def name_of(workflow: Workflow) -> str:
    return workflow.metadata.name or ""


def _written(workflow: Workflow) -> RunStatistics | None:
    """The run statistics in the Workflow's status (of runs since deleted, too)."""
    return workflow.status.runs if workflow.status is not None else None


def _rerun_refusal(name: str, run: dict[str, Any]) -> str | None:
    try:
        check_rerunnable(name, run)
    except RerunError as exc:
        return str(exc)
    return None


def _only(request: Request, *methods: str, json: bool = False) -> None:
    if request.method not in methods:
        allowed = ", ".join(methods)
        message = f"{request.method} is not allowed here; use {allowed}."
        if json:
            raise _Answer(replace(_json_error(405, message), headers=(("Allow", allowed),)))
        body = pages.problem_page("Method not allowed", message, user=None)
        raise _Answer(html(405, body, ("Allow", allowed)))


def _json_error(status: int, message: str) -> Response:
    """An error of the update requests, in the body invoke's errors have."""
    reasons = {
        400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 405: "MethodNotAllowed",
        500: "Unreadable",
    }  # fmt: skip
    reason = reasons.get(status, "Unavailable")
    return json_error(status, reason, message)


def build_ui(
    catalog: Catalog, *, authorizer: Authorizer | None, kube: KubeApi
) -> Callable[[Request], Awaitable[Response]]:
    return UiApp(catalog, authorizer=authorizer, kube=kube)
