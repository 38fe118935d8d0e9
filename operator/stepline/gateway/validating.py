"""What a request's head must be to be served, beyond what the parser checks: the rules of RFC 9112
(HTTP/1.1) and RFC 9110 that llhttp leaves to its user, or accepts leniently.

Pure functions of the parsed parts of a head; no I/O. `check_head()` answers the request's path
or raises `Refused`, which the server (`serving`) answers with its status and then closes the
connection, as it does for any request it cannot frame or will not serve:

- the version: HTTP/1.1 or HTTP/1.0. A request line without one (HTTP/0.9, which llhttp accepts)
  is 400; any other version is 505;
- the target (RFC 9112 3.2): origin-form (`/path?query`, no `#fragment`); absolute-form only for
  `http` and `https`, with a host and without userinfo; asterisk-form (`*`) only for OPTIONS.
  Percent escapes must be whole (`%zz` is 400) and decode to UTF-8 without control characters;
- Host (RFC 9112 3.2): an HTTP/1.1 request has exactly one, and its value is a host and port;
- framing (RFC 9112 6.1): Transfer-Encoding is refused in HTTP/1.0 (400); its last coding must be
  `chunked` (else the body's length is unknown: 400); other codings before it are not served
  (501). llhttp itself refuses Content-Length beside Transfer-Encoding, and two Content-Lengths.

Header fields arrive with their names in lower case and repeated ones joined by ", "; the
server refuses a repeated Host before this sees it.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

import httptools

SERVED_VERSIONS = ("1.1", "1.0")
_HOST = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=%:\[\]]*")  # RFC 3986's host [":" port]
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Refused(Exception):  # noqa: N818 (an answer, not a failure of ours)
    """A request that is not served: answered `status` with `reason` and `message`."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


def check_head(method: bytes, target: bytes, version: str, headers: dict[str, str]) -> str:
    """The request's percent-decoded path (without the query), if its head may be served."""
    check_version(version)
    path = parse_target(method, target)
    check_host(version, headers.get("host"))
    check_framing(version, headers.get("transfer-encoding"))
    return path


def query_of(target: bytes) -> str:
    """The raw query of a request target (after `?`; empty without one), not decoded: llhttp
    should let only visible ASCII through; each route decodes and checks its own parameters."""
    _, mark, query = target.partition(b"?")
    return query.decode("latin-1") if mark else ""


def check_version(version: str) -> None:
    if version in SERVED_VERSIONS:
        return
    if version == "0.9":  # llhttp's reading of a request line that names no version
        raise Refused(400, "BadRequest", "the request line has no HTTP/1.1 or HTTP/1.0 version")
    raise Refused(505, "HttpVersionNotSupported", f"HTTP/{version} is not served; use HTTP/1.1")


def parse_target(method: bytes, target: bytes) -> str:
    """The percent-decoded path of a request target (origin-form, absolute-form or `*`)."""
    if target == b"*":
        if method != b"OPTIONS":
            raise Refused(400, "BadRequest", "the target '*' is only for OPTIONS")
        return "*"
    if b"#" in target:
        raise Refused(400, "BadRequest", "a request target has no #fragment")
    if not target.startswith(b"/"):
        target = _absolute_path(target)
    path = target.split(b"?", 1)[0]
    if b"%" not in path:
        return path.decode("ascii")  # llhttp lets only visible ASCII through
    if _BAD_ESCAPE.search(path):
        raise Refused(400, "BadRequest", "the target's path has a % not followed by two hex digits")
    try:
        decoded = unquote(path.decode("ascii"), errors="strict")
    except UnicodeDecodeError:
        raise Refused(400, "BadRequest", "the target's path does not decode to UTF-8") from None
    if _CONTROL.search(decoded):
        raise Refused(400, "BadRequest", "the target's path decodes to a control character")
    return decoded


def check_host(version: str, host: str | None) -> None:
    if host is None:
        if version == "1.1":
            raise Refused(400, "BadRequest", "an HTTP/1.1 request needs a Host header")
        return
    if not _HOST.fullmatch(host):
        raise Refused(400, "BadRequest", "the Host header is not a host and port")


def check_framing(version: str, transfer_encoding: str | None) -> None:
    if transfer_encoding is None:
        return
    if version != "1.1":
        raise Refused(400, "BadRequest", "Transfer-Encoding is not allowed in an HTTP/1.0 request")
    codings = [coding.strip().lower() for coding in transfer_encoding.split(",")]
    codings = [coding for coding in codings if coding]
    if not codings or codings[-1] != "chunked":
        raise Refused(400, "BadRequest", "Transfer-Encoding does not end with chunked")
    if len(codings) > 1:
        message = f"Transfer-Encoding {transfer_encoding!r} is not served; send the body chunked"
        raise Refused(501, "NotImplemented", message)


def _absolute_path(target: bytes) -> bytes:
    """The path and query of an absolute-form target (`http://host/path?query`)."""
    try:
        url = httptools.parse_url(target)
    except httptools.HttpParserInvalidURLError:
        raise Refused(400, "BadRequest", "the request target is not a path or URL") from None
    if (url.schema or b"").lower() not in (b"http", b"https") or not url.host or url.userinfo:
        raise Refused(400, "BadRequest", "a URL target needs http(s), a host and no userinfo")
    path = url.path or b"/"
    return path + b"?" + url.query if url.query is not None else path
