"""What `UiApp` answers before any page: paths that are no page (404), methods a route does not
take (405 with Allow), names that are not Kubernetes names (400), the shipped assets with their
types, and the security headers on every page."""

from __future__ import annotations

import importlib.resources

import pytest

from stepline.gateway.serving import Request
from stepline.ui.app import UiApp
from stepline.ui.html import SECURITY_HEADERS
from tests.unit.ui.cluster import USERNAME, Runs, get, header, post, request, run_body, text


@pytest.mark.parametrize(
    "path",
    ["/ui/nowhere", "/ui/namespaces/shop", "/ui/namespaces/shop/pods",
     "/ui/namespaces/shop/runs/r/logs", "/ui/static/a/b.js"],
)  # fmt: skip
async def test_a_path_that_is_no_page_is_404_naming_it_even_without_signing_in(
    app: UiApp, path: str
) -> None:
    answer = await app(get(path, cookie=None))

    assert answer.status == 404
    assert f"There is no page at {path}." in text(answer)


async def test_a_404_escapes_the_path_it_names(app: UiApp) -> None:
    answer = await app(get('/ui/"><script>x</script>', cookie=None))

    assert answer.status == 404
    assert "<script>x" not in text(answer)
    assert "&quot;&gt;&lt;script&gt;x&lt;/script&gt;" in text(answer)


async def test_a_name_that_is_not_a_kubernetes_name_is_400_naming_the_part(app: UiApp) -> None:
    answer = await app(get("/ui/namespaces/Shop/runs/<b>", cookie=None))

    assert answer.status == 400
    assert '<p id="problem" role="alert">namespace &#x27;Shop&#x27; is not a Kubernetes name' in (
        text(answer)
    )


async def test_a_bad_query_of_a_signed_in_user_is_400_saying_who_is_signed_in(
    app: UiApp,
) -> None:
    answer = await app(get("/ui/namespaces/shop/runs", "phase=Sleeping"))

    assert answer.status == 400
    assert "phase &#x27;Sleeping&#x27; is not one of" in text(answer)
    assert f"Signed in as <strong>{USERNAME}</strong>" in text(answer)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("POST", "/ui/", "GET, HEAD"),
        ("DELETE", "/ui/namespaces/shop/runs", "GET, HEAD"),
        ("PUT", "/ui/namespaces/shop/runs/r-1", "GET, HEAD"),
        ("POST", "/ui/namespaces/shop/runs/r-1/updates", "GET, HEAD"),
        ("PUT", "/ui/login", "GET, HEAD, POST"),
        ("GET", "/ui/logout", "POST"),
        ("POST", "/ui/static/stepline.css", "GET, HEAD"),
    ],
)
async def test_a_method_a_route_does_not_take_is_405_with_allow(
    app: UiApp, method: str, path: str, allowed: str
) -> None:
    answer = await app(request(method, path))

    assert answer.status == 405
    assert header(answer, "Allow") == allowed
    assert f"{method} is not allowed here; use {allowed}." in text(answer)


async def test_head_is_answered_as_get(app: UiApp) -> None:
    answer = await app(request("HEAD", "/ui/namespaces/shop/workflows"))

    assert answer.status == 200


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("stepline.css", "text/css; charset=utf-8"),
        ("stepline.js", "text/javascript; charset=utf-8"),
    ],
)
async def test_the_assets_are_served_with_their_types_to_anyone(
    app: UiApp, name: str, content_type: str
) -> None:
    shipped = (importlib.resources.files("stepline.ui") / "static" / name).read_bytes()

    answer = await app(get(f"/ui/static/{name}", "v=0.1.0", cookie=None))

    assert answer.status == 200
    assert answer.content_type == content_type
    assert answer.body == shipped
    assert header(answer, "X-Content-Type-Options") == "nosniff"
    assert header(answer, "Cache-Control") == "public, max-age=3600"


@pytest.mark.parametrize("name", ["missing.css", "", "..", "__init__.py", "stepline.CSS"])
async def test_an_asset_that_is_not_shipped_is_404(app: UiApp, name: str) -> None:
    answer = await app(get(f"/ui/static/{name}", cookie=None))

    assert answer.status == 404


@pytest.mark.parametrize(
    ("request_", "status"),
    [
        (get("/ui/"), 200),
        (get("/ui/namespaces/shop/workflows/trade"), 200),
        (get("/ui/namespaces/shop/runs"), 200),
        (get("/ui/namespaces/shop/runs/trade-x7k2p"), 200),
        (get("/ui/login", cookie=None), 200),
        (get("/ui/namespaces/shop/runs", "phase=x"), 400),
        (post("/ui/login", "token=garbage.token", cookie=None), 401),
        (get("/ui/namespaces/bank/runs"), 403),
        (get("/ui/nowhere"), 404),
        (post("/ui/", ""), 405),
    ],
    ids=lambda value: value.path if isinstance(value, Request) else str(value),
)
async def test_every_page_carries_the_security_headers(
    app: UiApp, runs: Runs, request_: Request, status: int
) -> None:
    runs.put(run_body())

    answer = await app(request_)

    assert answer.status == status
    assert answer.content_type == "text/html; charset=utf-8"
    for name, value in SECURITY_HEADERS:
        assert header(answer, name) == value
