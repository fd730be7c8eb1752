"""HTTP: one request/response round trip over a stream we opened, and the redirect policy.

We speak HTTP/1.1 with h11 (the protocol engine under httpx/httpcore) over our own
`ByteStream`, so the request goes to exactly the address we connected to while Host (and, below
us, SNI) carry the URL's host name. Doing the I/O ourselves also gives the bounds a measurement
needs against a hostile peer, which a client library does not:

- one deadline for the whole exchange (write, head, body), so a server trickling a byte every
  few seconds ends as `generic_timeout_error` at the deadline instead of never;
- at most `body_cap` *decoded* bytes: gzip/deflate is inflated with a bounded
  `zlib.decompressobj().decompress(data, max_length)`, so a gzip bomb costs at most the cap,
  and we stop reading as soon as the cap is reached (an endless body is never downloaded);
- the response head is bounded by h11's `max_incomplete_event_size`.

Redirects are not followed here. `http_round_trip` reports the resolved `location`; the caller
asks `check_redirect` whether to follow it, resolves the next host, checks the address with
`refuse_private_hop`, connects and calls `http_round_trip` again, one `HTTPTransaction` per hop.
"""

from __future__ import annotations

import asyncio
import codecs
import hashlib
import html
import re
import socket
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import SplitResult, quote, urljoin, urlsplit

import h11

from probe import failures
from probe.addresses import is_public, parse_ip
from probe.observations import HTTPTransaction, NetworkEvent, Trace
from probe.tcp import ByteStream

DEFAULT_BODY_CAP = 65536
DEFAULT_MAX_REDIRECTS = 10
#: Bytes asked of the stream per read.
READ_SIZE = 65536
#: The largest response head (status line + headers) we accept; h11 refuses a longer one.
MAX_HEAD_SIZE = 65536
#: 1xx responses tolerated before the real one (a peer could send them forever).
MAX_INFORMATIONAL_RESPONSES = 8
#: The title is a fingerprint and a human hint, not content: keep it short.
MAX_TITLE_CHARS = 200
#: Status codes whose Location we follow (300 and 304 are not redirects to follow).
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
#: Schemes a redirect may lead to.
FOLLOWABLE_SCHEMES = frozenset({"http", "https"})

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

_DEFAULT_PORTS = {"http": 80, "https": 443}
_TITLE_RE = re.compile(r"<title\b[^>]{0,200}>(.*?)(?:</title\s*>|$)", re.IGNORECASE | re.DOTALL)
_CONTROL_CHARS_RE = re.compile(r"[\x00-\x1f\x7f]")
_CHARSET_RE = re.compile(r"""charset\s*=\s*["']?([A-Za-z0-9._:-]{1,40})""", re.IGNORECASE)
#: A browser looks for <meta charset> in the first 1024 bytes.
_META_SNIFF_BYTES = 1024
_HTTP_PREFIX = b"HTTP/"


# --- the round trip -------------------------------------------------------------------------


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
        async with asyncio.timeout(timeout):
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
    parts: SplitResult,
    method: str,
    request_headers: list[tuple[str, str]],
    response: _PartialResponse,
    body_cap: int,
) -> None:
    connection = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_SIZE)
    request = h11.Request(method=method, target=_request_target(parts), headers=request_headers)
    wire = (connection.send(request) or b"") + (connection.send(h11.EndOfMessage()) or b"")
    await stream.send_all(wire)
    reader = _EventReader(stream, connection)

    # The response head: after one 1xx too many, or bytes that cannot begin "HTTP/", give up.
    informational = 0
    while True:
        event = await reader.next_event(before_response=True)
        if isinstance(event, h11.InformationalResponse):
            informational += 1
            if informational > MAX_INFORMATIONAL_RESPONSES:
                raise failures.ProbeFailure(failures.HTTP_INVALID_RESPONSE, "endless 1xx")
            continue
        if isinstance(event, h11.Response):
            break
        # ConnectionClosed (or anything else) before a response: the peer hung up.
        raise failures.ProbeFailure(failures.EOF_ERROR, "closed before a response")

    response.status = event.status_code
    response.headers = [(_text(name), _text(value)) for name, value in event.headers.raw_items()]
    encoding = _header(event.headers, b"content-encoding")
    response.content_type = _header(event.headers, b"content-type")
    response.body = _BodyReader(encoding, body_cap)

    # The body, until its end or the cap: once the cap is reached we only look at what h11
    # already holds (to tell a body of exactly `body_cap` bytes from a longer one), never read.
    while True:
        # Ask for no more than the cap still needs (+1 to see that the body is longer): what we
        # read is what a volunteer pays for (bench/data_usage.py).
        room = response.body.cap - len(response.body.kept)
        reader.read_size = max(1024, min(READ_SIZE, room + 1))
        event = await reader.next_event(before_response=False, may_read=not response.body.full)
        if event is h11.NEED_DATA:  # only when the cap is reached and nothing is buffered
            response.body.truncated = True
            return
        if isinstance(event, h11.Data):
            response.body.feed(bytes(event.data))
            if response.body.truncated:
                return
        elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
            response.body.finish()
            return


class _EventReader:
    """h11 events, reading from the stream when h11 needs data; EOF and garbage classified."""

    def __init__(self, stream: ByteStream, connection: h11.Connection) -> None:
        self.stream = stream
        self.connection = connection
        self.eof = False
        self.seen = b""  # the first few bytes of the response, to spot non-HTTP early
        #: bytes asked of the stream per read; lowered near the body cap (see `_exchange`)
        self.read_size = READ_SIZE

    async def next_event(self, *, before_response: bool, may_read: bool = True) -> object:
        while True:
            try:
                event = self.connection.next_event()
            except h11.RemoteProtocolError as exc:
                if self.eof and (not before_response or _could_be_http(self.seen)):
                    raise failures.ProbeFailure(failures.EOF_ERROR, str(exc)) from exc
                raise failures.ProbeFailure(failures.HTTP_INVALID_RESPONSE, str(exc)) from exc
            if event is not h11.NEED_DATA or not may_read:
                return event
            if self.eof:  # h11 wants more after the peer closed: the message is cut short
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
            self.connection.receive_data(data)


def _could_be_http(seen: bytes) -> bool:
    """True while the bytes received so far are a prefix of "HTTP/" (or extend it)."""
    n = min(len(seen), len(_HTTP_PREFIX))
    return seen[:n] == _HTTP_PREFIX[:n]


# --- the body --------------------------------------------------------------------------------


class _BodyReader:
    """Decodes Content-Encoding with a bound and keeps at most `cap` decoded bytes.

    gzip and deflate (zlib-wrapped or raw, as servers send both) are inflated; an absent,
    identity or unknown coding, or several codings stacked, keep the bytes as they came (we
    only advertise gzip and deflate, and a bounded chain of inflaters is not worth it)."""

    def __init__(self, content_encoding: str | None, cap: int) -> None:
        self.cap = cap
        self.kept = bytearray()
        self.truncated = False
        coding = (content_encoding or "").strip().lower()
        self.coding = coding if coding in ("gzip", "x-gzip", "deflate") else ""
        self._inflater: zlib._Decompress | None = None
        self._pending = b""  # deflate: the first bytes, until we can tell zlib from raw

    @property
    def full(self) -> bool:
        return len(self.kept) >= self.cap

    def feed(self, data: bytes) -> None:
        if not data or self.truncated:
            return
        if not self.coding:
            self._keep(data)
            return
        try:
            self._inflate(data)
        except zlib.error as exc:
            raise failures.ProbeFailure(
                failures.HTTP_INVALID_RESPONSE, f"bad {self.coding} body: {exc}"
            ) from exc

    def finish(self) -> None:
        """End of the body: inflate the first bytes of a tiny deflate body if still held."""
        if self._pending:
            pending, self._pending = self._pending, b""
            self._start_inflater(pending)
            self.feed(pending)

    def _keep(self, data: bytes) -> None:
        room = self.cap - len(self.kept)
        if len(data) > room:
            self.truncated = True
        self.kept += data[:room]

    def _start_inflater(self, head: bytes) -> None:
        if self.coding in ("gzip", "x-gzip"):
            wbits = 16 + zlib.MAX_WBITS
        elif len(head) >= 2 and head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0:
            wbits = zlib.MAX_WBITS  # RFC 9110's deflate: a zlib stream
        else:
            wbits = -zlib.MAX_WBITS  # what many servers really send: raw deflate
        self._inflater = zlib.decompressobj(wbits)

    def _inflate(self, data: bytes) -> None:
        if self._inflater is None:
            if self.coding == "deflate" and len(self._pending) + len(data) < 2:
                self._pending += data
                return
            data, self._pending = self._pending + data, b""
            self._start_inflater(data)
        inflater = self._inflater
        assert inflater is not None
        if inflater.eof:
            return  # bytes after the end of the compressed stream are not content
        room = self.cap - len(self.kept)
        if room <= 0:
            # At the cap: one more output byte proves the body is longer. (max_length=0 would
            # mean "no limit" to zlib.)
            if inflater.decompress(data, 1):
                self.truncated = True
            return
        self.kept += inflater.decompress(data, room)
        # Full: is there more? zlib may hold input in `unconsumed_tail` or output internally.
        if len(self.kept) >= self.cap and not inflater.eof:
            if inflater.decompress(inflater.unconsumed_tail, 1):
                self.truncated = True


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


def extract_title(text: str | None) -> str | None:
    """The HTML <title> text: entities decoded, control characters and runs of whitespace
    made one space, at most 200 characters. A title cut off by the cap is kept."""
    if not text:
        return None
    match = _TITLE_RE.search(text)
    if match is None:
        return None
    text = html.unescape(match.group(1)[: MAX_TITLE_CHARS * 8])
    title = " ".join(_CONTROL_CHARS_RE.sub(" ", text).split())
    return title[:MAX_TITLE_CHARS]


def _charset(content_type: str | None, body: bytes) -> str:
    """Content-Type's charset, else a <meta> charset near the top (as browsers do), else
    UTF-8; a name Python does not know falls back to UTF-8."""
    for source in (content_type or "", body[:_META_SNIFF_BYTES].decode("ascii", "replace")):
        match = _CHARSET_RE.search(source)
        if match is None:
            continue
        try:
            return codecs.lookup(match.group(1)).name
        except LookupError:
            continue
    return "utf-8"


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    """The first value of header `name` (iterating h11's headers gives lower-case names)."""
    for key, value in headers:
        if key == name:
            return _text(value)
    return None


def _text(value: bytes) -> str:
    return value.decode("utf-8", errors="replace")


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


def _parse_url(url: str) -> SplitResult:
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in FOLLOWABLE_SCHEMES or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url[:200]!r}")
    _ = parts.port  # raises ValueError for a bad port
    return parts


def _host_header(parts: SplitResult) -> str:
    hostname = parts.hostname or ""
    try:
        host = hostname.encode("ascii").decode("ascii")
    except UnicodeError:
        host = hostname.encode("idna").decode("ascii")
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is not None and port != _DEFAULT_PORTS[parts.scheme.lower()]:
        host = f"{host}:{port}"
    return host


def _request_target(parts: SplitResult) -> bytes:
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    # Keep what is already escaped or reserved; percent-encode the rest (spaces, non-ASCII).
    return quote(target, safe="/%?=&:@!$'()*+,;~-._[]").encode("ascii")


def _request_headers(
    parts: SplitResult, method: str, extra: list[tuple[str, str]] | None
) -> list[tuple[str, str]]:
    headers = [("Host", _host_header(parts)), *BROWSER_HEADERS]
    if method.upper() in ("POST", "PUT", "PATCH"):
        headers.append(("Content-Length", "0"))  # we send no body; some servers demand a length
    for name, value in extra or []:
        headers = [(n, v) for n, v in headers if n.lower() != name.lower()]
        headers.append((name, value))
    return headers


def resolve_location(current_url: str, location: str | None) -> str | None:
    """`location` made absolute against `current_url`, or None when it is missing or broken.

    Any scheme is returned as is (javascript:, ftp:): refusing those is `check_redirect`'s job.
    An http(s) location must name a host and a valid port."""
    if location is None:
        return None
    location = location.strip()
    if not location or any(ord(c) < 0x20 or c == "\x7f" for c in location):
        return None
    try:
        absolute = urljoin(current_url, location)
        parts = urlsplit(absolute)
        if parts.scheme.lower() in FOLLOWABLE_SCHEMES:
            if not parts.hostname:
                return None
            _ = parts.port  # raises ValueError for a bad port
    except ValueError:
        return None
    return absolute if parts.scheme else None


# --- the redirect policy (pure) --------------------------------------------------------------


def check_redirect(
    current_url: str,
    location: str | None,
    hops_so_far: int,
    max_redirects: int = DEFAULT_MAX_REDIRECTS,
    *,
    current_ip: str | None = None,
) -> str | None:
    """None if the redirect from `current_url` to `location` may be followed, else the failure.

    `hops_so_far` is the number of redirects already followed; following one more than
    `max_redirects` is `http_too_many_redirects` (a loop ends here too). `http_redirect_refused`:
    a missing or unparseable Location, a scheme other than http/https, or a target host that is
    a non-public IP literal (or a localhost name) when the current hop is public. The current
    hop is public when `current_ip` (the address it was fetched from) is public; without
    `current_ip`, an IP-literal host decides, and a host name counts as public (a name on the
    internet redirecting into a private range is exactly what we refuse). A target *name* is
    checked after it is resolved, with `refuse_private_hop`.
    """
    if hops_so_far >= max_redirects:
        return failures.HTTP_TOO_MANY_REDIRECTS
    target = resolve_location(current_url, location)
    if target is None:
        return failures.HTTP_REDIRECT_REFUSED
    parts = urlsplit(target)
    if parts.scheme.lower() not in FOLLOWABLE_SCHEMES or not parts.hostname:
        return failures.HTTP_REDIRECT_REFUSED
    if _hop_is_public(current_url, current_ip) and not _host_may_be_public(parts.hostname):
        return failures.HTTP_REDIRECT_REFUSED
    return None


def refuse_private_hop(from_ip: str, to_ip: str) -> bool:
    """True when a redirect would lead from a public address to a non-public one (private,
    loopback, link-local, reserved, or not an address at all)."""
    from_public = is_public(from_ip) if parse_ip(from_ip) is not None else True
    return from_public and not is_public(to_ip)


def _hop_is_public(current_url: str, current_ip: str | None) -> bool:
    if current_ip is not None:
        return is_public(current_ip) if parse_ip(current_ip) is not None else True
    try:
        host = urlsplit(current_url).hostname or ""
    except ValueError:
        return True
    address = _literal_address(host)
    return is_public(address) if address is not None else True


def _host_may_be_public(host: str) -> bool:
    """False for a non-public IP literal (any spelling) and for localhost names."""
    name = host.rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return False
    address = _literal_address(name)
    return address is None or is_public(address)


def _literal_address(host: str) -> str | None:
    """The address `host` spells, also in the legacy IPv4 forms getaddrinfo accepts
    ("2130706433", "0x7f.1", "127.1"), else None for a name."""
    parsed = parse_ip(host)
    if parsed is not None:
        return str(parsed)
    if host and all(c in "0123456789abcdefx." for c in host) and any(c.isdigit() for c in host):
        try:
            return socket.inet_ntoa(socket.inet_aton(host))
        except OSError:
            return None
    return None
