"""HTML made safe by construction: every value is escaped on its way into a tag (`tag`,
`text`), and only `Html` — what this module built — is passed through as markup. A page is one
layout (`page`) with a strict Content-Security-Policy: no inline script or style runs, so even a
value that slipped past escaping could not execute.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape

from stepline import __version__

Attributes = Mapping[str, str | int | float | bool | None]

# Scripts and styles only from the operator's own /ui/static/; no frames, forms posting only
# back to it, nothing from elsewhere (clusters are often offline, and a page must not call out).
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
)
HTML_TYPE = "text/html; charset=utf-8"
STATIC = "/ui/static"


class Html(str):
    """Markup this module built: inserted as it is."""

    __slots__ = ()


def text(value: object) -> Html:
    """`value` as text in HTML: `<`, `>`, `&` and both quotes escaped."""
    return value if isinstance(value, Html) else Html(escape(str(value), quote=True))


def join(parts: Iterable[object], separator: str = "") -> Html:
    return Html(separator.join(text(part) for part in parts))


def tag(name: str, attributes: Attributes | None = None, *children: object) -> Html:
    """`<name attributes…>children…</name>`: attribute values and text children escaped; an
    attribute that is None or False left out, one that is True written bare."""
    opened = _open(name, attributes)
    return Html(f"{opened}{join(children)}</{name}>")


def void(name: str, attributes: Attributes | None = None) -> Html:
    """An element without content (`input`, `meta`, `link`)."""
    return _open(name, attributes)


def _open(name: str, attributes: Attributes | None) -> Html:
    parts = [name]
    for key, value in (attributes or {}).items():
        if value is None or value is False:
            continue
        parts.append(key if value is True else f'{key}="{text(value)}"')
    return Html(f"<{' '.join(parts)}>")


def link(href: str, label: object, **attributes: str) -> Html:
    return tag("a", {"href": href, **attributes}, label)


def table(
    table_id: str, caption: str, headers: Sequence[str], rows: Iterable[Html], *, empty: str
) -> Html:
    """A table with a caption and column headers; `empty` said in its place when no row."""
    body = list(rows)
    if not body:
        return tag("p", {"class": "empty", "id": f"{table_id}-empty"}, empty)
    head = tag("tr", None, *(tag("th", {"scope": "col"}, header) for header in headers))
    return tag(
        "table",
        {"id": table_id},
        tag("caption", None, caption),
        tag("thead", None, head),
        tag("tbody", None, *body),
    )


def facts(pairs: Iterable[tuple[str, object]], *, element_id: str | None = None) -> Html:
    """A description list of (label, value)."""
    items = [Html(tag("dt", None, label) + tag("dd", None, value)) for label, value in pairs]
    return tag("dl", {"class": "facts", "id": element_id}, *items)


def page(
    title: str,
    body: Html,
    *,
    user: str | None,
    crumbs: Sequence[tuple[str, str]] = (),
    notice: str | None = None,
    problem: str | None = None,
) -> bytes:
    """A whole page: the header (the trail of links to where it is, who is signed in), an
    optional notice (role status) or problem (role alert), then `body` under an `<h1>`."""
    trail = [link("/ui/", "Stepline")] + [link(href, label) for label, href in crumbs]
    nav = tag("nav", {"aria-label": "Breadcrumb"}, join(trail, " / "))
    who: Html = Html("")
    if user is not None:
        sign_out = tag(
            "form",
            {"method": "post", "action": "/ui/logout", "class": "sign-out"},
            tag("button", {"type": "submit", "id": "sign-out"}, "Sign out"),
        )
        who = tag("div", {"class": "who"}, "Signed in as ", tag("strong", None, user), sign_out)
    said = [
        tag("p", {"id": "notice", "role": "status"}, notice) if notice else "",
        tag("p", {"id": "problem", "role": "alert"}, problem) if problem else "",
    ]
    document = join(
        (
            Html("<!DOCTYPE html>"),
            tag(
                "html",
                {"lang": "en"},
                tag(
                    "head",
                    None,
                    void("meta", {"charset": "utf-8"}),
                    void("meta", {"name": "viewport", "content": "width=device-width"}),
                    tag("title", None, f"{title} · Stepline"),
                    void("link", {"rel": "stylesheet", "href": asset("stepline.css")}),
                    tag("script", {"src": asset("stepline.js"), "defer": True}),
                ),
                tag(
                    "body",
                    None,
                    tag("a", {"href": "#main", "class": "skip"}, "Skip to the content"),
                    tag("header", None, nav, who),
                    tag("main", {"id": "main"}, *said, tag("h1", None, title), body),
                ),
            ),
        )
    )
    return document.encode()


def asset(name: str) -> str:
    """The address of a shipped asset, with the version: a new release is fetched anew."""
    return f"{STATIC}/{name}?v={__version__}"
