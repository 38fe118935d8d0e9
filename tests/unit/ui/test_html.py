"""`stepline.ui.html`: every value escaped on its way into text and attributes, only `Html`
passed through as markup, attributes None/False left out and True bare; a page's layout."""

from __future__ import annotations

import pytest

from stepline.ui.html import (
    SECURITY_HEADERS,
    Html,
    facts,
    join,
    link,
    page,
    table,
    tag,
    text,
    void,
)

HOSTILE = "\"'><script>alert(1)</script>&amp;"
ESCAPED = "&quot;&#x27;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&amp;amp;"


def test_text_escapes_both_quotes_angle_brackets_and_ampersands() -> None:
    assert text(HOSTILE) == ESCAPED


def test_a_value_that_is_not_a_string_is_written_as_its_text_escaped() -> None:
    class Shown:
        def __str__(self) -> str:
            return "<b>"

    assert text(Shown()) == "&lt;b&gt;"
    assert text(3) == "3"


def test_html_this_module_built_is_passed_through_and_a_plain_str_is_not() -> None:
    built = tag("b", None, "bold")

    assert isinstance(built, Html)
    assert text(built) == "<b>bold</b>"
    assert text(str(built)) == "&lt;b&gt;bold&lt;/b&gt;"
    assert tag("p", None, built, "<i>") == "<p><b>bold</b>&lt;i&gt;</p>"


def test_attribute_values_are_escaped_so_none_can_close_the_attribute_or_the_tag() -> None:
    made = tag("a", {"href": HOSTILE, "title": "a & b"}, "x")

    assert made == f'<a href="{ESCAPED}" title="a &amp; b">x</a>'


def test_text_children_are_escaped() -> None:
    assert tag("td", None, HOSTILE, 4) == f"<td>{ESCAPED}4</td>"


@pytest.mark.parametrize("dropped", [None, False])
def test_an_attribute_that_is_none_or_false_is_left_out(dropped: object) -> None:
    made = tag("button", {"type": "submit", "disabled": dropped})  # type: ignore[dict-item]

    assert made == '<button type="submit"></button>'


def test_an_attribute_that_is_true_is_written_bare_and_numbers_as_their_text() -> None:
    assert void("input", {"required": True, "rows": 6, "step": 0.5}) == (
        '<input required rows="6" step="0.5">'
    )


def test_zero_and_the_empty_string_are_values_not_absences() -> None:
    assert void("input", {"value": "", "tabindex": 0}) == '<input value="" tabindex="0">'


def test_join_escapes_each_part_and_keeps_built_markup() -> None:
    assert join(["<a>", tag("i", None, "b")], " & ") == "&lt;a&gt; & <i>b</i>"


def test_a_link_escapes_its_address_and_its_label() -> None:
    assert link('/ui/?a="b"', "<x>", rel="next") == (
        '<a href="/ui/?a=&quot;b&quot;" rel="next">&lt;x&gt;</a>'
    )


def test_a_table_without_rows_says_so_in_its_place_and_one_with_rows_has_its_caption() -> None:
    empty = table("runs", "Runs", ("Run",), [], empty="No <run>.")
    full = table("runs", "Runs <all>", ("Run",), [tag("tr", None, tag("td", None, "r"))], empty="")

    assert empty == '<p class="empty" id="runs-empty">No &lt;run&gt;.</p>'
    assert full.startswith('<table id="runs"><caption>Runs &lt;all&gt;</caption>')
    assert '<th scope="col">Run</th>' in full
    assert "<tbody><tr><td>r</td></tr></tbody>" in full


def test_facts_escape_labels_and_values() -> None:
    assert facts([("<k>", "v&")], element_id="f") == (
        '<dl class="facts" id="f"><dt>&lt;k&gt;</dt><dd>v&amp;</dd></dl>'
    )


def test_a_page_escapes_its_title_user_notice_problem_and_crumbs() -> None:
    body = page(
        HOSTILE, Html("<p id=body>kept</p>"), user=HOSTILE,
        crumbs=[(HOSTILE, "/ui/?x=<y>")], notice=HOSTILE, problem=HOSTILE,
    ).decode()  # fmt: skip

    assert "<script>" not in body
    assert body.count(ESCAPED) == 6  # title, h1, user, crumb, notice, problem
    assert '<a href="/ui/?x=&lt;y&gt;">' in body
    assert "<p id=body>kept</p>" in body


def test_a_page_has_the_hooks_and_loads_only_its_own_assets() -> None:
    body = page("Runs", Html(""), user="ada", notice="n", problem="p").decode()

    assert body.startswith('<!DOCTYPE html><html lang="en">')
    assert '<main id="main">' in body
    assert '<p id="notice" role="status">n</p>' in body
    assert '<p id="problem" role="alert">p</p>' in body
    assert '<button type="submit" id="sign-out">Sign out</button>' in body
    assert '<script src="/ui/static/stepline.js?v=' in body
    assert '<link rel="stylesheet" href="/ui/static/stepline.css?v=' in body
    assert "http" not in body  # nothing from elsewhere


def test_a_page_without_a_user_has_no_sign_out_and_without_notices_no_notice_elements() -> None:
    body = page("Sign in", Html(""), user=None).decode()

    assert "sign-out" not in body
    assert 'id="notice"' not in body
    assert 'id="problem"' not in body


def test_the_security_headers_forbid_scripts_styles_and_frames_from_elsewhere() -> None:
    headers = dict(SECURITY_HEADERS)
    policy = headers["Content-Security-Policy"]

    assert "default-src 'none'" in policy
    assert "script-src 'self'" in policy
    assert "'unsafe-inline'" not in policy
    assert "frame-ancestors 'none'" in policy
    assert "form-action 'self'" in policy
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-store"
