"""What the web view's tests stand on: a reviewer granting verbs per user and object, the example
Workflows, run rows and run bodies, a fake Catalog over them, and requests as a browser sends
them (with the sign-in cookie)."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from stepline.api import RunPhase, RunStatistics, ServiceStep, Workflow
from stepline.gateway.serving import Request, Response
from stepline.ui.catalog import Catalog, RunRow
from stepline.ui.live import RunFeed
from tests.unit.gateway.reviewers import TOKEN, USER
from tests.unit.gateway.reviewers import Reviewer as TokenReviewer
from tests.unit.terminal.fakekube import FakeKube

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
NOW = datetime(2026, 12, 7, 6, 10, 0, tzinfo=UTC)
STARTED = "2026-12-07T06:00:00Z"
NAMESPACE = "shop"
HOST = "localhost:8080"
COOKIE = f"stepline-token={TOKEN}"
USERNAME = USER["username"]
# What a reader of one namespace may do: every page, no button.
READER = (
    ("list", "workflows", ""), ("get", "workflows", "*"),
    ("list", "workflowruns", ""), ("get", "workflowruns", "*"),
)  # fmt: skip
OPERATOR = (*READER, ("patch", "workflowruns", "*"), ("create", "workflowruns", ""))


class Reviewer(TokenReviewer):
    """The API server's reviews for the web view: the token reviews of the gateway's reviewer,
    and SubjectAccessReviews granted by `grants` of (username, verb, resource, namespace, name),
    name "*" for any object and "" for the collection."""

    def __init__(self, *grants: tuple[str, str, str], namespace: str = NAMESPACE) -> None:
        super().__init__()
        self.grants = set()
        self.allow(*grants, namespace=namespace)

    def allow(self, *grants: tuple[str, str, str], namespace: str = NAMESPACE) -> None:
        for verb, resource, name in grants:
            self.grants.add((USERNAME, verb, resource, namespace, name))

    def revoke(self, verb: str, resource: str) -> None:
        """Takes `verb` on `resource` away, in every namespace, on every object."""
        self.grants = {g for g in self.grants if g[1:3] != (verb, resource)}

    async def review(
        self, api_version: str, kind: str, spec: Mapping[str, Any], *, timeout: float | None
    ) -> dict[str, Any]:
        if kind == "TokenReview":
            return await super().review(api_version, kind, spec, timeout=timeout)
        self.asked.append((kind, dict(spec)))
        if self.failing is not None:
            raise self.failing
        wanted = spec["resourceAttributes"]
        user, verb, resource = spec["user"], wanted["verb"], wanted["resource"]
        namespace, name = wanted["namespace"], wanted.get("name", "")
        names = {name, "*"} if name else {""}
        return {"allowed": any((user, verb, resource, namespace, n) in self.grants for n in names)}


def example_workflow(folder: str, namespace: str = NAMESPACE) -> Workflow:
    body = yaml.safe_load((EXAMPLES / folder / "workflow.yaml").read_text())
    body["metadata"]["namespace"] = namespace
    return Workflow.from_body(body)


def workflow(name: str, *steps: dict[str, Any], namespace: str = NAMESPACE) -> Workflow:
    return Workflow.from_body(
        {
            "apiVersion": "stepline.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"steps": list(steps)},
        }
    )


def at(seconds: float) -> str:
    """A timestamp `seconds` after the run started, as the operator writes them."""
    moment = datetime(2026, 12, 7, 6, 0, 0, tzinfo=UTC) + timedelta(seconds=seconds)
    return moment.isoformat()


def run_body(
    *steps: dict[str, Any], name: str = "trade-x7k2p", version: str = "7", **status: Any
) -> dict[str, Any]:
    status.setdefault("phase", "Running")
    return {
        "apiVersion": "stepline.io/v1alpha1",
        "kind": "WorkflowRun",
        "metadata": {"name": name, "namespace": NAMESPACE, "resourceVersion": version},
        "spec": {"workflowRef": "trade", "input": {"user": "u-1", "order": {"qty": 3}}},
        "status": {"startedAt": STARTED, "steps": list(steps), **status},
    }


def succeeded(name: str, start: float, took: float, output: Any) -> dict[str, Any]:
    return {
        "name": name, "phase": "Succeeded", "attempts": 1, "startedAt": at(start),
        "finishedAt": at(start + took), "durationSeconds": took, "output": output,
    }  # fmt: skip


WAITING = run_body(
    succeeded("validation", 0.0, 0.1, {"approved": True}),
    {"name": "sign-off", "phase": "Waiting", "startedAt": at(0.1)},
    phase="Waiting",
    waitingFor=[{"step": "sign-off", "since": at(0.1), "deadline": at(86400.1),
                 "message": "Release the order?", "approvers": "a user with verb approve"}],
    workflowSpec={"steps": [{"name": "validation", "stepRef": "user-validation"},
                            {"name": "sign-off", "approval": {"message": '"Release?"'}}]},
)  # fmt: skip


def data_rows(page: str, attribute: str) -> list[str]:
    return re.findall(rf'<tr {attribute}="([^"]*)"', page)


def button(page: str, action: str) -> str:
    found = re.search(rf'<button [^>]*value="{action}"[^>]*>', page)
    assert found is not None, f"no {action} button"
    return found.group(0)


def reason_of(page: str, action: str) -> str | None:
    """The text of the element a disabled button's aria-describedby names; None if enabled."""
    opened = button(page, action)
    if " disabled" not in opened:
        assert "aria-describedby" not in opened
        return None
    described = re.search(r'aria-describedby="([^"]+)"', opened)
    assert described is not None, f"the disabled {action} button gives no reason"
    reason = re.search(rf'<[a-z]+ id="{described.group(1)}"[^>]*>([^<]+)<', page)
    assert reason is not None, f"no element #{described.group(1)}"
    return reason.group(1)


def row(
    name: str, *, minutes_ago: float, workflow: str = "trade", phase: RunPhase = RunPhase.SUCCEEDED
) -> RunRow:
    return RunRow(name, workflow, phase, NOW - timedelta(minutes=minutes_ago), 1.5)


@dataclass
class Runs:
    """The run watch's rows and the API server's runs, in memory."""

    rows: list[RunRow] = field(default_factory=list)
    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)
    failing: Exception | None = None
    reads: list[tuple[str, str]] = field(default_factory=list)
    figures: dict[str, RunStatistics] = field(default_factory=dict)  # by workflow

    def rows_in(self, namespace: str) -> Iterable[RunRow]:
        return list(self.rows) if namespace == NAMESPACE else []

    def statistics(self, namespace: str, workflow: str) -> RunStatistics | None:
        return self.figures.get(workflow) if namespace == NAMESPACE else None

    async def read_run(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads.append((namespace, name))
        if self.failing is not None:
            raise self.failing
        found = self.bodies.get(name) if namespace == NAMESPACE else None
        return copy.deepcopy(found)

    def put(self, body: dict[str, Any]) -> dict[str, Any]:
        self.bodies[body["metadata"]["name"]] = body
        return body


def build_catalog(
    runs: Runs,
    workflows: Iterable[Workflow] = (),
    *,
    feed: RunFeed | None = None,
    service_steps: Iterable[ServiceStep] = (),
    warm: bool = True,
    watched: tuple[str, ...] = (),
) -> Catalog:
    known = list(workflows)
    steps = {(s.metadata.namespace, s.metadata.name): s for s in service_steps}
    by_name = {(w.metadata.namespace, w.metadata.name): w for w in known}
    return Catalog(
        workflows=lambda: list(known),
        workflow=lambda namespace, name: by_name.get((namespace, name)),
        service_step=lambda namespace, name: steps.get((namespace, name)),
        runs=runs,
        read_run=runs.read_run,
        feed=feed if feed is not None else RunFeed(),
        caches_warm=lambda: warm,
        watched_namespaces=watched,
    )


class UserKube:
    """`KubeApi.acting_as` over a `FakeKube`: the tokens it was asked to act as."""

    def __init__(self, *objects: Mapping[str, Any]) -> None:
        self.cluster = FakeKube(*objects)
        self.tokens: list[str] = []

    @asynccontextmanager
    async def acting_as(self, token: str) -> AsyncIterator[FakeKube]:
        self.tokens.append(token)
        yield self.cluster


def request(
    method: str,
    path: str,
    query: str = "",
    body: bytes = b"",
    *,
    cookie: str | None = COOKIE,
    **headers: str,
) -> Request:
    """A request as a browser signed in (unless `cookie` is None) sends it."""
    sent = {"host": HOST, **headers}
    if cookie is not None:
        sent["cookie"] = cookie
    return Request(method, path, sent, body, query=query)


def get(path: str, query: str = "", *, cookie: str | None = COOKIE, **headers: str) -> Request:
    return request("GET", path, query, cookie=cookie, **headers)


def post(path: str, form: str, *, cookie: str | None = COOKIE, **headers: str) -> Request:
    sent = {"content-type": "application/x-www-form-urlencoded", **headers}
    return request("POST", path, "", form.encode(), cookie=cookie, **sent)


def header(response: Response, name: str) -> str | None:
    found = [value for key, value in response.headers if key.lower() == name.lower()]
    assert len(found) <= 1, f"{name} given {len(found)} times"
    return found[0] if found else None


def text(response: Response) -> str:
    return response.body.decode()


def answer(response: Response) -> dict[str, Any]:
    assert response.content_type == "application/json"
    parsed: dict[str, Any] = json.loads(response.body)
    return parsed
