"""OONI measurements → our result records, so `probe analyze` and `probe report` treat them alike.

OONI's observation lists (df-002 queries, df-005 tcp_connect, df-006 tls_handshakes, df-001
requests) already have our field names; this module normalises their older spellings (legacy
failure names, ``status.failure: false``, ``engine: system``, final-response-first request
order) and maps Web Connectivity's test-helper reply (`test_keys.control`) onto our control
observations.

One OONI measurement becomes one record per thing it measured (decided here, documented in
docs/verdicts.md):

- tests with an `input` (web_connectivity, urlgetter, ...): one record for the input, whatever
  its form — a URL, a bare host name (`example.org`) or another scheme (urlgetter's
  `dnslookup://`, `tcpconnect://`, ...). A target without a web URL is named by its host, so
  its DNS queries are judged;
- the messenger tests (telegram, signal, whatsapp, facebook_messenger), dnscheck (its lookups
  through the resolver under test and the bootstrap lookup of the resolver's own name) and any
  test without an input: one record per host name (its DNS queries, the connects and handshakes
  to the addresses it resolved to — every name that resolved to an address gets its connects —
  the requests to its URLs) and one per IP address contacted directly (Telegram's data
  centres), so that each lines up with one of our targets.

Connections to the DNS resolver a query used (urlgetter's `udp://8.8.8.8:53`) belong to the
lookup, not to the target: they are left out. A measurement without a `report_id` (OONI's
simulated-censorship data) gets a stable one derived from its content (`derived_report_id`).

Each record takes our target id when the endpoint is one of the bundled targets (same IP, host
or URL), else ``ooni/<test_name>/<endpoint>``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import urljoin, urlsplit

from probe import failures
from probe.addresses import is_ipv6, parse_ip
from probe.fingerprints import FingerprintDB
from probe.observations import (
    DNSAnswer,
    DNSQuery,
    HTTPTransaction,
    Observations,
    TCPConnect,
    TLSHandshake,
    format_address,
)

OUR_SOFTWARE = "probe"
MESSENGER_TESTS = frozenset({"telegram", "signal", "whatsapp", "facebook_messenger"})
#: Tests whose measurement is split by host name even when they have an input.
SPLIT_BY_HOST_TESTS = MESSENGER_TESTS | {"dnscheck"}
WEB_SCHEMES = frozenset({"http", "https"})
#: urlgetter's other input schemes, and the check of ours that measures the same thing.
SCHEME_CHECKS = {
    "dnslookup": "dns",
    "tcpconnect": "tcp",
    "tlshandshake": "tls",
    "dot": "tls",
}
#: Older OONI failure names, and the name we use for the same event.
LEGACY_FAILURES = {
    "connection_refused_error": failures.CONNECTION_REFUSED,
    "connection_reset_error": failures.CONNECTION_RESET,
    "connection_lost_error": failures.EOF_ERROR,
    "connection_already_closed": failures.EOF_ERROR,
    "connection_done": failures.EOF_ERROR,
    "response_never_received": failures.GENERIC_TIMEOUT,
    "deferred_timeout_error": failures.GENERIC_TIMEOUT,
    "dns_name_error": failures.DNS_NXDOMAIN,
    "android_dns_cache_no_data": failures.DNS_NO_ANSWER,
    "ssl_error": failures.SSL_FAILED_HANDSHAKE,
    "unknown_error": failures.UNKNOWN_PREFIX + "unknown_error",
}
#: Bounds: a hostile or huge measurement must not make one record unbounded.
MAX_OBSERVATIONS_PER_LIST = 5000


def is_measurement(obj: object) -> bool:
    """A measurement (ours or OONI's): an object with a `test_name` and a `test_keys` object."""
    return measurement_problem(obj) is None


def measurement_problem(obj: object) -> str | None:
    """Why `obj` is not a measurement, in a few words (None: it is one)."""
    if not isinstance(obj, dict):
        return "not a JSON object"
    if not isinstance(obj.get("test_keys"), dict):
        return "no test_keys object"
    if not isinstance(obj.get("test_name"), str) or not obj["test_name"]:
        return "no test_name"
    return None


def derived_report_id(measurement: dict[str, Any]) -> str:
    """The measurement's `report_id`; for one without (OONI's simulated-censorship data has
    ""), a stable id from its `measurement_uid` or else a hash of its content, so that `probe
    report` can tell runs apart and drop copies of the same measurement."""
    report_id = measurement.get("report_id")
    if isinstance(report_id, str) and report_id.strip():
        return report_id
    uid = measurement.get("measurement_uid")
    if isinstance(uid, str) and uid.strip():
        return f"x-ooni-{uid.strip()}"
    text = json.dumps(measurement, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return f"x-ooni-{digest[:32]}"


def is_ours(obj: dict[str, Any]) -> bool:
    """One of our own records (already in our shape)."""
    return obj.get("software_name") == OUR_SOFTWARE and isinstance(
        obj.get("test_keys", {}).get("target"), dict
    )


# --- normalising OONI's observation lists ---------------------------------------------------


def _failure(value: Any) -> str | None:
    if not value:  # None, False, "" all mean "no failure" in some OONI versions
        return None
    text = str(value)
    return LEGACY_FAILURES.get(text, text)


def _items(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        return []
    return [x for x in value[:MAX_OBSERVATIONS_PER_LIST] if isinstance(x, dict)]


def _norm_ip(text: str) -> str:
    address = parse_ip(text)
    return str(address) if address is not None else text


def _host_of(url: str) -> str:
    """The host of a URL, or of a bare `host[:port][/path]` input (no scheme)."""
    try:
        return (urlsplit(url if "://" in url else "//" + url).hostname or "").rstrip(".").lower()
    except ValueError:
        return ""


def _scheme_of(text: str) -> str:
    if "://" not in text:
        return ""
    try:
        return urlsplit(text).scheme.lower()
    except ValueError:
        return ""


def _url_port(url: str) -> int:
    try:
        parts = urlsplit(url if "://" in url else "//" + url)
        return parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return 0


def _query(d: dict[str, Any]) -> DNSQuery:
    q = DNSQuery.from_dict({**d, "answers": _items(d.get("answers"))})
    q.failure = _failure(d.get("failure"))
    q.hostname = q.hostname.rstrip(".").lower()
    if q.engine in ("system", ""):
        q.engine = "getaddrinfo"
    return q


def _tcp(d: dict[str, Any]) -> TCPConnect:
    c = TCPConnect.from_dict(d)
    c.ip = _norm_ip(c.ip)
    status = d.get("status") if isinstance(d.get("status"), dict) else {}
    assert isinstance(status, dict)
    c.failure = _failure(status.get("failure"))
    c.success = bool(status.get("success", c.failure is None)) and c.failure is None
    return c


def _tls(d: dict[str, Any]) -> TLSHandshake:
    h = TLSHandshake.from_dict(d)
    h.failure = _failure(d.get("failure"))
    if h.failure and not h.failed_operation:
        h.failed_operation = failures.TLS_HANDSHAKE
    return h


def _request(d: dict[str, Any]) -> HTTPTransaction:
    request = d.get("request") if isinstance(d.get("request"), dict) else {}
    assert isinstance(request, dict)
    r = HTTPTransaction.from_dict(d)
    r.failure = _failure(d.get("failure"))
    if r.failure and not r.failed_operation:
        r.failed_operation = failures.HTTP_ROUND_TRIP
    if r.location is None and r.response_code in (301, 302, 303, 307, 308):
        location = next((v for k, v in r.response_headers if k.lower() == "location"), None)
        if location:
            try:
                r.location = urljoin(r.url, location)
            except ValueError:
                r.location = None
    address = d.get("address") or request.get("x_address")
    if isinstance(address, str) and address:
        r.address = address
    else:
        host = _host_of(r.url)
        if parse_ip(host) is not None:  # a request straight to an IP (Telegram's DCs)
            r.address = format_address(_norm_ip(host), _url_port(r.url))
    return r


def observations_from_test_keys(test_keys: dict[str, Any]) -> Observations:
    """OONI's lists in our types, requests in the order they happened (OONI: final first)."""
    return Observations(
        queries=[_query(q) for q in _items(test_keys.get("queries"))],
        tcp_connect=[_tcp(c) for c in _items(test_keys.get("tcp_connect"))],
        tls_handshakes=[_tls(h) for h in _items(test_keys.get("tls_handshakes"))],
        requests=[_request(r) for r in reversed(_items(test_keys.get("requests")))],
    )


# --- Web Connectivity's control (the test helper's reply) ------------------------------------


def control_from_test_helper(reply: dict[str, Any], url: str) -> Observations:
    """The test helper's reply (dns, tcp_connect, tls_handshake, http_request, ip_info) as our
    control observations for `url`."""
    obs = Observations()
    host = _host_of(url)
    ip_info = reply.get("ip_info") if isinstance(reply.get("ip_info"), dict) else {}
    assert isinstance(ip_info, dict)

    def asn_of(ip: str) -> int | None:
        info = ip_info.get(ip)
        asn = info.get("asn") if isinstance(info, dict) else None
        return int(asn) if isinstance(asn, int) and asn > 0 else None

    dns = reply.get("dns")
    if isinstance(dns, dict) and host and parse_ip(host) is None:
        addrs = dns.get("addrs") or dns.get("ips") or []
        answers = []
        for a in addrs if isinstance(addrs, list) else []:
            ip = str(a)
            if parse_ip(ip) is None:
                continue
            kind = "AAAA" if is_ipv6(ip) else "A"
            answers.append(
                DNSAnswer(
                    kind,
                    ipv4=None if kind == "AAAA" else ip,
                    ipv6=ip if kind == "AAAA" else None,
                    asn=asn_of(ip),
                )
            )
        obs.queries.append(
            DNSQuery(
                hostname=host,
                query_type="ANY",
                engine="control",
                resolver_address="",
                answers=answers,
                failure=_failure(dns.get("failure"))
                or (None if answers else failures.DNS_NO_ANSWER),
            )
        )
    tids: dict[str, int] = {}
    tcp = reply.get("tcp_connect")
    for address, result in tcp.items() if isinstance(tcp, dict) else []:
        split = _split(str(address))
        if split is None or not isinstance(result, dict):
            continue
        tids[str(address)] = len(tids) + 1
        failure = _failure(result.get("failure"))
        obs.tcp_connect.append(
            TCPConnect(
                split[0],
                split[1],
                bool(result.get("status")) and failure is None,
                failure,
                transaction_id=tids[str(address)],
            )
        )
    tls = reply.get("tls_handshake")
    for address, result in tls.items() if isinstance(tls, dict) else []:
        if not isinstance(result, dict):
            continue
        failure = _failure(result.get("failure"))
        obs.tls_handshakes.append(
            TLSHandshake(
                address=str(address),
                server_name=str(result.get("server_name") or host),
                failure=failure,
                failed_operation=failures.TLS_HANDSHAKE if failure else None,
                transaction_id=tids.get(str(address), 0),
            )
        )
    http = reply.get("http_request")
    if isinstance(http, dict):
        failure = _failure(http.get("failure"))
        code = http.get("status_code")
        headers = http.get("headers") if isinstance(http.get("headers"), dict) else {}
        assert isinstance(headers, dict)
        obs.requests.append(
            HTTPTransaction(
                url=url,
                response_code=int(code) if isinstance(code, int) and code > 0 else None,
                response_headers=[(str(k), str(v)) for k, v in headers.items()],
                body_length=http.get("body_length")
                if isinstance(http.get("body_length"), int) and http["body_length"] >= 0
                else None,
                title=http.get("title") or None,
                failure=failure,
                failed_operation=failures.HTTP_ROUND_TRIP if failure else None,
            )
        )
    return obs


def _split(address: str) -> tuple[str, int] | None:
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = address.rpartition(":")
    if parse_ip(host) is None or not port.isdigit():
        return None
    return _norm_ip(host), int(port)


# --- our target ids -------------------------------------------------------------------------


@dataclass(slots=True)
class _TargetIndex:
    by_ip: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_host: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_url: dict[str, dict[str, Any]] = field(default_factory=dict)


def _norm_url(url: str) -> str:
    return url.strip().rstrip("/").lower()


@lru_cache(maxsize=1)
def _bundled_index() -> _TargetIndex:
    """The bundled targets by IP, host name and URL. A broken bundled list only loses its own
    targets (they get `ooni/...` ids): mapping never fails because of a list."""
    index = _TargetIndex()
    try:
        from probe.targets import bundled_list_paths, load_lists

        targets = load_lists(bundled_list_paths()).targets
    except Exception:  # the lists are optional here: without them ids are ooni/...
        return index
    for t in targets:
        definition = dict(t.definition) or {
            "id": t.id,
            "service": t.service,
            "check": t.check,
            **({"host": t.host} if t.host else {}),
            **({"url": t.url} if t.url else {}),
            "ports": list(t.ports),
        }
        definition.setdefault("expect_asn", list(t.expect_asn))
        if t.url:
            index.by_url.setdefault(_norm_url(t.url), definition)
        host = (t.hostname or "").strip("[]").rstrip(".").lower()
        if parse_ip(host) is not None:
            index.by_ip.setdefault(_norm_ip(host), definition)
        elif host:
            index.by_host.setdefault(host, definition)
    return index


# --- splitting one measurement into records -------------------------------------------------


@dataclass(slots=True)
class _Unit:
    """What one record will hold: a host name (with its URLs) or a directly contacted IP."""

    kind: str  # "host" | "ip" | "url"
    key: str
    urls: list[str] = field(default_factory=list)
    obs: Observations = field(default_factory=Observations)
    #: the check an input's scheme asks for (urlgetter's dnslookup://, tcpconnect://, ...)
    check: str | None = None


def _input_unit(input_: str, obs: Observations) -> _Unit:
    """The one record of a test with an input: a web URL, or a host (bare or behind another
    scheme) with the web URLs it was fetched at."""
    scheme = _scheme_of(input_)
    if scheme in WEB_SCHEMES:
        return _Unit("url", input_, urls=[input_], obs=obs)
    host = _host_of(input_) or input_.strip().lower()
    urls = [r.url for r in obs.requests if _scheme_of(r.url) in WEB_SCHEMES]
    kind = "ip" if parse_ip(host) is not None and not urls else "host"
    key = _norm_ip(host) if kind == "ip" else host
    return _Unit(
        kind, key, urls=list(dict.fromkeys(urls)), obs=obs, check=SCHEME_CHECKS.get(scheme)
    )


def _units(test_name: str, input_: Any, obs: Observations) -> list[_Unit]:
    if isinstance(input_, str) and input_.strip() and test_name not in SPLIT_BY_HOST_TESTS:
        return [_input_unit(input_.strip(), obs)]
    units: dict[tuple[str, str], _Unit] = {}
    hosts_of_ip: dict[str, list[str]] = {}

    def unit_for(kind: str, key: str) -> _Unit:
        if (kind, key) not in units:
            units[(kind, key)] = _Unit(kind, key)
        return units[(kind, key)]

    for q in obs.queries:
        if not q.hostname:
            continue
        unit_for("host", q.hostname).obs.queries.append(q)
        for a in q.answers:
            if a.ip:
                names = hosts_of_ip.setdefault(_norm_ip(a.ip), [])
                if q.hostname not in names:
                    names.append(q.hostname)
    by_tid: dict[int, _Unit] = {}
    for c in obs.tcp_connect:
        # A connect to an address is evidence for every name that resolved to it (Facebook's
        # b-api and b-graph share addresses; OONI does not say which name it connected for).
        names = hosts_of_ip.get(c.ip) or []
        connect_units = [unit_for("host", n) for n in names] or [unit_for("ip", c.ip)]
        for connect_unit in connect_units:
            connect_unit.obs.tcp_connect.append(c)
        if c.transaction_id:
            by_tid.setdefault(c.transaction_id, connect_units[0])
    for r in obs.requests:
        host = _host_of(r.url)
        if not host:
            continue
        literal = parse_ip(host) is not None
        request_unit = unit_for("ip", _norm_ip(host)) if literal else unit_for("host", host)
        request_unit.obs.requests.append(r)
        if r.url not in request_unit.urls:
            request_unit.urls.append(r.url)
        if r.transaction_id:
            by_tid.setdefault(r.transaction_id, request_unit)
    for h in obs.tls_handshakes:
        split = _split(h.address)
        ip = split[0] if split else ""
        name = h.server_name.lower() or (hosts_of_ip.get(ip) or [""])[0]
        if not h.server_name and name:
            h.server_name = name
        if name:
            unit_for("host", name).obs.tls_handshakes.append(h)
        elif h.transaction_id in by_tid:
            tls_unit = by_tid[h.transaction_id]
            if tls_unit.kind == "host" and not h.server_name:
                h.server_name = tls_unit.key
            tls_unit.obs.tls_handshakes.append(h)
        elif ip:
            unit_for("ip", ip).obs.tls_handshakes.append(h)
    return list(units.values())


def _target_for(test_name: str, unit: _Unit, index: _TargetIndex) -> dict[str, Any]:
    found: dict[str, Any] | None = None
    if unit.kind == "ip":
        found = index.by_ip.get(unit.key)
    else:
        for url in unit.urls:
            found = found or index.by_url.get(_norm_url(url))
        host = _host_of(unit.key) if unit.kind == "url" else unit.key
        found = found or index.by_host.get(host)
        if found is None and parse_ip(host) is not None:
            found = index.by_ip.get(_norm_ip(host))
    if found is not None:
        return {**found, "x_source": "ooni"}
    ports = sorted({c.port for c in unit.obs.tcp_connect})
    if unit.kind == "url":
        return {
            "id": f"ooni/{test_name}/{unit.key}",
            "service": test_name,
            "check": _scheme_of(unit.key),
            "url": unit.key,
            "x_source": "ooni",
        }
    target: dict[str, Any] = {
        "id": f"ooni/{test_name}/{unit.key}",
        "service": test_name,
        "check": unit.check or ("tcp" if ports else "dns"),
        "host": unit.key,
        "ports": ports,
        "x_source": "ooni",
    }
    web = [u for u in unit.urls if _scheme_of(u) in WEB_SCHEMES]
    if web and unit.check is None:  # a host fetched over the web: judged as that URL
        target["url"], target["check"] = web[0], _scheme_of(web[0])
    return target


ENVELOPE_KEYS = (
    "data_format_version",
    "software_name",
    "software_version",
    "test_version",
    "report_id",
    "measurement_start_time",
    "test_start_time",
    "test_runtime",
    "probe_asn",
    "probe_cc",
    "probe_network_name",
    "resolver_ip",
    "resolver_asn",
    "annotations",
)


def _fill_asns(obs: Observations, asns: dict[str, int]) -> None:
    for q in obs.queries:
        for a in q.answers:
            if a.ip and not a.asn and _norm_ip(a.ip) in asns:
                a.asn = asns[_norm_ip(a.ip)]


def records_from_measurement(measurement: dict[str, Any]) -> list[dict[str, Any]]:
    """Our record(s) for one measurement: ours unchanged, OONI's mapped (see the module doc).

    Never raises on odd content: missing or malformed fields just mean fewer observations."""
    if not is_measurement(measurement):
        return []
    if is_ours(measurement):
        return [measurement]
    test_name = str(measurement.get("test_name") or "unknown")
    test_keys: dict[str, Any] = measurement["test_keys"]
    obs = observations_from_test_keys(test_keys)
    input_ = measurement.get("input")
    if test_name == "dnscheck":
        obs = _dnscheck_observations(test_keys)
        input_ = test_keys.get("domain") or input_
    _drop_resolver_connections(obs)
    control_reply = test_keys.get("control")
    control: Observations | None = None
    asns: dict[str, int] = {}
    if isinstance(control_reply, dict) and control_reply and isinstance(input_, str):
        control = control_from_test_helper(control_reply, _control_url(input_, obs))
        info = control_reply.get("ip_info")
        for ip, value in info.items() if isinstance(info, dict) else []:
            if isinstance(value, dict) and isinstance(value.get("asn"), int) and value["asn"] > 0:
                asns[_norm_ip(str(ip))] = value["asn"]
        _fill_asns(obs, asns)
    control_failure = _failure(test_keys.get("control_failure"))
    index = _bundled_index()
    records = []
    report_id = derived_report_id(measurement)
    for unit in _units(test_name, input_, obs):
        target = _target_for(test_name, unit, index)
        envelope = {k: measurement.get(k) for k in ENVELOPE_KEYS if k in measurement}
        envelope["report_id"] = report_id
        records.append(
            {
                **envelope,
                "test_name": test_name,
                "input": target["id"],
                "probe_ip": "127.0.0.1",
                "x_ooni": {"test_name": test_name, "input": measurement.get("input")},
                "test_keys": {
                    "target": target,
                    **unit.obs.to_dict(),
                    "control": control.to_dict() if control is not None else None,
                    "control_failure": control_failure if control is None else None,
                    "x_vantage": {
                        "baseline_ok": 0,
                        "baseline_total": 0,
                        "control_reachable": control is not None,
                        "ipv6_ok": None,
                    },
                },
            }
        )
    return records


def _dnscheck_observations(test_keys: dict[str, Any]) -> Observations:
    """dnscheck keeps one urlgetter result per resolver address in `lookups` (the domain looked
    up through the resolver under test, e.g. over DoT) and the lookup of the resolver's own
    name in `bootstrap`: their queries."""
    obs = Observations()
    lookups = test_keys.get("lookups")
    results = list(lookups.values()) if isinstance(lookups, dict) else []
    results.append(test_keys.get("bootstrap"))
    for result in results:
        if isinstance(result, dict):
            obs.queries.extend(_query(q) for q in _items(result.get("queries")))
    return obs


def _drop_resolver_connections(obs: Observations) -> None:
    """Connections to a resolver the queries used (`ip:port`) are part of the lookup, not
    endpoints of the target — unless the target's own names resolved to that address."""
    resolvers = {r for q in obs.queries if (r := _split(q.resolver_address or "")) is not None}
    if not resolvers:
        return
    answered = {_norm_ip(a.ip) for q in obs.queries for a in q.answers if a.ip}
    obs.tcp_connect = [
        c for c in obs.tcp_connect if (c.ip, c.port) not in resolvers or c.ip in answered
    ]
    obs.tls_handshakes = [
        h
        for h in obs.tls_handshakes
        if (split := _split(h.address)) is None or split not in resolvers or split[0] in answered
    ]


def _control_url(input_: str, obs: Observations) -> str:
    """The URL the test helper fetched: the input, or for a bare host the first web URL the
    probe fetched (else http://host/)."""
    if _scheme_of(input_) in WEB_SCHEMES:
        return input_
    host = _host_of(input_)
    for r in obs.requests:
        if _scheme_of(r.url) in WEB_SCHEMES and _host_of(r.url) == host:
            return r.url
    return f"http://{input_.strip()}/" if host else input_


# --- re-analysis of stored files (`probe analyze`) ------------------------------------------


@dataclass(slots=True)
class AnalyzedRecord:
    """One record's verdict, with where it came from (the `probe analyze --json` object)."""

    source: str
    line: int
    record: dict[str, Any]
    verdict: dict[str, Any]
    endpoints: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "line": self.line,
            "report_id": self.record.get("report_id"),
            "input": self.record.get("input"),
            "test_name": self.record.get("test_name"),
            "measurement_start_time": self.record.get("measurement_start_time"),
            "probe_asn": self.record.get("probe_asn"),
            "probe_cc": self.record.get("probe_cc"),
            "verdict": self.verdict,
        }

    def text_line(self) -> str:
        status = self.verdict.get("status", "")
        blocking = self.verdict.get("blocking")
        shown = f"{status}/{blocking}" if blocking else str(status)
        return f"{self.record.get('input')}  {shown}  {self.verdict.get('reason', '')}"


@dataclass(slots=True)
class AnalyzeNote:
    """Something that was skipped, as one `file[:line]: message` line."""

    message: str


def analyze_paths(
    paths: Iterable[str], fingerprints: FingerprintDB | None = None
) -> Iterator[AnalyzedRecord | AnalyzeNote]:
    """Every record in the files (directories: their result files), analysed again, in order;
    a note for each file or line that was skipped, naming why. Never raises for file content."""
    from probe.analysis import analyze
    from probe.results import iter_json_objects, iter_result_files

    for path in iter_result_files(list(paths)):
        found = 0
        measurements = 0
        skipped: list[tuple[str, str]] = []  # (file:line, why)
        for item in iter_json_objects(path):
            where = f"{item.source}:{item.line}"
            if item.obj is None:
                skipped.append((where, item.error or "unreadable"))
                continue
            problem = measurement_problem(item.obj)
            if problem is not None:
                skipped.append((where, f"not a measurement ({problem})"))
                continue
            measurements += 1
            records = records_from_measurement(item.obj)
            if not records:
                test_name = item.obj.get("test_name")
                skipped.append((where, f"OONI {test_name} measurement holds no observations"))
                continue
            for record in records:
                found += 1
                result = analyze(record, fingerprints)
                yield AnalyzedRecord(
                    item.source,
                    item.line,
                    record,
                    result.verdict.to_dict(),
                    [e.to_dict() for e in result.endpoints],
                )
        if not measurements:
            first = skipped[0][1] if skipped else ""
            why = first.removeprefix("not a measurement (").removesuffix(")") if first else ""
            yield AnalyzeNote(f"{path}: not a measurement file ({why or 'no records'}), skipped")
            continue
        for where, why in skipped[:20]:
            yield AnalyzeNote(f"{where}: {why}, skipped")
        if len(skipped) > 20:
            yield AnalyzeNote(f"{path}: {len(skipped) - 20} more lines skipped")
