"""Realistic synthetic result sets for tests and benchmarks of `probe report`.

Many vantages (ASN, country), weeks of runs on a fixed cadence, every bundled-style target id
(telegram/dc1..dc5, telegram/web, whatsapp/e1.., signal/chat, ...), records of realistic size
(full envelope and test_keys with queries, tcp_connect, tls_handshakes, requests, network events,
about 2-4 KB each) written as `results/YYYY-MM-DD/<start>_<report_id>.jsonl`, exactly as `probe run`
lays them out.

Injected, at known times: blocking that starts, ends or changes method per (vantage, service),
service outages (status `down` everywhere). Noise: single runs that disagree with the true state,
rounds where the vantage is offline (every target `inconclusive`), and multi-day gaps with no data.
`generate()` returns the ground truth a noise-robust change detector must find: every real change
(with the last observation in the old state and the first in the new) and every gap.

Speed: the test_keys JSON text of each (target, state) is rendered once; a record is the envelope
template filled by string concatenation, so a million records take a few minutes.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from probe import failures
from probe.report import event_kind

OK = "ok"
BLOCKED = "blocked"
DOWN = "down"
INCONCLUSIVE = "inconclusive"

#: One true state of a target on a network: (status, blocking method or None).
State = tuple[str, str | None]

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True, slots=True)
class SyntheticTarget:
    id: str
    service: str
    check: str  # mtproto | https | tls
    host: str
    ip: str
    port: int = 443

    @property
    def name(self) -> str:
        return self.id.split("/", 1)[1]


def _targets() -> tuple[SyntheticTarget, ...]:
    dcs = ("149.154.175.50", "149.154.167.51", "149.154.175.100", "149.154.167.91", "149.154.171.5")
    found = [
        SyntheticTarget(f"telegram/dc{i}", "telegram", "mtproto", ip, ip)
        for i, ip in enumerate(dcs, 1)
    ]
    found.append(SyntheticTarget("telegram/web", "telegram", "https", "web.telegram.org", dcs[1]))
    found += [
        SyntheticTarget(
            f"whatsapp/e{i}", "whatsapp", "tls", f"e{i}.whatsapp.net", f"157.240.{i}.53"
        )
        for i in range(1, 5)
    ]
    found += [
        SyntheticTarget("whatsapp/web", "whatsapp", "https", "web.whatsapp.com", "157.240.9.53"),
        SyntheticTarget(
            "whatsapp/registration", "whatsapp", "https", "v.whatsapp.net", "157.240.9.54"
        ),
    ]
    found += [
        SyntheticTarget(f"signal/{name}", "signal", "https", f"{name}.signal.org", f"13.248.{i}.1")
        for i, name in enumerate(("chat", "cdsi", "storage", "sfu"), 212)
    ]
    found += [
        SyntheticTarget(
            "facebook_messenger/b-api",
            "facebook_messenger",
            "tls",
            "b-api.facebook.com",
            "157.240.1.1",
        ),
        SyntheticTarget(
            "facebook_messenger/edge-mqtt",
            "facebook_messenger",
            "tls",
            "edge-mqtt.facebook.com",
            "157.240.1.2",
        ),
    ]
    return tuple(found)


TARGETS: tuple[SyntheticTarget, ...] = _targets()
SERVICES: tuple[str, ...] = tuple(dict.fromkeys(t.service for t in TARGETS))

#: Real networks (ASN, country, resolver) used first; more vantages get private-range ASNs.
NETWORKS: tuple[tuple[str, str, str], ...] = (
    ("AS44244", "IR", "10.202.10.10"),
    ("AS197207", "IR", "10.44.8.8"),
    ("AS58224", "IR", "217.218.155.155"),
    ("AS16322", "IR", "81.91.129.229"),
    ("AS31549", "IR", "85.15.1.14"),
    ("AS12880", "IR", "217.218.127.127"),
    ("AS43754", "IR", "2.188.21.130"),
    ("AS12389", "RU", "95.167.167.95"),
    ("AS8359", "RU", "213.87.0.1"),
    ("AS25513", "RU", "195.34.32.116"),
    ("AS4134", "CN", "202.96.128.86"),
    ("AS4837", "CN", "202.106.0.20"),
    ("AS20978", "TM", "217.174.224.2"),
    ("AS34984", "TR", "195.175.39.39"),
    ("AS9121", "TR", "195.175.39.40"),
    ("AS3320", "DE", "194.25.0.60"),
    ("AS30722", "IT", "91.80.36.88"),
)

#: Blocking techniques a censor applies to a whole service, and the layer each check sees.
#: None: the technique does not touch that kind of target (DNS blocking leaves IP targets alone).
TECHNIQUES: dict[str, dict[str, str | None]] = {
    "dns": {"mtproto": None, "https": "dns", "tls": "dns"},
    "ip": {"mtproto": "tcp", "https": "tcp", "tls": "tcp"},
    "sni": {"mtproto": None, "https": "tls", "tls": "tls"},
    "dpi": {"mtproto": "protocol", "https": "tls", "tls": "tls"},
    "blockpage": {"mtproto": "tcp", "https": "http-diff", "tls": "tls"},
}


@dataclass(frozen=True, slots=True)
class Vantage:
    """One volunteer's probe on one network: its records carry `probe_id` (None: a version
    before the probe id) and, with `vpn`, `annotations.network_type = "vpn"`."""

    asn: str
    cc: str
    resolver_ip: str
    offset_seconds: int  # when in each interval this vantage's runs start
    probe_id: str | None = None
    vpn: bool = False

    @property
    def network_type(self) -> str:
        return "vpn" if self.vpn else "direct"


@dataclass(frozen=True, slots=True)
class TruthEvent:
    """A real change: `last_old` is the last observation in the old state, `first_new` the first in
    the new one (noise and inconclusive runs are never at either end)."""

    kind: str
    input: str
    probe_asn: str
    probe_cc: str
    old: State
    new: State
    last_old: datetime
    first_new: datetime
    probe_id: str | None = None  # the volunteer whose series this is
    network_type: str = "direct"


@dataclass(frozen=True, slots=True)
class TruthGap:
    """No conclusive observation of one series between `last_before` and `first_after`."""

    input: str
    probe_asn: str
    probe_cc: str
    last_before: datetime
    first_after: datetime
    probe_id: str | None = None
    network_type: str = "direct"


@dataclass(slots=True)
class GroundTruth:
    events: list[TruthEvent] = field(default_factory=list)
    gaps: list[TruthGap] = field(default_factory=list)
    records: int = 0
    files: int = 0
    bytes_written: int = 0


# --- test_keys rendering -------------------------------------------------------------------


def _fake_certificate(host: str) -> str:
    """A DER-sized base64 blob (deterministic per host) standing in for the leaf certificate."""
    seed = hashlib.sha256(host.encode()).digest()
    return base64.b64encode(seed * 24).decode()


def _dns_query(host: str, ip: str, state: State) -> list[dict[str, Any]]:
    failure = None
    answers: list[dict[str, Any]] = [
        {"answer_type": "A", "ipv4": ip, "ttl": 300, "asn": 62041, "as_org_name": "Example"}
    ]
    if state == (BLOCKED, "dns"):
        answers = [{"answer_type": "A", "ipv4": "10.10.34.36", "ttl": 30, "asn": 0}]
    elif state[0] == INCONCLUSIVE:
        failure, answers = failures.GENERIC_TIMEOUT, []
    common = {"engine": "udp", "resolver_address": "192.168.1.1:53", "resolver_hostname": None}
    return [
        {
            **common,
            "hostname": host,
            "query_type": "A",
            "answers": answers,
            "failure": failure,
            "t0": 0.0012,
            "t": 0.0421,
            "transaction_id": 1,
        },
        {
            **common,
            "hostname": host,
            "query_type": "AAAA",
            "answers": []
            if failure or state == (BLOCKED, "dns")
            else [{"answer_type": "AAAA", "ipv6": "2001:67c:4e8:f002::a", "ttl": 300}],
            "failure": failure,
            "t0": 0.0013,
            "t": 0.0440,
            "transaction_id": 1,
        },
    ]


def _layer_failures(target: SyntheticTarget, state: State) -> dict[str, str | None]:
    """Which operation fails, and how, for a target in a state."""
    status, method = state
    fail: dict[str, str | None] = {"connect": None, "tls": None, "http": None, "mtproto": None}
    if status in (DOWN, INCONCLUSIVE) or method == "tcp":
        fail["connect"] = failures.GENERIC_TIMEOUT
    elif method == "tls":
        fail["tls"] = failures.CONNECTION_RESET
    elif method == "http-failure":
        fail["http"] = failures.CONNECTION_RESET
    elif method == "protocol":
        fail["mtproto"] = failures.CONNECTION_RESET
    return fail


def _reason(target: SyntheticTarget, state: State) -> str:
    status, method = state
    if status == OK:
        return f"{target.host} answered as expected at every endpoint measured."
    if status == DOWN:
        return f"{target.host} timed out here and at the control: the service is down."
    if status == INCONCLUSIVE:
        return "The vantage itself is offline (0 of 4 baseline targets reachable)."
    return {
        "dns": "DNS answered 10.10.34.36 (national blockpage address) instead of the service.",
        "tcp": "TCP connect timed out here and succeeded at the control.",
        "tls": "The TLS handshake was reset after the ClientHello; the control completed it.",
        "http-failure": "The HTTP request was reset here and answered at the control.",
        "http-diff": "The page is a known blockpage (fingerprint ir_blockpage_peyvandha).",
        "protocol": "The MTProto handshake was reset after the first packet; TCP connect worked.",
    }.get(method or "", "Blocked.")


Fail = dict[str, str | None]


def _tcp_connects(ip: str, ports: list[int], fail: Fail, status: str) -> list[dict[str, Any]]:
    return [
        {
            "ip": ip,
            "port": port,
            "status": {
                "success": fail["connect"] is None,
                "failure": fail["connect"],
                "blocked": fail["connect"] is not None and status == BLOCKED,
            },
            "t0": 0.0450,
            "t": 10.0451 if fail["connect"] else 0.1890,
            "transaction_id": index + 2,
        }
        for index, port in enumerate(ports)
    ]


def _connect_events(address: str) -> list[dict[str, Any]]:
    return [
        {
            "address": address,
            "failure": None,
            "operation": "connect",
            "proto": "tcp",
            "t0": 0.0450,
            "t": 0.1890,
            "transaction_id": 2,
        },
        {
            "address": address,
            "failure": None,
            "num_bytes": 517,
            "operation": "write",
            "proto": "tcp",
            "t0": 0.1901,
            "t": 0.1902,
            "transaction_id": 2,
        },
    ]


def _tls_handshake(target: SyntheticTarget, address: str, fail: Fail) -> dict[str, Any]:
    tls_ok = fail["tls"] is None
    return {
        "address": address,
        "server_name": target.host,
        "alpn": ["h2", "http/1.1"],
        "negotiated_protocol": "http/1.1" if tls_ok else "",
        "tls_version": "TLSv1.3" if tls_ok else "",
        "cipher_suite": "TLS_AES_128_GCM_SHA256" if tls_ok else "",
        "no_tls_verify": False,
        "peer_certificates": (
            [{"format": "base64", "data": _fake_certificate(target.host)}] if tls_ok else []
        ),
        "failure": fail["tls"],
        "t0": 0.1905,
        "t": 0.4012,
        "transaction_id": 2,
    }


def _tls_read_event(address: str, fail: Fail) -> dict[str, Any]:
    return {
        "address": address,
        "failure": fail["tls"],
        "num_bytes": 4096,
        "operation": "read",
        "proto": "tcp",
        "t0": 0.3990,
        "t": 0.4010,
        "transaction_id": 2,
    }


def _http_request(
    target: SyntheticTarget, address: str, fail: Fail, method: str | None
) -> dict[str, Any]:
    blockpage = method == "http-diff"
    return {
        "network": "tcp",
        "address": address,
        "alpn": "http/1.1",
        "failure": fail["http"],
        "request": {
            "method": "GET",
            "url": f"https://{target.host}/",
            "headers_list": [
                ["Host", target.host],
                ["User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"],
                ["Accept", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"],
                ["Accept-Language", "en-US;q=0.8,en;q=0.5"],
            ],
            "body": "",
            "tor": {"is_tor": False, "exit_ip": None, "exit_name": None},
            "x_transport": "tcp",
        },
        "response": {
            "code": 0 if fail["http"] else (403 if blockpage else 200),
            "headers_list": []
            if fail["http"]
            else [
                ["Content-Type", "text/html; charset=utf-8"],
                ["Server", "nginx" if blockpage else "gws"],
                ["Strict-Transport-Security", "max-age=31536000"],
                ["Date", "Mon, 04 Mar 2024 10:00:00 GMT"],
            ],
            "body": None,
            "body_length": 0 if fail["http"] else (1432 if blockpage else 48211),
            "body_is_truncated": False,
            "x_title": "peyvandha.ir" if blockpage else target.host,
            "x_body_sha256": hashlib.sha256((target.host + str(blockpage)).encode()).hexdigest(),
        },
        "t0": 0.4013,
        "t": 0.7322,
        "transaction_id": 2,
    }


def _mtproto_handshakes(ip: str, ports: list[int], fail: Fail) -> list[dict[str, Any]]:
    return [
        {
            "address": f"{ip}:{port}",
            "transport": "obfuscated2",
            "success": fail["mtproto"] is None,
            "failure": fail["mtproto"],
            "failed_operation": None if fail["mtproto"] is None else "mtproto_handshake",
            "reply": None if fail["mtproto"] else "res_pq",
            "bytes_sent": 104,
            "bytes_received": 0 if fail["mtproto"] else 96,
            "known_key": None if fail["mtproto"] else True,
            "t0": 0.1901,
            "t": 0.3550,
            "transaction_id": index + 2,
        }
        for index, port in enumerate(ports)
    ]


def _exchanges(
    target: SyntheticTarget, state: State, ip: str, ports: list[int], fail: Fail
) -> dict[str, list[dict[str, Any]]]:
    """tls_handshakes, requests, network_events and mtproto of one target in one state."""
    address = f"{ip}:{target.port}"
    found: dict[str, list[dict[str, Any]]] = {
        "tls_handshakes": [],
        "requests": [],
        "network_events": [],
        "mtproto": [],
    }
    if fail["connect"] is not None:
        return found
    found["network_events"] += _connect_events(address)
    if target.check in ("https", "tls"):
        found["tls_handshakes"].append(_tls_handshake(target, address, fail))
        found["network_events"].append(_tls_read_event(address, fail))
        if fail["tls"] is None and target.check == "https":
            found["requests"].append(_http_request(target, address, fail, state[1]))
    if target.check == "mtproto":
        found["mtproto"] = _mtproto_handshakes(ip, ports, fail)
    return found


def _endpoints(
    target: SyntheticTarget, state: State, ip: str, ports: list[int], fail: Fail
) -> list[dict[str, Any]]:
    endpoint_failure = next((f for f in fail.values() if f), None)
    failed_operation = next((k for k, f in fail.items() if f), None)
    if state == (BLOCKED, "dns"):
        endpoint_failure, failed_operation = "dns_injection", "resolve"
    if state[1] == "http-diff":
        endpoint_failure, failed_operation = "http_blockpage", "http_round_trip"
    return [
        {
            "address": ip,
            "port": port,
            **({"transport": "obfuscated2"} if target.check == "mtproto" else {}),
            "outcome": "ok" if endpoint_failure is None else "failed",
            "failure": endpoint_failure,
            "failed_operation": failed_operation,
        }
        for port in ports
    ]


def _control(target: SyntheticTarget, status: str, ports: list[int]) -> dict[str, Any] | None:
    if status == INCONCLUSIVE:
        return None
    return {
        "url": "https://control.example.net/v1/measure",
        "endpoints": [
            {
                "address": f"{target.ip}:{port}",
                "failure": failures.GENERIC_TIMEOUT if status == DOWN else None,
            }
            for port in ports
        ],
    }


def _verdict(target: SyntheticTarget, state: State) -> dict[str, Any]:
    status, method = state
    return {
        "status": status,
        "blocking": method,
        "confirmed": method in ("dns", "http-diff"),
        "fingerprints": (
            ["dns_ir_10.10.34.36"]
            if method == "dns"
            else ["ir_blockpage_peyvandha"]
            if method == "http-diff"
            else []
        ),
        "reason": _reason(target, state),
    }


def render_test_keys(target: SyntheticTarget, state: State) -> str:
    """The JSON text of test_keys for one target in one state (rendered once, reused)."""
    status = state[0]
    fail = _layer_failures(target, state)
    ip = "10.10.34.36" if state == (BLOCKED, "dns") else target.ip
    ports = [443, 80, 5222] if target.check == "mtproto" else [target.port]
    queries = [] if target.check == "mtproto" else _dns_query(target.host, target.ip, state)
    exchanges = _exchanges(target, state, ip, ports, fail)
    test_keys = {
        "target": {
            "id": target.id,
            "service": target.service,
            "check": target.check,
            **(
                {"host": target.host, "ports": ports}
                if target.check != "https"
                else {"url": f"https://{target.host}/"}
            ),
        },
        "list": {
            "name": target.service,
            "updated": "2024-02-20",
            "sha256": hashlib.sha256(target.service.encode()).hexdigest(),
        },
        "queries": queries,
        "tcp_connect": _tcp_connects(ip, ports, fail, status),
        "tls_handshakes": exchanges["tls_handshakes"],
        "requests": exchanges["requests"],
        "network_events": exchanges["network_events"],
        "mtproto": exchanges["mtproto"],
        "x_endpoints": _endpoints(target, state, ip, ports, fail),
        "x_vantage": {
            "baseline_ok": 0 if status == INCONCLUSIVE else 4,
            "baseline_total": 4,
            "control_reachable": status != INCONCLUSIVE,
            "ipv6_ok": False,
        },
        "control": _control(target, status, ports),
        "control_failure": failures.GENERIC_TIMEOUT if status == INCONCLUSIVE else None,
        "verdict": _verdict(target, state),
    }
    return json.dumps(test_keys, separators=(",", ":"))


# --- scenario ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Series:
    """Per (vantage, target): the true state schedule and the streaming ground-truth tracker."""

    changes: list[tuple[datetime, State]]  # sorted; changes[0] is the initial state at `start`
    last_conclusive: datetime | None = None
    last_true: State | None = None
    last_true_time: datetime | None = None


def _vantages(count: int, rng: random.Random, interval: timedelta) -> list[Vantage]:
    found = []
    for index in range(count):
        if index < len(NETWORKS):
            asn, cc, resolver = NETWORKS[index]
        else:
            cc = rng.choice(("IR", "IR", "IR", "RU", "CN", "TR", "TM"))
            asn, resolver = f"AS{64512 + index}", f"10.{index % 250}.0.53"
        offset = rng.randrange(0, max(1, int(interval.total_seconds()) - 120))
        found.append(Vantage(asn, cc, resolver, offset))
    return found


def volunteer_set(
    seed: int = 1, interval: timedelta = timedelta(hours=1), *, with_unknown: bool = True
) -> list[Vantage]:
    """Volunteers for per-volunteer tests: two sharing AS44244 (IR) and a third there through
    a VPN, two sharing AS197207 (IR), one alone on AS58224 (IR) and, with `with_unknown`, one
    on AS16322 (IR) whose version wrote no probe id. Probe ids are drawn from `seed` in the
    probe's own format (identity.new_probe_id's alphabet)."""
    rng = random.Random(seed)

    def probe_id() -> str:
        return "p-" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz234567") for _ in range(16))

    def offset() -> int:
        return rng.randrange(0, max(1, int(interval.total_seconds()) - 120))

    shared = [
        ("AS44244", "IR", "10.202.10.10", False),
        ("AS44244", "IR", "10.202.10.10", False),
        ("AS44244", "IR", "10.202.10.10", True),
        ("AS197207", "IR", "10.44.8.8", False),
        ("AS197207", "IR", "10.44.8.8", False),
        ("AS58224", "IR", "217.218.155.155", False),
    ]
    found = [Vantage(asn, cc, res, offset(), probe_id(), vpn) for asn, cc, res, vpn in shared]
    if with_unknown:
        found.append(Vantage("AS16322", "IR", "81.91.129.229", offset(), None))
    return found


def _technique_state(target: SyntheticTarget, technique: str | None) -> State:
    if technique is None:
        return (OK, None)
    method = TECHNIQUES[technique][target.check]
    return (OK, None) if method is None else (BLOCKED, method)


def _schedule(
    cc: str, start: datetime, end: datetime, rng: random.Random, spacing: timedelta
) -> list[tuple[datetime, str | None]]:
    """Technique over time for one (vantage, service): initial technique plus 0-3 changes."""
    censoring = cc in ("IR", "CN", "TM", "RU", "TR")
    initial: str | None = None
    if censoring and rng.random() < 0.5:
        initial = rng.choice(tuple(TECHNIQUES))
    plan: list[tuple[datetime, str | None]] = [(start, initial)]
    if not censoring:
        return plan  # only the service-wide outages touch uncensored networks
    span = (end - start).total_seconds()
    slots = sorted(rng.uniform(0.1, 0.9) * span for _ in range(rng.randrange(0, 4)))
    current = initial
    for seconds in slots:
        when = start + timedelta(seconds=seconds)
        if when - plan[-1][0] < spacing:
            continue
        options = [t for t in (None, *TECHNIQUES) if t != current]
        current = rng.choice(options)
        plan.append((when.replace(minute=0, second=0, microsecond=0), current))
    return plan


def _near(when: datetime, points: Sequence[datetime], margin: timedelta) -> bool:
    return any(abs(when - p) <= margin for p in points)


def generate(
    out_dir: str | Path,
    *,
    vantages: int = 8,
    days: int = 14,
    interval: timedelta = timedelta(hours=1),
    start: datetime = datetime(2024, 3, 1, tzinfo=UTC),
    seed: int = 1,
    noise: float = 0.01,
    offline: float = 0.005,
    gaps_per_vantage: int = 1,
    gap_length: timedelta = timedelta(hours=40),
    max_gap: timedelta = timedelta(hours=24),
    outages: int = 1,
    targets: Sequence[SyntheticTarget] = TARGETS,
    volunteers: Sequence[Vantage] | None = None,
) -> GroundTruth:
    """Write a synthetic result set under `out_dir` and return its ground truth.

    `volunteers` replaces the `vantages` drawn at random: each is one volunteer (probe id) on
    one network, directly or through a VPN, and several may share a network (`volunteer_set`);
    each gets its own blocking schedule, noise and gaps, and the truth is per volunteer.

    `noise`: chance a run disagrees with the true state (always a single isolated run);
    `offline`: chance a round is inconclusive for every target of a vantage; `gaps_per_vantage`
    stretches of `gap_length` with no data; `outages`: service-wide outages (every network `down`
    for a few hours). Changes, gaps and noise keep apart so the truth is unambiguous;
    `max_gap` must match the detector's gap threshold."""
    rng = random.Random(seed)
    out = Path(out_dir)
    start = start.astimezone(UTC).replace(tzinfo=None)
    end = start + timedelta(days=days)
    spacing = max(timedelta(hours=12), interval * 8)
    margin = interval * 3
    truth = GroundTruth()
    vantage_list = (
        list(volunteers) if volunteers is not None else _vantages(vantages, rng, interval)
    )
    tk_cache: dict[tuple[str, State], str] = {}

    outage_plan: list[tuple[str, datetime, datetime]] = []
    for _ in range(outages):
        service = rng.choice(SERVICES)
        begin = start + timedelta(hours=int(rng.uniform(0.2, 0.8) * days * 24))
        length = max(interval * 6, timedelta(hours=6))
        # its end is a change too, and needs runs after it to be confirmed: with few, coarse
        # runs (8 days at 6 h) an outage drawn late would end in the series' last run
        latest = end - length - margin
        begin = min(begin, latest.replace(minute=0, second=0, microsecond=0))
        outage_plan.append((service, begin, begin + length))

    for vantage in vantage_list:
        series: dict[str, _Series] = {}
        change_points: list[datetime] = []
        for service in SERVICES:
            plan = _schedule(vantage.cc, start, end, rng, spacing)
            for svc, begin, finish in outage_plan:
                if svc == service:
                    # the outage replaces any change too close to it
                    plan = [
                        p
                        for p in plan
                        if p[0] == start or not _near(p[0], (begin, finish), spacing)
                    ]
            for target in targets:
                if target.service != service:
                    continue
                changes = [(when, _technique_state(target, tech)) for when, tech in plan]
                for svc, begin, finish in outage_plan:
                    if svc == service:
                        after = [s for w, s in changes if w <= finish][-1]
                        changes = [c for c in changes if c[0] < begin or c[0] > finish]
                        changes += [(begin, (DOWN, None)), (finish, after)]
                        changes.sort(key=lambda c: c[0])
                series[target.id] = _Series(changes)
            change_points += [when for when, _ in plan[1:]]
        for _service, begin, finish in outage_plan:
            change_points += [begin, finish]
        gaps: list[tuple[datetime, datetime]] = []
        for _ in range(gaps_per_vantage):
            for _attempt in range(50):
                begin = start + timedelta(hours=int(rng.uniform(0.1, 0.85) * days * 24))
                clear = not any(
                    begin - spacing <= p <= begin + gap_length + spacing for p in change_points
                )
                if clear and not any(abs(begin - g[0]) < gap_length * 2 for g in gaps):
                    gaps.append((begin, begin + gap_length))
                    break
        _write_vantage(
            out,
            vantage,
            series,
            targets,
            start,
            end,
            interval,
            rng,
            noise,
            offline,
            gaps,
            change_points,
            margin,
            max_gap,
            tk_cache,
            truth,
        )
    return truth


def _write_vantage(
    out: Path,
    vantage: Vantage,
    series: dict[str, _Series],
    targets: Sequence[SyntheticTarget],
    start: datetime,
    end: datetime,
    interval: timedelta,
    rng: random.Random,
    noise: float,
    offline: float,
    gaps: list[tuple[datetime, datetime]],
    change_points: list[datetime],
    margin: timedelta,
    max_gap: timedelta,
    tk_cache: dict[tuple[str, State], str],
    truth: GroundTruth,
) -> None:
    asn_number = vantage.asn[2:]
    run_start = start + timedelta(seconds=vantage.offset_seconds)
    last_noise: dict[str, datetime] = {}
    last_offline = start - interval * 10
    cursor = {t.id: 0 for t in targets}
    run_index = 0
    while run_start < end:
        run_index += 1
        this_start = run_start + timedelta(seconds=rng.randrange(0, 50))
        run_start += interval
        if any(begin <= this_start < finish for begin, finish in gaps):
            continue
        # no noise near a change or a gap: a noisy run there makes it ambiguous when the
        # change happened (noise in a series' first runs is fine: a tie between two methods
        # is settled by the runs after it, probe/report/changes.py)
        quiet = not _near(this_start, change_points, margin) and not any(
            _near(this_start, g, margin) for g in gaps
        )
        round_offline = (
            quiet and rng.random() < offline and this_start - last_offline > interval * 4
        )
        if round_offline:
            last_offline = this_start
        stamp = this_start.strftime("%Y%m%dT%H%M%SZ")
        report_id = f"{stamp}_{vantage.cc}_{asn_number}_{rng.getrandbits(48):012x}"
        directory = out / this_start.strftime("%Y-%m-%d")
        directory.mkdir(parents=True, exist_ok=True)
        head = (
            '{"data_format_version":"0.2.0","software_name":"probe","software_version":"0.1.0",'
            '"test_version":"0.1.0","probe_asn":"'
            + vantage.asn
            + '","probe_cc":"'
            + vantage.cc
            + '","probe_ip":"127.0.0.1","resolver_ip":"'
            + vantage.resolver_ip
            + '","report_id":"'
            + report_id
            + '","test_start_time":"'
            + this_start.strftime(TIME_FORMAT)
            + '","annotations":{"platform":"linux",'
            '"engine_name":"probe","architecture":"amd64","network_type":"'
            + ("vpn" if vantage.vpn else "wifi")
            + '"},'
            + ('"probe_id":"' + vantage.probe_id + '",' if vantage.probe_id else "")
        )
        lines = []
        for index, target in enumerate(targets):
            when = this_start + timedelta(seconds=index * 2 + 1)
            plan = series[target.id]
            position = cursor[target.id]
            while position + 1 < len(plan.changes) and plan.changes[position + 1][0] <= when:
                position += 1
            cursor[target.id] = position
            true_state = plan.changes[position][1]
            state = true_state
            is_noise = False
            if round_offline:
                state = (INCONCLUSIVE, None)
            elif (
                quiet
                and rng.random() < noise
                and when - last_noise.get(target.id, start - interval * 10) > interval * 4
            ):
                is_noise = True
                last_noise[target.id] = when
                state = _noise_state(target, true_state, rng)
            _track_truth(plan, target, vantage, when, state, true_state, is_noise, max_gap, truth)
            test_keys = tk_cache.get((target.id, state))
            if test_keys is None:
                test_keys = tk_cache[(target.id, state)] = render_test_keys(target, state)
            runtime = 10.2 if state[0] in (DOWN, INCONCLUSIVE) or state[1] == "tcp" else 0.74
            lines.append(
                head
                + '"test_name":"'
                + target.service
                + '","input":"'
                + target.id
                + '","measurement_start_time":"'
                + when.strftime(TIME_FORMAT)
                + '","test_runtime":'
                + str(runtime)
                + ',"test_keys":'
                + test_keys
                + "}\n"
            )
        text = "".join(lines)
        path = directory / f"{stamp}_{report_id}.jsonl"
        path.write_text(text, encoding="utf-8")
        truth.files += 1
        truth.records += len(lines)
        truth.bytes_written += len(text.encode("utf-8"))


def _noise_state(target: SyntheticTarget, true_state: State, rng: random.Random) -> State:
    """One run that disagrees with the truth: a spurious failure, or a lucky success."""
    if true_state[0] == BLOCKED:
        other = [m for m in {TECHNIQUES[t][target.check] for t in TECHNIQUES} if m]
        other = sorted(m for m in other if m != true_state[1])
        if other and rng.random() < 0.3:
            return (BLOCKED, rng.choice(other))
        return (OK, None)
    if true_state[0] == DOWN:
        return (OK, None)
    return (BLOCKED, "tcp")


def _track_truth(
    plan: _Series,
    target: SyntheticTarget,
    vantage: Vantage,
    when: datetime,
    state: State,
    true_state: State,
    is_noise: bool,
    max_gap: timedelta,
    truth: GroundTruth,
) -> None:
    if state[0] == INCONCLUSIVE:
        return
    if plan.last_conclusive is not None and when - plan.last_conclusive > max_gap:
        truth.gaps.append(
            TruthGap(
                target.id,
                vantage.asn,
                vantage.cc,
                plan.last_conclusive,
                when,
                vantage.probe_id,
                vantage.network_type,
            )
        )
    plan.last_conclusive = when
    if is_noise:
        return
    if (
        plan.last_true is not None
        and plan.last_true_time is not None
        and true_state != plan.last_true
    ):
        truth.events.append(
            TruthEvent(
                event_kind(plan.last_true[0], true_state[0]),
                target.id,
                vantage.asn,
                vantage.cc,
                plan.last_true,
                true_state,
                plan.last_true_time,
                when,
                vantage.probe_id,
                vantage.network_type,
            )
        )
    plan.last_true = true_state
    plan.last_true_time = when


def _parse_duration(text: str) -> timedelta:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if not text or text[-1] not in units or not text[:-1].isdigit():
        raise argparse.ArgumentTypeError(f"bad duration {text!r} (use e.g. 30m, 1h, 2d)")
    return timedelta(seconds=int(text[:-1]) * units[text[-1]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.synthetic",
        description="Write a synthetic result set (ground truth as JSON on stdout).",
    )
    parser.add_argument("out_dir")
    parser.add_argument("--vantages", type=int, default=8)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--interval", type=_parse_duration, default=timedelta(hours=1))
    parser.add_argument("--start", default="2024-03-01", help="UTC date of the first run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--noise", type=float, default=0.01)
    parser.add_argument("--offline", type=float, default=0.005)
    parser.add_argument("--gaps", type=int, default=1, help="gaps per vantage")
    parser.add_argument("--outages", type=int, default=1)
    parser.add_argument(
        "--volunteer-set",
        action="store_true",
        help="several volunteers with probe ids, some sharing a network, one through a VPN, "
        "one without an id (instead of --vantages)",
    )
    args = parser.parse_args(argv)
    try:
        first = datetime.fromisoformat(args.start)
    except ValueError:
        print(f"tests.synthetic: error: bad --start {args.start!r}", file=sys.stderr)
        return 2
    if first.tzinfo is None:
        first = first.replace(tzinfo=UTC)
    truth = generate(
        args.out_dir,
        vantages=args.vantages,
        days=args.days,
        interval=args.interval,
        start=first,
        seed=args.seed,
        noise=args.noise,
        offline=args.offline,
        gaps_per_vantage=args.gaps,
        outages=args.outages,
        volunteers=volunteer_set(args.seed, args.interval) if args.volunteer_set else None,
    )
    summary = {
        "records": truth.records,
        "files": truth.files,
        "bytes": truth.bytes_written,
        "events": [
            {
                "kind": e.kind,
                "input": e.input,
                "probe_asn": e.probe_asn,
                "probe_cc": e.probe_cc,
                "probe_id": e.probe_id,
                "network_type": e.network_type,
                "old": list(e.old),
                "new": list(e.new),
                "last_old": e.last_old.strftime(TIME_FORMAT),
                "first_new": e.first_new.strftime(TIME_FORMAT),
            }
            for e in truth.events
        ],
        "gaps": len(truth.gaps),
    }
    json.dump(summary, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
