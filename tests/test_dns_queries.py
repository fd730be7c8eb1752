"""The queries the UDP/TCP/DoH steps send are exactly dnspython's make_query with EDNS0.

`probe.steps.dns._make_query` builds the wire by hand and converts a host name once for its A
and AAAA queries (both for speed); nothing on the wire may differ from building each query with
dnspython, and which replies answer it must be what dnspython's `is_response` says."""

from __future__ import annotations

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
        assert ours.is_response(dns.message.make_response(reference))


def _replies(query: dns.message.Message) -> list[dns.message.Message]:
    """Replies to `query` and near misses: each changes one thing is_response looks at."""
    good = dns.message.make_response(query)
    other_id = dns.message.make_response(query)
    other_id.id = (query.id + 1) % 65536
    not_qr = dns.message.make_response(query)
    not_qr.flags &= ~dns.flags.QR
    other_opcode = dns.message.make_response(query)
    other_opcode.set_opcode(dns.opcode.STATUS)
    other_name = dns.message.make_response(dns.message.make_query("other.example", "A"))
    other_name.id = query.id
    upper = dns.message.make_response(
        dns.message.make_query(str(query.question[0].name).upper(), query.question[0].rdtype)
    )
    upper.id = query.id
    other_type = dns.message.make_response(
        dns.message.make_query(query.question[0].name, "TXT", id=query.id)
    )
    replies = [good, other_id, not_qr, other_opcode, other_name, upper, other_type]
    for rcode in (dns.rcode.SERVFAIL, dns.rcode.REFUSED, dns.rcode.NXDOMAIN):
        empty = dns.message.make_response(query)
        empty.set_rcode(rcode)
        empty.question = []
        replies.append(empty)
    two = dns.message.make_response(query)
    two.question = [*two.question, *other_type.question]
    replies.append(two)
    return [dns.message.from_wire(reply.to_wire()) for reply in replies]


@pytest.mark.parametrize("hostname", ["example.org", "Mixed.Case.example", "h1.bench.test"])
@pytest.mark.parametrize("query_type", ["A", "AAAA"])
def test_which_replies_answer_a_query_is_dnspythons_is_response(
    hostname: str, query_type: str
) -> None:
    ours = probe_dns._make_query(hostname, query_type)
    reference = dns.message.from_wire(ours.to_wire())
    verdicts = [(ours.is_response(r), reference.is_response(r)) for r in _replies(reference)]
    assert [a for a, _ in verdicts] == [b for _, b in verdicts]
    assert verdicts[0] == (True, True) and verdicts[1] == (False, False)


def test_queries_have_their_own_ids_and_questions() -> None:
    a = probe_dns._make_query("example.org", "A")
    aaaa = probe_dns._make_query("example.org", "AAAA")
    assert a.to_wire()[12:] != aaaa.to_wire()[12:]
    assert len({probe_dns._make_query("example.org", "A").id for _ in range(20)}) > 1


@pytest.mark.parametrize("hostname", ["a" * 64 + ".org", "a..b", "x" * 300])
def test_a_name_dns_cannot_carry_fails_every_time(hostname: str) -> None:
    for _ in range(2):  # failures are not cached
        with pytest.raises(failures.ProbeFailure) as raised:
            probe_dns._make_query(hostname, "A")
        assert raised.value.failure == failures.DNS_INVALID_HOSTNAME


# --- the name's wire form without dnspython ---------------------------------------------------

_LABEL_CHARS = "abcXYZ019_-"
_NEAR_MISS = ["", "@", ".", "..", " ", "\\065", "\\.", "\\", "é", "пример", "xn--p1ai", "a\0b"]
_labels = st.one_of(
    st.text(alphabet=_LABEL_CHARS, min_size=1, max_size=3),
    st.sampled_from(["a" * 62, "b" * 63, "c" * 64, "Mixed-Case_1"]),
    st.sampled_from(_NEAR_MISS),
    st.text(max_size=4),
)


def _reference_wire(hostname: str) -> tuple[str, bytes | str]:
    """dnspython's wire form of `hostname`, or the failure our query reports for it."""
    try:
        wire = dns.name.from_text(hostname).to_wire()
    except (dns.exception.DNSException, UnicodeError, ValueError) as exc:
        return "fails", str(exc) or failures.DNS_INVALID_HOSTNAME
    assert wire is not None
    return "wire", wire


def _our_wire(hostname: str) -> tuple[str, bytes | str]:
    try:
        return "wire", probe_dns._make_query(hostname, "A").name_wire
    except failures.ProbeFailure as exc:
        assert exc.failure == failures.DNS_INVALID_HOSTNAME
        return "fails", str(exc)


@settings(max_examples=400, deadline=None)
@given(labels=st.lists(_labels, min_size=1, max_size=6), dot=st.booleans())
def test_a_names_wire_form_is_dnspythons(labels: list[str], dot: bool) -> None:
    hostname = ".".join(labels) + ("." if dot else "")
    assert _our_wire(hostname) == _reference_wire(hostname)


@pytest.mark.parametrize("size", [250, 251, 252, 253, 254, 255, 256])
@pytest.mark.parametrize("dot", ["", "."])
def test_names_at_the_length_limit_are_dnspythons(size: int, dot: str) -> None:
    """Names around 255 octets in wire form: the last one that fits and the first that does
    not (63-octet labels, then one label making up the rest)."""
    labels = ["a" * 63] * 3
    rest = size - sum(len(label) + 1 for label in labels) - 2  # its length byte, the root
    hostname = ".".join([*labels, "b" * max(rest, 1)]) + dot
    assert _our_wire(hostname) == _reference_wire(hostname)


@pytest.mark.parametrize(
    "hostname", ["example.org", "Mixed.Case.example.", "пример.рф", "\\065.org"]
)
def test_the_dnspython_name_of_a_query_is_made_only_when_asked(hostname: str) -> None:
    query = probe_dns._make_query(hostname, "A")
    assert query._name is None
    assert query.name == dns.name.from_text(hostname)
    assert query.name.to_wire() == query.name_wire
