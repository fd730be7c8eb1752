"""Observation dataclasses: what one step saw, in OONI's field names (FACTS.md §4).

Every step returns one of these. `t0`/`t` are seconds since the measurement's zero time
(`Trace.zero`), `transaction_id` is shared by the steps of one endpoint flow. `to_dict()` gives
the OONI-shaped JSON object; `from_dict()` reads it back (records, control replies).
Our own additions use the ``x_`` prefix, which OONI readers ignore.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

_INF = float("inf")

# Caps that keep a hostile peer from growing a record without bound.
MAX_NETWORK_EVENTS_PER_FLOW = 64


@dataclass(slots=True)
class Trace:
    """Shared by the steps of one endpoint flow: the zero time, the flow's id, its events."""

    zero: float
    transaction_id: int
    events: list[NetworkEvent] = field(default_factory=list)

    def now(self) -> float:
        return round(time.monotonic() - self.zero, 6)

    def add_event(self, event: NetworkEvent) -> None:
        if len(self.events) < MAX_NETWORK_EVENTS_PER_FLOW:
            self.events.append(event)


# Readers of stored records and control replies: the data comes from files and peers we do not
# control, so a field of the wrong type becomes the default instead of an exception. `_int` and
# `_float` test first for the exact type our own records hold (`type(x) is int` also keeps bool
# out): the analysis reads every record it is given back, 7 fields per network event.


def _int(value: Any, default: int = 0) -> int:
    if type(value) is int:
        return value
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return default


def _int_or_none(value: Any) -> int | None:
    return None if value is None else _int(value, default=None)  # type: ignore[arg-type]


def _float(value: Any, default: float = 0.0) -> float:
    if type(value) is float and -_INF < value < _INF:  # finite (NaN fails both comparisons)
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    number = float(value)
    return number if number == number and abs(number) != float("inf") else default


def _float_or_none(value: Any) -> float | None:
    return None if value is None else _float(value, default=None)  # type: ignore[arg-type]


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _str(value: Any, default: str = "") -> str:
    return value if isinstance(value, str) else default


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


@dataclass(slots=True)
class NetworkEvent:
    """df-008: one socket operation (connect, read, write, tls_handshake_start, ...)."""

    operation: str
    address: str | None = None
    num_bytes: int | None = None
    failure: str | None = None
    t0: float = 0.0
    t: float = 0.0
    transaction_id: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "address": self.address,
            "num_bytes": self.num_bytes,
            "failure": self.failure,
            "t0": self.t0,
            "t": self.t,
            "transaction_id": self.transaction_id,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetworkEvent:
        return cls(
            operation=_str(d.get("operation")),
            address=_str_or_none(d.get("address")),
            num_bytes=_int_or_none(d.get("num_bytes")),
            failure=_str_or_none(d.get("failure")),
            t0=_float(d.get("t0")),
            t=_float(d.get("t")),
            transaction_id=_int(d.get("transaction_id")),
        )


@dataclass(slots=True)
class DNSAnswer:
    """One answer record. `answer_type` is A, AAAA or CNAME."""

    answer_type: str
    ipv4: str | None = None
    ipv6: str | None = None
    hostname: str | None = None
    ttl: int | None = None
    asn: int | None = None
    as_org_name: str | None = None

    @property
    def ip(self) -> str | None:
        return self.ipv4 or self.ipv6

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"answer_type": self.answer_type, "ttl": self.ttl}
        if self.ipv4 is not None:
            d["ipv4"] = self.ipv4
        if self.ipv6 is not None:
            d["ipv6"] = self.ipv6
        if self.hostname is not None:
            d["hostname"] = self.hostname
        d["asn"] = self.asn
        d["as_org_name"] = self.as_org_name
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DNSAnswer:
        return cls(
            answer_type=_str(d.get("answer_type")),
            ipv4=_str_or_none(d.get("ipv4")),
            ipv6=_str_or_none(d.get("ipv6")),
            hostname=_str_or_none(d.get("hostname")),
            ttl=_int_or_none(d.get("ttl")),
            asn=_int_or_none(d.get("asn")),
            as_org_name=_str_or_none(d.get("as_org_name")),
        )


@dataclass(slots=True)
class DNSQuery:
    """df-002: one query and its reply. A duplicate reply to one UDP query (an injected answer
    racing the genuine one) is recorded as a second DNSQuery with `x_duplicate = True`."""

    hostname: str
    query_type: str  # A | AAAA | ANY (getaddrinfo asks for both)
    engine: str  # getaddrinfo | udp | tcp | doh
    resolver_address: str  # "" for getaddrinfo (the system decides)
    answers: list[DNSAnswer] = field(default_factory=list)
    failure: str | None = None
    rcode: int | None = None
    raw_response: str | None = None  # base64 of the reply message
    t0: float = 0.0
    t: float = 0.0
    transaction_id: int = 0
    x_duplicate: bool = False
    x_queue_time: float | None = None  # getaddrinfo: seconds spent waiting for a worker

    @property
    def failed_operation(self) -> str | None:
        return "resolve" if self.failure else None

    def addresses(self) -> list[str]:
        return [a.ip for a in self.answers if a.ip]

    def to_dict(self) -> dict[str, Any]:
        return {
            "answers": [a.to_dict() for a in self.answers],
            "engine": self.engine,
            "failure": self.failure,
            "failed_operation": self.failed_operation,
            "hostname": self.hostname,
            "query_type": self.query_type,
            "rcode": self.rcode,
            "raw_response": self.raw_response,
            "resolver_address": self.resolver_address,
            "t0": self.t0,
            "t": self.t,
            "transaction_id": self.transaction_id,
            "x_duplicate": self.x_duplicate,
            "x_queue_time": self.x_queue_time,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DNSQuery:
        return cls(
            hostname=_str(d.get("hostname")),
            query_type=_str(d.get("query_type")),
            engine=_str(d.get("engine")),
            resolver_address=_str(d.get("resolver_address")),
            answers=[
                DNSAnswer.from_dict(a) for a in _list(d.get("answers")) if isinstance(a, dict)
            ],
            failure=_str_or_none(d.get("failure")),
            rcode=_int_or_none(d.get("rcode")),
            raw_response=_str_or_none(d.get("raw_response")),
            t0=_float(d.get("t0")),
            t=_float(d.get("t")),
            transaction_id=_int(d.get("transaction_id")),
            x_duplicate=d.get("x_duplicate") is True,
            x_queue_time=_float_or_none(d.get("x_queue_time")),
        )


@dataclass(slots=True)
class TCPConnect:
    """df-005: one TCP connect to ip:port."""

    ip: str
    port: int
    success: bool
    failure: str | None = None
    t0: float = 0.0
    t: float = 0.0
    transaction_id: int = 0

    @property
    def failed_operation(self) -> str | None:
        return "connect" if self.failure else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ip": self.ip,
            "port": self.port,
            "status": {"success": self.success, "failure": self.failure, "blocked": None},
            "failed_operation": self.failed_operation,
            "t0": self.t0,
            "t": self.t,
            "transaction_id": self.transaction_id,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TCPConnect:
        status = _dict(d.get("status"))
        return cls(
            ip=_str(d.get("ip")),
            port=_int(d.get("port")),
            success=status.get("success") is True,
            failure=_str_or_none(status.get("failure")),
            t0=_float(d.get("t0")),
            t=_float(d.get("t")),
            transaction_id=_int(d.get("transaction_id")),
        )


@dataclass(slots=True)
class TLSHandshake:
    """df-006: one TLS handshake. `peer_certificates` is the chain as sent by the peer (DER,
    base64), recorded also when verification failed."""

    address: str  # "ip:port" ("[v6]:port")
    server_name: str
    network: str = "tcp"
    tls_version: str | None = None
    cipher_suite: str | None = None
    negotiated_protocol: str | None = None
    no_tls_verify: bool = False
    peer_certificates: list[str] = field(default_factory=list)
    failure: str | None = None
    failed_operation: str | None = None
    t0: float = 0.0
    t: float = 0.0
    transaction_id: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "network": self.network,
            "address": self.address,
            "server_name": self.server_name,
            "tls_version": self.tls_version,
            "cipher_suite": self.cipher_suite,
            "negotiated_protocol": self.negotiated_protocol,
            "no_tls_verify": self.no_tls_verify,
            "peer_certificates": [{"format": "base64", "data": c} for c in self.peer_certificates],
            "failure": self.failure,
            "failed_operation": self.failed_operation,
            "t0": self.t0,
            "t": self.t,
            "transaction_id": self.transaction_id,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TLSHandshake:
        certs = [
            str(c.get("data")) for c in _list(d.get("peer_certificates")) if isinstance(c, dict)
        ]
        return cls(
            address=_str(d.get("address")),
            server_name=_str(d.get("server_name")),
            network=_str(d.get("network"), "tcp"),
            tls_version=_str_or_none(d.get("tls_version")),
            cipher_suite=_str_or_none(d.get("cipher_suite")),
            negotiated_protocol=_str_or_none(d.get("negotiated_protocol")),
            no_tls_verify=d.get("no_tls_verify") is True,
            peer_certificates=certs,
            failure=_str_or_none(d.get("failure")),
            failed_operation=_str_or_none(d.get("failed_operation")),
            t0=_float(d.get("t0")),
            t=_float(d.get("t")),
            transaction_id=_int(d.get("transaction_id")),
        )


def _headers_map(headers_list: list[tuple[str, str]]) -> dict[str, str]:
    """OONI's `headers`: one value per name (the first one wins)."""
    out: dict[str, str] = {}
    for name, value in headers_list:
        out.setdefault(name, value)
    return out


@dataclass(slots=True)
class HTTPTransaction:
    """df-001: one HTTP request and its response (one hop of a redirect chain).

    `body` is a snapshot of the decoded body, at most the body cap; the control never sends
    bodies, only `x_body_length`, `x_body_sha256`, `x_title` and the headers."""

    url: str
    method: str = "GET"
    request_headers: list[tuple[str, str]] = field(default_factory=list)
    address: str | None = None  # "ip:port" the request went to
    response_code: int | None = None
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    body: str | None = None
    body_is_truncated: bool = False
    body_length: int | None = None  # decoded bytes read (up to the cap)
    body_sha256: str | None = None
    title: str | None = None
    location: str | None = None  # a redirect's target, resolved against `url`
    failure: str | None = None
    failed_operation: str | None = None
    t0: float = 0.0
    t: float = 0.0
    transaction_id: int = 0

    def to_dict(self) -> dict[str, Any]:
        response: dict[str, Any] | None = None
        if self.response_code is not None:
            response = {
                "code": self.response_code,
                "headers_list": [list(h) for h in self.response_headers],
                "headers": _headers_map(self.response_headers),
                "body": self.body,
                "body_is_truncated": self.body_is_truncated,
                "x_body_length": self.body_length,
                "x_body_sha256": self.body_sha256,
                "x_title": self.title,
            }
        return {
            "request": {
                "url": self.url,
                "method": self.method,
                "headers_list": [list(h) for h in self.request_headers],
                "headers": _headers_map(self.request_headers),
                "x_address": self.address,
            },
            "response": response,
            "failure": self.failure,
            "failed_operation": self.failed_operation,
            "x_location": self.location,
            "t0": self.t0,
            "t": self.t,
            "transaction_id": self.transaction_id,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HTTPTransaction:
        request = _dict(d.get("request"))
        response = _dict(d.get("response"))

        def pairs(v: Any) -> list[tuple[str, str]]:
            return [
                (str(h[0]), str(h[1]))
                for h in _list(v)
                if isinstance(h, list | tuple) and len(h) >= 2
            ]

        # OONI encodes non-UTF-8 bodies as {"format": "base64", ...}: not text, not kept here.
        body = _str_or_none(response.get("body"))
        return cls(
            url=_str(request.get("url")),
            method=_str(request.get("method"), "GET"),
            request_headers=pairs(request.get("headers_list")),
            address=_str_or_none(request.get("x_address")),
            response_code=_int_or_none(response.get("code")),
            response_headers=pairs(response.get("headers_list"))
            or [(str(k), str(v)) for k, v in _dict(response.get("headers")).items()],
            body=body,
            body_is_truncated=response.get("body_is_truncated") is True,
            body_length=_int_or_none(response.get("x_body_length")),
            body_sha256=_str_or_none(response.get("x_body_sha256")),
            title=_str_or_none(response.get("x_title")),
            location=_str_or_none(d.get("x_location")),
            failure=_str_or_none(d.get("failure")),
            failed_operation=_str_or_none(d.get("failed_operation")),
            t0=_float(d.get("t0")),
            t=_float(d.get("t")),
            transaction_id=_int(d.get("transaction_id")),
        )


@dataclass(slots=True)
class MTProtoHandshake:
    """Our own: one unencrypted req_pq_multi exchange over one transport.

    `reply` says what came back: "res_pq" (our nonce echoed), "transport_error" (a bare
    negative code such as -404: the peer speaks MTProto), or None on failure."""

    address: str  # "ip:port"
    transport: str  # abridged | intermediate | padded_intermediate | obfuscated2
    success: bool = False
    failure: str | None = None
    failed_operation: str | None = None
    reply: str | None = None
    error_code: int | None = None
    bytes_sent: int = 0
    bytes_received: int = 0
    server_public_key_fingerprints: list[str] = field(default_factory=list)
    #: one of those fingerprints is a key of Telegram's official clients (consistent with
    #: Telegram, not proof: the fingerprints are public); None when no resPQ came
    known_key: bool | None = None
    first_bytes: str | None = None  # hex of the first bytes received when they were foreign
    t0: float = 0.0
    t: float = 0.0
    transaction_id: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "transport": self.transport,
            "success": self.success,
            "failure": self.failure,
            "failed_operation": self.failed_operation,
            "reply": self.reply,
            "error_code": self.error_code,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "server_public_key_fingerprints": list(self.server_public_key_fingerprints),
            "known_key": self.known_key,
            "first_bytes": self.first_bytes,
            "t0": self.t0,
            "t": self.t,
            "transaction_id": self.transaction_id,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MTProtoHandshake:
        return cls(
            address=_str(d.get("address")),
            transport=_str(d.get("transport")),
            success=d.get("success") is True,
            failure=_str_or_none(d.get("failure")),
            failed_operation=_str_or_none(d.get("failed_operation")),
            reply=_str_or_none(d.get("reply")),
            error_code=_int_or_none(d.get("error_code")),
            bytes_sent=_int(d.get("bytes_sent")),
            bytes_received=_int(d.get("bytes_received")),
            server_public_key_fingerprints=[
                str(x) for x in _list(d.get("server_public_key_fingerprints"))
            ],
            known_key=d.get("known_key") if isinstance(d.get("known_key"), bool) else None,
            first_bytes=_str_or_none(d.get("first_bytes")),
            t0=_float(d.get("t0")),
            t=_float(d.get("t")),
            transaction_id=_int(d.get("transaction_id")),
        )


@dataclass(slots=True)
class Observations:
    """Everything measured for one target (by the probe, or by the control for it)."""

    queries: list[DNSQuery] = field(default_factory=list)
    tcp_connect: list[TCPConnect] = field(default_factory=list)
    tls_handshakes: list[TLSHandshake] = field(default_factory=list)
    requests: list[HTTPTransaction] = field(default_factory=list)
    network_events: list[NetworkEvent] = field(default_factory=list)
    mtproto: list[MTProtoHandshake] = field(default_factory=list)

    def extend(self, other: Observations) -> None:
        self.queries.extend(other.queries)
        self.tcp_connect.extend(other.tcp_connect)
        self.tls_handshakes.extend(other.tls_handshakes)
        self.requests.extend(other.requests)
        self.network_events.extend(other.network_events)
        self.mtproto.extend(other.mtproto)

    def to_dict(self) -> dict[str, Any]:
        return {
            "queries": [q.to_dict() for q in self.queries],
            "tcp_connect": [c.to_dict() for c in self.tcp_connect],
            "tls_handshakes": [h.to_dict() for h in self.tls_handshakes],
            "requests": [r.to_dict() for r in self.requests],
            "network_events": [e.to_dict() for e in self.network_events],
            "mtproto": [m.to_dict() for m in self.mtproto],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Observations:
        def items(key: str) -> list[dict[str, Any]]:
            value = d.get(key)
            return [x for x in value if isinstance(x, dict)] if isinstance(value, list) else []

        return cls(
            queries=[DNSQuery.from_dict(x) for x in items("queries")],
            tcp_connect=[TCPConnect.from_dict(x) for x in items("tcp_connect")],
            tls_handshakes=[TLSHandshake.from_dict(x) for x in items("tls_handshakes")],
            requests=[HTTPTransaction.from_dict(x) for x in items("requests")],
            network_events=[NetworkEvent.from_dict(x) for x in items("network_events")],
            mtproto=[MTProtoHandshake.from_dict(x) for x in items("mtproto")],
        )


def format_address(ip: str, port: int) -> str:
    """ "ip:port", with brackets around IPv6 literals."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


#: What one target's record keeps of HTTP response heads and bodies, in characters: a chain of
#: 10 redirects with 64 KiB heads and 64 KiB bodies on each of 8 addresses would otherwise be
#: ~20 MB of record for one target (and twice that in JSON, where headers appear as a list and
#: as a map). Past the budget, later responses keep their status, length, hash and title but
#: not their body, and at most TRIMMED_HEADERS headers.
MAX_KEPT_HTTP_CHARS = 1024 * 1024
TRIMMED_HEADERS = 16


def bound_http(observations: Observations, budget: int = MAX_KEPT_HTTP_CHARS) -> int:
    """Trim `observations.requests` in place to `budget` characters of heads and bodies,
    first responses first (where blocking shows); returns how many responses were trimmed."""
    used = 0
    trimmed = 0
    for transaction in observations.requests:
        # heads count twice: a record holds them as a list and as a map
        head = 2 * sum(len(n) + len(v) for n, v in transaction.response_headers)
        body = len(transaction.body or "")
        if used + head + body <= budget:
            used += head + body
            continue
        trimmed += 1
        transaction.body = None
        if head > budget - used or len(transaction.response_headers) > TRIMMED_HEADERS:
            transaction.response_headers = transaction.response_headers[:TRIMMED_HEADERS]
        used += 2 * sum(len(n) + len(v) for n, v in transaction.response_headers)
    return trimmed
