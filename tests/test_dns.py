"""The DNS steps and the Resolver, against a real DNS server on loopback (tests/servers)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import dns.flags
import dns.message
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe import failures
from probe.observations import DNSQuery, Trace
from probe.steps.dns import (
    GetaddrinfoPool,
    Resolver,
    parse_resolver,
    read_system_nameserver,
    resolve_doh,
    resolve_getaddrinfo,
    resolve_tcp,
    resolve_udp,
)
from probe.steps.dns.udp import resolve_udp_types
from probe.steps.tcp import ByteCounter
from tests.servers.dns_server import DNSServer, DoHServer, Rule

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 1.0
LIE_V4 = "10.10.34.34"
LIE_V6 = "d0::11"
PROBE_SOURCE = "127.0.0.2"
CONTROL_SOURCE = "127.0.0.3"

ZONE = {
    "example.org": {"A": ["198.18.0.10", "198.18.0.11"], "AAAA": ["2001:db8::10"], "ttl": 120},
    "www.example.org": {"CNAME": "example.org"},
    "v4only.example.org": {"A": ["198.18.0.20"]},
    "blocked.example": {"A": ["198.18.0.30"], "AAAA": ["2001:db8::30"]},
    "localhost": {"A": ["127.0.0.1"], "AAAA": ["::1"]},
}
# A name glibc and musl reject before sending anything (a space is not a host-name character).
# A well-formed `nonexistent.localhost` is NOT safe: with `hosts: files dns` it goes to the
# configured nameserver, which is a real address.
LOCALLY_INVALID_LOCALHOST_NAME = "no such host.localhost"


def make_trace() -> Trace:
    return Trace(zero=time.monotonic(), transaction_id=7)


def assert_bounded(started: float, timeout: float) -> None:
    assert time.monotonic() - started < 3 * timeout + 2


def roundtrip(query: DNSQuery) -> DNSQuery:
    return DNSQuery.from_dict(json.loads(json.dumps(query.to_dict())))


@pytest.fixture
async def server() -> AsyncIterator[DNSServer]:
    async with DNSServer(ZONE) as dns_server:
        yield dns_server


@pytest.fixture
def pool() -> Iterator[GetaddrinfoPool]:
    with GetaddrinfoPool(max_workers=2) as getaddrinfo_pool:
        yield getaddrinfo_pool


async def udp(server: DNSServer, name: str, qtype: str = "A", **kwargs: object) -> list[DNSQuery]:
    options: dict = {"timeout": TIMEOUT, "duplicate_window": 0.2}
    options.update(kwargs)
    return await resolve_udp(name, qtype, server.address, trace=make_trace(), **options)


# --- UDP: honest answers --------------------------------------------------------------------


async def test_udp_a_records(server: DNSServer) -> None:
    [query] = await udp(server, "example.org")
    assert query.failure is None and query.rcode == 0
    assert query.engine == "udp" and query.query_type == "A"
    assert query.resolver_address == f"127.0.0.1:{server.port}"
    assert [(a.answer_type, a.ipv4, a.ttl) for a in query.answers] == [
        ("A", "198.18.0.10", 120),
        ("A", "198.18.0.11", 120),
    ]
    assert query.addresses() == ["198.18.0.10", "198.18.0.11"]
    assert query.transaction_id == 7 and 0 <= query.t0 <= query.t
    assert not query.x_duplicate
    assert query.raw_response is not None
    reply = dns.message.from_wire(base64.b64decode(query.raw_response))
    assert reply.flags & dns.flags.QR


async def test_udp_aaaa_records(server: DNSServer) -> None:
    [query] = await udp(server, "example.org", "AAAA")
    assert query.failure is None
    assert [(a.answer_type, a.ipv6) for a in query.answers] == [("AAAA", "2001:db8::10")]


async def test_udp_cname_is_recorded(server: DNSServer) -> None:
    [query] = await udp(server, "www.example.org")
    assert query.failure is None
    assert query.answers[0].answer_type == "CNAME"
    assert query.answers[0].hostname == "example.org"
    assert query.addresses() == ["198.18.0.10", "198.18.0.11"]


async def test_udp_counts_bytes(server: DNSServer) -> None:
    counter = ByteCounter()
    [query] = await udp(server, "example.org", counter=counter)
    assert counter.sent > 0
    assert counter.received == len(base64.b64decode(query.raw_response or ""))


# --- UDP: failures --------------------------------------------------------------------------


async def test_udp_nxdomain_for_unknown_name(server: DNSServer) -> None:
    [query] = await udp(server, "missing.example.org")
    assert query.failure == failures.DNS_NXDOMAIN and query.rcode == 3
    assert query.failed_operation == "resolve"


async def test_udp_no_answer_when_type_missing(server: DNSServer) -> None:
    [query] = await udp(server, "v4only.example.org", "AAAA")
    assert query.failure == failures.DNS_NO_ANSWER and query.rcode == 0


@pytest.mark.parametrize(
    ("kind", "failure", "rcode"),
    [
        ("nxdomain", failures.DNS_NXDOMAIN, 3),
        ("servfail", failures.DNS_SERVFAIL, 2),
        ("refused", failures.DNS_REFUSED, 5),
        ("no_answer", failures.DNS_NO_ANSWER, 0),
    ],
)
async def test_udp_rcode_behaviours(server: DNSServer, kind: str, failure: str, rcode: int) -> None:
    server.rules = [Rule(kind, name="example.org")]
    [query] = await udp(server, "example.org")
    assert (query.failure, query.rcode, query.answers) == (failure, rcode, [])


async def test_udp_silence_is_a_timeout_within_the_deadline(server: DNSServer) -> None:
    server.rules = [Rule("silence")]
    started = time.monotonic()
    [query] = await udp(server, "example.org", timeout=0.5)
    assert_bounded(started, 0.5)
    assert query.failure == failures.GENERIC_TIMEOUT
    assert query.raw_response is None and query.rcode is None


async def test_udp_garbage_is_server_misbehaving(server: DNSServer) -> None:
    server.rules = [Rule("garbage", payload=b"\x00\x01 this is not DNS")]
    [query] = await udp(server, "example.org", timeout=0.5)
    assert query.failure == failures.DNS_SERVER_MISBEHAVING
    assert base64.b64decode(query.raw_response or "") == b"\x00\x01 this is not DNS"


async def test_udp_garbage_then_answer_keeps_the_answer(server: DNSServer) -> None:
    server.rules = [Rule("garbage", then_genuine=True)]
    [query] = await udp(server, "example.org")
    assert query.failure is None and query.addresses() == ["198.18.0.10", "198.18.0.11"]


async def test_udp_wrong_query_id(server: DNSServer) -> None:
    server.rules = [Rule("wrong_id")]
    [query] = await udp(server, "example.org", timeout=0.5)
    assert query.failure == failures.DNS_WRONG_QUERY_ID
    assert query.raw_response is not None


async def test_udp_closed_port_is_refused_or_timeout() -> None:
    # Find a free UDP port by binding and closing: nothing listens there afterwards.
    async with DNSServer(ZONE) as gone:
        address = gone.address
    [query] = await resolve_udp("example.org", "A", address, trace=make_trace(), timeout=0.5)
    assert query.failure in (failures.CONNECTION_REFUSED, failures.GENERIC_TIMEOUT)


# --- UDP: injection, foreign sources, truncation, per-peer behaviour -------------------------


async def test_injection_race_records_both_answers_lie_first(server: DNSServer) -> None:
    server.rules = [Rule("inject", name="blocked.example", ips=(LIE_V4,))]
    queries = await udp(server, "blocked.example", duplicate_window=0.3)
    assert [q.addresses() for q in queries] == [[LIE_V4], ["198.18.0.30"]]
    assert [q.x_duplicate for q in queries] == [False, True]
    assert queries[0].t <= queries[1].t
    assert all(q.failure is None and q.t0 == queries[0].t0 for q in queries)


async def test_a_and_aaaa_together_keep_each_querys_own_replies(server: DNSServer) -> None:
    """`resolve_udp_types` runs both queries of a name in one coroutine: each keeps its own
    duplicates, truncation (and TCP retry) and order, as one `resolve_udp` per type does."""
    server.rules = [
        Rule("inject", name="blocked.example", query_type="A", ips=(LIE_V4,)),
        Rule("truncate", name="blocked.example", query_type="AAAA"),
    ]
    a, aaaa = await resolve_udp_types(
        "blocked.example",
        ("A", "AAAA"),
        server.address,
        trace=make_trace(),
        timeout=TIMEOUT,
        duplicate_window=0.3,
    )
    assert [q.addresses() for q in a] == [[LIE_V4], ["198.18.0.30"]]
    assert [(q.query_type, q.engine, q.x_duplicate) for q in a] == [
        ("A", "udp", False),
        ("A", "udp", True),
    ]
    assert [(q.query_type, q.engine) for q in aaaa] == [("AAAA", "udp"), ("AAAA", "tcp")]
    assert aaaa[1].addresses() == ["2001:db8::30"]


async def test_duplicate_window_is_bounded_by_the_deadline(server: DNSServer) -> None:
    server.rules = [Rule("inject", ips=(LIE_V4,), gap=30.0)]
    started = time.monotonic()
    queries = await udp(server, "blocked.example", timeout=0.5, duplicate_window=10.0)
    assert_bounded(started, 0.5)
    assert [q.addresses() for q in queries] == [[LIE_V4]]


async def test_datagrams_from_another_source_are_ignored(server: DNSServer) -> None:
    server.rules = [Rule("foreign", ips=(LIE_V4,))]
    queries = await udp(server, "blocked.example")
    assert [q.addresses() for q in queries] == [["198.18.0.30"]]


async def test_truncated_reply_is_retried_over_tcp(server: DNSServer) -> None:
    server.rules = [Rule("truncate", name="example.org")]
    counter = ByteCounter()
    queries = await udp(server, "example.org", counter=counter)
    assert [q.engine for q in queries] == ["udp", "tcp"]
    truncated, retried = queries
    assert truncated.failure is None and truncated.answers == []
    reply = dns.message.from_wire(base64.b64decode(truncated.raw_response or ""))
    assert reply.flags & dns.flags.TC
    assert retried.failure is None and not retried.x_duplicate
    assert retried.addresses() == ["198.18.0.10", "198.18.0.11"]
    assert [r.transport for r in server.received] == ["udp", "tcp"]
    assert counter.received > len(base64.b64decode(truncated.raw_response or ""))


async def test_behaviour_depends_on_the_peer_address(server: DNSServer) -> None:
    server.rules = [Rule("lie", peer=PROBE_SOURCE, ips=(LIE_V4,))]
    [probe_view] = await udp(server, "example.org", source_address=PROBE_SOURCE)
    [control_view] = await udp(server, "example.org", source_address=CONTROL_SOURCE)
    assert probe_view.addresses() == [LIE_V4]
    assert control_view.addresses() == ["198.18.0.10", "198.18.0.11"]
    assert [r.peer for r in server.received] == [PROBE_SOURCE, CONTROL_SOURCE]


async def test_cancellation_escapes_the_step(server: DNSServer) -> None:
    server.rules = [Rule("silence")]
    task = asyncio.create_task(udp(server, "example.org", timeout=5.0))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("name", ["bad..example", "x" * 64 + ".example", "a." * 130 + "example"])
async def test_unencodable_name_is_a_failure_not_an_exception(server: DNSServer, name: str) -> None:
    trace = make_trace()
    [query] = await udp(server, name)
    tcp_query = await resolve_tcp(name, "A", server.address, trace=trace, timeout=TIMEOUT)
    async with DoHServer(server) as doh, httpx.AsyncClient() as client:
        doh_query = await resolve_doh(
            name, "A", doh.url, trace=trace, timeout=TIMEOUT, client=client
        )
    for failed in (query, tcp_query, doh_query):
        assert failed.failure == failures.DNS_INVALID_HOSTNAME
    assert server.received == []


@pytest.mark.parametrize("name", ["bad..localhost", "x" * 64 + ".localhost"])
async def test_getaddrinfo_unencodable_name(pool: GetaddrinfoPool, name: str) -> None:
    # Python's IDNA codec refuses these before the system resolver sees them.
    query = await resolve_getaddrinfo(name, trace=make_trace(), timeout=TIMEOUT, pool=pool)
    assert query.failure == failures.DNS_INVALID_HOSTNAME


def test_unsupported_query_type_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unsupported DNS query type"):
        asyncio.run(
            resolve_udp("example.org", "TXT", ("127.0.0.1", 9), trace=make_trace(), timeout=1)
        )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=st.binary(max_size=700), patch_id=st.booleans())
def test_arbitrary_reply_bytes_never_raise(payload: bytes, patch_id: bool) -> None:
    async def run() -> list[DNSQuery]:
        rule = Rule("garbage", payload=payload, patch_id=patch_id, then_genuine=True)
        async with DNSServer(ZONE, [rule]) as dns_server:
            return await udp(dns_server, "example.org", timeout=0.5, duplicate_window=0.01)

    queries = asyncio.run(run())
    # Whatever the payload was, it was recorded or skipped, and the genuine answer still counted.
    assert any(q.addresses() == ["198.18.0.10", "198.18.0.11"] for q in queries), queries
    assert all(q.failure is None or isinstance(q.failure, str) for q in queries)
    assert [roundtrip(q) for q in queries] == queries


# --- TCP ------------------------------------------------------------------------------------


async def test_tcp_answer(server: DNSServer) -> None:
    counter = ByteCounter()
    query = await resolve_tcp(
        "www.example.org", "A", server.address, trace=make_trace(), timeout=TIMEOUT, counter=counter
    )
    assert query.engine == "tcp" and query.failure is None
    assert [a.answer_type for a in query.answers] == ["CNAME", "A", "A"]
    assert counter.sent > 2 and counter.received > 2


@pytest.mark.parametrize(
    ("rule", "failure"),
    [
        (Rule("servfail"), failures.DNS_SERVFAIL),
        (Rule("wrong_id"), failures.DNS_WRONG_QUERY_ID),
        (Rule("garbage"), failures.DNS_SERVER_MISBEHAVING),
        (Rule("silence"), failures.GENERIC_TIMEOUT),
    ],
)
async def test_tcp_failures(server: DNSServer, rule: Rule, failure: str) -> None:
    server.rules = [rule]
    started = time.monotonic()
    query = await resolve_tcp("example.org", "A", server.address, trace=make_trace(), timeout=0.5)
    assert_bounded(started, 0.5)
    assert query.failure == failure


async def test_tcp_connection_refused() -> None:
    async with DNSServer(ZONE) as gone:
        address = gone.address
    query = await resolve_tcp("example.org", "A", address, trace=make_trace(), timeout=TIMEOUT)
    assert query.failure == failures.CONNECTION_REFUSED


# --- getaddrinfo ----------------------------------------------------------------------------


async def test_getaddrinfo_localhost(pool: GetaddrinfoPool) -> None:
    query = await resolve_getaddrinfo("localhost", trace=make_trace(), timeout=TIMEOUT, pool=pool)
    assert query.failure is None, query.failure
    assert (query.engine, query.query_type, query.resolver_address) == ("getaddrinfo", "ANY", "")
    assert "127.0.0.1" in query.addresses()
    assert query.x_queue_time is not None and query.x_queue_time >= 0


async def test_getaddrinfo_nonexistent_localhost_name(pool: GetaddrinfoPool) -> None:
    query = await resolve_getaddrinfo(
        LOCALLY_INVALID_LOCALHOST_NAME, trace=make_trace(), timeout=TIMEOUT, pool=pool
    )
    assert query.failure == failures.DNS_NXDOMAIN
    assert query.answers == []


async def test_getaddrinfo_queue_time_is_measured() -> None:
    release = threading.Event()
    with GetaddrinfoPool(max_workers=1) as one_worker:
        blocker = one_worker.executor.submit(release.wait, 10)
        task = asyncio.create_task(
            resolve_getaddrinfo("localhost", trace=make_trace(), timeout=5.0, pool=one_worker)
        )
        await asyncio.sleep(0.2)
        release.set()
        query = await task
        blocker.result()
    assert query.failure is None
    assert query.x_queue_time is not None and query.x_queue_time >= 0.1


async def test_getaddrinfo_timeout_while_queued() -> None:
    release = threading.Event()
    with GetaddrinfoPool(max_workers=1) as one_worker:
        blocker = one_worker.executor.submit(release.wait, 10)
        started = time.monotonic()
        query = await resolve_getaddrinfo(
            "localhost", trace=make_trace(), timeout=0.3, pool=one_worker
        )
        assert_bounded(started, 0.3)
        release.set()
        blocker.result()
    assert query.failure == failures.GENERIC_TIMEOUT
    assert query.x_queue_time is not None and query.x_queue_time > 0


# --- Resolver -------------------------------------------------------------------------------


async def test_resolver_with_server_sends_nowhere_else(pool: GetaddrinfoPool) -> None:
    async with DNSServer(ZONE) as chosen, DNSServer(ZONE) as system:
        resolver = Resolver(chosen.address, pool=pool, system_nameserver=system.address)
        # Not a localhost name: if getaddrinfo were used, the network guard would fail the test.
        resolution = await resolver.resolve("example.org", trace=make_trace(), timeout=TIMEOUT)
    assert system.received == []
    assert sorted((r.transport, r.query_type) for r in chosen.received) == [
        ("udp", "A"),
        ("udp", "AAAA"),
    ]
    assert {q.engine for q in resolution.queries} == {"udp"}
    assert resolution.addresses == ["198.18.0.10", "198.18.0.11", "2001:db8::10"]


async def test_resolver_with_server_needs_no_pool() -> None:
    async with DNSServer(ZONE, [Rule("truncate", query_type="AAAA")]) as chosen:
        resolver = Resolver(chosen.address, pool=None, system_nameserver=None)
        resolution = await resolver.resolve("example.org", trace=make_trace(), timeout=TIMEOUT)
    assert [(q.engine, q.query_type) for q in resolution.queries] == [
        ("udp", "A"),
        ("udp", "AAAA"),
        ("tcp", "AAAA"),
    ]
    assert resolution.addresses == ["198.18.0.10", "198.18.0.11", "2001:db8::10"]


async def test_resolver_system_engines_and_address_order(pool: GetaddrinfoPool) -> None:
    rules = [Rule("inject", name="localhost", query_type="A", ips=(LIE_V4,))]
    async with DNSServer(ZONE, rules) as system:
        resolver = Resolver(None, pool=pool, system_nameserver=system.address)
        resolution = await resolver.resolve("localhost", trace=make_trace(), timeout=TIMEOUT)
    engines = [(q.engine, q.query_type, q.x_duplicate) for q in resolution.queries]
    assert engines == [
        ("getaddrinfo", "ANY", False),
        ("udp", "A", False),
        ("udp", "A", True),
        ("udp", "AAAA", False),
    ]
    assert resolution.queries[1].addresses() == [LIE_V4]
    # getaddrinfo first; then the UDP answers (the duplicate's 127.0.0.1 is not new), v4 first.
    assert resolution.addresses[0] == "127.0.0.1"
    assert resolution.addresses[-2:] == [LIE_V4, "::1"]


async def test_resolver_without_system_nameserver_uses_getaddrinfo_only(
    pool: GetaddrinfoPool,
) -> None:
    resolver = Resolver(None, pool=pool, system_nameserver=None)
    resolution = await resolver.resolve("localhost", trace=make_trace(), timeout=TIMEOUT)
    assert [q.engine for q in resolution.queries] == ["getaddrinfo"]
    assert "127.0.0.1" in resolution.addresses


@pytest.mark.parametrize(
    ("literal", "address"),
    [
        ("198.18.0.5", "198.18.0.5"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:DB8::1]", "2001:db8::1"),
    ],
)
async def test_resolver_ip_literal_sends_nothing(
    server: DNSServer, literal: str, address: str
) -> None:
    resolver = Resolver(server.address, pool=None, system_nameserver=None)
    resolution = await resolver.resolve(literal, trace=make_trace(), timeout=TIMEOUT)
    assert (resolution.queries, resolution.addresses) == ([], [address])
    assert server.received == []


def test_resolver_without_server_needs_a_pool() -> None:
    with pytest.raises(ValueError, match="GetaddrinfoPool"):
        Resolver(None, pool=None, system_nameserver=None)


def test_read_system_nameserver(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text(
        "# comment\nsearch lan\nnameserver not-an-ip\nnameserver fe80::1%eth0 # link-local\n"
        "nameserver 192.0.2.53\n"
    )
    assert read_system_nameserver(str(conf)) == ("fe80::1%eth0", 53)
    conf.write_text("search lan\n")
    assert read_system_nameserver(str(conf)) is None
    assert read_system_nameserver(str(tmp_path / "missing")) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.53", ("192.0.2.53", 53)),
        (" 192.0.2.53:5353 ", ("192.0.2.53", 5353)),
        ("2001:db8::53", ("2001:db8::53", 53)),
        ("[2001:DB8::53]:853", ("2001:db8::53", 853)),
        ("[::1]", ("::1", 53)),
        ("[fe80::1%eth0]:53", ("fe80::1%eth0", 53)),
    ],
)
def test_parse_resolver_good(text: str, expected: tuple[str, int]) -> None:
    assert parse_resolver(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "dns.google",
        "dns.google:53",
        "192.0.2.53:",
        "192.0.2.53:0",
        "192.0.2.53:65536",
        "192.0.2.53:dns",
        "192.0.2.53:+53",
        "192.0.2.300",
        "[2001:db8::53",
        "[2001:db8::53]53",
        "[192.0.2.53]:53",
        "[2001:db8::53]:",
        "2001:db8::53:99999",
    ],
)
def test_parse_resolver_bad(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_resolver(text)
    message = str(info.value)
    assert "\n" not in message and "IP[:PORT]" in message


# --- DNS over HTTPS -------------------------------------------------------------------------


async def test_doh_answer(server: DNSServer) -> None:
    async with DoHServer(server) as doh, httpx.AsyncClient() as client:
        query = await resolve_doh(
            "www.example.org", "A", doh.url, trace=make_trace(), timeout=TIMEOUT, client=client
        )
    assert (query.engine, query.resolver_address, query.failure) == ("doh", doh.url, None)
    assert [a.answer_type for a in query.answers] == ["CNAME", "A", "A"]
    assert [(r.transport, r.peer) for r in server.received] == [("doh", "127.0.0.1")]


async def test_doh_nxdomain(server: DNSServer) -> None:
    async with DoHServer(server) as doh, httpx.AsyncClient() as client:
        query = await resolve_doh(
            "missing.example.org", "A", doh.url, trace=make_trace(), timeout=TIMEOUT, client=client
        )
    assert (query.failure, query.rcode) == (failures.DNS_NXDOMAIN, 3)


@pytest.mark.parametrize(
    ("status", "content_type", "rules", "failure"),
    [
        (500, "application/dns-message", [], failures.DNS_SERVER_MISBEHAVING),
        (200, "text/html", [], failures.DNS_SERVER_MISBEHAVING),
        (200, "application/dns-message", [Rule("garbage")], failures.DNS_SERVER_MISBEHAVING),
        (200, "application/dns-message", [Rule("wrong_id")], failures.DNS_WRONG_QUERY_ID),
        (200, "application/dns-message", [Rule("silence")], failures.GENERIC_TIMEOUT),
    ],
)
async def test_doh_failures(
    server: DNSServer, status: int, content_type: str, rules: list[Rule], failure: str
) -> None:
    server.rules = rules
    async with DoHServer(server) as doh, httpx.AsyncClient() as client:
        doh.status, doh.content_type = status, content_type
        started = time.monotonic()
        query = await resolve_doh(
            "example.org", "A", doh.url, trace=make_trace(), timeout=0.5, client=client
        )
        assert_bounded(started, 0.5)
    assert query.failure == failure


# --- records --------------------------------------------------------------------------------


async def test_observations_survive_a_json_round_trip(
    server: DNSServer, pool: GetaddrinfoPool
) -> None:
    server.rules = [Rule("inject", name="blocked.example", ips=(LIE_V4,))]
    queries = await udp(server, "blocked.example")
    queries += await udp(server, "missing.example.org")
    queries.append(
        await resolve_tcp(
            "www.example.org", "A", server.address, trace=make_trace(), timeout=TIMEOUT
        )
    )
    queries.append(
        await resolve_getaddrinfo("localhost", trace=make_trace(), timeout=TIMEOUT, pool=pool)
    )
    assert len(queries) == 5
    for query in queries:
        assert roundtrip(query) == query


# --- the server as a standalone process -----------------------------------------------------


def test_standalone_server_process(tmp_path: Path) -> None:
    zone_file = tmp_path / "zone.json"
    rules = [{"kind": "lie", "name": "blocked.example", "ips": [LIE_V4]}]
    zone_file.write_text(json.dumps({"zone": ZONE, "rules": rules}))
    with subprocess.Popen(
        [sys.executable, "-m", "tests.servers.dns_server", "--port", "0", "--zone", str(zone_file)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    ) as process:
        try:
            assert process.stdout is not None
            port = int(process.stdout.readline())

            async def ask() -> list[DNSQuery]:
                honest = await resolve_udp(
                    "example.org", "A", ("127.0.0.1", port), trace=make_trace(), timeout=TIMEOUT
                )
                lie = await resolve_tcp(
                    "blocked.example", "A", ("127.0.0.1", port), trace=make_trace(), timeout=TIMEOUT
                )
                return [*honest, lie]

            honest, lie = asyncio.run(ask())
            assert honest.addresses() == ["198.18.0.10", "198.18.0.11"]
            assert lie.addresses() == [LIE_V4]
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_standalone_server_rejects_a_bad_zone_in_one_line(tmp_path: Path) -> None:
    zone_file = tmp_path / "zone.json"
    zone_file.write_text(json.dumps({"example.org": {"A": ["not-an-ip"]}}))
    result = subprocess.run(
        [sys.executable, "-m", "tests.servers.dns_server", "--zone", str(zone_file)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and str(zone_file) in result.stderr
