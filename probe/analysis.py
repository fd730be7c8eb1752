"""The verdict: a pure function of one stored record (no I/O, no clock).

Input is a result record (DESIGN.md "Contract: result records"): the target's definition, the
probe's observations, the control's observations for the same target (or a `control_failure`),
DNS-over-HTTPS answers used as a DNS-only control (`x_doh`), and the round-level facts in
`x_vantage`. Output is a `Verdict` for the target and an `EndpointOutcome` per endpoint flow.

How it decides (docs/verdicts.md says the same in plain words):

1. DNS, for a target named by a host name: an answer matching a blocking fingerprint, a bogon the
   control does not also return, an answer outside `expect_asn`, answers of one engine sharing
   no address and no network with the control, or a failure here while the control resolved
   the name. Every lookup the probe made is judged, DNS over HTTPS/TLS included; without a
   control, the probe's own encrypted answers check its plain ones. A loopback answer is never
   "a known blocking address" (services publish 127.0.0.1 on purpose), and a fingerprint of
   another country than the probe's is named but proves nothing. An answer is rehabilitated
   when the address proved itself: a TLS certificate verified for the name on it, a genuine
   MTProto reply from it, or a plain-HTTP page that matches the control.
2. Each endpoint flow (one address and port; for MTProto one per transport) is judged at the
   first step that failed, compared with the control's flow to the same address (else with the
   control's flows for the target on the same port): it fails here but not there → blocked at
   that layer; it fails at the control too → down; no control → inconclusive unless the
   evidence stands on its own (a fingerprint, a forged MTProto reply, another transport of the
   same address working). Attempts on one endpoint (retries, several requests, separate flows
   to the same address and port) are judged together: a failure is hidden by an attempt that
   got past the step that failed. A page matching a look-alike fingerprint (scope fp) is never
   http-diff. An IPv6 endpoint failing while no IPv4 endpoint fails, on a vantage whose IPv6 is
   not proven, is inconclusive.
3. The target: blocked if DNS or any endpoint is blocked (`blocking` = the first layer in the
   order dns, tcp, tls, http-failure, http-diff, protocol), else ok if any endpoint works with
   the evidence its check promises (an http/https target needs more than a TCP connect; any
   target but a DNS one needs more than DNS), else down or inconclusive. On an offline vantage
   nothing is ever blocked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from probe import failures
from probe.addresses import is_bogon, is_ipv6, parse_ip
from probe.fingerprints import FingerprintDB, Match, default_db
from probe.observations import (
    DNSAnswer,
    DNSQuery,
    HTTPTransaction,
    MTProtoHandshake,
    Observations,
    TCPConnect,
    TLSHandshake,
    format_address,
)
from probe.service import (
    EndpointFact,
    TargetVerdict,
    baselines_work,
    local_evidence,
    service_facts,
    usable_and_interfered,
)

# --- vocabulary -----------------------------------------------------------------------------

OK = "ok"
BLOCKED = "blocked"
DOWN = "down"
INCONCLUSIVE = "inconclusive"
SKIPPED = "skipped"
STATUSES = (OK, BLOCKED, DOWN, INCONCLUSIVE)

DNS = "dns"
TCP = "tcp"
TLS = "tls"
HTTP_FAILURE = "http-failure"
HTTP_DIFF = "http-diff"
PROTOCOL = "protocol"
#: The order in which `blocking` names the first layer that failed.
LAYERS = (DNS, TCP, TLS, HTTP_FAILURE, HTTP_DIFF, PROTOCOL)

CERTIFICATE_FAILURES = frozenset(
    {
        failures.SSL_INVALID_HOSTNAME,
        failures.SSL_UNKNOWN_AUTHORITY,
        failures.SSL_INVALID_CERTIFICATE,
    }
)
#: A forged MTProto reply: no genuine data centre sends these, so they need no control.
FORGED_MTPROTO = frozenset({failures.MTPROTO_FOREIGN_REPLY, failures.MTPROTO_NONCE_MISMATCH})
#: Observations that say nothing about the network (the step did not run, or was refused).
NOT_MEASURED = frozenset({failures.SKIPPED, failures.CONTROL_REFUSED_DESTINATION})
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
#: What a vantage without an IPv6 route says when asked to reach an IPv6 address.
NO_ROUTE = frozenset(
    {
        failures.NETWORK_UNREACHABLE,
        failures.HOST_UNREACHABLE,
        failures.NETWORK_DOWN,
        failures.ADDRESS_NOT_AVAILABLE,
        failures.PROTOCOL_NOT_SUPPORTED,
    }
)

# OONI's Web Connectivity comparison (FACTS.md §4).
BODY_PROPORTION_THRESHOLD = 0.7
TITLE_WORD_MIN = 5
#: Header names every server sends; only the others characterise a server (OONI's list).
COMMON_HEADERS = frozenset(
    {
        "date",
        "content-type",
        "server",
        "cache-control",
        "vary",
        "set-cookie",
        "location",
        "expires",
        "x-powered-by",
        "content-encoding",
        "last-modified",
        "accept-ranges",
        "pragma",
        "x-frame-options",
        "etag",
        "x-content-type-options",
        "age",
        "via",
        "p3p",
        "x-xss-protection",
        "content-language",
        "cf-ray",
        "strict-transport-security",
        "link",
        "x-varnish",
        "content-length",
        "connection",
        "transfer-encoding",
        "keep-alive",
    }
)
_TITLE_RE = re.compile(r"<title\b[^>]{0,200}>(.{0,400}?)</title", re.IGNORECASE | re.DOTALL)
_SCOPE_WORDS = {
    "nat": "national",
    "isp": "ISP-level",
    "prod": "filtering-product",
    "inst": "institutional",
    "vbw": "filtering",
    "prov": "provider",
    "injb": "injected",
}
#: At most this many addresses are named in one reason.
MAX_NAMED = 3
#: DNS engines whose answers an on-path censor cannot forge (OONI's `doh` and `dot`).
ENCRYPTED_ENGINES = frozenset({"doh", "dot"})
_ENGINE_WORDS = {
    "getaddrinfo": "the system resolver",
    "doh": "DNS over HTTPS",
    "dot": "DNS over TLS",
    "udp": "DNS over UDP",
    "tcp": "DNS over TCP",
}
#: Checks whose `ok` needs a connection (DNS alone is not enough), and those that need a page
#: or a verified handshake (a bare TCP connect is not enough).
CONNECTING_CHECKS = frozenset({"tcp", "tls", "http", "https", "mtproto"})
PAGE_CHECKS = frozenset({"http", "https"})

# How far an attempt on an endpoint got (`EndpointOutcome.reached`): a failure is hidden by
# another attempt on the same endpoint that got further than the step that failed.
REACHED_NOTHING = 0  # the TCP connect failed
REACHED_TCP = 1  # connected (TLS, the HTTP exchange or MTProto failed next)
REACHED_TLS = 2  # the handshake completed (or, for plain HTTP, the exchange failed)
REACHED_RESPONSE = 3  # a first HTTP response (a redirect), or an MTProto reply
REACHED_PAGE = 4  # the chain ended in a final response
#: The step a failure at each layer stopped at.
_REACHED_BEFORE = {
    TCP: REACHED_NOTHING,
    TLS: REACHED_TCP,
    HTTP_FAILURE: REACHED_TLS,
    PROTOCOL: REACHED_TLS,
    DNS: REACHED_RESPONSE,
    HTTP_DIFF: REACHED_RESPONSE,
}


# --- results --------------------------------------------------------------------------------


INTERRUPTED_REASON = "The run was interrupted before this target was measured."


@dataclass(frozen=True, slots=True)
class Verdict:
    status: str  # ok | blocked | down | inconclusive
    blocking: str | None  # dns | tcp | tls | http-failure | http-diff | protocol
    confirmed: bool  # a known blocking fingerprint matched
    fingerprints: list[str]
    reason: str  # one human sentence naming the evidence

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "blocking": self.blocking,
            "confirmed": self.confirmed,
            "fingerprints": list(self.fingerprints),
            "reason": self.reason,
        }


@dataclass(slots=True)
class EndpointOutcome:
    """What happened on one endpoint flow. `evidence` is the phrase the reason is built from."""

    address: str
    port: int
    transport: str | None
    outcome: str  # ok | blocked | down | inconclusive | skipped
    failure: str | None = None
    failed_operation: str | None = None
    blocking: str | None = None
    confirmed: bool = False
    fingerprints: list[str] = field(default_factory=list)
    evidence: str = ""
    #: the address proved it belongs to the service (verified TLS, MTProto reply, HTTP match)
    proves_address: bool = False
    #: the layer of a failure here that had no control to compare with (the candidates for
    #: the service-level local evidence of probe.service); None otherwise
    unexplained_layer: str | None = None
    #: what failed, without the "no control" clause (for the local-evidence sentence)
    unexplained_what: str = ""
    #: how far this attempt got (REACHED_*): judging attempts on one endpoint together
    reached: int = REACHED_NOTHING

    @property
    def label(self) -> str:
        if not self.address:
            return "an unrecorded address"
        where = format_address(self.address, self.port) if self.port else self.address
        return f"{where} ({self.transport})" if self.transport else where

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "port": self.port,
            "transport": self.transport,
            "outcome": self.outcome,
            "blocking": self.blocking,
            "failure": self.failure,
            "failed_operation": self.failed_operation,
        }


@dataclass(frozen=True, slots=True)
class Analysis:
    verdict: Verdict
    endpoints: list[EndpointOutcome]

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.to_dict(),
            "x_endpoints": [e.to_dict() for e in self.endpoints],
        }


# --- small helpers --------------------------------------------------------------------------


def _split_address(address: str | None) -> tuple[str, int] | None:
    """("ip", port) from "ip:port" or "[v6]:port"; None when it is not that."""
    if not address:
        return None
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port_text = rest.removeprefix(":")
    else:
        host, sep, port_text = address.rpartition(":")
        if not sep or ":" in host:
            return None
    if parse_ip(host) is None or not port_text.isdigit():
        return None
    return str(parse_ip(host)), int(port_text)


def _norm_ip(ip: str) -> str:
    address = parse_ip(ip)
    return str(address) if address is not None else ip


def _url_endpoint(url: str) -> tuple[str, int] | None:
    """(host, port) of a URL; a bare `host[:port][/path]` without a scheme is read as http."""
    try:
        parts = urlsplit(url if "://" in url else "//" + url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    host = parts.hostname or ""
    return (host, port) if host else None


def _names(items: Iterable[str], limit: int = MAX_NAMED) -> str:
    values = list(dict.fromkeys(items))
    if not values:
        return "nothing"
    shown = ", ".join(values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


def _answer_label(answer: DNSAnswer) -> str:
    ip = answer.ip or "?"
    return f"{ip} (AS{answer.asn})" if answer.asn else ip


def _title_of(transaction: HTTPTransaction) -> str | None:
    if transaction.title:
        return transaction.title
    if transaction.body:
        found = _TITLE_RE.search(transaction.body[:65536])
        if found:
            return " ".join(found.group(1).split())
    return None


def _body_length(transaction: HTTPTransaction) -> int | None:
    if transaction.body_length is not None:
        return int(transaction.body_length)
    if transaction.body is not None:
        return len(transaction.body.encode("utf-8", errors="replace"))
    return None


def _is_interrupted(failure: str | None) -> bool:
    return failure == failures.INTERRUPTED


def _measured(failure: str | None) -> bool:
    return failure not in NOT_MEASURED


# --- flows: one endpoint's observations -----------------------------------------------------


@dataclass(slots=True)
class _Flow:
    """The steps of one endpoint flow, in order: grouped by transaction id (ours: one per
    address and port) or, when a record has none, by address."""

    origin: tuple[str, int] | None = None
    tcp: list[TCPConnect] = field(default_factory=list)
    tls: list[TLSHandshake] = field(default_factory=list)
    requests: list[HTTPTransaction] = field(default_factory=list)
    mtproto: list[MTProtoHandshake] = field(default_factory=list)

    def origin_address(self) -> str | None:
        return format_address(*self.origin) if self.origin else None

    def origin_tcp(self) -> TCPConnect | None:
        """The connect to the origin: a successful one if any (MTProto connects once per
        transport), else the first failure."""
        mine = [c for c in self.tcp if self.origin and (_norm_ip(c.ip), c.port) == self.origin]
        for connect in mine:
            if connect.success:
                return connect
        return mine[0] if mine else None

    def origin_tls(self) -> TLSHandshake | None:
        """The handshake on the origin: a verified success if any (retries are judged
        together), else any success, else the first failure."""
        address = self.origin_address()
        mine = [
            h for h in self.tls if _split_address(h.address) == self.origin or h.address == address
        ]
        if not mine:  # older OONI data records no address
            mine = [h for h in self.tls if _split_address(h.address) is None]
        for handshake in mine:
            if handshake.failure is None and not handshake.no_tls_verify:
                return handshake
        for handshake in mine:
            if handshake.failure is None:
                return handshake
        return mine[0] if mine else None

    def hop_failure(self) -> tuple[str | None, str] | None:
        """The last later hop of a redirect chain that could not be opened (connect or
        handshake failed) and was not opened on another try either."""
        found: tuple[str | None, str] | None = None
        connected = {(_norm_ip(c.ip), c.port) for c in self.tcp if c.success}
        for c in self.tcp:
            where = (_norm_ip(c.ip), c.port)
            if where != self.origin and not c.success and _measured(c.failure):
                if where not in connected:
                    found = (c.failure, failures.CONNECT)
        shaken = {_split_address(h.address) for h in self.tls if h.failure is None}
        for h in self.tls:
            where_tls = _split_address(h.address)
            if where_tls is not None and where_tls != self.origin and h.failure:
                if where_tls not in shaken:
                    found = (h.failure, failures.TLS_HANDSHAKE)
        return found

    def refused(self) -> bool:
        return any(c.failure == failures.CONTROL_REFUSED_DESTINATION for c in self.tcp)


def _attach_target(
    flows: dict[object, _Flow], host: str, port: int, names: dict[str, set[str]]
) -> _Flow | None:
    """For a request recorded without an address (older OONI data): the flow to the same
    port whose handshake named the host, or whose address the host resolved to."""
    best: _Flow | None = None
    for flow in flows.values():
        if flow.origin is None or flow.origin[1] != port:
            continue
        named = any(h.server_name.lower() == host for h in flow.tls)
        resolved = flow.origin[0] in names.get(host, set()) or flow.origin[0] == host
        if not (named or resolved):
            continue
        connected = any(c.success for c in flow.tcp)
        if best is None or (connected and not any(c.success for c in best.tcp)):
            best = flow
    return best


def _flows(obs: Observations) -> list[_Flow]:
    flows: dict[object, _Flow] = {}
    names: dict[str, set[str]] = {}
    for q in obs.queries:
        for a in q.answers:
            if a.ip:
                names.setdefault(q.hostname.lower().rstrip("."), set()).add(_norm_ip(a.ip))

    def flow_for(tid: int, address: str | None) -> _Flow:
        key: object = tid if tid else ("address", address)
        if key not in flows:
            flows[key] = _Flow()
        return flows[key]

    for c in obs.tcp_connect:
        flow = flow_for(c.transaction_id, format_address(_norm_ip(c.ip), c.port))
        flow.tcp.append(c)
        if flow.origin is None:
            flow.origin = (_norm_ip(c.ip), c.port)
    for h in obs.tls_handshakes:
        attached = None
        if not h.transaction_id and _split_address(h.address) is None and h.server_name:
            attached = _attach_target(flows, h.server_name.lower(), 443, names)
        flow = attached or flow_for(h.transaction_id, h.address)
        flow.tls.append(h)
        flow.origin = flow.origin or _split_address(h.address)
    for m in obs.mtproto:
        flow = flow_for(m.transaction_id, m.address)
        flow.mtproto.append(m)
        flow.origin = flow.origin or _split_address(m.address)
    for r in obs.requests:
        key_address = r.address
        endpoint = _url_endpoint(r.url)
        attached = None
        if not key_address and not r.transaction_id and endpoint:
            attached = _attach_target(flows, endpoint[0].lower(), endpoint[1], names)
        if not key_address:
            key_address = f"url:{endpoint[0]}:{endpoint[1]}" if endpoint else f"url:{r.url}"
        flow = attached or flow_for(r.transaction_id, key_address)
        flow.requests.append(r)
        if flow.origin is None:
            flow.origin = _split_address(r.address) or _url_endpoint(r.url)
    for flow in flows.values():
        flow.requests.sort(key=lambda r: r.t0)
    return list(flows.values())


# --- the control, as seen from one endpoint --------------------------------------------------


@dataclass(slots=True)
class _Control:
    """The control's observations for the target, with the lookups the rules need.

    Each lookup prefers the control's flow to the same address and port; without one it falls
    back to the control's flows on the same port (the control resolved the name itself and may
    have measured other addresses), and says None when the control has nothing to say."""

    obs: Observations
    flows: list[_Flow]

    @classmethod
    def build(cls, obs: Observations) -> _Control:
        return cls(obs, [f for f in _flows(obs) if not f.refused()])

    def _candidates(self, origin: tuple[str, int] | None) -> tuple[list[_Flow], bool]:
        same = [f for f in self.flows if origin and f.origin == origin]
        if same:
            return same, True
        port = origin[1] if origin else None
        return [f for f in self.flows if f.origin and f.origin[1] == port], False

    def tcp_ok(self, origin: tuple[str, int] | None) -> tuple[bool | None, bool]:
        flows, exact = self._candidates(origin)
        connects = [f.origin_tcp() for f in flows]
        seen = [c for c in connects if c is not None and (c.success or _measured(c.failure))]
        if not seen:
            return None, exact
        return any(c.success for c in seen), exact

    def tls_ok(self, origin: tuple[str, int] | None, server_name: str) -> tuple[bool | None, bool]:
        flows, exact = self._candidates(origin)
        handshakes = [
            h
            for f in flows
            if (h := f.origin_tls()) is not None
            and (not server_name or h.server_name.lower() == server_name.lower())
        ]
        if not handshakes:
            return None, exact
        return any(h.failure is None for h in handshakes), exact

    def tls_failure(self, origin: tuple[str, int] | None) -> str | None:
        flows, _ = self._candidates(origin)
        for f in flows:
            h = f.origin_tls()
            if h is not None and h.failure:
                return h.failure
        return None

    def mtproto_ok(self, origin: tuple[str, int] | None, transport: str) -> bool | None:
        flows, _ = self._candidates(origin)
        same = [m for f in flows for m in f.mtproto if m.transport == transport]
        same = [m for m in same if m.success or _measured(m.failure)]
        if same:
            return any(m.success for m in same)
        others = [m for f in flows for m in f.mtproto if m.success or _measured(m.failure)]
        if any(m.success for m in others):
            return True
        return None

    def final_http(
        self, origin: tuple[str, int] | None, url: str
    ) -> tuple[HTTPTransaction | None, str | None]:
        """The control's final response for the same URL (same address first), or the failure
        that ended its chain; (None, None) when the control fetched nothing comparable."""
        flows, _ = self._candidates(origin)
        chains = [c for f in flows for c in _chains(f.requests)]
        if not chains:
            chains = [c for f in _flows(self.obs) for c in _chains(f.requests)]
        same_url = [c for c in chains if _same_url(c[0].url, url)]
        chains = same_url or chains
        failure: str | None = None
        for chain in chains:
            final = chain[-1]
            if final.failure is None and final.response_code is not None:
                return final, None
            failure = failure or final.failure
        return None, failure


def _same_url(a: str, b: str) -> bool:
    return a.rstrip("/").lower() == b.rstrip("/").lower()


def _chains(requests: Sequence[HTTPTransaction]) -> list[list[HTTPTransaction]]:
    """A flow's requests (in order) as attempts: a redirect chain goes on while each request
    follows a redirect; a request for the URL the chain started with (a retry), or one after a
    failure or a final response, starts another attempt."""
    chains: list[list[HTTPTransaction]] = []
    for r in requests:
        if chains:
            chain = chains[-1]
            previous = chain[-1]
            follows = (
                previous.failure is None
                and previous.response_code in REDIRECT_CODES
                and not _same_url(r.url, chain[0].url)
            )
            if follows:
                chain.append(r)
                continue
        chains.append([r])
    return chains


# --- the HTTP comparison (OONI's Web Connectivity rules, FACTS.md §4) ------------------------


def _title_words(title: str | None) -> set[str]:
    return {w.lower() for w in (title or "").split() if len(w) >= TITLE_WORD_MIN}


def _uncommon_headers(transaction: HTTPTransaction) -> set[str]:
    return {n.lower() for n, _ in transaction.response_headers} - COMMON_HEADERS


def http_differences(probe: HTTPTransaction, control: HTTPTransaction) -> list[str]:
    """Plain-words differences between two responses; empty when they look like the same page.

    Status codes must match (unless the control got a 5xx: then the server is flaky and the
    status says nothing), and at least one of body length (smaller/larger > 0.7), title words
    of 5+ characters, or uncommon header names must agree when they can be compared."""
    differences: list[str] = []
    control_code = control.response_code or 0
    if probe.response_code != control.response_code and control_code < 500:
        differences.append(
            f"status {probe.response_code} here but {control.response_code} at the control"
        )
    checks: list[bool] = []
    probe_len, control_len = _body_length(probe), _body_length(control)
    if probe_len and control_len:
        if probe.body_is_truncated and probe_len < control_len:
            pass  # our snapshot stopped at the cap: the sizes cannot be compared
        else:
            proportion = min(probe_len, control_len) / max(probe_len, control_len)
            checks.append(proportion > BODY_PROPORTION_THRESHOLD)
            if not checks[-1]:
                differences.append(f"body {probe_len} bytes here but {control_len} at the control")
    probe_words, control_words = _title_words(_title_of(probe)), _title_words(_title_of(control))
    if control_words:
        checks.append(bool(probe_words & control_words))
        if not checks[-1]:
            differences.append(
                f"title {_title_of(probe)!r} here but {_title_of(control)!r} at the control"
            )
    probe_headers, control_headers = _uncommon_headers(probe), _uncommon_headers(control)
    if probe_headers or control_headers:
        checks.append(bool(probe_headers & control_headers))
    if differences and (not checks or not any(checks)):
        return differences
    if any(d.startswith("status") for d in differences):
        return differences
    return []


# --- the analysis ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Context:
    target: dict[str, Any]
    hostname: str | None  # the name resolved; None for an IP-literal target
    server_name: str
    expect_asn: frozenset[int]
    probe: Observations
    control: _Control | None
    control_failure: str | None
    doh: list[DNSQuery]
    offline: bool
    offline_reason: str
    ipv6_ok: bool | None
    db: FingerprintDB
    probe_cc: str | None
    #: the target's check (dns, tcp, tls, http, https, mtproto; "" when the record says none)
    check: str = ""
    #: the baseline sites answered: this connection works (probe.service.baselines_work)
    baselines_work: bool = False
    #: the round's facts about the whole service (`x_service`), when it recorded them
    service: dict[str, Any] | None = None
    #: address -> ASN, from every DNS answer in the record (probe, control, DoH)
    asn_of: dict[str, int] = field(default_factory=dict)
    trusted_ips: set[str] = field(default_factory=set)
    trusted_names: set[str] = field(default_factory=set)


def _target_hostname(target: dict[str, Any]) -> str:
    host = target.get("host")
    if isinstance(host, str) and host:
        return host.strip().strip("[]").rstrip(".").lower()
    url = target.get("url")
    if isinstance(url, str):
        endpoint = _url_endpoint(url)
        if endpoint:
            return endpoint[0].rstrip(".").lower()
    return ""


def _target_check(target: dict[str, Any]) -> str:
    check = target.get("check")
    if isinstance(check, str) and check:
        return check.lower()
    url = target.get("url")
    if isinstance(url, str) and "://" in url:
        scheme = url.split("://", 1)[0].lower()
        return scheme if scheme in PAGE_CHECKS else ""
    return ""


def _context(record: dict[str, Any], db: FingerprintDB) -> _Context:
    test_keys = record.get("test_keys") if isinstance(record.get("test_keys"), dict) else {}
    assert isinstance(test_keys, dict)
    target = test_keys.get("target") if isinstance(test_keys.get("target"), dict) else {}
    assert isinstance(target, dict)
    host = _target_hostname(target)
    hostname = None if not host or parse_ip(host) is not None else host
    probe = Observations.from_dict(test_keys)
    control_dict = test_keys.get("control")
    control = (
        _Control.build(Observations.from_dict(control_dict))
        if isinstance(control_dict, dict)
        else None
    )
    # DNS over HTTPS asked as a control (`x_doh`). The probe's own DoH/DoT lookups in
    # `queries` (OONI's engines doh and dot) are observations, judged like any other.
    doh_raw = test_keys.get("x_doh")
    doh = [DNSQuery.from_dict(q) for q in doh_raw or [] if isinstance(q, dict)]
    vantage = test_keys.get("x_vantage") if isinstance(test_keys.get("x_vantage"), dict) else {}
    assert isinstance(vantage, dict)
    baseline_ok = int(vantage.get("baseline_ok") or 0)
    baseline_total = int(vantage.get("baseline_total") or 0)
    control_reachable = bool(vantage.get("control_reachable", control is not None))
    offline = baseline_total > 0 and baseline_ok == 0 and not control_reachable
    service = test_keys.get("x_service")
    expect = target.get("expect_asn") or []
    expect_asn = frozenset(int(a) for a in expect if isinstance(a, int | str) and str(a).isdigit())
    sni = target.get("sni")
    ctx = _Context(
        target=target,
        hostname=hostname,
        server_name=(sni if isinstance(sni, str) and sni else host).lower(),
        expect_asn=expect_asn,
        probe=probe,
        control=control,
        control_failure=test_keys.get("control_failure"),
        doh=doh,
        offline=offline,
        offline_reason=(
            f"this vantage looks offline (0 of {baseline_total} baseline sites answered and no "
            "control server was reachable)"
        ),
        ipv6_ok=vantage.get("ipv6_ok"),
        db=db,
        probe_cc=record.get("probe_cc") if isinstance(record.get("probe_cc"), str) else None,
        check=_target_check(target),
        baselines_work=baselines_work(vantage),
        service=service if isinstance(service, dict) else None,
    )
    all_queries = list(probe.queries) + list(doh) + (list(control.obs.queries) if control else [])
    for query in all_queries:
        for answer in query.answers:
            if answer.ip and answer.asn:
                ctx.asn_of.setdefault(_norm_ip(answer.ip), int(answer.asn))
    if hostname is None and host:
        ctx.trusted_ips.add(_norm_ip(host))  # an IP-literal target: no DNS to doubt
    for query in probe.queries:
        for answer in query.answers:
            if answer.ip and answer.asn and expect_asn and int(answer.asn) in expect_asn:
                ctx.trusted_ips.add(_norm_ip(answer.ip))
                ctx.trusted_names.add(query.hostname.lower().rstrip("."))
    return ctx


def _no_control_phrase(ctx: _Context) -> str:
    if ctx.control_failure:
        return f"no control to compare with (the control failed: {ctx.control_failure})"
    return "no control to compare with"


def _fail_outcome(
    ctx: _Context,
    flow: _Flow,
    transport: str | None,
    layer: str,
    failure: str | None,
    operation: str | None,
    what: str,
    control_ok: bool | None,
    exact: bool,
    reached: int | None = None,
) -> EndpointOutcome:
    """A step failed here: compare with the control's view of the same step."""
    ip, port = flow.origin or ("", 0)
    outcome = EndpointOutcome(ip, port, transport, INCONCLUSIVE, failure, operation)
    outcome.reached = _REACHED_BEFORE.get(layer, REACHED_NOTHING) if reached is None else reached
    where = "the control" if exact else "the control (on its own addresses)"
    if _is_interrupted(failure):
        outcome.evidence = f"{outcome.label} was interrupted before {what} finished"
    elif ctx.ipv6_ok is False and is_ipv6(ip):
        outcome.evidence = f"{outcome.label} is IPv6 and this vantage has no IPv6"
    elif ctx.ipv6_ok is not True and is_ipv6(ip) and failure in NO_ROUTE:
        outcome.evidence = f"{outcome.label} is IPv6 and this vantage seems to have no IPv6 route"
    elif control_ok is True:
        outcome.outcome, outcome.blocking = BLOCKED, layer
        outcome.evidence = (
            f"{what} to {outcome.label} failed here ({failure}) but worked at {where}"
        )
    elif control_ok is False:
        outcome.outcome = DOWN
        outcome.evidence = f"{what} to {outcome.label} failed here ({failure}) and at {where} too"
    else:
        outcome.unexplained_layer = layer
        outcome.unexplained_what = f"{what} to {outcome.label} failed ({failure})"
        outcome.evidence = f"{outcome.unexplained_what}, {_no_control_phrase(ctx)}"
    return outcome


def _judge_mtproto(
    ctx: _Context, flow: _Flow, m: MTProtoHandshake, siblings: Sequence[MTProtoHandshake]
) -> EndpointOutcome:
    ip, port = flow.origin or ("", 0)
    outcome = EndpointOutcome(ip, port, m.transport, OK, m.failure, m.failed_operation)
    outcome.reached = REACHED_TLS  # connected; the handshake is what failed (if it did)
    if m.success:
        reply = "a transport error code" if m.reply == "transport_error" else "a genuine resPQ"
        outcome.evidence = f"{outcome.label} answered MTProto with {reply}"
        outcome.proves_address = True
        outcome.reached = REACHED_RESPONSE
        return outcome
    if not _measured(m.failure):
        outcome.outcome = SKIPPED
        outcome.evidence = f"{outcome.label} was not measured"
        return outcome
    control_ok = ctx.control.mtproto_ok(flow.origin, m.transport) if ctx.control else None
    working = [s.transport for s in siblings if s.success]
    what = f"the MTProto handshake over {m.transport}"
    if control_ok is None and not _is_interrupted(m.failure):
        if m.failure in FORGED_MTPROTO:
            outcome.outcome, outcome.blocking = BLOCKED, PROTOCOL
            outcome.evidence = (
                f"{outcome.label} connected but the MTProto reply was forged ({m.failure}): "
                "something other than Telegram answered"
            )
            return outcome
        if working:
            outcome.outcome, outcome.blocking = BLOCKED, PROTOCOL
            outcome.evidence = (
                f"{what} to {outcome.label} failed ({m.failure}) while "
                f"{_names(working)} got genuine replies from the same address"
            )
            return outcome
    return _fail_outcome(
        ctx, flow, m.transport, PROTOCOL, m.failure, m.failed_operation, what, control_ok, True
    )


def _judge_http(ctx: _Context, flow: _Flow, verified_tls: bool) -> list[EndpointOutcome]:
    """One outcome per attempt (redirect chain) of the flow; `_merge_attempts` then judges the
    attempts on one endpoint together."""
    hop_failure = flow.hop_failure()
    return [
        _judge_chain(ctx, flow, chain, verified_tls, hop_failure)
        for chain in _chains(flow.requests)
    ]


def _judge_chain(
    ctx: _Context,
    flow: _Flow,
    chain: Sequence[HTTPTransaction],
    verified_tls: bool,
    hop_failure: tuple[str | None, str] | None,
) -> EndpointOutcome:
    ip, port = flow.origin or ("", 0)
    first = chain[0]
    final = chain[-1]
    outcome = EndpointOutcome(ip, port, None, OK)
    label = outcome.label if flow.origin else first.url
    failed = next((r for r in chain if r.failure), None)
    failure, operation = (failed.failure, failed.failed_operation) if failed else (None, None)
    reached = REACHED_TLS if failed is first else REACHED_RESPONSE
    redirected = final.response_code in REDIRECT_CODES
    if failure is None and hop_failure is not None and redirected:
        # the chain stopped at a redirect whose next hop could not be opened
        failure, operation = hop_failure
    if failure is None and redirected and final.location:
        next_host = (_url_endpoint(final.location) or ("", 0))[0].lower()
        lookups = [q for q in ctx.probe.queries if q.hostname.lower().rstrip(".") == next_host]
        if lookups and not any(q.answers for q in lookups):
            failure = next((q.failure for q in lookups if q.failure), failures.DNS_NO_ANSWER)
            operation = failures.RESOLVE
    control_final, control_failure = (
        ctx.control.final_http(flow.origin, first.url) if ctx.control else (None, None)
    )
    if failure is not None:
        outcome.failure, outcome.failed_operation = failure, operation or failures.HTTP_ROUND_TRIP
        outcome.reached = reached
        if failure == failures.HTTP_REDIRECT_REFUSED and control_final is not None:
            outcome.outcome, outcome.blocking = BLOCKED, HTTP_DIFF
            outcome.evidence = (
                f"{label} redirected to {final.location or 'a private address'}, which the "
                "control was not sent to"
            )
            return outcome
        control_ok = True if control_final is not None else (False if control_failure else None)
        if operation == failures.RESOLVE:
            return _fail_outcome(
                ctx,
                flow,
                None,
                DNS,
                failure,
                operation,
                f"resolving the redirect target {final.location}",
                control_ok,
                True,
                REACHED_RESPONSE,
            )
        return _fail_outcome(
            ctx,
            flow,
            None,
            HTTP_FAILURE,
            failure,
            outcome.failed_operation,
            "the HTTP exchange",
            control_ok,
            True,
            reached,
        )
    if final.response_code is None:
        outcome.outcome = INCONCLUSIVE
        outcome.reached = REACHED_TLS
        outcome.evidence = f"{label} recorded no HTTP response"
        return outcome
    outcome.reached = REACHED_RESPONSE if redirected else REACHED_PAGE
    final_matches = ctx.db.match_http(final, probe_cc=ctx.probe_cc)
    matches = [m for r in chain[:-1] for m in ctx.db.match_http(r, probe_cc=ctx.probe_cc)]
    matches += final_matches
    blocking_matches = [m for m in matches if not m.false_positive]
    if blocking_matches and not verified_tls:
        outcome.outcome, outcome.blocking = BLOCKED, HTTP_DIFF
        outcome.confirmed = any(m.confirmed for m in blocking_matches)
        outcome.fingerprints = list(dict.fromkeys(m.name for m in blocking_matches))
        outcome.evidence = (
            f"{label} answered HTTP {final.response_code} with a known "
            f"{_fingerprint_words(blocking_matches, 'blockpage', ctx.probe_cc)}"
        )
        return outcome
    code = final.response_code
    if redirected:
        outcome.evidence = f"{label} answered HTTP {code}, a redirect to {final.location or '?'}"
        return outcome
    if verified_tls:
        outcome.evidence = f"{label} answered HTTP {code} over TLS verified for {ctx.server_name}"
        return outcome
    if control_final is not None:
        differences = http_differences(final, control_final)
        lookalikes = [m for m in final_matches if m.false_positive]
        if differences and lookalikes:
            # A CAPTCHA, a CDN challenge or a stock server page: it differs from the control's
            # page because the server (or its CDN) answered this network otherwise, which is
            # not what a censor's page looks like.
            outcome.outcome = INCONCLUSIVE
            outcome.fingerprints = list(dict.fromkeys(m.name for m in lookalikes))
            outcome.evidence = (
                f"{label} answered HTTP {code} with a known look-alike page (fingerprint "
                f"{_names(outcome.fingerprints)}: a CAPTCHA, CDN challenge or stock server page, "
                f"never a blockpage); it differs from the control's ({differences[0]}), which "
                "alone is no evidence of blocking"
            )
            return outcome
        if differences:
            outcome.outcome, outcome.blocking = BLOCKED, HTTP_DIFF
            outcome.evidence = f"the page from {label} differs from the control's: " + "; ".join(
                differences
            )
            return outcome
        outcome.proves_address = True
        outcome.evidence = f"{label} answered HTTP {code}, the same page as at the control"
        return outcome
    if ip in ctx.trusted_ips:
        outcome.evidence = (
            f"{label} answered HTTP {code} (any HTTP reply from the service's own address counts "
            "as reachable)"
        )
        return outcome
    outcome.outcome = INCONCLUSIVE
    outcome.evidence = (
        f"{label} answered HTTP {code}, but with {_no_control_phrase(ctx)} "
        "the page cannot be checked"
    )
    return outcome


def _scope_word(matches: Sequence[Match]) -> str:
    best = next((m for m in matches if m.confirmed), matches[0])
    return _SCOPE_WORDS.get(best.scope, "filtering")


def _fingerprint_words(matches: Sequence[Match], thing: str, probe_cc: str | None) -> str:
    """How matched rows are named: e.g. `national blockpage (fingerprint X)`; when every row
    is another country's, `blockpage used in IR (fingerprint X; this probe is in IT, so it
    confirms nothing here)`."""
    names = _names(list(dict.fromkeys(m.name for m in matches)))
    local = [m for m in matches if not m.foreign]
    if local:
        return f"{_scope_word(local)} {thing} (fingerprint {names})"
    countries = ", ".join(sorted({c for m in matches for c in m.countries}))
    here = (probe_cc or "").upper()
    return (
        f"{thing} used in {countries} (fingerprint {names}; this probe is in {here}, so it "
        "confirms nothing here)"
    )


def _control_fetched(ctx: _Context) -> bool | None:
    """Did the control's own fetch of the target's URL succeed? (None: it fetched nothing.)
    The last resort for a step the control has no counterpart for, e.g. a redirect hop."""
    if ctx.control is None or not ctx.control.obs.requests:
        return None
    url = str(ctx.target.get("url") or "")
    final, failure = ctx.control.final_http(None, url)
    if final is not None:
        return True
    return False if failure else None


def _judge_flow(ctx: _Context, flow: _Flow) -> list[EndpointOutcome]:
    ip, port = flow.origin or ("", 0)
    tcp = flow.origin_tcp()
    control = ctx.control
    if tcp is not None and not tcp.success:
        if not _measured(tcp.failure):
            return [EndpointOutcome(ip, port, None, SKIPPED, tcp.failure, failures.CONNECT)]
        ok, exact = control.tcp_ok(flow.origin) if control else (None, True)
        if ok is None and control is not None:
            ok, exact = _control_fetched(ctx), False
        return [
            _fail_outcome(
                ctx, flow, None, TCP, tcp.failure, failures.CONNECT, "the TCP connect", ok, exact
            )
        ]
    tls = flow.origin_tls()
    verified = False
    if tls is not None and tls.failure:
        ok, exact = control.tls_ok(flow.origin, tls.server_name) if control else (None, True)
        if ok is None and control is not None:
            ok, exact = _control_fetched(ctx), False
        what = f"the TLS handshake for {tls.server_name}"
        if tls.failure in CERTIFICATE_FAILURES:
            what = f"certificate verification for {tls.server_name}"
            if ok is True:
                outcome = _fail_outcome(
                    ctx, flow, None, TLS, tls.failure, failures.TLS_HANDSHAKE, what, ok, exact
                )
                outcome.evidence += " (a man in the middle)"
                return [outcome]
        return [
            _fail_outcome(
                ctx, flow, None, TLS, tls.failure, failures.TLS_HANDSHAKE, what, ok, exact
            )
        ]
    if tls is not None:
        verified = not tls.no_tls_verify
    if flow.mtproto:
        return [_judge_mtproto(ctx, flow, m, flow.mtproto) for m in flow.mtproto]
    if flow.requests:
        outcomes = _judge_http(ctx, flow, verified)
        if (
            verified
            and tls is not None
            and ctx.hostname
            and tls.server_name.lower() == ctx.hostname
        ):
            for outcome in outcomes:
                outcome.proves_address = True
        return outcomes
    outcome = EndpointOutcome(ip, port, None, OK)
    if tls is not None:
        if verified and tls.server_name.lower() == (ctx.hostname or tls.server_name.lower()):
            outcome.proves_address = True
        check = "verified" if verified else "completed (unverified)"
        outcome.evidence = f"the TLS handshake for {tls.server_name} on {outcome.label} {check}"
        outcome.reached = REACHED_TLS
    elif tcp is not None:
        outcome.evidence = f"the TCP connect to {outcome.label} succeeded"
        outcome.reached = REACHED_TCP
    else:
        outcome.outcome = INCONCLUSIVE
        outcome.evidence = f"{outcome.label} has no usable observation"
    return [outcome]


# --- attempts and address families ----------------------------------------------------------


def _hides(p: EndpointOutcome, o: EndpointOutcome) -> bool:
    """Does attempt `p` hide attempt `o` on the same endpoint? A failure is hidden by an
    attempt that got past the step that failed; a page that is not ok (a blockpage, a page that
    cannot be checked) only by an ok attempt that got as far."""
    if p is o or p.outcome == SKIPPED:
        return False
    if o.transport and p.transport and o.transport != p.transport:
        return False  # another MTProto transport is another endpoint
    if o.failure is not None:
        return p.reached > o.reached
    return p.outcome == OK and p.reached >= o.reached


def _merge_attempts(outcomes: list[EndpointOutcome]) -> list[EndpointOutcome]:
    """One outcome per endpoint (address, port and transport), judging its attempts together
    (retries, several requests, several flows to one address): a failed attempt never hides a
    success. What stands: a failure no other attempt got past, else the attempt that got
    furthest (its evidence says how many attempts failed)."""
    by_endpoint: dict[tuple[str, int], list[EndpointOutcome]] = {}
    for o in outcomes:
        if o.address:
            by_endpoint.setdefault((o.address, o.port), []).append(o)
    hidden: set[int] = set()
    for group in by_endpoint.values():
        if len(group) < 2:
            continue
        for o in group:
            if o.outcome not in (OK, SKIPPED) and any(_hides(p, o) for p in group):
                hidden.add(id(o))
    kept: dict[object, list[EndpointOutcome]] = {}
    for o in outcomes:
        if id(o) in hidden:
            continue
        key: object = (o.address, o.port, o.transport) if o.address else id(o)
        kept.setdefault(key, []).append(o)
    merged: list[EndpointOutcome] = []
    for group in kept.values():
        chosen = _representative(group)
        if chosen.outcome == OK and chosen.address:
            lost = [
                o
                for o in by_endpoint.get((chosen.address, chosen.port), [])
                if id(o) in hidden
                and o.failure is not None
                and o.transport in (None, chosen.transport)
            ]
            if lost:
                what = _names([o.failure or "" for o in lost])
                plural = "s" if len(lost) > 1 else ""
                chosen.evidence += f" (after {len(lost)} failed attempt{plural} on it: {what})"
        merged.append(chosen)
    return merged


def _representative(group: list[EndpointOutcome]) -> EndpointOutcome:
    if len(group) == 1:
        return group[0]
    measured = [o for o in group if o.outcome != SKIPPED] or group
    for status in (BLOCKED, DOWN, INCONCLUSIVE):
        found = [o for o in measured if o.outcome == status]
        if found:
            return found[0]
    return max(measured, key=lambda o: o.reached)


#: Layers at which a broken IPv6 path (no route, a black-holing middlebox, lost large packets)
#: makes a step fail the way blocking does; a wrong certificate or a forged reply it does not.
_PATH_FAILURE_LAYERS = frozenset({TCP, TLS, HTTP_FAILURE, PROTOCOL})


def _fails(o: EndpointOutcome) -> bool:
    """The endpoint failed (blocked, down, or a step failed with nothing to compare)."""
    if o.outcome in (BLOCKED, DOWN):
        return True
    return o.outcome == INCONCLUSIVE and o.failure is not None and not _is_interrupted(o.failure)


def _apply_ipv6(ctx: _Context, outcomes: list[EndpointOutcome]) -> None:
    """On a vantage whose IPv6 is not proven (`ipv6_ok` not True), an IPv6 endpoint failing
    while no endpoint of the other family fails is no evidence of blocking: a half-working IPv6
    path fails exactly like that. It is inconclusive, and never local evidence."""
    if ctx.ipv6_ok is True:
        return
    others = [o for o in outcomes if o.outcome != SKIPPED and not is_ipv6(o.address)]
    if any(_fails(o) for o in others):
        return  # not the only family that fails: judged as usual
    ipv4_works = any(o.outcome == OK for o in others)
    for o in outcomes:
        if not is_ipv6(o.address) or not _fails(o) or o.outcome == DOWN:
            continue
        if o.failure is None or o.failure in CERTIFICATE_FAILURES | FORGED_MTPROTO:
            continue  # a wrong certificate or a forged reply is no path failure
        layer = o.blocking or o.unexplained_layer
        if layer is not None and layer not in _PATH_FAILURE_LAYERS:
            continue
        works = " and IPv4 works" if ipv4_works else ""
        o.outcome, o.blocking, o.confirmed = INCONCLUSIVE, None, False
        o.unexplained_layer, o.unexplained_what = None, ""
        o.evidence = (
            f"{o.label} is IPv6 and failed ({o.failure}), but this vantage's IPv6 is not "
            f"proven{works}, so an IPv6-only failure is no evidence of blocking"
        )


# --- DNS ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _DNSResult:
    status: str | None = None  # None: no DNS to judge (IP-literal target or no queries)
    reason: str = ""
    confirmed: bool = False
    fingerprints: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    suspicious: set[str] = field(default_factory=set)
    #: answers that look wrong but cannot be checked (no control): endpoints on them prove little
    doubtful: set[str] = field(default_factory=set)


def _dns_reference(ctx: _Context, queries: Sequence[DNSQuery]) -> tuple[list[DNSQuery], str, bool]:
    """The queries to compare with: the control's, else DNS over HTTPS asked as a control
    (`x_doh`), else — when plain engines asked too — the probe's own encrypted lookups that
    answered (OONI's Web Connectivity asks DoH beside the system resolver). The flag says the
    reference is the probe's own: its answers are then judged without a reference."""
    name = ctx.hostname or ""
    if ctx.control is not None:
        found = [q for q in ctx.control.obs.queries if q.hostname.lower().rstrip(".") == name]
        if found:
            return found, "the control", False
    found = [q for q in ctx.doh if q.hostname.lower().rstrip(".") == name]
    if found:
        return found, "DNS over HTTPS", False
    own = [q for q in queries if q.engine in ENCRYPTED_ENGINES and q.answers]
    if own and any(q.engine not in ENCRYPTED_ENGINES for q in queries):
        engines = sorted({q.engine for q in own})
        words = _ENGINE_WORDS[engines[0]] if len(engines) == 1 else "encrypted DNS"
        return own, f"{words} (asked from here)", True
    return [], "DNS over HTTPS", False


def _asns(ctx: _Context, answers: Iterable[DNSAnswer]) -> set[int]:
    found: set[int] = set()
    for a in answers:
        asn = a.asn or (ctx.asn_of.get(_norm_ip(a.ip)) if a.ip else None)
        if asn:
            found.add(int(asn))
    return found


def _query_family_failed(query: DNSQuery, ref_answers: Sequence[DNSAnswer]) -> bool:
    """A query that failed although the reference has answers of the family it asked for
    (a v4-only name legitimately has no AAAA answer)."""
    if not query.failure or query.x_duplicate or _is_interrupted(query.failure):
        return False
    if failures.is_timeout(query.failure):
        return False  # a slow engine is not a lie; timeouts count only when every engine failed
    if query.engine in ENCRYPTED_ENGINES and not query.failure.startswith("dns_"):
        return False  # the encrypted resolver could not be reached: that says nothing of the name
    if query.query_type == "A":
        return any(a.ipv4 for a in ref_answers)
    if query.query_type == "AAAA":
        return any(a.ipv6 for a in ref_answers)
    return bool(ref_answers)


def _lookup_words(query: DNSQuery) -> str:
    """How a failed lookup is named: "" for the plain engines, " over DNS over TLS (8.8.4.4:853)"
    for an encrypted one (its failure may be the resolver's, not the name's)."""
    if query.engine not in ENCRYPTED_ENGINES:
        return ""
    where = f" ({query.resolver_address})" if query.resolver_address else ""
    return f" over {_ENGINE_WORDS[query.engine]}{where}"


def _is_loopback(ip: str) -> bool:
    address = parse_ip(ip)
    return address is not None and address.is_loopback


def _judge_dns(ctx: _Context, proven: set[str]) -> _DNSResult:
    name = ctx.hostname
    if name is None:
        return _DNSResult()
    queries = [q for q in ctx.probe.queries if q.hostname.lower().rstrip(".") == name]
    if not queries:
        return _DNSResult()
    reference, ref_name, own = _dns_reference(ctx, queries)
    if not own:
        return _judge_answers(ctx, name, queries, reference, ref_name, proven)
    # The probe's own encrypted answers check its plain ones, and are judged on their own.
    plain = [q for q in queries if q.engine not in ENCRYPTED_ENGINES]
    encrypted = [q for q in queries if q.engine in ENCRYPTED_ENGINES]
    checked = _judge_answers(ctx, name, plain, reference, ref_name, proven)
    alone = _judge_answers(ctx, name, encrypted, [], ref_name, proven)
    if alone.status == BLOCKED and checked.status != BLOCKED:
        checked, alone = alone, checked
    checked.answers = list(dict.fromkeys(checked.answers + alone.answers))
    checked.doubtful |= alone.doubtful
    return checked


def _judge_answers(
    ctx: _Context,
    name: str,
    queries: Sequence[DNSQuery],
    reference: Sequence[DNSQuery],
    ref_name: str,
    proven: set[str],
) -> _DNSResult:
    """The DNS verdict for `queries` (one name) against `reference` (possibly none)."""
    answers = [a for q in queries for a in q.answers if a.ip]
    ips = list(dict.fromkeys(_norm_ip(a.ip) for a in answers if a.ip))
    ref_answers = [a for q in reference for a in q.answers if a.ip]
    ref_ips = list(dict.fromkeys(_norm_ip(a.ip) for a in ref_answers if a.ip))
    ref_text = f"{ref_name} resolved {_names(ref_ips)}" if ref_ips else ""
    result = _DNSResult(answers=ips)
    if not ips:
        failed = next((q for q in queries if q.failure), None)
        failure = (failed.failure if failed else None) or failures.DNS_NO_ANSWER
        how = _lookup_words(failed) if failed else ""
        if _is_interrupted(failure):
            result.status, result.reason = INCONCLUSIVE, f"resolving {name} was interrupted"
        elif ref_ips:
            result.status = BLOCKED
            result.reason = f"DNS for {name}{how} failed here ({failure}) but {ref_text}"
        elif reference:
            ref_failure = next((q.failure for q in reference if q.failure), failures.DNS_NO_ANSWER)
            result.status = DOWN
            result.reason = (
                f"{name} does not resolve here ({failure}) nor at {ref_name} ({ref_failure})"
            )
        else:
            result.status = INCONCLUSIVE
            result.reason = f"DNS for {name}{how} failed ({failure}), {_no_control_phrase(ctx)}"
        return result
    # Suspicious answers, each with the words that say why. An address the reference returns
    # too is how the name resolves, whatever it looks like.
    suspicious: dict[str, str] = {}
    #: answers that stand as lies without a reference; those a confirmed fingerprint names
    standalone: set[str] = set()
    confirmed_ips: set[str] = set()
    for ip in ips:
        if ip in ref_ips:
            continue
        matches = [m for m in ctx.db.match_dns(ip, probe_cc=ctx.probe_cc) if not m.false_positive]
        if _is_loopback(ip):
            # Services publish 127.0.0.1 on purpose (status hosts); some resolvers block with
            # it too. Loopback names no censor: a private answer, whatever matched it.
            words = (
                f"a loopback address {ref_name} does not return"
                if ref_ips
                else "a loopback address, which some services publish on purpose"
            )
            if matches:
                prints = _names([m.name for m in matches])
                words += f" (also a blocking answer of some resolvers: fingerprint {prints})"
                result.fingerprints.extend(m.name for m in matches)
            suspicious[ip] = words
        elif matches:
            result.fingerprints.extend(m.name for m in matches)
            if any(m.confirmed for m in matches):
                confirmed_ips.add(ip)
                standalone.add(ip)
            known = "a known " if any(not m.foreign for m in matches) else "a "
            suspicious[ip] = known + _fingerprint_words(matches, "blocking address", ctx.probe_cc)
        elif is_bogon(ip):
            suspicious[ip] = (
                f"a private or reserved address {ref_name} does not return"
                if ref_ips
                else "a private or reserved address"
            )
    if ctx.expect_asn:
        for a in answers:
            ip = _norm_ip(a.ip or "")
            asn = a.asn or ctx.asn_of.get(ip)
            if ip not in suspicious and asn and int(asn) not in ctx.expect_asn:
                expected = ", ".join(f"AS{n}" for n in sorted(ctx.expect_asn))
                suspicious[ip] = f"in AS{asn}, outside the expected {expected}"
                standalone.add(ip)  # a known ASN outside the list stands without a control
    if reference and not ref_ips and all(q.failure == failures.DNS_NXDOMAIN for q in reference):
        for ip in ips:  # the name does not exist, yet something here answered for it
            suspicious.setdefault(ip, f"although the name does not exist at {ref_name}")
            standalone.add(ip)
    if ref_ips:
        # Each engine's answers (an injected duplicate reply apart) against the reference: a
        # good answer from one engine does not cover another engine's lie.
        theirs = _asns(ctx, ref_answers)
        groups: dict[tuple[str, bool], list[DNSAnswer]] = {}
        for q in queries:
            groups.setdefault((q.engine, q.x_duplicate), []).extend(a for a in q.answers if a.ip)
        for group in groups.values():
            mine_ips = {_norm_ip(a.ip) for a in group if a.ip}
            if not mine_ips or mine_ips & set(ref_ips):
                continue
            mine = _asns(ctx, group)
            if mine and theirs and not mine & theirs:
                for ip in ips:
                    if ip in mine_ips:
                        suspicious.setdefault(
                            ip, f"sharing no address and no network with {ref_name}"
                        )
    # Rehabilitation: an address that proved itself (verified TLS for the name, a genuine
    # MTProto reply, the control's page) was a fine answer — unless a confirmed fingerprint
    # names it.
    for ip in list(suspicious):
        if ip in proven and ip not in confirmed_ips:
            del suspicious[ip]
    result.fingerprints = list(dict.fromkeys(result.fingerprints))
    failed_engines = [q for q in queries if _query_family_failed(q, ref_answers)]
    if not suspicious and failed_engines:
        q = failed_engines[0]
        engine = (
            _ENGINE_WORDS["getaddrinfo"] if q.engine == "getaddrinfo" else (f"the {q.engine} query")
        )
        result.status = BLOCKED
        result.reason = f"DNS for {name} failed in {engine} ({q.failure}) but {ref_text}"
        return result
    if not suspicious:
        result.status = OK if reference or name in ctx.trusted_names else INCONCLUSIVE
        if result.status == OK:
            basis = f"consistent with {ref_name}" if reference else "in the expected network"
            result.reason = f"{name} resolved to {_names(ips)}, {basis}"
        else:
            result.reason = (
                f"{name} resolved to {_names(ips)}; {_no_control_phrase(ctx)}, "
                "the answer cannot be checked"
            )
        result.fingerprints = []
        return result
    first_ip = next(iter(suspicious))
    others = [ip for ip in suspicious if ip != first_ip]
    reason = f"DNS for {name} answered {first_ip}, {suspicious[first_ip]}"
    if others:
        reason += f" (also {_names(others)})"
    result.suspicious = set(suspicious)
    result.confirmed = bool(confirmed_ips & set(suspicious))
    if not ref_ips and not (standalone & set(suspicious)):
        # Without anything to compare with, only a confirmed fingerprint or a known ASN
        # outside the list proves a lie; a private address alone may be how the name resolves.
        result.status = INCONCLUSIVE
        result.reason = f"{reason}; {_no_control_phrase(ctx)}"
        result.doubtful = set(suspicious)
        return result
    result.status = BLOCKED
    result.reason = reason + (f"; {ref_text}" if ref_text else "")
    return result


# --- the target -----------------------------------------------------------------------------


def _apply_vantage(ctx: _Context, outcomes: list[EndpointOutcome]) -> None:
    """On an offline vantage a failure proves nothing: never blocked, never down."""
    if not ctx.offline:
        return
    for o in outcomes:
        if o.outcome in (BLOCKED, DOWN):
            o.outcome, o.blocking, o.confirmed = INCONCLUSIVE, None, False


def _apply_local_evidence(ctx: _Context, outcomes: list[EndpointOutcome]) -> None:
    """Without a control, a failure the whole service shares while the baselines work is
    blocking (unconfirmed): probe.service's rules A and B, over the round's `x_service`."""
    if ctx.control is not None or ctx.offline or not ctx.baselines_work or ctx.service is None:
        return
    check = str(ctx.target.get("check") or "")
    for o in outcomes:
        if o.outcome != INCONCLUSIVE or o.unexplained_layer is None or o.failure is None:
            continue
        found = local_evidence(ctx.service, check, o.unexplained_layer, o.failure)
        if found is None:
            continue
        o.outcome, o.blocking, o.confirmed = BLOCKED, o.unexplained_layer, False
        o.evidence = (
            f"{o.unexplained_what}; {found.phrase}, while the "
            "baseline sites work, so your connection is fine (local evidence only: no control "
            "to compare with)"
        )


def _sentence(*parts: str) -> str:
    text = "; ".join(" ".join(p.split()).rstrip(".") for p in parts if p and p.strip())
    if not text:
        return ""
    first_word = text.split(" ", 1)[0]
    if first_word.isalpha() and first_word.islower():
        text = text[0].upper() + text[1:]
    return text + "."


def _transport_note(outcomes: Sequence[EndpointOutcome]) -> str:
    """For MTProto: which transports get through, which do not (obfuscated proxies...)."""
    by_transport: dict[str, set[str]] = {}
    for o in outcomes:
        if o.transport:
            by_transport.setdefault(o.transport, set()).add(o.outcome)
    working = [t for t, s in by_transport.items() if OK in s]
    blocked = [t for t, s in by_transport.items() if BLOCKED in s]
    if working and blocked:
        note = (
            f"{_names(working, 4)} still get through while {_names(blocked, 4)} are interfered with"
        )
        if "obfuscated2" in working:
            note += " (obfuscated proxies work)"
        return note
    return ""


def _needs(check: str) -> str:
    if check in PAGE_CHECKS:
        return f"the {check} check needs an HTTP answer or a TLS handshake"
    return f"the {check} check needs a connection"


def _verdict(ctx: _Context, dns: _DNSResult, outcomes: list[EndpointOutcome]) -> Verdict:
    measured = [o for o in outcomes if o.outcome != SKIPPED]
    # `ok` needs the evidence the check promises: for a web target a bare TCP connect (OONI
    # connects to every address it resolved) says the address is reachable, not the service.
    connect_only = [
        o
        for o in measured
        if ctx.check in PAGE_CHECKS
        and o.outcome == OK
        and o.reached <= REACHED_TCP
        and o.transport is None
    ]
    measured = [o for o in measured if all(o is not c for c in connect_only)]
    partial = (
        f"the TCP connect to {_names([o.label for o in connect_only])} succeeded, but "
        f"{_needs(ctx.check)}"
        if connect_only
        else ""
    )
    ok = [o for o in measured if o.outcome == OK]
    blocked = [o for o in measured if o.outcome == BLOCKED]
    down = [o for o in measured if o.outcome == DOWN]
    unclear = [o for o in measured if o.outcome == INCONCLUSIVE]
    target_name = ctx.hostname or str(ctx.target.get("host") or ctx.target.get("url") or "")
    still = f"still working: {_names([o.label for o in ok])}" if ok else ""

    if ctx.offline:
        evidence = ""
        if dns.status == BLOCKED:
            evidence = f"seen anyway: {dns.reason}"
        if ok:
            return Verdict(OK, None, False, [], _sentence(f"{ok[0].evidence}", ctx.offline_reason))
        return Verdict(
            INCONCLUSIVE, None, False, dns.fingerprints, _sentence(ctx.offline_reason, evidence)
        )
    if dns.status == BLOCKED:
        return Verdict(BLOCKED, DNS, dns.confirmed, dns.fingerprints, _sentence(dns.reason))
    if blocked:
        layer = min((o.blocking or PROTOCOL for o in blocked), key=LAYERS.index)
        first = next(o for o in blocked if o.blocking == layer)
        confirmed = any(o.confirmed for o in blocked)
        prints = list(dict.fromkeys(f for o in blocked for f in o.fingerprints))
        count = f"{len(blocked)} of {len(measured)} endpoints blocked" if len(measured) > 1 else ""
        note = _transport_note(measured)
        return Verdict(
            BLOCKED,
            layer,
            confirmed,
            prints,
            _sentence(first.evidence, count, note or still),
        )
    if dns.status == DOWN:
        return Verdict(DOWN, None, False, [], _sentence(dns.reason))
    if ok:
        if len(measured) == 1:
            summary = ok[0].evidence
        else:
            summary = f"{len(ok)} of {len(measured)} endpoints work ({ok[0].evidence})"
        extra = ""
        if down:
            extra = f"{_names([o.label for o in down])} fail at the control too (down, not blocked)"
        elif unclear:
            extra = f"{_names([o.label for o in unclear])} inconclusive ({unclear[0].evidence})"
        return Verdict(OK, None, False, [], _sentence(summary, extra))
    if not measured and dns.status in (OK, INCONCLUSIVE):
        if ctx.check in CONNECTING_CHECKS and (dns.status == OK or connect_only):
            nothing = "nothing was fetched" if ctx.check in PAGE_CHECKS else "nothing connected"
            return Verdict(
                INCONCLUSIVE,
                None,
                False,
                [],
                _sentence(dns.reason, partial or f"{nothing}, and {_needs(ctx.check)}"),
            )
        return Verdict(dns.status, None, False, [], _sentence(dns.reason))
    v6_only_unclear = all(is_ipv6(o.address) and ctx.ipv6_ok is False for o in unclear)
    if down and v6_only_unclear:
        return Verdict(
            DOWN,
            None,
            False,
            [],
            _sentence(down[0].evidence, "the service is down, not censored", partial),
        )
    if unclear:
        doubt = dns.reason if dns.status == INCONCLUSIVE else ""
        return Verdict(
            INCONCLUSIVE, None, False, [], _sentence(unclear[0].evidence, partial, doubt)
        )
    if not measured and partial:
        return Verdict(INCONCLUSIVE, None, False, [], _sentence(partial))
    if not measured:
        return Verdict(
            INCONCLUSIVE,
            None,
            False,
            [],
            _sentence(f"nothing was measured for {target_name or 'this target'}"),
        )
    return Verdict(INCONCLUSIVE, None, False, [], _sentence(measured[0].evidence))


def analyze(record: dict[str, Any], fingerprints: FingerprintDB | None = None) -> Analysis:
    """The verdict for one record, and the outcome of each endpoint flow. Pure: no I/O (once
    the fingerprint database is loaded), no clock.

    Records come from files and peers we do not control. The observation readers already turn
    fields of the wrong type into defaults; whatever shape still gets through makes the verdict
    inconclusive, with the reason saying so — never an exception."""
    try:
        return _analyze(record, fingerprints)
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError) as exc:
        reason = (
            "The record could not be analysed: one of its fields has an unexpected form "
            f"({type(exc).__name__})."
        )
        return Analysis(Verdict(INCONCLUSIVE, None, False, [], reason), [])


def _analyze(record: dict[str, Any], fingerprints: FingerprintDB | None) -> Analysis:
    if not isinstance(record, dict):
        raise TypeError("a record is a JSON object")
    test_keys = record.get("test_keys")
    if isinstance(test_keys, dict) and test_keys.get("failure") == failures.INTERRUPTED:
        return Analysis(Verdict(INCONCLUSIVE, None, False, [], INTERRUPTED_REASON), [])
    db = fingerprints if fingerprints is not None else default_db()
    ctx = _context(record, db)
    attempts: list[EndpointOutcome] = []
    for flow in _flows(ctx.probe):
        attempts.extend(_judge_flow(ctx, flow))
    proven = {o.address for o in attempts if o.proves_address}
    outcomes = _merge_attempts(attempts)
    _apply_ipv6(ctx, outcomes)
    dns = _judge_dns(ctx, proven)
    # Endpoints on a lying DNS answer reach the censor, not the service: blocked by DNS,
    # whatever happened on them.
    for o in outcomes:
        if dns.status == BLOCKED and o.address in dns.suspicious and o.outcome != SKIPPED:
            o.outcome, o.blocking = BLOCKED, DNS
            o.confirmed = dns.confirmed
            o.fingerprints = list(dns.fingerprints)
            o.evidence = dns.reason
    for o in outcomes:
        if o.address in dns.doubtful and o.outcome == OK and not o.proves_address:
            o.outcome = INCONCLUSIVE
            o.evidence = dns.reason
    _apply_vantage(ctx, outcomes)
    _apply_local_evidence(ctx, outcomes)
    return Analysis(_verdict(ctx, dns, outcomes), outcomes)


def endpoint_facts(target_id: str, check: str, analysis: Analysis) -> list[EndpointFact]:
    """What the service-level rules need of one target's first analysis pass."""
    return [
        EndpointFact(
            target_id,
            check,
            o.address,
            o.outcome,
            o.unexplained_layer if o.outcome == INCONCLUSIVE else None,
            o.failure,
        )
        for o in analysis.endpoints
    ]


def has_unexplained(analysis: Analysis) -> bool:
    """Could the service-level facts change this verdict? (An unexplained failure, no control.)"""
    return any(
        o.outcome == INCONCLUSIVE and o.unexplained_layer is not None for o in analysis.endpoints
    )


def judge_service(
    service: str,
    held: Sequence[tuple[dict[str, Any], Analysis]],
    fingerprints: FingerprintDB | None = None,
) -> dict[str, Any]:
    """The second pass over all the records of one service in one round (each with its first
    analysis): add the service's facts (`x_service`) to every record, judge again the records
    those facts can change, then say whether the app is usable and interfered with. Updates
    the records in place and returns the facts."""
    facts_in: list[EndpointFact] = []
    for record, analysis in held:
        target = _target_of(record)
        facts_in.extend(
            endpoint_facts(str(record.get("input")), str(target.get("check") or ""), analysis)
        )
    facts = service_facts(service, facts_in, len(held))
    verdicts = []
    for record, analysis in held:
        test_keys = record["test_keys"]
        test_keys["x_service"] = facts
        if has_unexplained(analysis):
            again = analyze(record, fingerprints)
            test_keys["x_endpoints"] = [e.to_dict() for e in again.endpoints]
            test_keys["verdict"] = again.verdict.to_dict()
        target = _target_of(record)
        tags = target.get("tags")
        verdicts.append(
            TargetVerdict(
                str(record.get("input")),
                str(target.get("check") or ""),
                tuple(str(t) for t in tags) if isinstance(tags, list | tuple) else (),
                str(test_keys["verdict"]["status"]),
            )
        )
    facts["usable"], facts["interfered"] = usable_and_interfered(verdicts)
    return facts


def _target_of(record: dict[str, Any]) -> dict[str, Any]:
    test_keys = record.get("test_keys")
    target = test_keys.get("target") if isinstance(test_keys, dict) else None
    return target if isinstance(target, dict) else {}


def reanalyze(record: dict[str, Any], fingerprints: FingerprintDB | None = None) -> dict[str, Any]:
    """The record with `test_keys.verdict` and `test_keys.x_endpoints` recomputed (a copy)."""
    analysis = analyze(record, fingerprints)
    out = dict(record)
    test_keys = dict(out.get("test_keys") or {})
    test_keys["verdict"] = analysis.verdict.to_dict()
    test_keys["x_endpoints"] = [e.to_dict() for e in analysis.endpoints]
    out["test_keys"] = test_keys
    return out


__all__ = [
    "BLOCKED",
    "DOWN",
    "INCONCLUSIVE",
    "LAYERS",
    "OK",
    "Analysis",
    "EndpointOutcome",
    "Verdict",
    "analyze",
    "endpoint_facts",
    "has_unexplained",
    "http_differences",
    "judge_service",
    "reanalyze",
]
