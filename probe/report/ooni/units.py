"""One OONI measurement split into the things it measured, each named by a target.

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

Each record takes our target id when the endpoint is one of the bundled targets (same IP, host
or URL), else ``ooni/<test_name>/<endpoint>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from probe.addresses import parse_ip
from probe.observations import Observations
from probe.report.ooni.normalise import (
    WEB_SCHEMES,
    _host_of,
    _norm_ip,
    _scheme_of,
    _split,
)

MESSENGER_TESTS = frozenset({"telegram", "signal", "whatsapp", "facebook_messenger"})
#: Tests whose measurement is split by host name even when they have an input.
SPLIT_BY_HOST_TESTS = MESSENGER_TESTS | {"dnscheck"}
#: urlgetter's other input schemes, and the check of ours that measures the same thing.
SCHEME_CHECKS = {
    "dnslookup": "dns",
    "tcpconnect": "tcp",
    "tlshandshake": "tls",
    "dot": "tls",
}


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
        definition = t.table_as_written() or {
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
