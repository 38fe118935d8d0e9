"""The operator's HTTP server fed generated, mutated and random bytes, split into random pieces.

A connection's protocol (`HttpServer.connection()`) is driven over a transport that records what
is written, so that a test chooses exactly where reads end. Two properties:

- model: pipelined requests built from parts, each sound or with one known defect, are served
  or refused exactly as RFC 9112 and the server's rules say (`test_serving_conformance` names
  each rule), however the bytes are split;
- robustness: whatever the bytes, nothing raises, every answer is whole and well formed, a
  refusal is the last answer, the handler sees only requests that follow the rules, and the
  same bytes in one piece or in many are answered alike.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st

from stepline.gateway.serving import MAX_HEAD_BYTES, MAX_HEADERS, HttpServer, Request, Response
from tests.unit.gateway.conftest import MAX_BODY_BYTES

REFUSALS = {400, 405, 431, 501, 505}
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SPECIAL = {  # fields that frame, route or end a request: the model sets them itself
    "host", "content-length", "transfer-encoding", "connection", "proxy-connection", "expect",
    "upgrade",
}  # fmt: skip


class RecordingTransport(asyncio.Transport):
    """Keeps what the server writes; closing reports the loss to the protocol, as asyncio does."""

    def __init__(self, protocol: asyncio.Protocol) -> None:
        super().__init__()
        self.protocol = protocol
        self.written = bytearray()
        self.closing = False
        self.lost = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closing, "written after close"
        self.written += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            asyncio.get_running_loop().call_soon(self._lose)

    def abort(self) -> None:
        self.close()

    def can_write_eof(self) -> bool:
        return False  # no lingering: the client's bytes are all sent already

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def _lose(self) -> None:
        self.lost = True
        self.protocol.connection_lost(None)


@dataclass
class Exchange:
    """What a connection made of the bytes: the answers (interim ones left out) and the
    requests the handler was given."""

    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)


async def exchange(pieces: list[bytes]) -> Exchange:
    """Feeds `pieces` as separate reads, letting the server run between them, then the end of
    the stream; waits for the connection to close."""
    seen = Exchange()

    async def handler(request: Request) -> Response:
        seen.requests.append(request)
        return Response(200, b"{}")

    server = HttpServer(handler, max_body_bytes=MAX_BODY_BYTES)
    protocol = server.connection()
    transport = RecordingTransport(protocol)
    protocol.connection_made(transport)
    for piece in pieces:
        if transport.closing:
            break
        protocol.data_received(piece)
        await asyncio.sleep(0)
    if not transport.closing and not protocol.eof_received():
        transport.close()
    for _ in range(1000):
        if transport.lost:
            break
        await asyncio.sleep(0)
    assert transport.lost, "the connection stayed open after the client's end of stream"
    seen.answers = split_answers(bytes(transport.written), [r.method for r in seen.requests])
    return seen


def split_answers(written: bytes, methods: list[str]) -> list[tuple[int, dict[str, str]]]:
    """The answers in what was written, each checked whole: a status line, headers, and the
    body its Content-Length says (none for HEAD's answer)."""
    answers: list[tuple[int, dict[str, str]]] = []
    while written:
        head, separator, rest = written.partition(b"\r\n\r\n")
        assert separator, f"an answer cut short: {written[:80]!r}"
        status_line, *lines = head.decode("latin-1").split("\r\n")
        assert re.fullmatch(r"HTTP/1\.1 [1-5]\d\d [A-Za-z -]*", status_line), status_line
        headers = {name.lower(): value for name, _, value in (x.partition(": ") for x in lines)}
        status = int(status_line.split()[1])
        length = int(headers.get("content-length", "0"))
        if status != 100 and len(answers) < len(methods) and methods[len(answers)] == "HEAD":
            length = 0
        assert len(rest) >= length, "an answer's body cut short"
        written = rest[length:]
        if status != 100:
            answers.append((status, headers))
    return answers


def run(pieces: list[bytes]) -> Exchange:
    return asyncio.run(exchange(pieces))


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(data)) for cut in cuts} | {0, len(data)})
    return [data[start:end] for start, end in itertools.pairwise(points)] or [b""]


# the model: requests from parts, each sound or with one known defect


@dataclass(frozen=True)
class Case:
    """One request as sent, and what the server must make of it: served (as `method`, `path`,
    `headers`, `body`) or refused with `refusal`; `last` when its answer ends the connection."""

    data: bytes
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    refusal: int | None
    last: bool


DEFECTS: dict[str, int] = {
    "no-version": 400, "version-2": 505, "no-host": 400, "two-hosts": 400, "fragment": 400,
    "bad-escape": 400, "length-and-chunked": 400, "gzip-then-chunked": 501,
    "chunked-in-1.0": 400, "folded": 400, "bare-lf": 400, "head-too-large": 431,
    "too-many-headers": 431, "connect": 405,
}  # fmt: skip
REQUEST_LINES = {  # by defect; any other: "{method} {target} HTTP/{version}"
    "no-version": "{method} {target}",
    "version-2": "{method} {target} HTTP/2.0",
    "fragment": "{method} {target}#here HTTP/{version}",
    "bad-escape": "{method} /%zz{target} HTTP/{version}",
    "connect": "CONNECT operator:443 HTTP/{version}",
}
EXTRA_LINES = {
    "two-hosts": ["Host: other"],
    "folded": ["X-Folded: a\r\n b"],
    "head-too-large": [f"X-Large: {'l' * MAX_HEAD_BYTES}"],
    "too-many-headers": [f"X-{number}: v" for number in range(MAX_HEADERS + 1)],
}
SEGMENT = st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=6)
FIELD_NAME = st.from_regex(r"[A-Za-z][A-Za-z0-9\-]{0,8}", fullmatch=True).filter(
    lambda name: name.lower() not in _SPECIAL
)
FIELD_VALUE = st.from_regex(r"[!-~]([ !-~]{0,10}[!-~])?", fullmatch=True)
FIELDS = st.lists(st.tuples(FIELD_NAME, FIELD_VALUE, st.sampled_from(["", " ", "\t "])))


@st.composite
def cases(draw: st.DrawFn, *, defects: bool = True) -> Case:
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]))
    segments = draw(st.lists(SEGMENT, max_size=3))
    target = "/" + "/".join(quote(segment, safe="") for segment in segments)
    target += draw(st.sampled_from(["", "?q=1", "?a=%zz&b"]))
    target = draw(st.sampled_from(["", "http://operator:8080"])) + target
    version = draw(st.sampled_from(["1.1", "1.0"]))
    body = draw(st.binary(max_size=40)) if method != "HEAD" else b""
    chunked = version == "1.1" and bool(body) and draw(st.booleans())
    close = version == "1.0" or draw(st.booleans())
    defect = draw(st.none() | st.sampled_from(list(DEFECTS))) if defects else None  # half sound
    if defect in ("no-host", "length-and-chunked", "gzip-then-chunked") and version == "1.0":
        defect = None
    if defect in ("length-and-chunked", "gzip-then-chunked", "chunked-in-1.0"):
        chunked, body = True, body or b"x"
    if defect == "chunked-in-1.0":
        version, close = "1.0", True

    fields = draw(FIELDS)
    line = REQUEST_LINES.get(defect or "", "{method} {target} HTTP/{version}")
    lines = [line.format(method=method, target=target, version=version)]
    if defect != "no-host" and (version == "1.1" or defect == "two-hosts" or draw(st.booleans())):
        lines.append("Host: operator")
    lines += [f"{name}: {value}{padding}" for name, value, padding in fields]
    lines += EXTRA_LINES.get(defect or "", [])
    lines += ["Connection: close"] if close else []
    framing, payload = draw(body_framing(method, body, chunked=chunked, defect=defect))
    head = "\r\n".join(lines + framing) + "\r\n\r\n"
    if defect == "bare-lf":
        head = head.replace("\r\n", "\n")
    headers: dict[str, str] = {}
    for name, value, _ in fields:
        known = headers.get(name.lower())
        headers[name.lower()] = value if known is None else f"{known}, {value}"
    return Case(
        data=head.encode("utf-8") + payload, method=method, path="/" + "/".join(segments),
        headers=headers, body=body, refusal=DEFECTS[defect] if defect else None, last=close,
    )  # fmt: skip


@st.composite
def body_framing(
    draw: st.DrawFn, method: str, body: bytes, *, chunked: bool, defect: str | None
) -> tuple[list[str], bytes]:
    """The header lines that frame `body`, and the bytes that carry it."""
    if not chunked:
        if body or method in ("POST", "PUT") or draw(st.booleans()):
            return [f"Content-Length: {len(body)}"], body
        return [], body
    coding = "gzip, chunked" if defect == "gzip-then-chunked" else "chunked"
    lines = [f"Transfer-Encoding: {coding}"]
    if defect == "length-and-chunked":
        lines.append(f"Content-Length: {len(body)}")
    return lines, draw(chunk_framing(body))


@st.composite
def chunk_framing(draw: st.DrawFn, body: bytes) -> bytes:
    """`body` in chunks of drawn sizes, hex in either case, with or without extensions and
    trailer fields."""
    cuts = draw(st.lists(st.integers(0, len(body)), max_size=3))
    framed = b""
    for piece in split(body, cuts):
        if piece:
            size = draw(st.sampled_from(["%x", "%X", "%04x"])) % len(piece)
            extension = draw(st.sampled_from(["", ";a=b", ';name="quoted"']))
            framed += f"{size}{extension}\r\n".encode() + piece + b"\r\n"
    return framed + b"0\r\n" + draw(st.sampled_from([b"", b"X-Trailer: t\r\n"])) + b"\r\n"


def expected_answers(sent: list[Case]) -> list[Case]:
    """The requests that are answered: up to the first refused, or the first that closes."""
    answered = []
    for case in sent:
        answered.append(case)
        if case.refusal is not None or case.last:
            break
    return answered


@settings(max_examples=400, deadline=None)
@given(st.lists(cases(), min_size=1, max_size=4), st.lists(st.integers(0, 20_000), max_size=8))
def test_pipelined_requests_are_served_or_refused_as_the_rules_say_however_split(
    sent: list[Case], cuts: list[int]
) -> None:
    data = b"".join(case.data for case in sent)

    seen = run(split(data, cuts))

    answered = expected_answers(sent)
    served = [case for case in answered if case.refusal is None]
    assert [(r.method, r.path, r.body) for r in seen.requests] == [
        (case.method, case.path, case.body) for case in served
    ]
    for request, case in zip(seen.requests, served, strict=True):
        assert {k: v for k, v in request.headers.items() if k not in _SPECIAL} == case.headers
    assert [status for status, _ in seen.answers] == [case.refusal or 200 for case in answered]
    for (_, headers), case in zip(seen.answers, answered, strict=True):
        if case.refusal is not None or case.last:
            assert headers.get("connection") == "close"
        elif case is not answered[-1]:
            assert "connection" not in headers


# robustness: any bytes


def mutate(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    """Each edit at (position, length) replaces that many bytes with the given ones."""
    for position, length, replacement in edits:
        at = position % (len(data) + 1)
        data = data[:at] + replacement + data[at + length :]
    return data


EDITS = st.lists(
    st.tuples(st.integers(0, 2000), st.integers(0, 3), st.binary(max_size=3)),
    min_size=1,
    max_size=3,
)
SOUND = st.lists(cases(defects=False), min_size=1, max_size=3).map(
    lambda sent: b"".join(case.data for case in sent)
)
ANY_BYTES = st.one_of(
    st.tuples(SOUND, EDITS).map(lambda pair: mutate(*pair)),
    st.binary(max_size=400),
    st.binary(max_size=200).map(lambda tail: b"POST / HTTP/1.1\r\nHost: h\r\n" + tail),
)


def check_request(request: Request) -> None:
    """What a request the handler is given always is."""
    assert request.method not in ("CONNECT", "PRI")
    assert _TOKEN.fullmatch(request.method.lower())
    assert request.path.startswith("/") or (request.path, request.method) == ("*", "OPTIONS")
    assert not _CONTROL.search(request.path)
    for name, value in request.headers.items():
        assert _TOKEN.fullmatch(name), name
        assert not re.search(r"[\r\n\x00]", value)
        assert value == value.strip(" \t")
    assert len(request.body) <= MAX_BODY_BYTES


@settings(max_examples=600, deadline=None)
@given(ANY_BYTES, st.lists(st.integers(0, 2000), max_size=8))
def test_any_bytes_get_whole_answers_with_a_refusal_last_alike_however_split(
    data: bytes, cuts: list[int]
) -> None:
    whole = run([data])
    pieces = run(split(data, cuts))

    for seen in (whole, pieces):
        for request in seen.requests:
            check_request(request)
        statuses = [status for status, _ in seen.answers]
        assert statuses.count(200) == len(seen.requests)
        refusals = [status for status in statuses if status != 200]
        assert set(refusals) <= REFUSALS
        assert len(refusals) <= 1
        assert not refusals or statuses[-1] in REFUSALS
    assert _summary(pieces) == _summary(whole)


def _summary(seen: Exchange) -> Any:
    requests = [(r.method, r.path, r.headers, r.body, r.body_too_large) for r in seen.requests]
    return requests, [status for status, _ in seen.answers]
