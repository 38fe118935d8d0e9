"""Signing in to the web view: a page without the cookie sends to the sign-in page and back; the
token the API server accepts is kept in an HttpOnly, SameSite=Strict cookie; a refused token
gets the form again; an API server that cannot be reached is a 503, never a page of data;
signing out drops the cookie; forms from other sites are refused. The real `Authorizer` over a
fake reviewer."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

import pytest

from stepline.errors import KubeApiError
from stepline.ui.app import SESSION_SECONDS, UiApp
from tests.unit.gateway.reviewers import TOKEN, USER
from tests.unit.ui.cluster import HOST, Reviewer, get, header, post, text


def login(token: str = TOKEN, next_path: str = "/ui/namespaces/shop/runs") -> str:
    return f"token={quote(token, safe='')}&next={quote(next_path, safe='')}"


async def test_a_page_asked_for_without_the_cookie_sends_to_the_sign_in_page_and_back(
    app: UiApp,
) -> None:
    answer = await app(get("/ui/namespaces/shop/runs", "phase=Failed&page=2", cookie=None))

    assert answer.status == 303
    assert header(answer, "Location") == (
        "/ui/login?next=/ui/namespaces/shop/runs%3Fphase%3DFailed%26page%3D2"
    )


async def test_the_sign_in_page_keeps_where_to_go_back_to_in_the_form(app: UiApp) -> None:
    where = quote("/ui/namespaces/shop/runs?phase=Failed&page=2", safe="/")

    answer = await app(get("/ui/login", f"next={where}", cookie=None))

    page = text(answer)
    assert answer.status == 200
    assert '<form id="login" method="post" action="/ui/login">' in page
    assert '<label for="token">Bearer token</label>' in page
    assert '<textarea id="token" name="token" rows="6" required' in page
    assert (
        '<input type="hidden" name="next" value="/ui/namespaces/shop/runs?phase=Failed&amp;page=2">'
    ) in page
    assert '<button type="submit">Sign in</button>' in page


async def test_the_sign_in_page_offers_no_way_elsewhere(app: UiApp) -> None:
    answer = await app(get("/ui/login", "next=%2F%2Fevil.example%2F", cookie=None))

    assert '<input type="hidden" name="next" value="/ui/">' in text(answer)


async def test_an_accepted_token_is_kept_in_an_httponly_strict_cookie_and_sends_back(
    app: UiApp,
) -> None:
    answer = await app(post("/ui/login", login(), cookie=None))

    assert answer.status == 303
    assert header(answer, "Location") == "/ui/namespaces/shop/runs"
    assert header(answer, "Set-Cookie") == (
        f"stepline-token={TOKEN}; Path=/ui/; Max-Age={SESSION_SECONDS}; HttpOnly; SameSite=Strict"
    )


async def test_the_token_is_taken_without_the_lines_around_it_a_paste_brings(
    app: UiApp,
) -> None:
    answer = await app(post("/ui/login", login(f"\r\n {TOKEN} \n"), cookie=None))

    assert str(header(answer, "Set-Cookie")).startswith(f"stepline-token={TOKEN};")


@pytest.mark.parametrize(
    "next_path",
    ["//evil.example/", "http://evil.example/ui/", "/ui/\\evil", "/elsewhere", "/ui/\u2603", ""],
)
async def test_after_signing_in_the_view_never_sends_elsewhere(app: UiApp, next_path: str) -> None:
    answer = await app(post("/ui/login", login(next_path=next_path), cookie=None))

    location = header(answer, "Location")
    assert location == "/ui/"
    location.encode("latin-1")  # what the server writes a header as


async def test_a_token_longer_than_a_query_string_signs_in(app: UiApp, reviewer: Reviewer) -> None:
    long_token = "eyJ" + "a" * 3000 + ".p.s"
    reviewer.tokens[long_token] = (USER, ("https://kubernetes.default.svc",))

    answer = await app(post("/ui/login", login(long_token), cookie=None))

    assert answer.status == 303
    assert str(header(answer, "Set-Cookie")).startswith(f"stepline-token={long_token};")


async def test_a_token_the_api_server_refuses_gets_the_form_again_with_the_reason(
    app: UiApp,
) -> None:
    answer = await app(post("/ui/login", login("not.accepted.token"), cookie=None))

    page = text(answer)
    assert answer.status == 401
    assert header(answer, "Set-Cookie") is None
    assert '<p id="problem" role="alert">The Kubernetes API server does not accept' in page
    assert '<form id="login"' in page
    assert "not.accepted.token" not in page  # never put back in a page
    assert 'name="next" value="/ui/namespaces/shop/runs"' in page


async def test_what_is_not_a_token_gets_the_form_again_saying_how_to_get_one(
    app: UiApp, reviewer: Reviewer
) -> None:
    answer = await app(post("/ui/login", login("Bearer <b>abc</b>"), cookie=None))

    page = text(answer)
    assert answer.status == 400
    assert "kubectl create token NAME" in page
    assert '<form id="login"' in page
    assert "<b>" not in page
    assert reviewer.asked == []


async def test_signing_in_while_the_api_server_cannot_be_reached_is_503(
    app: UiApp, reviewer: Reviewer
) -> None:
    reviewer.failing = KubeApiError("connection refused", status=0)

    answer = await app(post("/ui/login", login(), cookie=None))

    assert answer.status == 503
    assert header(answer, "Set-Cookie") is None
    assert "could not reach the Kubernetes API server" in text(answer)


@pytest.mark.parametrize(
    "path", ["/ui/", "/ui/namespaces/shop/workflows", "/ui/namespaces/shop/runs",
             "/ui/namespaces/shop/workflows/trade"],
)  # fmt: skip
async def test_a_page_while_the_api_server_cannot_be_reached_is_503_and_shows_no_data(
    app: UiApp, reviewer: Reviewer, path: str
) -> None:
    reviewer.failing = KubeApiError("connection refused", status=0)

    answer = await app(get(path))

    page = text(answer)
    assert answer.status == 503
    assert '<p id="problem" role="alert">The operator could not reach' in page
    assert "<table" not in page
    assert "trade" not in page
    assert "production-shift" not in page
    assert USER["username"] not in page


async def test_a_page_is_503_when_the_access_review_fails_after_the_token_was_accepted(
    app: UiApp, reviewer: Reviewer
) -> None:
    assert (await app(get("/ui/namespaces/shop/workflows/trade"))).status == 200
    reviewer.failing = KubeApiError("the API server answered 500", status=500)

    answer = await app(get("/ui/namespaces/shop/runs"))  # a review not kept yet

    assert answer.status == 503
    assert "<table" not in text(answer)


async def test_a_cookie_with_a_token_no_longer_accepted_sends_to_the_sign_in_page(
    app: UiApp,
) -> None:
    answer = await app(get("/ui/", cookie="stepline-token=expired.token.x"))

    assert answer.status == 303
    assert header(answer, "Location") == "/ui/login?next=/ui/"


async def test_a_signed_in_page_names_the_user_and_never_shows_the_token(app: UiApp) -> None:
    page = text(await app(get("/ui/namespaces/shop/workflows")))

    assert f"Signed in as <strong>{USER['username']}</strong>" in page
    assert '<button type="submit" id="sign-out">Sign out</button>' in page
    assert TOKEN not in page


async def test_signing_out_drops_the_cookie_and_goes_to_the_sign_in_page(app: UiApp) -> None:
    answer = await app(post("/ui/logout", "", origin=f"http://{HOST}"))

    assert answer.status == 303
    assert header(answer, "Location") == "/ui/login"
    assert header(answer, "Set-Cookie") == (
        "stepline-token=; Path=/ui/; Max-Age=0; HttpOnly; SameSite=Strict"
    )


async def test_signing_out_is_a_post(app: UiApp) -> None:
    answer = await app(get("/ui/logout"))

    assert answer.status == 405
    assert header(answer, "Allow") == "POST"
    assert header(answer, "Set-Cookie") is None


@pytest.mark.parametrize(
    "headers",
    [{"origin": "https://evil.example"}, {"origin": "null"},
     {"referer": "https://evil.example/ui/login"}, {"origin": f"http://{HOST}.evil.example"}],
)  # fmt: skip
@pytest.mark.parametrize("path", ["/ui/login", "/ui/logout"])
async def test_a_form_sent_from_another_site_is_refused(
    app: UiApp, reviewer: Reviewer, headers: dict[str, str], path: str
) -> None:
    answer = await app(post(path, login(), cookie=None, **headers))

    assert answer.status == 403
    assert header(answer, "Set-Cookie") is None
    assert reviewer.asked == []


@pytest.mark.parametrize(
    "headers", [{"origin": f"http://{HOST}"}, {"referer": f"http://{HOST}/ui/login?next=%2Fui%2F"},
                {}],
)  # fmt: skip
async def test_a_form_from_the_view_itself_or_without_origin_is_accepted(
    app: UiApp, headers: dict[str, str]
) -> None:
    answer = await app(post("/ui/login", login(), cookie=None, **headers))

    assert answer.status == 303
    assert header(answer, "Set-Cookie") is not None


async def test_without_invoke_authentication_the_pages_are_open_and_sign_in_goes_straight_back(
    make_app: Callable[..., UiApp], reviewer: Reviewer
) -> None:
    app = make_app(authorizer_=None)

    page = await app(get("/ui/namespaces/shop/workflows", cookie=None))
    sign_in = await app(get("/ui/login", "next=%2Fui%2Fnamespaces%2Fshop%2Fruns", cookie=None))

    assert page.status == 200
    assert "sign-out" not in text(page)
    assert (sign_in.status, header(sign_in, "Location")) == (303, "/ui/namespaces/shop/runs")
    assert reviewer.asked == []
