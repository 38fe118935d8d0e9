"""What a request to the web view asks for, checked: the route and its names, the query
string's parameters, a form's fields, where to go after signing in. Anything else is refused
with `BadRequest`, which names the parameter and the reason (the page shows it, escaped).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from urllib.parse import parse_qsl, urlencode

from stepline.api import RunPhase

# A Kubernetes object or namespace name (RFC 1123 subdomain, at most 253 characters); Stepline's
# own names are shorter, so a longer one cannot be ours.
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
# A bearer token: a JWT's base64url parts and dots, or an opaque token of the same characters.
_TOKEN = re.compile(r"^[A-Za-z0-9._~+/=-]{1,8192}$")
MAX_QUERY_BYTES = 2048
# The sign-in form carries a token of up to 8192 characters (`_TOKEN`), percent-encoded.
MAX_FORM_BYTES = 16 * 1024
PAGE_SIZE = 50
MAX_PAGE = 10_000
ACTIONS = ("cancel", "suspend", "resume", "rerun", "approve", "reject")
SINCE = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}


class BadRequest(Exception):  # noqa: N818 (what the page answers: 400 Bad Request)
    """A request the view cannot serve; the message names what is wrong and is shown."""


class Route(StrEnum):
    HOME = "home"
    LOGIN = "login"
    LOGOUT = "logout"
    STATIC = "static"
    WORKFLOWS = "workflows"
    WORKFLOW = "workflow"
    RUNS = "runs"
    RUN = "run"
    UPDATES = "updates"
    ACTION = "action"


@dataclass(frozen=True)
class Target:
    """A route and the names in its path."""

    route: Route
    namespace: str = ""
    name: str = ""


_FIXED = {"": Route.HOME, "login": Route.LOGIN, "logout": Route.LOGOUT}
# /ui/namespaces/{namespace}/<kind>
_COLLECTIONS = {"workflows": Route.WORKFLOWS, "runs": Route.RUNS}
# /ui/namespaces/{namespace}/<kind>/{name}[/<what>]
_NAMED = {
    ("workflows",): Route.WORKFLOW,
    ("runs",): Route.RUN,
    ("runs", "updates"): Route.UPDATES,
    ("runs", "actions"): Route.ACTION,
}


def parse_path(path: str) -> Target | None:
    """The route of a path under /ui/; None when no route has that shape (404). A name that is
    not a Kubernetes name is `BadRequest`."""
    rest = path.removeprefix("/ui").removeprefix("/")
    if rest in _FIXED:
        return Target(_FIXED[rest])
    parts = rest.split("/")
    if len(parts) == 2 and parts[0] == "static":
        return Target(Route.STATIC, name=parts[1])
    if len(parts) < 3 or parts[0] != "namespaces":
        return None
    namespace = check_name("namespace", parts[1])
    kind, *named = parts[2:]
    if not named:
        collection = _COLLECTIONS.get(kind)
        return None if collection is None else Target(collection, namespace)
    name, *what = named
    route = _NAMED.get((kind, *what))
    if route is None or not name:  # `…/workflows/` names nothing: no page there
        return None
    return Target(route, namespace, check_name(kind.removesuffix("s"), name))


def check_name(what: str, value: str) -> str:
    if not _NAME.match(value):
        raise BadRequest(
            f"{what} {value!r} is not a Kubernetes name (lower-case letters, digits, '-' and "
            "'.', at most 253 characters)"
        )
    return value


def parse_query(
    query: str, allowed: tuple[str, ...], *, max_bytes: int = MAX_QUERY_BYTES
) -> dict[str, str]:
    """The query's parameters, each at most once and each one of `allowed`."""
    if len(query) > max_bytes:
        raise BadRequest(f"the query string is longer than {max_bytes} bytes")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=False, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("the query string does not decode to UTF-8") from None
    found: dict[str, str] = {}
    for key, value in pairs:
        if key not in allowed:
            known = ", ".join(allowed) or "none"
            raise BadRequest(f"unknown query parameter {key!r} (this page takes: {known})")
        if key in found:
            raise BadRequest(f"query parameter {key!r} is given more than once")
        found[key] = value
    return found


@dataclass(frozen=True)
class RunFilter:
    """The runs page's filters: blank means any."""

    workflow: str = ""
    phase: RunPhase | None = None
    since: str = ""
    page: int = 1

    def query(self, **changes: object) -> str:
        """The query string of this filter with `changes`, blanks (and page 1) left out."""
        values = {
            "workflow": self.workflow,
            "phase": self.phase.value if self.phase else "",
            "since": self.since,
            "page": str(self.page),
        }
        values.update({key: str(value) for key, value in changes.items()})
        kept = {k: v for k, v in values.items() if v and not (k == "page" and v == "1")}
        return urlencode(kept)


RUN_FILTER_PARAMETERS = ("workflow", "phase", "since", "page")


def parse_run_filter(query: str) -> RunFilter:
    given = parse_query(query, RUN_FILTER_PARAMETERS)
    workflow = given.get("workflow", "")
    if workflow:
        check_name("workflow", workflow)
    phase_text = given.get("phase", "")
    phase = None
    if phase_text:
        try:
            phase = RunPhase(phase_text)
        except ValueError:
            phases = ", ".join(p.value for p in RunPhase)
            raise BadRequest(f"phase {phase_text!r} is not one of: {phases}") from None
    since = given.get("since", "")
    if since and since not in SINCE:
        raise BadRequest(f"since {since!r} is not one of: {', '.join(SINCE)}")
    page_text = given.get("page", "1") or "1"
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
    if not (page_text.isascii() and page_text.isdigit()) or not 1 <= int(page_text) <= MAX_PAGE:
        raise BadRequest(f"page {page_text!r} is not a whole number from 1 to {MAX_PAGE}")
    return RunFilter(workflow=workflow, phase=phase, since=since, page=int(page_text))


def parse_form(body: bytes, allowed: tuple[str, ...]) -> dict[str, str]:
    """A posted form (application/x-www-form-urlencoded), checked as a query is."""
    if len(body) > MAX_FORM_BYTES:
        raise BadRequest(f"the form is longer than {MAX_FORM_BYTES} bytes")
    try:
        return parse_query(body.decode("ascii"), allowed, max_bytes=MAX_FORM_BYTES)
    except UnicodeDecodeError:
        raise BadRequest("the form is not URL-encoded ASCII") from None


def check_token(value: str) -> str:
    token = value.strip()
    if not _TOKEN.match(token):
        raise BadRequest(
            "that is not a bearer token: paste the token alone (a ServiceAccount's: "
            "`kubectl create token NAME`)"
        )
    return token


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a path of the view itself, never another site."""
    if not value or not value.startswith("/ui/") or "//" in value or "\\" in value:
        return "/ui/"
    # Printable ASCII only: it goes into a Location header, which is written as Latin-1.
    if any(not 0x21 <= ord(char) < 0x7F for char in value):
        return "/ui/"
    return value


def cookie_value(header: str | None, name: str) -> str | None:
    """The value of cookie `name` in a Cookie header, if it is there."""
    for part in (header or "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    return None
