"""Whatever a request or a run holds reaches a page only escaped: any string as a query
parameter's name or value, in a path, in a run's input, outputs, errors and questions, gives a
page (or an update's html) whose only elements are the view's own — one script, the shipped
one; no element, attribute or event handler of the value's making. Property-based."""

from __future__ import annotations

import asyncio
import json
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stepline.gateway.authorizing import Authorizer
from stepline.ui.app import UiApp
from stepline.ui.html import asset
from tests.unit.gateway.reviewers import Clock
from tests.unit.ui.cluster import (
    OPERATOR,
    Reviewer,
    Runs,
    UserKube,
    at,
    build_catalog,
    example_workflow,
    get,
    post,
    run_body,
)

HOSTILE = [
    "<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "'><svg onload=alert(1)>",
    '"onfocus="alert(1)"', "'onmouseover='alert(1)'", "</title><script>",
    "</textarea><script>", "&lt;script&gt;", "&#60;script", "javascript:", "<!--", "]]>",
    '"', "'", "<", ">", "&", "=", "\x00", "\n", "\u2028", "%3C",
]  # fmt: skip
VALUES = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(max_size=40),
    st.lists(st.one_of(st.sampled_from(HOSTILE), st.text(max_size=4)), min_size=1, max_size=6)
    .map("".join),
)  # fmt: skip
PARAMETERS = st.one_of(st.sampled_from(["workflow", "phase", "since", "page"]), VALUES)
# The elements the view's pages are made of.
OURS = {
    "html", "head", "meta", "title", "link", "script", "body", "a", "header", "nav", "div",
    "strong", "form", "button", "main", "p", "h1", "h2", "table", "caption", "thead", "tbody",
    "tr", "th", "td", "span", "select", "option", "label", "time", "dl", "dt", "dd", "code",
    "ul", "li", "pre", "section", "input", "textarea",
}  # fmt: skip


class Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag


def elements(markup: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Elements()
    parser.feed(markup)
    parser.close()
    return parser.found


def assert_only_our_elements(markup: str, *, scripts: int) -> None:
    found = elements(markup)
    assert {tag for tag, _ in found} <= OURS
    assert [attrs for tag, attrs in found if tag == "script"] == [
        {"src": asset("stepline.js"), "defer": None}
    ] * scripts
    assert not [name for _, attrs in found for name in attrs if name.startswith("on")]
    assert markup.count("<script") == scripts
    assert '"><img' not in markup
    assert "<svg" not in markup


def serve(runs: Runs, *requests: Any) -> list[Any]:
    reviewer = Reviewer(*OPERATOR)
    authorizer = Authorizer(reviewer, allowed_ttl=10, denied_ttl=2, clock=Clock())
    catalog = build_catalog(runs, [example_workflow("finance")])
    app = UiApp(catalog, authorizer=authorizer, kube=UserKube())  # type: ignore[arg-type]

    async def ask() -> list[Any]:
        return [await app(request) for request in requests]

    return asyncio.run(ask())


@settings(max_examples=150, deadline=None)
@given(PARAMETERS, VALUES)
def test_any_query_parameter_reaches_the_runs_page_only_escaped(name: str, value: str) -> None:
    query = f"{quote(name, safe='')}={quote(value, safe='')}"

    (answer,) = serve(Runs(), get("/ui/namespaces/shop/runs", query))

    assert answer.status in (200, 400)
    assert_only_our_elements(answer.body.decode(), scripts=1)


def requests_carrying(value: str) -> list[Any]:
    """Requests that put `value` in each place a request can: a path, a query, a form."""
    quoted = quote(value, safe="")
    return [
        get(f"/ui/namespaces/{value}/runs"),
        get(f"/ui/namespaces/shop/runs/{value}"),
        get(f"/ui/{value}"),
        get("/ui/login", f"next={quote('/ui/' + value, safe='')}", cookie=None),
        *(get("/ui/namespaces/shop/runs", f"{name}={quoted}")
          for name in ("workflow", "phase", "since", "page")),
        get("/ui/namespaces/shop/runs", f"{quoted}=1"),
        post("/ui/login", f"token={quoted}&next=%2Fui%2F{quoted}", cookie=None),
    ]  # fmt: skip


@pytest.mark.parametrize("value", HOSTILE)
def test_each_known_attack_reaches_every_page_only_escaped(value: str) -> None:
    for answer in serve(Runs(), *requests_carrying(value)):
        assert answer.status in (200, 303, 400, 401, 403, 404)
        assert_only_our_elements(answer.body.decode(), scripts=1 if answer.status != 303 else 0)


@settings(max_examples=60, deadline=None)
@given(VALUES)
def test_any_path_and_sign_in_address_reach_their_pages_only_escaped(value: str) -> None:
    answers = serve(
        Runs(),
        get(f"/ui/namespaces/{value}/runs"),
        get(f"/ui/namespaces/shop/runs/{value}"),
        get(f"/ui/{value}"),
        get("/ui/login", f"next={quote('/ui/' + value, safe='')}", cookie=None),
    )

    for answer in answers:
        assert answer.status in (200, 303, 400, 401, 403, 404)
        assert_only_our_elements(answer.body.decode(), scripts=1 if answer.status != 303 else 0)


@settings(max_examples=60, deadline=None)
@given(st.lists(VALUES, min_size=6, max_size=6))
def test_what_a_run_holds_reaches_its_page_and_updates_only_escaped(said: list[str]) -> None:
    output, message, body, question, reason, elements_ = said
    run = run_body(
        {"name": "validation", "phase": "Succeeded", "attempts": 1, "startedAt": at(0),
         "durationSeconds": 0.1, "output": {output: output}},
        {"name": "order", "phase": "Failed", "attempts": 2, "startedAt": at(0.2),
         "error": {"reason": reason[:64], "message": message, "body": body}},
        {"name": "sign-off", "phase": "Waiting", "startedAt": at(0.3)},
        phase="Waiting",
        waitingFor=[{"step": "sign-off", "since": at(0.3), "deadline": at(60),
                     "message": question, "approvers": elements_}],
        conditions=[{"type": "Succeeded", "status": "Unknown", "reason": "WaitingForApproval",
                     "message": message, "lastTransitionTime": at(0.3)}],
        workflowSpec={"steps": [{"name": "sign-off", "approval": {"message": "x"}}]},
    )  # fmt: skip
    run["spec"]["input"] = {body: [output, question]}
    runs = Runs()
    runs.put(run)

    page, update = serve(
        runs,
        get("/ui/namespaces/shop/runs/trade-x7k2p"),
        get("/ui/namespaces/shop/runs/trade-x7k2p/updates", "version=1"),
    )

    assert (page.status, update.status) == (200, 200)
    assert_only_our_elements(page.body.decode(), scripts=1)
    assert_only_our_elements(json.loads(update.body)["html"], scripts=0)
