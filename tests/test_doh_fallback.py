"""Without a control server (and without --resolver), DNS over HTTPS is the DNS-only control:
its answers land in the record as `x_doh`, the record says so, and the analysis uses them."""

from __future__ import annotations

import asyncio
import datetime
import json
from pathlib import Path

from probe.observations import DNSAnswer, DNSQuery, Observations
from probe.round.doh_fallback import doh_control
from probe.round.measure import MeasureConfig, RunState
from probe.round.runner import Round, RoundOptions
from probe.steps import dns
from probe.targets import Target, TargetList
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
