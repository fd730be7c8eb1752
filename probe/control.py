"""The control vantage: a server that measures the same targets from an uncensored network with
the same step functions, and the probe's client for it.

API (JSON over HTTP):
- ``GET /v1/health`` → ``{"status": "ok", "software_version": ...}``
- ``POST /v1/measure`` with ``{"targets": [<target definition>, ...]}`` → 200 with
  ``{"client": {"ip", "asn", "cc", "network_name"}, "results": [{"id", "observations"}]}``.
  The observations are `Observations.to_dict()` of `measure.measure_target`, with HTTP bodies
  removed (length, title, hash and headers stay). An endpoint the server refuses (a private or
  reserved address, unless `--allow-net` allows it) is a per-endpoint failure
  (`control_refused_destination`), never an HTTP error. A result cut to fit the reply's limits
  says so in `x_truncated`; a target unfinished at the request's deadline has no observations
  and `failure: generic_timeout_error` (see docs/control.md, "Limits").
- 400 malformed request, 401 missing/wrong token, 408 body not sent in time, 413 too large,
  503 saturated: JSON ``{"error": "..."}``.

The server must not become an open proxy into private networks: every resolved address and every
redirect hop is checked, request size, targets per request, concurrent work, connection and
request time, reply size and caller-supplied roots are bounded, response bodies never leave the
server, and nothing a client sends is written to disk. No log line has a client address unless
the operator asks for them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import hashlib
import ipaddress
import json
import logging
import math
import re
import signal
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger, AbstractResolver, ResolveResult

from probe import __version__, dns, failures
from probe.addresses import destinations, in_networks, is_public_destination, parse_ip
from probe.geoip import GeoIP
from probe.measure import MeasureConfig, RunState, measure_target
from probe.observations import TRIMMED_HEADERS, DNSQuery, Observations, Trace, bound_http
from probe.targets import CHECKS, DEFAULT_TRANSPORTS, TRANSPORTS, Target, host_problem, url_problem
from probe.tcp import ByteCounter
from probe.tls import CAText

log = logging.getLogger("probe.control")

MAX_REQUEST_BYTES = 256 * 1024
MAX_TARGETS_PER_REQUEST = 400
MAX_PORTS_PER_TARGET = 8
#: A target's `x_ca_pem`: at most this many characters and certificates; one request may bring
#: at most MAX_CA_PEMS_PER_REQUEST different ones (each costs a TLS context of ~0.8 MB while
#: it is used, see `tls.CONTEXT_CACHE_SIZE`).
MAX_CA_PEM_BYTES = 64 * 1024
MAX_CA_CERTIFICATES = 16
MAX_CA_PEMS_PER_REQUEST = 4
#: A control's reply for one target (observations without bodies: DNS, a few handshakes with
#: their certificate chains, headers) stays far below this; the client accepts this much per
#: target plus the base, and the server cuts a result down to it (`x_truncated`).
MAX_REPLY_BYTES_PER_TARGET = 256 * 1024
MAX_REPLY_BYTES_BASE = 1024 * 1024
#: The whole reply, whatever the number of targets: results past it are dropped (`x_truncated`).
DEFAULT_MAX_REPLY_BYTES = 16 * 1024 * 1024
#: HTTP response heads one target's result keeps before later heads are cut to
#: `observations.TRIMMED_HEADERS` headers (a redirect chain of 64 KiB heads would be ~1.4 MB).
CONTROL_KEPT_HTTP_CHARS = 64 * 1024
#: When a result is still over its limit, every response keeps at most TRIMMED_HEADERS headers,
#: each cut to this many characters.
MAX_KEPT_HEADER_CHARS = 256
DEFAULT_MAX_CONCURRENT_REQUESTS = 4
#: Seconds a client has to send its request head, then its body (a probe behind a throttled
#: link needs ~10 s for 80 KB of targets at 64 kbit/s); a connection is aborted this long
#: after the head, body and measurement deadlines, whatever it does (a client that does not
#: read its reply must not hold a socket).
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 30.0
REPLY_WRITE_SECONDS = 30.0
#: Waiting connections the listening socket holds while the server has no file descriptor free.
LISTEN_BACKLOG = 1024
#: The open-file limit `serve` raises its soft limit towards.
WANTED_OPEN_FILES = 65536
#: Log lines of one kind (aiohttp's errors about clients, failed accepts) per minute, at most.
LOG_BURST = 10
LOG_WINDOW = 60.0


def client_timeout(step_timeout: float) -> float:
    """How long the probe waits for the control: it measures the same flows as we do, a few
    steps deep (DNS, connect, TLS, HTTP with redirects, or several MTProto transports)."""
    return 8 * step_timeout + 10.0


# --- the server ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ControlServerConfig:
    measure: MeasureConfig = field(default_factory=MeasureConfig)
    allow_nets: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    token: str | None = None
    geoip_dbs: tuple[str, ...] = ()
    max_request_bytes: int = MAX_REQUEST_BYTES
    max_targets: int = MAX_TARGETS_PER_REQUEST
    max_concurrent_requests: int = DEFAULT_MAX_CONCURRENT_REQUESTS
    log_client_addresses: bool = False
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    #: the measurement of one request ends after this many seconds; None: 8 step timeouts
    #: (the probe waits `client_timeout`, 10 s more)
    request_timeout: float | None = None
    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES

    @property
    def measure_deadline(self) -> float:
        if self.request_timeout is not None:
            return self.request_timeout
        return 8 * self.measure.timeout

    @property
    def connection_lifetime(self) -> float:
        """No connection lives longer than this (head, body, measurement, then the reply)."""
        return self.header_timeout + self.body_timeout + self.measure_deadline + REPLY_WRITE_SECONDS


def make_address_guard(
    allow_nets: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> Callable[[str], bool]:
    """True for an address the control must refuse. An IPv6 address that embeds an IPv4 address
    (mapped, compatible, SIIT, NAT64, 6to4, Teredo, ISATAP) is judged by what it embeds:
    refused unless that is public or `allow_nets` covers it. Other addresses: refused unless
    public (site-local fec0::/10 never is) or covered by `allow_nets`."""
    allowed = tuple(allow_nets)

    def refuse(ip: str) -> bool:
        address = parse_ip(ip)
        if address is None:
            return True
        return any(
            not in_networks(d, allowed) and not is_public_destination(d)
            for d in destinations(address)
        )

    return refuse


class BadRequest(ValueError):
    pass


def _string(d: dict[str, Any], key: str, *, required: bool = False, limit: int = 2048) -> Any:
    value = d.get(key)
    if value is None:
        if required:
            raise BadRequest(f"target: missing {key!r}")
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        raise BadRequest(f"target: {key!r} must be a non-empty string of at most {limit} chars")
    return value


def target_from_request(d: Any) -> Target:
    """A Target from a request's target definition, checked strictly (it comes from anyone):
    hosts and URLs as the probe's list loader checks them. A target's own roots (`x_ca_pem`)
    stay in memory (`tls.CAText`)."""
    if not isinstance(d, dict):
        raise BadRequest("each target must be an object")
    target_id = _string(d, "id", required=True, limit=200)
    service = _string(d, "service", limit=100) or target_id.split("/", 1)[0]
    check = _string(d, "check", required=True, limit=16)
    if check not in CHECKS:
        raise BadRequest(f"target {target_id}: unknown check {check!r}")
    host = _string(d, "host", limit=255)
    url = _string(d, "url")
    if (host is None) == (url is None):
        raise BadRequest(f"target {target_id}: exactly one of host or url")
    if host is not None and host_problem(host) is not None:
        raise BadRequest(f"target {target_id}: host must be a DNS name or an IP address")
    if url is not None:
        if not url.lower().startswith(f"{check}://"):
            raise BadRequest(f"target {target_id}: url must be {check}://host/...")
        if url_problem(url, check) is not None:
            raise BadRequest(f"target {target_id}: bad url")
    ports_raw = d.get("ports") or ([] if url else [443])
    if (
        not isinstance(ports_raw, list)
        or len(ports_raw) > MAX_PORTS_PER_TARGET
        or not all(isinstance(p, int) and not isinstance(p, bool) for p in ports_raw)
        or not all(1 <= p <= 65535 for p in ports_raw)
    ):
        raise BadRequest(f"target {target_id}: ports must be up to 8 integers in 1..65535")
    transports_raw = d.get("transports") or list(DEFAULT_TRANSPORTS)
    if not isinstance(transports_raw, list) or not all(
        isinstance(t, str) and t in TRANSPORTS for t in transports_raw
    ):
        raise BadRequest(f"target {target_id}: unknown transport")
    dc = d.get("dc")
    if dc is not None and (
        not isinstance(dc, int) or isinstance(dc, bool) or not -32768 <= dc <= 32767
    ):
        raise BadRequest(f"target {target_id}: dc must be an integer in -32768..32767")
    sni = _string(d, "sni", limit=255)
    if sni is not None and host_problem(sni) is not None:
        raise BadRequest(f"target {target_id}: sni must be a DNS name")
    ca = None
    ca_pem = d.get("x_ca_pem")
    if ca_pem is not None:
        ca = _caller_roots(ca_pem, target_id)
    return Target(
        id=target_id,
        service=service,
        check=check,
        host=host,
        url=url,
        ports=tuple(ports_raw),
        sni=sni,
        transports=tuple(transports_raw),
        ca=ca,
        dc=dc,
    )


def _caller_roots(pem: Any, target_id: str) -> CAText:
    """A target's extra roots, checked by OpenSSL on a context of their own (no system store)
    and kept in memory: nothing a client sends is written to disk."""
    if not isinstance(pem, str) or not pem or len(pem) > MAX_CA_PEM_BYTES:
        raise BadRequest(f"target {target_id}: x_ca_pem must be a PEM string up to 64 KiB")
    if not pem.isascii():
        raise BadRequest(f"target {target_id}: x_ca_pem holds no PEM certificate")
    probe_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        probe_context.load_verify_locations(cadata=pem)
    except (ssl.SSLError, ValueError):
        raise BadRequest(f"target {target_id}: x_ca_pem holds no PEM certificate") from None
    count = probe_context.cert_store_stats().get("x509", 0)
    if count == 0:
        raise BadRequest(f"target {target_id}: x_ca_pem holds no PEM certificate")
    if count > MAX_CA_CERTIFICATES:
        raise BadRequest(
            f"target {target_id}: x_ca_pem holds {count} certificates"
            f" (at most {MAX_CA_CERTIFICATES})"
        )
    return CAText(pem)


def strip_bodies(observations: Observations) -> Observations:
    """The control returns length, title, hash and headers of responses, never bodies."""
    for transaction in observations.requests:
        transaction.body = None
    return observations


def redact_refused(
    observations: Observations, refuse: Callable[[str], bool], supplied: str | None
) -> None:
    """What the control resolved into a refused range is not told to the caller: such DNS
    answers are dropped with the raw reply that holds them (a query left without addresses
    fails `control_refused_destination`), and a refused connect to an address the caller did
    not write itself has its address blanked. `supplied` is the IP literal of the target."""
    for query in observations.queries:
        kept = [a for a in query.answers if a.ip is None or not refuse(a.ip)]
        if len(kept) != len(query.answers):
            query.answers = kept
            query.raw_response = None
            if not any(a.ip is not None for a in kept):
                query.failure = failures.CONTROL_REFUSED_DESTINATION
    written = parse_ip(supplied) if supplied is not None else None
    for connect in observations.tcp_connect:
        if connect.failure != failures.CONTROL_REFUSED_DESTINATION:
            continue
        if written is None or parse_ip(connect.ip) != written:
            connect.ip = ""


def _literal_of(target: Target) -> str | None:
    host = target.hostname
    return host if host and parse_ip(host) is not None else None


# --- bounded replies ------------------------------------------------------------------------


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def bound_observations(observations: Observations, cap: int) -> tuple[dict[str, Any], dict]:
    """`observations` (bodies already stripped) as a dict whose JSON is at most `cap`
    characters, and what was cut to get there ({} when nothing was): response heads past
    CONTROL_KEPT_HTTP_CHARS keep TRIMMED_HEADERS headers; then, while over the cap, network
    events go, every response keeps TRIMMED_HEADERS headers of MAX_KEPT_HEADER_CHARS, and the
    last entries of the biggest lists go."""
    marks: dict[str, Any] = {}
    trimmed = bound_http(observations, CONTROL_KEPT_HTTP_CHARS)
    if trimmed:
        marks["http_responses_trimmed"] = trimmed
    doc = observations.to_dict()
    size = len(_dump(doc))
    if size > cap and observations.network_events:
        marks["network_events_dropped"] = len(observations.network_events)
        doc["network_events"] = []
        size = len(_dump(doc))
    if size > cap:
        cut = 0
        for transaction in observations.requests:
            headers = transaction.response_headers
            if len(headers) > TRIMMED_HEADERS or any(
                len(n) > MAX_KEPT_HEADER_CHARS or len(v) > MAX_KEPT_HEADER_CHARS for n, v in headers
            ):
                cut += 1
                transaction.response_headers = [
                    (n[:MAX_KEPT_HEADER_CHARS], v[:MAX_KEPT_HEADER_CHARS])
                    for n, v in headers[:TRIMMED_HEADERS]
                ]
        if cut:
            marks["headers_cut"] = cut
            doc["requests"] = [r.to_dict() for r in observations.requests]
            size = len(_dump(doc))
    if size > cap:
        sizes = {k: [len(_dump(x)) + 1 for x in v] for k, v in doc.items() if isinstance(v, list)}
        totals = {k: sum(v) for k, v in sizes.items()}
        dropped: dict[str, int] = {}
        while size > cap and any(totals.values()):
            key = max(totals, key=lambda k: totals[k])
            doc[key].pop()
            removed = sizes[key].pop()
            totals[key] -= removed
            size -= removed
            dropped[key] = dropped.get(key, 0) + 1
        marks["dropped"] = dropped
    return doc, marks


#: Room kept for a result's id wrapper and its `x_truncated` marker.
_RESULT_OVERHEAD = 512


def bounded_result(target_id: str, observations: Observations, cap: int) -> tuple[str, bool]:
    """One result of the reply as JSON text of at most `cap` characters, and whether anything
    had to be cut for that (then said in its `x_truncated`)."""
    strip_bodies(observations)
    room = cap - _RESULT_OVERHEAD - len(_dump(target_id))
    doc, marks = bound_observations(observations, max(0, room))
    result: dict[str, Any] = {"id": target_id, "observations": doc}
    if marks:
        result["x_truncated"] = {"cap_bytes": cap, **marks}
    return _dump(result), bool(marks)


class _ReplyBudget:
    """The whole reply's limit, spent as results arrive: every target is owed room for a small
    stand-in result, and a full result that does not fit any more is replaced by it."""

    def __init__(self, targets: Sequence[Target], cap: int, envelope: int) -> None:
        self.cap = cap
        self.reserve = [len(_dump({"id": t.id})) + _RESULT_OVERHEAD for t in targets]
        self.used = envelope + sum(self.reserve)
        self.dropped = 0

    def take(self, index: int, text: str) -> bool:
        extra = len(text) + 1 - self.reserve[index]  # and its comma
        if self.used + extra > self.cap:
            self.dropped += 1
            return False
        self.used += max(0, extra)
        return True


# --- logging without client addresses, and without floods ---------------------------------


class _AccessLogger(AbstractAccessLogger):
    """Method, path, status and duration; the client's address only when asked for."""

    with_addresses = False

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        who = f"{request.remote} " if self.with_addresses else ""
        self.logger.info(
            "%s%s %s %s %.3fs", who, request.method, request.path, response.status, time
        )


class _ServerLogFilter(logging.Filter):
    """For aiohttp's own log lines about clients ("Error handling request from <address>" for
    malformed HTTP, and the like): every IP address among a record's arguments is replaced
    unless addresses are wanted, and at most `burst` lines per `window` seconds pass (a client
    can cause them at will); the first line after a held-back spell says how many were held."""

    def __init__(
        self, *, hide_addresses: bool, burst: int = LOG_BURST, window: float = LOG_WINDOW
    ) -> None:
        super().__init__()
        self.hide_addresses = hide_addresses
        self.burst = burst
        self.window = window
        self._start = -math.inf
        self._count = 0
        self.held = 0

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        held_before = 0
        if now - self._start >= self.window:
            held_before = self.held
            self._start, self._count, self.held = now, 0, 0
        self._count += 1
        if self._count > self.burst:
            self.held += 1
            return False
        args = record.args
        if self.hide_addresses and isinstance(args, tuple) and any(map(_is_address, args)):
            record.args = tuple("-" if _is_address(a) else a for a in args)
        if held_before:
            record.msg = (
                f"{record.getMessage()} ({held_before} similar lines held back"
                f" in the last {self.window:g} s)"
            )
            record.args = None
        return True


def _is_address(value: object) -> bool:
    if isinstance(value, tuple) and value:
        value = value[0]  # a peername
    return isinstance(value, str) and parse_ip(value) is not None


_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class _AcceptErrors:
    """The event loop's exception handler while the control runs: "socket.accept() out of
    system resource" (no file descriptor free: asyncio retries every second and would log a
    traceback each time) becomes one line per `window` seconds with a count; everything else
    goes to the handler that was there before."""

    def __init__(self, previous: Any, window: float = LOG_WINDOW) -> None:
        self.previous = previous
        self.window = window
        self._last = -math.inf
        self.count = 0
        self.logged = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        message = str(context.get("message", ""))
        if isinstance(exc, OSError) and exc.errno in _RESOURCE_ERRNOS and "accept" in message:
            self.count += 1
            now = loop.time()
            if now - self._last >= self.window:
                self._last = now
                self.logged += 1
                log.warning(
                    "cannot accept connections: %s (%d time(s) since the last such line;"
                    " this line repeats at most every %g s)",
                    exc.strerror or errno.errorcode.get(exc.errno or 0, "?"),
                    self.count,
                    self.window,
                )
                self.count = 0
            return
        if self.previous is not None:
            self.previous(loop, context)
        else:
            loop.default_exception_handler(context)


def _server_logger(config: ControlServerConfig) -> logging.Logger:
    """aiohttp's logger for this server: a child of `probe.control` with its own filter (so
    that every runner has its own rate limit and address policy)."""
    logger = logging.Logger("probe.control.server")
    logger.parent = log
    logger.addFilter(_ServerLogFilter(hide_addresses=not config.log_client_addresses))
    return logger


def _runner_options(config: ControlServerConfig) -> dict[str, Any]:
    """How aiohttp runs the control: our access log and server logger (client addresses only
    with `log_client_addresses`, error paths included), a client's disconnect cancels its
    request, and a response drains at most 2 s of an unread body."""

    class AccessLogger(_AccessLogger):
        with_addresses = config.log_client_addresses

    return {
        "access_log_class": AccessLogger,
        "access_log": logging.getLogger("probe.control.access"),
        "logger": _server_logger(config),
        "handler_cancellation": True,
        "lingering_time": 2.0,
    }


def make_runner(config: ControlServerConfig) -> web.AppRunner:
    """The runner of the control's application, as `serve` runs it."""
    return web.AppRunner(create_app(config), handle_signals=False, **_runner_options(config))


# --- connection deadlines -----------------------------------------------------------------


_END_OF_HEAD = re.compile(rb"\r?\n\r?\n")


class _ConnectionDeadlines(asyncio.Protocol):
    """aiohttp's protocol for one connection, with two deadlines of our own (aiohttp has none
    for a request head that never ends): the head must be complete `header_timeout` seconds
    after the connection was accepted, and the connection is aborted `lifetime` seconds after
    it, whatever it is doing (every response closes its connection, so one connection carries
    one request)."""

    def __init__(self, inner: Any, header_timeout: float, lifetime: float) -> None:
        self.inner = inner
        self.header_timeout = header_timeout
        self.lifetime = lifetime
        self.transport: asyncio.Transport | None = None
        self._tail = b""
        self._head_done = False
        self._timers: list[asyncio.TimerHandle] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        loop = asyncio.get_running_loop()
        self._timers = [
            loop.call_later(self.header_timeout, self._head_deadline),
            loop.call_later(self.lifetime, self._abort),
        ]
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self._head_done:
            window = self._tail + data
            if _END_OF_HEAD.search(window):
                self._head_done = True
                self._timers[0].cancel()
            else:
                self._tail = window[-3:]
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        result: bool | None = self.inner.eof_received()
        return result

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in self._timers:
            timer.cancel()
        self.inner.connection_lost(exc)

    def _head_deadline(self) -> None:
        if not self._head_done:
            self._abort()

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class ControlSite(web.BaseSite):
    """A TCP site whose connections have the control's deadlines (`_ConnectionDeadlines`)."""

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, config: ControlServerConfig
    ) -> None:
        super().__init__(runner, backlog=LISTEN_BACKLOG)
        self._host = host
        self._port = port
        self._config = config
        self._listening: asyncio.Server | None = None

    @property
    def name(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    @property
    def port(self) -> int:
        server = self._listening
        if server is not None and server.sockets:
            return int(server.sockets[0].getsockname()[1])
        return self._port

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        header_timeout = self._config.header_timeout
        lifetime = self._config.connection_lifetime

        def protocol() -> asyncio.Protocol:
            return _ConnectionDeadlines(server(), header_timeout, lifetime)

        self._listening = await loop.create_server(
            protocol, self._host, self._port, backlog=self._backlog, reuse_address=True
        )
        self._server = self._listening


async def start_server(
    config: ControlServerConfig, host: str, port: int
) -> tuple[web.AppRunner, ControlSite]:
    """The control listening on host:port (0: any free port), as `serve` runs it; stop it with
    `await runner.cleanup()`."""
    runner = make_runner(config)
    await runner.setup()
    site = ControlSite(runner, host, port, config)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, site


# --- the application ----------------------------------------------------------------------


def _json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def _json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every error is JSON; an unexpected exception is logged without the client's address."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _json_error(exc.status, exc.reason)
        for name in ("Allow", "Retry-After"):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("error handling %s %s", request.method, request.path)
        return _json_error(500, "internal error")


async def _one_request_per_connection(request: web.Request, response: web.StreamResponse) -> None:
    """Every response closes its connection: a connection's deadlines are one request's."""
    response.force_close()


def create_app(config: ControlServerConfig) -> web.Application:
    """The aiohttp application of `probe control serve`."""
    app = web.Application(client_max_size=config.max_request_bytes, middlewares=[_json_errors])
    app.on_response_prepare.append(_one_request_per_connection)
    busy = asyncio.Semaphore(config.max_concurrent_requests)
    measure_config = MeasureConfig(
        timeout=config.measure.timeout,
        resolver=config.measure.resolver,
        ca_files=config.measure.ca_files,
        body_cap=config.measure.body_cap,
        source_address=config.measure.source_address,
        concurrency=config.measure.concurrency,
        refuse_address=make_address_guard(config.allow_nets),
    )
    refuse = measure_config.refuse_address
    assert refuse is not None
    geoip = GeoIP(config.geoip_dbs)
    pool = dns.GetaddrinfoPool()
    deadline = config.measure_deadline
    accept_errors: list[_AcceptErrors] = []

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "software_version": __version__})

    def authorised(request: web.Request) -> bool:
        if config.token is None:
            return True
        header = request.headers.get("Authorization", "")
        expected = f"Bearer {config.token}"
        return (
            hashlib.sha256(header.encode()).digest() == hashlib.sha256(expected.encode()).digest()
        )

    async def measure(request: web.Request) -> web.Response:
        if not authorised(request):
            return _json_error(401, "missing or wrong bearer token")
        # The body is read, within its deadline, before a slot is taken: a client that sends
        # slowly holds its own connection, never a slot.
        try:
            async with asyncio.timeout(config.body_timeout):
                raw = await request.read()
        except TimeoutError:
            return _json_error(408, f"the body did not arrive within {config.body_timeout:g} s")
        except web.HTTPRequestEntityTooLarge:
            return _json_error(413, f"request larger than {config.max_request_bytes} bytes")
        except (ConnectionError, aiohttp.ClientPayloadError):
            return _json_error(400, "the body was cut short")
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            return _json_error(400, "the body is not JSON")
        try:
            targets = _parse_targets(body, config.max_targets)
        except BadRequest as exc:
            return _json_error(400, str(exc))
        except (ValueError, TypeError, RecursionError):
            return _json_error(400, "malformed targets")
        if busy.locked():
            response = _json_error(503, "saturated: try again later")
            response.headers["Retry-After"] = "30"
            return response
        client_ip = request.remote or ""
        info = geoip.lookup(client_ip)
        client = {
            "ip": client_ip,
            "asn": info.asn,
            "cc": info.cc,
            "network_name": info.as_org_name,
        }
        head = f'{{"software_version":{_dump(__version__)},"client":{_dump(client)},"results":['
        budget = _ReplyBudget(targets, config.max_reply_bytes, len(head) + _RESULT_OVERHEAD)
        trimmed = 0
        async with busy:
            resolver = dns.Resolver(
                measure_config.resolver, pool=pool, source_address=measure_config.source_address
            )
            state = RunState(config=measure_config, resolver=resolver)

            def finish(index: int, target: Target, observations: Observations) -> str:
                nonlocal trimmed
                redact_refused(observations, refuse, _literal_of(target))
                geoip.annotate(observations.queries)
                text, cut = bounded_result(target.id, observations, MAX_REPLY_BYTES_PER_TARGET)
                if budget.take(index, text):
                    trimmed += cut
                    return text
                marker = {"reason": "reply_cap", "cap_bytes": budget.cap}
                return _dump({"id": target.id, "x_truncated": marker})

            results = await _measure_all(targets, state, deadline, finish)
        unfinished = 0
        parts = []
        for target, text in zip(targets, results, strict=True):
            if text is None:
                unfinished += 1
                text = _dump({"id": target.id, "failure": failures.GENERIC_TIMEOUT})
            parts.append(text)
        tail = "]"
        if trimmed or budget.dropped:
            marks = {
                "cap_bytes": config.max_reply_bytes,
                "results_trimmed": trimmed,
                "results_dropped": budget.dropped,
            }
            tail += f',"x_truncated":{_dump(marks)}'
        if unfinished:
            tail += (
                f',"x_deadline":{_dump({"seconds": deadline, "results_unfinished": unfinished})}'
            )
        text = head + ",".join(parts) + tail + "}"
        return web.Response(text=text, content_type="application/json")

    async def on_startup(app: web.Application) -> None:
        loop = asyncio.get_running_loop()
        handler = _AcceptErrors(loop.get_exception_handler())
        accept_errors.append(handler)
        loop.set_exception_handler(handler)

    async def on_cleanup(app: web.Application) -> None:
        if accept_errors:
            asyncio.get_running_loop().set_exception_handler(accept_errors.pop().previous)
        pool.close()
        geoip.close()

    app.router.add_get("/v1/health", health)
    app.router.add_post("/v1/measure", measure)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


def _parse_targets(body: Any, max_targets: int) -> list[Target]:
    if not isinstance(body, dict) or not isinstance(body.get("targets"), list):
        raise BadRequest('expected {"targets": [...]}')
    raw = body["targets"]
    if not raw:
        raise BadRequest("no targets")
    if len(raw) > max_targets:
        raise BadRequest(f"too many targets: {len(raw)} > {max_targets}")
    targets = [target_from_request(d) for d in raw]
    if len({t.id for t in targets}) != len(targets):
        raise BadRequest("duplicate target ids")
    roots = {t.ca for t in targets if t.ca is not None}
    if len(roots) > MAX_CA_PEMS_PER_REQUEST:
        raise BadRequest(
            f"{len(roots)} different x_ca_pem in one request (at most {MAX_CA_PEMS_PER_REQUEST})"
        )
    return targets


async def _measure_all(
    targets: Sequence[Target],
    state: RunState,
    deadline: float,
    finish: Callable[[int, Target, Observations], str],
) -> list[str | None]:
    """Each target's result as `finish` makes it as soon as the target is measured (so that
    only targets in flight hold their full observations); None for a target still running at
    `deadline` (it is cancelled). Leaving early (the client went away) cancels them all."""
    results: list[str | None] = [None] * len(targets)

    async def one(index: int, target: Target) -> None:
        try:
            observations = await measure_target(target, state)
            results[index] = finish(index, target, observations)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("measuring target %d of a request failed", index)
            results[index] = _dump(
                {"id": target.id, "failure": failures.UNKNOWN_PREFIX + "internal error"}
            )

    tasks = [asyncio.create_task(one(i, t)) for i, t in enumerate(targets)]
    try:
        await asyncio.wait(tasks, timeout=deadline)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return results


def serve(
    config: ControlServerConfig, host: str, port: int, *, log_addresses: bool = False
) -> None:
    """Run the control server until SIGINT or SIGTERM."""
    from probe.runner import raise_open_file_limit

    if log_addresses and not config.log_client_addresses:
        config = dataclasses.replace(config, log_client_addresses=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    open_files = raise_open_file_limit(WANTED_OPEN_FILES)
    asyncio.run(_serve(config, host, port, open_files))


async def _serve(config: ControlServerConfig, host: str, port: int, open_files: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runner, site = await start_server(config, host, port)
    log.info(
        "serving on %s (open files: %d; deadlines: head %g s, body %g s, measurement %g s)",
        site.name,
        open_files,
        config.header_timeout,
        config.body_timeout,
        config.measure_deadline,
    )
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        await runner.cleanup()


# --- the probe's client -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EchoInfo:
    """What the control saw of us. `ip` is kept in memory only, for scrubbing."""

    ip: str | None
    asn: int | None
    cc: str | None
    network_name: str | None


@dataclass(slots=True)
class ControlReply:
    observations: dict[str, Observations] = field(default_factory=dict)
    failure: str | None = None
    url: str | None = None
    client: EchoInfo | None = None


class _RunResolver(AbstractResolver):
    """aiohttp resolves the control's host name through the run's resolver (`--resolver`)."""

    def __init__(self, resolver: dns.Resolver, timeout: float) -> None:
        self.resolver = resolver
        self.timeout = timeout

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        trace = Trace(0.0, 0)
        resolution = await self.resolver.resolve(host, trace=trace, timeout=self.timeout)
        results: list[ResolveResult] = []
        for ip in resolution.addresses:
            fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
            if family not in (socket.AF_UNSPEC, fam) and family != 0:
                continue
            results.append(
                {
                    "hostname": host,
                    "host": ip,
                    "port": port,
                    "family": fam,
                    "proto": 0,
                    "flags": socket.AI_NUMERICHOST,
                }
            )
        if not results:
            raise OSError(f"cannot resolve the control server's name {host}")
        return results

    async def close(self) -> None:
        return None


def target_to_request(target: Target) -> dict[str, Any]:
    """What the control needs to measure `target` (its CA file travels as PEM text)."""
    d: dict[str, Any] = {"id": target.id, "service": target.service, "check": target.check}
    if target.host is not None:
        d["host"] = target.host
        d["ports"] = list(target.ports)
    if target.url is not None:
        d["url"] = target.url
    if target.sni:
        d["sni"] = target.sni
    if target.check == "mtproto":
        d["transports"] = list(target.transports)
        if target.dc is not None:
            d["dc"] = target.dc
    if target.ca:
        try:
            with open(target.ca) as handle:
                d["x_ca_pem"] = handle.read(MAX_CA_PEM_BYTES + 1)
        except OSError:
            pass
    return d


class ControlClient:
    """Asks the control server(s) to measure the round's targets; tries the URLs in order."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        token: str | None,
        timeout: float,
        resolver: dns.Resolver,
        source_address: str | None = None,
        counter: ByteCounter | None = None,
    ) -> None:
        self.urls = list(urls)
        self.token = token
        self.timeout = timeout
        self.resolver = resolver
        self.source_address = source_address
        self.counter = counter
        self._asked: set[str] = set()

    async def measure(self, targets: Sequence[Target]) -> ControlReply:
        payload = {"targets": [target_to_request(t) for t in targets]}
        self._asked = {t.id for t in targets}
        failure: str | None = failures.CONTROL_UNREACHABLE
        for url in self.urls:
            try:
                reply = await self._post(url, payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failure = failures.classify(exc)
                log.debug("control %s failed: %s", url, failure)
                continue
            return reply
        return ControlReply(failure=failure)

    async def _post(self, base_url: str, payload: dict[str, Any]) -> ControlReply:
        connector = aiohttp.TCPConnector(
            resolver=_RunResolver(self.resolver, min(self.timeout, 10.0)),
            local_addr=(self.source_address, 0) if self.source_address else None,
            limit=1,
        )
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        url = base_url.rstrip("/") + "/v1/measure"
        body = json.dumps(payload).encode()
        limit = MAX_REPLY_BYTES_BASE + MAX_REPLY_BYTES_PER_TARGET * len(payload["targets"])
        raw = bytearray()
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            async with asyncio.timeout(self.timeout):
                async with session.post(url, data=body, headers=headers) as response:
                    async for chunk in response.content.iter_chunked(64 * 1024):
                        raw += chunk
                        if len(raw) > limit:
                            raise failures.ProbeFailure(
                                failures.CONTROL_HTTP_ERROR, "control reply too large"
                            )
                    if self.counter is not None:
                        self.counter.sent += len(body)
                        self.counter.received += len(raw)
                    if response.status != 200:
                        raise failures.ProbeFailure(
                            failures.CONTROL_HTTP_ERROR, f"control answered {response.status}"
                        )
        return _parse_reply(raw, base_url, self._asked)


def _parse_reply(raw: bytes | bytearray, url: str, asked: set[str]) -> ControlReply:
    """The control's answer, keeping only results for targets we asked about (a hostile or
    broken control must not fill our memory or our records with others)."""
    try:
        doc = json.loads(raw)
    except ValueError:
        raise failures.ProbeFailure(
            failures.CONTROL_HTTP_ERROR, "control reply is not JSON"
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
        raise failures.ProbeFailure(failures.CONTROL_HTTP_ERROR, "control reply has no results")
    observations = {
        item["id"]: Observations.from_dict(item["observations"])
        for item in doc["results"]
        if isinstance(item, dict)
        and item.get("id") in asked
        and isinstance(item.get("observations"), dict)
    }
    client_raw = doc.get("client")
    client: dict[str, Any] = client_raw if isinstance(client_raw, dict) else {}
    asn = client.get("asn")
    return ControlReply(
        observations=observations,
        url=url,
        client=EchoInfo(
            ip=client.get("ip") if isinstance(client.get("ip"), str) else None,
            asn=asn if isinstance(asn, int) else None,
            cc=client.get("cc") if isinstance(client.get("cc"), str) else None,
            network_name=client.get("network_name")
            if isinstance(client.get("network_name"), str)
            else None,
        ),
    )


async def doh_control(
    names: Sequence[str], state: RunState, urls: Sequence[str] = dns.PUBLIC_DOH_URLS
) -> dict[str, list[dict[str, Any]]]:
    """DNS over HTTPS for `names` (A and AAAA) through the first public resolver that answers:
    the DNS-only control used when no control server answered and no `--resolver` was given."""
    import httpx

    out: dict[str, list[dict[str, Any]]] = {}
    names = [n for n in names if parse_ip(n) is None]
    if not names:
        return out
    timeout = state.config.timeout
    async with httpx.AsyncClient(timeout=timeout, http2=False) as client:
        for url in urls:
            queries: dict[str, list[DNSQuery]] = {}

            async def lookup(name: str, url: str = url, queries: Any = queries) -> None:
                trace = Trace(0.0, state.next_transaction_id())
                found = []
                for query_type in ("A", "AAAA"):
                    found.append(
                        await dns.resolve_doh(
                            name, query_type, url, trace=trace, timeout=timeout, client=client
                        )
                    )
                queries[name] = found

            async with asyncio.TaskGroup() as group:
                for name in names:
                    group.create_task(lookup(name))
            answered = any(q.failure is None for qs in queries.values() for q in qs)
            if answered:
                return {name: [q.to_dict() for q in qs] for name, qs in queries.items()}
    return out
