"""Without a control server (and without --resolver), DNS over HTTPS is the DNS-only control:
its answers land in the record as `x_doh`, the record says so, and the analysis uses them."""

from __future__ import annotations

import asyncio
import datetime
import json
import ssl
from pathlib import Path

from probe.observations import DNSAnswer, DNSQuery, Observations
from probe.round.doh_fallback import doh_control
from probe.round.measure import MeasureConfig, RunState
from probe.round.runner import Round, RoundOptions
from probe.steps import dns
from probe.steps.dns.doh import DOH_CONNECTIONS
from probe.targets import Target, TargetList
from tests.servers.certs import TestPKI, pki, pki_ca_file  # noqa: F401 (fixtures)
from tests.servers.dns_server import DNSServer, DoHServer, Rule

ZONE = {"web.example": {"A": ["198.18.0.10"]}, "blocked.example": {"A": ["198.18.0.11"]}}


async def test_doh_control_asks_each_name_and_returns_query_records():
    async with DNSServer(ZONE) as server, DoHServer(server) as doh:
        pool = dns.GetaddrinfoPool()
        try:
            state = RunState(
                config=MeasureConfig(timeout=2.0),
                resolver=dns.Resolver(None, pool=pool, system_nameserver=None),
            )
            found = await doh_control(["web.example", "198.18.0.1"], state, [doh.url])
        finally:
            pool.close()
    assert set(found) == {"web.example"}  # IP literals need no lookup
    types = {q["query_type"]: q for q in found["web.example"]}
    assert types["A"]["engine"] == "doh" and types["A"]["failure"] is None
    assert types["A"]["answers"][0]["ipv4"] == "198.18.0.10"
    assert types["AAAA"]["failure"] == "dns_no_answer"


async def test_doh_control_tries_the_next_resolver_when_one_fails():
    async with DNSServer(ZONE, [Rule("silence", transport="doh")]) as dead_dns:
        async with DoHServer(dead_dns) as dead, DNSServer(ZONE) as good_dns:
            async with DoHServer(good_dns) as good:
                pool = dns.GetaddrinfoPool()
                try:
                    state = RunState(
                        config=MeasureConfig(timeout=1.0),
                        resolver=dns.Resolver(None, pool=pool, system_nameserver=None),
                    )
                    found = await asyncio.wait_for(
                        doh_control(["web.example"], state, [dead.url, good.url]), 20
                    )
                finally:
                    pool.close()
    assert found["web.example"][0]["resolver_address"] == good.url


async def test_record_carries_x_doh_and_the_analysis_uses_it(tmp_path: Path):
    """A lying local resolver (NXDOMAIN) against a DoH answer: blocked by DNS, and the record
    says the DNS comparison came from DoH."""
    target = Target(
        id="itest/name",
        service="itest",
        check="dns",
        host="web.example",
        list_name="l",
        definition={"id": "itest/name", "service": "itest", "check": "dns", "host": "web.example"},
    )
    lst = TargetList("l", datetime.date(2026, 11, 28), "l.toml", "0" * 64, targets=(target,))
    round_ = Round([lst], [target], RoundOptions(out_dir=str(tmp_path)))
    round_._load_fingerprints()
    doh_answer = DNSQuery(
        hostname="web.example",
        query_type="A",
        engine="doh",
        resolver_address="https://doh.example/dns-query",
        answers=[DNSAnswer("A", ipv4="93.184.216.34")],
    )
    round_.control.doh = {"web.example": [doh_answer.to_dict()]}
    probe_side = Observations(
        queries=[
            DNSQuery(
                hostname="web.example",
                query_type="ANY",
                engine="getaddrinfo",
                resolver_address="",
                failure="dns_nxdomain_error",
            )
        ]
    )
    record = round_.records.measured(target, probe_side, round_.start, 0.1).record
    round_.writer.close()
    assert record["annotations"]["control"] == "doh"
    assert record["test_keys"]["x_doh"][0]["engine"] == "doh"
    verdict = record["test_keys"]["verdict"]
    assert (verdict["status"], verdict["blocking"]) == ("blocked", "dns"), verdict["reason"]
    json.dumps(record)


# --- the DoH client's connections: counted and bounded ---------------------------------------


class CountingRelay:
    """A TCP relay in front of a server that counts the bytes each way and the connections:
    what the probe must count is what crossed this relay."""

    def __init__(self, port: int) -> None:
        self.target_port = port
        self.upstream = 0  # client to server
        self.downstream = 0
        self.connections = 0
        self.open = 0
        self.most_open = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> CountingRelay:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, up: bool) -> None:
            while data := await src.read(65536):
                if up:
                    self.upstream += len(data)
                else:
                    self.downstream += len(data)
                dst.write(data)
                await dst.drain()
            dst.close()

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(pipe(reader, up_writer, True))
                group.create_task(pipe(up_reader, writer, False))
        except* (ConnectionError, OSError):
            pass
        finally:
            self.open -= 1


async def test_every_byte_of_the_doh_comparison_is_counted_over_few_connections(
    pki: TestPKI,  # noqa: F811
    pki_ca_file: str,  # noqa: F811
) -> None:
    """30 names over HTTPS (a certificate chain, TLS records) through a counting relay: the
    round's byte counter holds exactly what crossed the wire, and the client used at most
    DOH_CONNECTIONS connections for the 60 queries (it used to open one per name)."""
    names = [f"n{i}.example" for i in range(30)]
    zone = {name: {"A": [f"198.18.1.{i}"]} for i, name in enumerate(names)}
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    pki.chained.configure_cert(server_context)
    async with DNSServer(zone) as server, DoHServer(server, ssl_context=server_context) as doh:
        async with CountingRelay(doh.port) as relay:
            state = RunState(
                config=MeasureConfig(timeout=5.0, ca_files=(pki_ca_file,)),
                resolver=dns.Resolver(("127.0.0.1", 9), pool=None),  # not used
            )
            url = f"https://localhost:{relay.port}/dns-query"
            found = await doh_control(names, state, [url])
            await asyncio.sleep(0.05)  # the relay counts our close_notify records too
    assert sorted(found) == sorted(names)
    assert all(found[n][0]["answers"][0]["ipv4"] == f"198.18.1.{i}" for i, n in enumerate(names))
    assert 1 <= relay.connections <= DOH_CONNECTIONS
    assert relay.most_open <= DOH_CONNECTIONS
    assert state.counter.sent == relay.upstream
    # A server's close_notify that crosses our close reaches the relay but not us: 24 bytes
    # (TLS 1.3) per connection at most.
    assert relay.downstream - 24 * relay.connections <= state.counter.received
    assert state.counter.received <= relay.downstream
    # more than the DNS messages: the TLS handshakes (with the chain) are in it
    assert state.counter.received > 30 * 2 * 40 + relay.connections * 1000


async def test_a_doh_server_with_an_untrusted_certificate_fails_each_query(
    pki: TestPKI,  # noqa: F811
) -> None:
    """Without --ca-file naming the test CA, the handshake fails: every query says so."""
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    pki.good.configure_cert(server_context)
    async with DNSServer(ZONE) as server, DoHServer(server, ssl_context=server_context) as doh:
        state = RunState(
            config=MeasureConfig(timeout=2.0),
            resolver=dns.Resolver(("127.0.0.1", 9), pool=None),  # not used
        )
        queries = await asyncio.wait_for(
            doh_control(["web.example"], state, [f"https://localhost:{doh.port}/dns-query"]), 20
        )
    assert queries == {}  # no resolver answered
