"""The HTTP/1.1 codec (probe/steps/http/wire.py) against h11, which it replaced: the same bytes,
split the same way, must give the same events (heads, body pieces, end) or both a refusal."""

from __future__ import annotations

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe.steps.http import request_wire, wire
from probe.steps.http.exchange import BROWSER_HEADERS, MAX_HEAD_SIZE

MAX_HEAD = 256  # small, so that the bound on an incomplete head is reached by the fuzzer too
Event = tuple[object, ...]


def h11_events(chunks: list[bytes], method: str = "GET", max_head: int = MAX_HEAD) -> list[Event]:
    connection = h11.Connection(h11.CLIENT, max_incomplete_event_size=max_head)
    connection.send(h11.Request(method=method, target="/", headers=[("Host", "a")]))
    connection.send(h11.EndOfMessage())
    out: list[Event] = []
    for chunk in [*chunks, b""]:
        connection.receive_data(chunk)
        while True:
            try:
                event = connection.next_event()
            except h11.RemoteProtocolError:
                return [*out, ("error",)]
            if event is h11.NEED_DATA:
                break
            if isinstance(event, h11.InformationalResponse | h11.Response):
                fields = [
                    (n.decode(), v.decode("utf-8", "replace")) for n, v in event.headers.raw_items()
                ]
                out.append(("head", event.status_code, fields))
            elif isinstance(event, h11.Data):
                out.append(("data", bytes(event.data)))
            else:  # EndOfMessage, ConnectionClosed or PAUSED: the exchange ends
                return [*out, ("end",)]
    return out


def wire_events(chunks: list[bytes], method: str = "GET", max_head: int = MAX_HEAD) -> list[Event]:
    parser = wire.ResponseParser(method.encode(), False, max_head)
    out: list[Event] = []
    for chunk in [*chunks, b""]:
        parser.receive(chunk)
        while True:
            try:
                event = parser.next_event()
            except wire.WireError:
                return [*out, ("error",)]
            if event == wire.NEED_DATA:
                break
            if event in (wire.INFORMATIONAL, wire.RESPONSE):
                out.append(("head", parser.status, parser.headers))
            elif event == wire.DATA:
                out.append(("data", parser.data))
            else:
                return [*out, ("end",)]
    return out


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True) if b > a]


def assert_same(data: bytes, cuts: list[int] = (), method: str = "GET") -> list[Event]:  # type: ignore[assignment]
    chunks = split(data, list(cuts))
    expected = h11_events(chunks, method)
    assert wire_events(chunks, method) == expected, (data, chunks)
    return expected


# --- a grammar of plausible and broken responses ----------------------------------------------

STATUS_LINES = [
    b"HTTP/1.1 200 OK",
    b"HTTP/1.0 200 OK",
    b"HTTP/1.1 204 No Content",
    b"HTTP/1.1 304 Not Modified",
    b"HTTP/1.1 302 Found",
    b"HTTP/1.1 100 Continue",
    b"HTTP/1.1 101 Switching",
    b"HTTP/1.1 099 Low",
    b"HTTP/1.1 200",
    b"HTTP/1.1 200 ",
    b"HTTP/1.1 200 \xc3\xa9t\xe9",
    b"HTTP/1.1 20 OK",
    b"HTTP/2 200",
    b"HTTP/1.1  200 OK",
    b"HTTP/1.1 200 OK\x00",
    b"HTTP/1.1 999 Weird",
]
FIELDS = [
    b"Content-Type: text/html; charset=utf-8",
    b"Content-Length: 5",
    b"content-length: 5, 5",
    b"Content-Length: 5,6",
    b"Content-Length: 0",
    b"Content-Length: x",
    b"Content-Length: 123456789012345678901",
    b"Transfer-Encoding: chunked",
    b"Transfer-Encoding: Chunked",
    b"Transfer-Encoding: gzip",
    b"Transfer-Encoding: chun\xe2\x84\xaaed",
    b"Content-Encoding: gzip",
    b"Location: /x",
    b"X-Empty:",
    b"X-Spaces:   a  b  ",
    b"X-Utf8: \xd0\xbf\xd1\x80\xff",
    b" folded continuation",
    b"\tfolded",
    b"Bad Name: x",
    b"NoColon",
    b"X-Nul: a\x00b",
    b"X-Cr: a\rb",
    b"X-Nbsp: \xc2\xa0",
]
BODIES = [
    b"",
    b"hello",
    b"hello world, longer than five",
    b"5\r\nhello\r\n0\r\n\r\n",
    b"5;ext=1\r\nhello\r\n3 \r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n",
    b"5\r\nhelloXX0\r\n\r\n",
    b"zz\r\nhello\r\n",
    b"0\r\nContent-Length: 1, 2\r\n\r\n",
    b"0\r\n\r\ntrailing garbage",
]
EOLS = [b"\r\n", b"\n"]


@st.composite
def responses(draw: st.DrawFn) -> bytes:
    parts = []
    for _ in range(draw(st.integers(1, 2))):  # sometimes a 1xx first
        eol = draw(st.sampled_from(EOLS))
        head = draw(st.sampled_from(STATUS_LINES)) + eol
        for field in draw(st.lists(st.sampled_from(FIELDS), max_size=5)):
            head += field + draw(st.sampled_from(EOLS))
        parts.append(head + draw(st.sampled_from(EOLS)))
    data = b"".join(parts) + draw(st.sampled_from(BODIES))
    if draw(st.booleans()):  # damage: one byte replaced, or a piece cut out
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(max_size=2)) + data[at + draw(st.integers(0, 3)) :]
    return data


fuzz = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fuzz
@given(responses(), st.lists(st.integers(0, 400), max_size=6), st.sampled_from(["GET", "HEAD"]))
def test_same_events_as_h11(data: bytes, cuts: list[int], method: str) -> None:
    assert_same(data, cuts, method)


@fuzz
@given(st.binary(max_size=300), st.lists(st.integers(0, 400), max_size=4))
def test_random_bytes_after_a_status_line(tail: bytes, cuts: list[int]) -> None:
    assert_same(b"HTTP/1.1 200 OK\r\n" + tail, cuts)


@fuzz
@given(st.binary(max_size=300), st.lists(st.integers(0, 400), max_size=4))
def test_random_bytes_never_raise_anything_else(data: bytes, cuts: list[int]) -> None:
    wire_events(split(data, cuts))  # WireError is caught in there; nothing else may escape


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\nclose-delimited",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: 1\r\n  continued\r\nContent-Length: 1\r\n\r\nx",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel",  # EOF mid-body
        b"HTTP/1.1 200 OK\r\nX: " + b"a" * 300,  # an endless head
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",  # no Upgrade offered
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nCONTENT-LENGTH: 2\r\n\r\nok",
        *(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body for body in BODIES),
    ],
)
def test_known_cases(data: bytes) -> None:
    for size in (1, 3, len(data)):
        assert_same(data, list(range(size, len(data), size)))


def test_a_head_request_has_no_body() -> None:
    events = assert_same(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", method="HEAD")
    assert events[-1] == ("end",) and not any(e[0] == "data" for e in events)


# --- the request ------------------------------------------------------------------------------


def h11_request(method: str, headers: list[tuple[str, str]]) -> bytes | None:
    connection = h11.Connection(h11.CLIENT)
    try:
        request = h11.Request(method=method, target=b"/p?q", headers=headers)
        return connection.send(request) + connection.send(h11.EndOfMessage())
    except h11.LocalProtocolError:
        return None


def wire_request(method: str, headers: list[tuple[str, str]]) -> bytes | None:
    writer = request_wire.RequestWriter(BROWSER_HEADERS)
    try:
        return writer.start(method, b"/p?q", headers, MAX_HEAD_SIZE)[0]
    except wire.WireError:
        return None


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("GET", [("Host", "example.com"), *BROWSER_HEADERS]),
        ("GET", [("Host", "a\x00b"), *BROWSER_HEADERS]),
        ("G T", [("Host", "example.com"), *BROWSER_HEADERS]),
        ("POST", [("Host", "h"), *BROWSER_HEADERS, ("Content-Length", "0")]),
        ("POST", [("Host", "h"), ("Content-Length", "0, 0")]),
        ("POST", [("Host", "h"), ("Content-Length", "5")]),
        ("POST", [("Host", "h"), ("Transfer-Encoding", "Chunked")]),
        ("POST", [("Host", "h"), ("Transfer-Encoding", "gzip")]),
        ("GET", [("X-A", "1"), ("Host", "h")]),
        ("GET", [("X-A", "1")]),
        ("GET", [("Host", "h"), ("host", "i")]),
        ("GET", [("Host", "h"), ("Bad Name", "1")]),
        ("GET", [("Host", "h"), ("X-Tab", "a\tb "), ("X-Empty", "")]),
    ],
)
def test_request_bytes_as_h11_writes_them(method: str, headers: list[tuple[str, str]]) -> None:
    assert wire_request(method, headers) == h11_request(method, headers)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["Host", "X-A", "Content-Length", "Transfer-Encoding", "a b"]),
            st.text(alphabet="ab0 ,\t\x00chunked", max_size=8),
        ),
        max_size=4,
    )
)
def test_fuzzed_request_headers(headers: list[tuple[str, str]]) -> None:
    assert wire_request("GET", headers) == h11_request("GET", headers)


def test_a_101_ends_http_only_when_upgrade_was_offered() -> None:
    data = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\nnot http any more"
    headers = [("Host", "h"), ("Upgrade", "x")]
    _, parser = wire_writer().start("GET", b"/", headers, MAX_HEAD_SIZE)
    parser.receive(data)
    assert parser.next_event() == wire.INFORMATIONAL and parser.status == 101
    assert parser.next_event() == wire.PAUSED  # h11 pauses too; the exchange calls it eof_error
    offered_nothing = wire.ResponseParser(b"GET", False, MAX_HEAD_SIZE)
    offered_nothing.receive(data)
    with pytest.raises(wire.WireError):
        offered_nothing.next_event()


def test_fixed_headers_may_not_frame_a_body() -> None:
    with pytest.raises(ValueError, match="framing"):
        request_wire.RequestWriter([("Content-Length", "0")])


def wire_writer() -> request_wire.RequestWriter:
    return request_wire.RequestWriter(BROWSER_HEADERS)
