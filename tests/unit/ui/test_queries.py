"""`stepline.ui.queries`: what a request asks for, checked — each route and the shapes that are
none, names that are not Kubernetes names, query strings and their parameters, the runs page's
filters, where to go after signing in, the cookie and the token."""

from __future__ import annotations

from datetime import timedelta

import pytest

from stepline.api import RunPhase
from stepline.ui.queries import (
    MAX_FORM_BYTES,
    MAX_PAGE,
    MAX_QUERY_BYTES,
    SINCE,
    BadRequest,
    Route,
    RunFilter,
    Target,
    check_name,
    check_token,
    cookie_value,
    parse_form,
    parse_path,
    parse_query,
    parse_run_filter,
    safe_next,
)


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/ui", Target(Route.HOME)),
        ("/ui/", Target(Route.HOME)),
        ("/ui/login", Target(Route.LOGIN)),
        ("/ui/logout", Target(Route.LOGOUT)),
        ("/ui/static/stepline.css", Target(Route.STATIC, name="stepline.css")),
        ("/ui/namespaces/shop/workflows", Target(Route.WORKFLOWS, "shop")),
        ("/ui/namespaces/shop/workflows/trade", Target(Route.WORKFLOW, "shop", "trade")),
        ("/ui/namespaces/shop/runs", Target(Route.RUNS, "shop")),
        ("/ui/namespaces/shop/runs/trade-x7k2p", Target(Route.RUN, "shop", "trade-x7k2p")),
        ("/ui/namespaces/shop/runs/t.1/updates", Target(Route.UPDATES, "shop", "t.1")),
        ("/ui/namespaces/shop/runs/trade-x7k2p/actions", Target(Route.ACTION, "shop",
                                                                "trade-x7k2p")),
    ],
)  # fmt: skip
def test_each_route_is_known_by_its_path_with_its_names(path: str, target: Target) -> None:
    assert parse_path(path) == target


@pytest.mark.parametrize(
    "path",
    [
        "/ui/nowhere",
        "/ui/login/again",
        "/ui/static/a/b.css",
        "/ui/namespaces",
        "/ui/namespaces/shop",
        "/ui/namespaces/shop/pods",
        "/ui/namespaces/shop/pods/p-1",
        "/ui/namespaces/shop/workflows/trade/updates",
        "/ui/namespaces/shop/runs/r/updates/more",
        "/ui/namespaces/shop/runs/r/logs",
        "/ui/workflows/shop/runs/r",
        "/ui/namespaces/shop/runs/",  # names nothing: 404, not a bad name
        "/ui/namespaces/shop/workflows/",
    ],
)
def test_a_path_of_no_routes_shape_is_none(path: str) -> None:
    assert parse_path(path) is None


@pytest.mark.parametrize(
    ("path", "part"),
    [
        ("/ui/namespaces/Shop/workflows", "namespace 'Shop'"),
        ("/ui/namespaces/-shop/runs", "namespace '-shop'"),
        ("/ui/namespaces/shop/workflows/trade_1", "workflow 'trade_1'"),
        ("/ui/namespaces/shop/runs/<script>", "run '<script>'"),
        ("/ui/namespaces/shop/runs/r./updates", "run 'r.'"),
        ("/ui/namespaces/shop/runs/" + "r" * 254, "run 'rrr"),
    ],
)
def test_a_name_that_is_not_a_kubernetes_name_is_a_bad_request_naming_the_part(
    path: str, part: str
) -> None:
    with pytest.raises(BadRequest, match="is not a Kubernetes name") as refused:
        parse_path(path)

    assert str(refused.value).startswith(part)


def test_the_longest_kubernetes_name_is_accepted() -> None:
    assert check_name("run", "r" * 253) == "r" * 253


def test_a_query_gives_each_allowed_parameter_decoded() -> None:
    assert parse_query("next=%2Fui%2Fx%3Fa%3Db&blank=", ("next", "blank")) == {
        "next": "/ui/x?a=b",
        "blank": "",
    }
    assert parse_query("", ()) == {}


def test_an_unknown_parameter_is_named_with_those_the_page_takes() -> None:
    with pytest.raises(BadRequest, match=r"unknown query parameter 'debug' \(this page takes: "
                       r"workflow, phase\)"):  # fmt: skip
        parse_query("workflow=trade&debug=1", ("workflow", "phase"))
    with pytest.raises(BadRequest, match=r"\(this page takes: none\)"):
        parse_query("x=1", ())


def test_a_parameter_given_twice_is_refused_naming_it() -> None:
    with pytest.raises(BadRequest, match="query parameter 'phase' is given more than once"):
        parse_query("phase=Failed&phase=Running", ("phase",))


def test_a_query_longer_than_the_limit_is_refused_and_one_at_the_limit_is_not() -> None:
    at_limit = "next=" + "a" * (MAX_QUERY_BYTES - 5)

    assert parse_query(at_limit, ("next",))["next"] == "a" * (MAX_QUERY_BYTES - 5)
    with pytest.raises(BadRequest, match=f"longer than {MAX_QUERY_BYTES} bytes"):
        parse_query(at_limit + "a", ("next",))


@pytest.mark.parametrize("query", ["next=%ff", "next=%c3%28", "next=%ed%a0%80", "%80=x"])
def test_percent_escapes_that_are_not_utf8_are_refused(query: str) -> None:
    with pytest.raises(BadRequest, match="does not decode to UTF-8"):
        parse_query(query, ("next",))


def test_a_percent_sign_that_starts_no_escape_is_kept_as_it_is() -> None:
    assert parse_query("next=%zz%2", ("next",)) == {"next": "%zz%2"}


def test_a_form_is_checked_as_a_query_and_must_be_ascii() -> None:
    assert parse_form(b"token=abc&next=%2Fui%2F", ("token", "next")) == {
        "token": "abc",
        "next": "/ui/",
    }
    with pytest.raises(BadRequest, match="unknown query parameter 'x'"):
        parse_form(b"x=1", ("token",))
    with pytest.raises(BadRequest, match="not URL-encoded ASCII"):
        parse_form("token=é".encode(), ("token",))


def test_a_form_holds_a_token_of_the_longest_accepted_length_but_no_more_than_its_limit() -> None:
    # A token longer than a query string's limit (an OIDC token with many groups, say) signs in.
    token = "a" * 8192

    assert parse_form(f"token={token}&next=%2Fui%2F".encode(), ("token", "next"))["token"] == token
    with pytest.raises(BadRequest, match=f"the form is longer than {MAX_FORM_BYTES} bytes"):
        parse_form(b"token=" + b"a" * MAX_FORM_BYTES, ("token",))


def test_no_filter_is_any_run_on_the_first_page() -> None:
    assert parse_run_filter("") == RunFilter()
    assert parse_run_filter("workflow=&phase=&since=&page=") == RunFilter()


@pytest.mark.parametrize("phase", list(RunPhase))
def test_each_run_phase_is_a_filter(phase: RunPhase) -> None:
    assert parse_run_filter(f"phase={phase.value}").phase is phase


@pytest.mark.parametrize("phase", ["failed", "FAILED", "Done", " Failed"])
def test_a_phase_that_is_not_one_of_the_runs_is_refused_listing_them(phase: str) -> None:
    with pytest.raises(BadRequest, match=r"is not one of: Pending, Running, .*, Cancelled$"):
        parse_run_filter(f"phase={phase}")


@pytest.mark.parametrize("since", list(SINCE))
def test_each_age_is_a_filter(since: str) -> None:
    assert parse_run_filter(f"since={since}").since == since


def test_the_ages_are_an_hour_a_day_and_a_week() -> None:
    assert {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(weeks=1)} == SINCE


@pytest.mark.parametrize("since", ["2h", "1d", "1H", "-1h"])
def test_an_age_that_is_not_listed_is_refused_listing_those_that_are(since: str) -> None:
    with pytest.raises(BadRequest, match=f"since '{since}' is not one of: 1h, 24h, 7d"):
        parse_run_filter(f"since={since}")


@pytest.mark.parametrize("page", ["1", "2", str(MAX_PAGE)])
def test_a_page_from_one_to_the_last_is_taken(page: str) -> None:
    assert parse_run_filter(f"page={page}").page == int(page)


@pytest.mark.parametrize("page", ["0", "-1", "1.5", "x", str(MAX_PAGE + 1), "99999999999999999999",
                                  "%C2%B2", "%D9%A3"])  # fmt: skip
def test_a_page_that_is_not_a_whole_number_in_range_is_refused(page: str) -> None:
    with pytest.raises(BadRequest, match=f"is not a whole number from 1 to {MAX_PAGE}"):
        parse_run_filter(f"page={page}")


def test_a_workflow_filter_must_be_a_kubernetes_name() -> None:
    assert parse_run_filter("workflow=trade").workflow == "trade"
    with pytest.raises(BadRequest, match=r"^workflow 'Trade!' is not a Kubernetes name"):
        parse_run_filter("workflow=Trade!")


def test_a_filters_query_leaves_out_blanks_and_the_first_page() -> None:
    assert RunFilter().query() == ""
    assert RunFilter(page=1, since="1h").query() == "since=1h"


def test_a_filters_query_reads_back_as_the_same_filter_with_changes_applied() -> None:
    chosen = RunFilter(workflow="trade", phase=RunPhase.FAILED, since="24h", page=3)

    assert parse_run_filter(chosen.query()) == chosen
    assert parse_run_filter(chosen.query(page=4)) == RunFilter("trade", RunPhase.FAILED, "24h", 4)
    assert parse_run_filter(chosen.query(page=1)) == RunFilter("trade", RunPhase.FAILED, "24h")


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "/",
        "/ui",
        "/elsewhere",
        "//evil.example/ui/",
        "/ui//evil.example",
        "/ui/..//evil.example",
        "http://evil.example/ui/",
        "https:/ui/",
        "/ui/\\evil.example",
        "\\/ui/",
        "/ui/\r\nSet-Cookie: a=b",
        "/ui/\tx",
        "/ui/ x",
        "/ui/\x00",
        "/ui/\x7f",
        "javascript:alert(1)//ui/",
    ],
)
def test_where_to_go_after_signing_in_is_never_another_site_or_a_bad_path(
    value: str | None,
) -> None:
    assert safe_next(value) == "/ui/"


@pytest.mark.parametrize(
    "value", ["/ui/", "/ui/namespaces/shop/runs?phase=Failed&page=2", "/ui/namespaces/s/runs/r"]
)
def test_a_path_of_the_view_is_where_to_go_after_signing_in(value: str) -> None:
    assert safe_next(value) == value


@pytest.mark.parametrize("value", ["/ui/\u2603", "/ui/\u2028", "/ui/\x85", "/ui/é"])
def test_a_path_with_characters_a_location_header_cannot_carry_goes_to_the_view(
    value: str,
) -> None:
    # The Location header is written as Latin-1 (gateway.serving): a snowman there stopped the
    # answer and logged the headers, the new token's Set-Cookie among them.
    assert safe_next(value) == "/ui/"


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("stepline-token=abc", "abc"),
        ("a=1; stepline-token=abc.def==; b=2", "abc.def=="),
        ("  stepline-token=abc  ", "abc"),
        ("stepline-token-old=x; stepline-token=y", "y"),
        ("xstepline-token=abc", None),
        ("stepline-token=", None),
        ("stepline-token", None),
        ("", None),
        (None, None),
    ],
)
def test_the_token_cookie_is_read_by_its_exact_name(header: str | None, value: str | None) -> None:
    assert cookie_value(header, "stepline-token") == value


def test_a_token_is_taken_without_the_space_around_it() -> None:
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln-_~+/="

    assert check_token(f"\n  {jwt}\n") == jwt


@pytest.mark.parametrize(
    "value",
    ["", "   ", "Bearer abc", "abc def", "abc;def", "abc\ndef", "tok\u00e9n", "a" * 8193,
     "<script>"],
)  # fmt: skip
def test_what_is_not_one_bearer_token_is_refused_saying_how_to_get_one(value: str) -> None:
    with pytest.raises(BadRequest, match="kubectl create token NAME"):
        check_token(value)


def test_a_token_of_the_longest_accepted_length_is_taken() -> None:
    assert check_token("a" * 8192) == "a" * 8192
