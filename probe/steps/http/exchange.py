"""One HTTP/1.1 request/response round trip over a stream we opened (the codec: wire.py).

The request goes to exactly the address we connected to while Host (and, below us, SNI) carry
the URL's host name. One deadline covers the whole exchange (write, head, body), an incomplete
head is bounded by MAX_HEAD_SIZE, and we stop reading as soon as the body cap is reached (an
endless body is never downloaded)."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import quote

from probe import failures
from probe.observations import HTTPTransaction, NetworkEvent, Trace
from probe.observations.http import REDIRECT_CODES, extract_title
from probe.steps.deadline import deadline
from probe.steps.http.body import _BodyReader, _charset
from probe.steps.http.redirects import FOLLOWABLE_SCHEMES, resolve_location
from probe.steps.http.request_wire import RequestWriter
from probe.steps.http.wire import (
    DATA,
    INFORMATIONAL,
    NEED_DATA,
    RESPONSE,
    ResponseParser,
    WireError,
)
from probe.steps.tcp import ByteStream
from probe.urls import URLParts, url_parts

DEFAULT_BODY_CAP = 65536
#: Bytes asked of the stream per read.
READ_SIZE = 65536
#: The largest incomplete response head (status line + headers) we hold (as h11 did).
MAX_HEAD_SIZE = 65536
#: 1xx responses tolerated before the real one (a peer could send them forever).
MAX_INFORMATIONAL_RESPONSES = 8

#: What a common desktop browser (Firefox on Windows) sends, so that servers and middleboxes
#: treat the probe like a visitor. Accept-Encoding lists only codings we decode with a bound.
BROWSER_HEADERS: tuple[tuple[str, str], ...] = (
    (
        "User-Agent",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0",
    ),
    ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    ("Accept-Language", "en-US,en;q=0.5"),
    ("Accept-Encoding", "gzip, deflate"),
    ("Connection", "close"),
)

#: Our own headers are checked once, here; the Host header and any extra ones per request.
_WRITER = RequestWriter(BROWSER_HEADERS)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HTTP_PREFIX = b"HTTP/"


async def http_round_trip(
    stream: ByteStream,
    url: str,
    *,
    trace: Trace,
    timeout: float,
    address: str,
    body_cap: int = DEFAULT_BODY_CAP,
    method: str = "GET",
    headers: list[tuple[str, str]] | None = None,
) -> HTTPTransaction:
    """Send one request for `url` over `stream` and read the response, all within `timeout`.

    `address` ("ip:port") is recorded as where the request went. `headers` are added to the
    browser-like defaults, replacing a default of the same name. The response keeps its headers
    in order with their original case, at most `body_cap` decoded body bytes (text, length,
    sha256, <title>) and, for a redirect, the Location resolved against `url`.

    Failures are data: before a response, `failed_operation` is "http_round_trip"; after the
    response head arrived (reset, EOF or deadline mid-body) the response and the partial body
    are kept and `failed_operation` is "read". A redirect status whose Location is missing or
    unusable records `http_redirect_refused` (the chain cannot go on). The stream is left open
    and is not reusable; the caller closes it. Only cancellation escapes.
    """
    t0 = trace.now()
    request_headers: list[tuple[str, str]] = []
    response = _PartialResponse(body=_BodyReader(None, max(body_cap, 0)))
    failure: str | None = None
    _event(trace, "http_transaction_start", address, None, t0)
    try:
        parts = _parse_url(url)
        request_headers = _request_headers(parts, method, headers)
        with deadline(timeout):
            await _exchange(stream, parts, method, request_headers, response, max(body_cap, 0))
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        failure = failures.classify(exc)

    transaction = HTTPTransaction(
        url=url,
        method=method,
        request_headers=request_headers,
        address=address,
        failure=failure,
        t0=t0,
        transaction_id=trace.transaction_id,
    )
    if failure is not None:
        transaction.failed_operation = (
            failures.READ if response.status is not None else failures.HTTP_ROUND_TRIP
        )
    if response.status is not None:
        _fill_response(transaction, response, url)
    transaction.t = trace.now()
    _event(trace, "http_transaction_done", address, transaction.failure, t0)
    return transaction


@dataclass(slots=True)
class _PartialResponse:
    """What has arrived so far; kept when the exchange fails half way."""

    body: _BodyReader
    status: int | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str | None = None


async def _exchange(
    stream: ByteStream,
    parts: URLParts,
    method: str,
    request_headers: list[tuple[str, str]],
    response: _PartialResponse,
    body_cap: int,
) -> None:
    try:
        wire, parser = _WRITER.start(method, _request_target(parts), request_headers, MAX_HEAD_SIZE)
    except WireError as exc:  # a header or method we were given that HTTP/1.1 cannot carry
        raise failures.ProbeFailure(failures.HTTP_INVALID_RESPONSE, str(exc)) from exc
    await stream.send_all(wire)
    reader = _EventReader(stream, parser)

    # The response head: after one 1xx too many, or bytes that cannot begin "HTTP/", give up.
    informational = 0
    while True:
        event = await reader.next_event(before_response=True)
        if event == INFORMATIONAL:
            informational += 1
            if informational > MAX_INFORMATIONAL_RESPONSES:
                raise failures.ProbeFailure(failures.HTTP_INVALID_RESPONSE, "endless 1xx")
            continue
        if event == RESPONSE:
            break
        # The protocol was switched (a 101 to an Upgrade we offered): no response to read.
        raise failures.ProbeFailure(failures.EOF_ERROR, "closed before a response")

    response.status = parser.status
    response.headers = parser.headers
    response.content_type = parser.content_type
    response.body = _BodyReader(parser.content_encoding, body_cap)

    # The body, until its end or the cap: once the cap is reached we only look at what the
    # parser already holds (to tell a body of exactly `body_cap` bytes from a longer one).
    while True:
        # Ask for no more than the cap still needs (+1 to see that the body is longer): what we
        # read is what a volunteer pays for (bench/data_usage.py).
        room = response.body.cap - len(response.body.kept)
        reader.read_size = max(1024, min(READ_SIZE, room + 1))
        if not response.body.full:
            stream.expect(response.body.to_read())
        event = await reader.next_event(before_response=False, may_read=not response.body.full)
        if event == NEED_DATA:  # only when the cap is reached and nothing is buffered
            response.body.truncated = True
            return
        if event == DATA:
            response.body.feed(parser.data)
            if response.body.truncated:
                return
        else:  # END
            response.body.finish()
            return


class _EventReader:
    """Parser events, reading from the stream when it needs data; EOF and garbage classified."""

    def __init__(self, stream: ByteStream, parser: ResponseParser) -> None:
        self.stream = stream
        self.parser = parser
        self.eof = False
        self.seen = b""  # the first few bytes of the response, to spot non-HTTP early
        #: bytes asked of the stream per read; lowered near the body cap (see `_exchange`)
        self.read_size = READ_SIZE

    async def next_event(self, *, before_response: bool, may_read: bool = True) -> int:
        while True:
            try:
                event = self.parser.next_event()
            except WireError as exc:
                if self.eof and (not before_response or _could_be_http(self.seen)):
                    raise failures.ProbeFailure(failures.EOF_ERROR, str(exc)) from exc
                raise failures.ProbeFailure(failures.HTTP_INVALID_RESPONSE, str(exc)) from exc
            if event != NEED_DATA or not may_read:
                return event
            if self.eof:  # the parser wants more after the peer closed: the message is cut
                raise failures.ProbeFailure(failures.EOF_ERROR, "closed mid-message")
            data = await self.stream.receive_some(self.read_size)
            if before_response and len(self.seen) < len(_HTTP_PREFIX):
                self.seen += data[: len(_HTTP_PREFIX) - len(self.seen)]
                if not _could_be_http(self.seen):
                    # A TLS alert, an HTML page without a status line, random bytes: no reason
                    # to wait for more of it.
                    raise failures.ProbeFailure(
                        failures.HTTP_INVALID_RESPONSE, "response does not begin with HTTP/"
                    )
            self.eof = not data
            self.parser.receive(data)


def _could_be_http(seen: bytes) -> bool:
    """True while the bytes received so far are a prefix of "HTTP/" (or extend it)."""
    n = min(len(seen), len(_HTTP_PREFIX))
    return seen[:n] == _HTTP_PREFIX[:n]


# --- filling in the observation --------------------------------------------------------------


def _fill_response(transaction: HTTPTransaction, response: _PartialResponse, url: str) -> None:
    body = bytes(response.body.kept)
    transaction.response_code = response.status
    transaction.response_headers = response.headers
    transaction.body = body.decode(_charset(response.content_type, body), errors="replace")
    transaction.body_is_truncated = response.body.truncated
    transaction.body_length = len(body)
    transaction.body_sha256 = hashlib.sha256(body).hexdigest()
    transaction.title = extract_title(transaction.body)
    if response.status in REDIRECT_CODES:
        raw_location = next(
            (value for name, value in response.headers if name.lower() == "location"), None
        )
        transaction.location = resolve_location(url, raw_location)
        if transaction.location is None and transaction.failure is None:
            transaction.failure = failures.HTTP_REDIRECT_REFUSED
            transaction.failed_operation = failures.HTTP_ROUND_TRIP


def _event(trace: Trace, operation: str, address: str, failure: str | None, t0: float) -> None:
    trace.add_event(
        NetworkEvent(
            operation=operation,
            address=address,
            failure=failure,
            t0=t0,
            t=trace.now(),
            transaction_id=trace.transaction_id,
        )
    )


# --- URLs and the request --------------------------------------------------------------------


def _parse_url(url: str) -> URLParts:
    parts = url_parts(url.strip())
    if parts.split.scheme.lower() not in FOLLOWABLE_SCHEMES or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url[:200]!r}")
    parts.checked_port()  # raises ValueError for a bad port
    return parts


# The Host header and the request target are the same for every fetch of a URL: made once
# per URL (`url_parts` gives one object per URL string). Exceptions are not cached.
@lru_cache(maxsize=4096)
def _host_header(parts: URLParts) -> str:
    hostname = parts.hostname or ""
    try:
        host = hostname.encode("ascii").decode("ascii")
    except UnicodeError:
        host = hostname.encode("idna").decode("ascii")
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is not None and port != _DEFAULT_PORTS[parts.split.scheme.lower()]:
        host = f"{host}:{port}"
    return host


@lru_cache(maxsize=4096)
def _request_target(parts: URLParts) -> bytes:
    split = parts.split
    target = split.path or "/"
    if split.query:
        target += "?" + split.query
    # Keep what is already escaped or reserved; percent-encode the rest (spaces, non-ASCII).
    return quote(target, safe="/%?=&:@!$'()*+,;~-._[]").encode("ascii")


def _request_headers(
    parts: URLParts, method: str, extra: list[tuple[str, str]] | None
) -> list[tuple[str, str]]:
    headers = [("Host", _host_header(parts)), *BROWSER_HEADERS]
    if method.upper() in ("POST", "PUT", "PATCH"):
        headers.append(("Content-Length", "0"))  # we send no body; some servers demand a length
    for name, value in extra or []:
        headers = [(n, v) for n, v in headers if n.lower() != name.lower()]
        headers.append((name, value))
    return headers
