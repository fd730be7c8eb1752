"""The benchmarks' helpers (bench/): their list files load, their DNS answers parse. The
benchmarks themselves are not run here (they need root and minutes; see bench/README.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import dns.message
import dns.rcode
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import benchlib
import floor_https
import world

from probe.targets import load_lists


def test_written_lists_load_cleanly(tmp_path: Path) -> None:
    names = [f"h{i}.bench.test" for i in range(3)]
    https = benchlib.https_list(tmp_path / "https.toml", names)
    tcp = benchlib.write_list(
        tmp_path / "tcp.toml",
        "tcp",
        [
            {
                "id": "bench/t0",
                "service": "bench",
                "check": "tcp",
                "host": "198.19.0.1",
                "ports": [443, 5222],
            }
        ],
    )
    loaded = load_lists([https, tcp])
    assert loaded.problems == []
    assert [t.url for t in loaded.targets[:3]] == [f"https://{n}/" for n in names]
    assert loaded.targets[3].ports == (443, 5222)


def test_addresses_are_distinct_and_in_range() -> None:
    addresses = [benchlib.address_for(i, (198, 19)) for i in range(1000)]
    assert len(set(addresses)) == 1000
    assert all(a.startswith("198.19.") and not a.endswith((".0", ".255")) for a in addresses)
    with pytest.raises(ValueError):
        benchlib.address_for(254 * 256, (127, 1))


@pytest.mark.parametrize("name", ["h1.bench.test", "H1.Bench.Test"])
def test_zone_dns_answers_a_and_empty_aaaa(name: str) -> None:
    zone = world.ZoneDNS({"h1.bench.test": ["127.1.0.2"]})
    query = dns.message.make_query(name, "A", use_edns=0)
    reply = dns.message.from_wire(zone.answer(query.to_wire()) or b"")
    assert query.is_response(reply)
    assert [r.address for rrset in reply.answer for r in rrset] == ["127.1.0.2"]
    empty = dns.message.make_query(name, "AAAA")
    reply = dns.message.from_wire(zone.answer(empty.to_wire()) or b"")
    assert reply.rcode() == dns.rcode.NOERROR and not reply.answer
    missing = dns.message.make_query("nope.bench.test", "A")
    reply = dns.message.from_wire(zone.answer(missing.to_wire()) or b"")
    assert reply.rcode() == dns.rcode.NXDOMAIN


def test_floor_parses_what_the_zone_answers() -> None:
    zone = world.ZoneDNS({"h7.bench.test": ["127.1.0.8", "127.1.0.9"]})
    query_id, packet = floor_https.dns_query("h7.bench.test", 1)
    assert floor_https.a_records(zone.answer(packet) or b"", query_id) == [
        "127.1.0.8",
        "127.1.0.9",
    ]
    with pytest.raises(ValueError):
        floor_https.a_records(zone.answer(packet) or b"", query_id ^ 1)


def test_page_sizes_and_gzip() -> None:
    plain = world.page_response(400_000)
    head, _, body = plain.partition(b"\r\n\r\n")
    assert len(body) == 400_000 and b"Content-Length: 400000" in head
    gzipped = world.page_response(400_000, gzipped=True)
    # pseudo-random words compress like real HTML (a few times), not like one repeated line
    assert 50_000 < len(gzipped) < 200_000
