"""The queries the UDP/TCP/DoH steps send are exactly dnspython's make_query with EDNS0.

`probe.steps.dns._make_query` shares one OPT record between queries and converts a host name once
for
its A and AAAA queries (both for speed); nothing on the wire may differ from building each query
from scratch."""

from __future__ import annotations

import dns.message
import pytest

from probe import failures
from probe.steps import dns as probe_dns


@pytest.mark.parametrize(
    "hostname", ["example.org", "h1.bench.test", "x.y.", "пример.рф", "xn--e1afmkfd.xn--p1ai", "."]
)
@pytest.mark.parametrize("query_type", ["A", "AAAA"])
def test_queries_are_make_query_with_edns0(hostname: str, query_type: str) -> None:
    for _ in range(2):  # the second time the name comes from the cache
        ours = probe_dns._make_query(hostname, query_type)
        reference = dns.message.make_query(
            hostname,
            probe_dns.QUERY_TYPES[query_type],
            use_edns=0,
            payload=probe_dns.EDNS_PAYLOAD,
        )
        reference.id = ours.id
        assert ours.to_wire() == reference.to_wire()
        assert (ours.edns, ours.payload, ours.ednsflags, ours.request_payload) == (
            reference.edns,
            reference.payload,
            reference.ednsflags,
            reference.request_payload,
        )
        assert ours.is_response(dns.message.make_response(reference))


def test_queries_have_their_own_ids_and_questions() -> None:
    a = probe_dns._make_query("example.org", "A")
    aaaa = probe_dns._make_query("example.org", "AAAA")
    assert a.question != aaaa.question
    assert len({probe_dns._make_query("example.org", "A").id for _ in range(20)}) > 1


@pytest.mark.parametrize("hostname", ["a" * 64 + ".org", "a..b", "x" * 300])
def test_a_name_dns_cannot_carry_fails_every_time(hostname: str) -> None:
    for _ in range(2):  # failures are not cached
        with pytest.raises(failures.ProbeFailure) as raised:
            probe_dns._make_query(hostname, "A")
        assert raised.value.failure == failures.DNS_INVALID_HOSTNAME
