"""The control vantage: a server that measures the same targets from an uncensored network with
the same step functions, and the probe's client for it.

API (JSON over HTTP):
- ``GET /v1/health`` → ``{"status": "ok", "software_version": ...}``
- ``POST /v1/measure`` with ``{"targets": [<target definition>, ...]}`` → 200 with
  ``{"client": {"ip", "asn", "cc", "network_name"}, "results": [{"id", "observations"}]}``.
  The observations are `Observations.to_dict()` of `measure.measure_target`, with HTTP bodies
  removed (length, title, hash and headers stay). An endpoint the server refuses (a private or
  reserved address, unless `--allow-net` allows it) is a per-endpoint failure
  (`control_refused_destination`), never an HTTP error.
- 400 malformed request, 401 missing/wrong token, 413 too large, 503 saturated: JSON
  ``{"error": "..."}``.

The server must not become an open proxy into private networks: every resolved address and every
redirect hop is checked, request size, targets per request and concurrent work are bounded, and
response bodies never leave the server. The access log has no client addresses by default.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import logging
import os
import socket
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger, AbstractResolver, ResolveResult

from probe import __version__, dns, failures
from probe.addresses import in_networks, is_public, parse_ip, parse_unmapped
from probe.geoip import GeoIP
from probe.measure import MeasureConfig, RunState, measure_target
from probe.observations import DNSQuery, Observations, Trace
from probe.targets import CHECKS, DEFAULT_TRANSPORTS, TRANSPORTS, Target
from probe.tcp import ByteCounter

log = logging.getLogger("probe.control")

MAX_REQUEST_BYTES = 256 * 1024
MAX_TARGETS_PER_REQUEST = 400
MAX_PORTS_PER_TARGET = 8
MAX_CA_PEM_BYTES = 64 * 1024
#: A control's reply for one target (observations without bodies: DNS, a few handshakes with
#: their certificate chains, headers) stays far below this; the cap scales with the request.
MAX_REPLY_BYTES_PER_TARGET = 256 * 1024
MAX_REPLY_BYTES_BASE = 1024 * 1024
DEFAULT_MAX_CONCURRENT_REQUESTS = 4


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


def make_address_guard(
    allow_nets: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> Any:
    """True for an address the control must refuse: not public and not explicitly allowed."""

    def refuse(ip: str) -> bool:
        address = parse_unmapped(ip)
        if address is None:
            return True
        return not in_networks(address, allow_nets) and not is_public(str(address))

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


def target_from_request(d: Any, ca_dir: str) -> Target:
    """A Target from a request's target definition, checked strictly (it comes from anyone)."""
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
    if url is not None:
        parts = urlsplit(url)
        try:
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            raise BadRequest(f"target {target_id}: bad url port") from None
        if parts.scheme != check or not parts.hostname:
            raise BadRequest(f"target {target_id}: url must be {check}://host/...")
    ports_raw = d.get("ports") or ([] if url else [443])
    if (
        not isinstance(ports_raw, list)
        or len(ports_raw) > MAX_PORTS_PER_TARGET
        or not all(isinstance(p, int) and not isinstance(p, bool) for p in ports_raw)
        or not all(1 <= p <= 65535 for p in ports_raw)
    ):
        raise BadRequest(f"target {target_id}: ports must be up to 8 integers in 1..65535")
    transports_raw = d.get("transports") or list(DEFAULT_TRANSPORTS)
    if not isinstance(transports_raw, list) or not all(t in TRANSPORTS for t in transports_raw):
        raise BadRequest(f"target {target_id}: unknown transport")
    dc = d.get("dc")
    if dc is not None and (
        not isinstance(dc, int) or isinstance(dc, bool) or not -32768 <= dc <= 32767
    ):
        raise BadRequest(f"target {target_id}: dc must be an integer in -32768..32767")
    sni = _string(d, "sni", limit=255)
    ca_path = None
    ca_pem = d.get("x_ca_pem")
    if ca_pem is not None:
        if not isinstance(ca_pem, str) or len(ca_pem) > MAX_CA_PEM_BYTES:
            raise BadRequest(f"target {target_id}: x_ca_pem must be a PEM string up to 64 KiB")
        ca_path = _store_ca(ca_pem, ca_dir)
    return Target(
        id=target_id,
        service=service,
        check=check,
        host=host,
        url=url,
        ports=tuple(ports_raw),
        sni=sni,
        transports=tuple(transports_raw),
        ca=ca_path,
        dc=dc,
    )


def _store_ca(pem: str, ca_dir: str) -> str:
    """Write a target's extra roots once, named by their hash (contexts are cached by path)."""
    from cryptography import x509

    try:
        certs = x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        raise BadRequest("x_ca_pem holds no PEM certificate") from None
    if not certs:
        raise BadRequest("x_ca_pem holds no PEM certificate")
    path = os.path.join(ca_dir, hashlib.sha256(pem.encode()).hexdigest() + ".pem")
    if not os.path.exists(path):
        with open(path, "w") as handle:
            handle.write(pem)
    return path


def strip_bodies(observations: Observations) -> Observations:
    """The control returns length, title, hash and headers of responses, never bodies."""
    for transaction in observations.requests:
        transaction.body = None
    return observations


class _AccessLogger(AbstractAccessLogger):
    """Method, path, status and duration; the client's address only when asked for."""

    with_addresses = False

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        who = f"{request.remote} " if self.with_addresses else ""
        self.logger.info(
            "%s%s %s %s %.3fs", who, request.method, request.path, response.status, time
        )


def _json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def create_app(config: ControlServerConfig) -> web.Application:
    """The aiohttp application of `probe control serve`."""
    app = web.Application(client_max_size=config.max_request_bytes)
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
    geoip = GeoIP(config.geoip_dbs)
    ca_dir = tempfile.mkdtemp(prefix="probe-control-ca-")
    pool = dns.GetaddrinfoPool()

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
        if busy.locked():
            response = _json_error(503, "saturated: try again later")
            response.headers["Retry-After"] = "30"
            return response
        async with busy:
            try:
                body = await request.json()
            except web.HTTPRequestEntityTooLarge:
                return _json_error(413, f"request larger than {config.max_request_bytes} bytes")
            except ValueError:
                return _json_error(400, "the body is not JSON")
            try:
                targets = _parse_targets(body, config.max_targets, ca_dir)
            except BadRequest as exc:
                return _json_error(400, str(exc))
            resolver = dns.Resolver(
                measure_config.resolver, pool=pool, source_address=measure_config.source_address
            )
            state = RunState(config=measure_config, resolver=resolver)
            results = await _measure_many(targets, state)
            for observations in results:
                geoip.annotate(observations.queries)
            client_ip = request.remote or ""
            info = geoip.lookup(client_ip)
            return web.json_response(
                {
                    "software_version": __version__,
                    "client": {
                        "ip": client_ip,
                        "asn": info.asn,
                        "cc": info.cc,
                        "network_name": info.as_org_name,
                    },
                    "results": [
                        {"id": t.id, "observations": strip_bodies(o).to_dict()}
                        for t, o in zip(targets, results, strict=True)
                    ],
                }
            )

    async def on_cleanup(app: web.Application) -> None:
        pool.close()
        geoip.close()

    app.router.add_get("/v1/health", health)
    app.router.add_post("/v1/measure", measure)
    app.on_cleanup.append(on_cleanup)
    return app


def _parse_targets(body: Any, max_targets: int, ca_dir: str) -> list[Target]:
    if not isinstance(body, dict) or not isinstance(body.get("targets"), list):
        raise BadRequest('expected {"targets": [...]}')
    raw = body["targets"]
    if not raw:
        raise BadRequest("no targets")
    if len(raw) > max_targets:
        raise BadRequest(f"too many targets: {len(raw)} > {max_targets}")
    targets = [target_from_request(d, ca_dir) for d in raw]
    if len({t.id for t in targets}) != len(targets):
        raise BadRequest("duplicate target ids")
    return targets


async def _measure_many(targets: Sequence[Target], state: RunState) -> list[Observations]:
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(measure_target(t, state)) for t in targets]
    return [task.result() for task in tasks]


def serve(
    config: ControlServerConfig, host: str, port: int, *, log_addresses: bool = False
) -> None:
    """Run the control server until interrupted."""
    _AccessLogger.with_addresses = log_addresses
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    web.run_app(
        create_app(config),
        host=host,
        port=port,
        access_log_class=_AccessLogger,
        print=lambda text: log.info(text.replace("\n", " ")),
    )


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
