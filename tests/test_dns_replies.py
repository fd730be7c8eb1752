"""Replies are read without dnspython when they have the plain form nearly every resolver sends
(`probe.steps.dns.wire._simple_reply`); what the steps then see must be exactly what reading
them with dnspython gives: the same id, flags, rcode and answers (order, duplicates, TTLs), and
the same refusal (wrong id, not a response, unparsable) for everything that is not a good
reply. Each reply below is read both ways and compared."""

from __future__ import annotations

import struct

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from probe import failures
from probe.steps.dns import wire

HOST = "h1.bench.test"


def reference(query: wire.Query, data: bytes) -> object:
    """`_parse_reply` as it was: dnspython reads everything."""
    try:
        message = dns.message.from_wire(data)
    except Exception:
        return "unparsable"
    if message.id != query.id:
        return "wrong id"
    if not query.is_response(message):
        return "not a response"
    return summary(wire.Reply.of(message))


def summary(reply: wire.Reply) -> object:
    return (reply.id, reply.flags, reply.rcode, [a.to_dict() for a in reply.answers])


def ours(query: wire.Query, data: bytes) -> object:
    try:
        return summary(wire._parse_reply(query, data))
    except wire._WrongQueryId:
        return "wrong id"
    except failures.ProbeFailure as exc:
        return "unparsable" if "unparsable" in str(exc.args) else "not a response"


def response(query: wire.Query, *records: tuple[str, int, str], edns: bool = True) -> bytes:
    """A reply to `query` built by dnspython: (type, ttl, value) records for the host."""
    request = dns.message.from_wire(query.to_wire())
    reply = dns.message.make_response(request)
    if not edns:
        reply.use_edns(False)
    for rdtype, ttl, value in records:
        reply.answer.append(dns.rrset.from_text(HOST + ".", ttl, "IN", rdtype, value))
    return reply.to_wire()


def rr(
    rdtype: int, rdata: bytes, ttl: int = 60, owner: bytes = b"\xc0\x0c", rdclass: int = 1
) -> bytes:
    return owner + struct.pack("!HHIH", rdtype, rdclass, ttl, len(rdata)) + rdata


def raw(query: wire.Query, answers: list[bytes], *, flags: int = 0x8180, extra: bytes = b"",
        opt: bytes | None = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0), nscount: int = 0,
        reply_id: int | None = None, question: bytes | None = None) -> bytes:  # fmt: skip
    """A reply assembled byte by byte (for what dnspython would never write)."""
    if question is None:
        question = query.name_wire + struct.pack("!HH", query.rdtype, 1)
    header = struct.pack(
        "!6H",
        query.id if reply_id is None else reply_id,
        flags,
        1,
        len(answers),
        nscount,
        0 if opt is None else 1,
    )
    return header + question + b"".join(answers) + extra + (opt or b"")


A1, A2 = bytes([127, 1, 0, 2]), bytes([10, 10, 34, 34])
V6 = bytes.fromhex("20010db8000000000000000000000001")
MAPPED = bytes.fromhex("00000000000000000000ffffc0000201")


def cases(query: wire.Query) -> dict[str, bytes]:
    a = [rr(1, A1)]
    cname = rr(5, b"\x03www\x07example\x03org\x00")
    return {
        "one A": response(query, ("A", 300, "127.1.0.2")),
        "two A": response(query, ("A", 300, "127.1.0.2"), ("A", 300, "10.10.34.34")),
        "no EDNS": response(query, ("A", 5, "127.1.0.2"), edns=False),
        "empty": response(query),
        "AAAA": raw(query, [rr(28, V6), rr(28, MAPPED)]),
        "mixed types, interleaved": raw(query, [rr(1, A1), rr(28, V6), rr(1, A2)]),
        "duplicate rdata": raw(query, [rr(1, A1, 30), rr(1, A2, 90), rr(1, A1, 10)]),
        "TTL above 2^31-1": raw(query, [rr(1, A1, 0x80000000), rr(1, A2, 5)]),
        "upper-case question": raw(
            query, a, question=query.name_wire.upper() + struct.pack("!HH", query.rdtype, 1)
        ),
        "70 answers": raw(query, [rr(1, bytes([10, 0, i // 256, i % 256])) for i in range(70)]),
        "wrong id": raw(query, a, reply_id=(query.id + 1) % 65536),
        "not QR": raw(query, a, flags=0x0180),
        "opcode STATUS": raw(query, a, flags=0x8180 | (2 << 11)),
        "truncated flag": raw(query, a, flags=0x8380),
        "NXDOMAIN": raw(query, [], flags=0x8183),
        "SERVFAIL": raw(query, [], flags=0x8182),
        "other name": raw(query, a, question=b"\x05other\x00" + struct.pack("!HH", 1, 1)),
        "other type": raw(query, a, question=query.name_wire + struct.pack("!HH", 16, 1)),
        "class CH": raw(query, a, question=query.name_wire + struct.pack("!HH", query.rdtype, 3)),
        "answer class CH": raw(query, [rr(1, A1, rdclass=3)]),
        "A of 5 bytes": raw(query, [rr(1, A1 + b"\x00")]),
        "AAAA of 4 bytes": raw(query, [rr(28, A1)]),
        "CNAME": raw(
            query, [cname, rr(1, A1, owner=b"\xc0" + bytes([12 + len(query.name_wire) + 4 + 12]))]
        ),
        "owner spelt out": raw(query, [rr(1, A1, owner=query.name_wire)]),
        "forward pointer": raw(query, [rr(1, A1, owner=b"\xc0\xff")]),
        "trailing junk": raw(query, a, extra=b"\x00"),
        "cut in a record": raw(query, a)[:-14],
        "cut in the header": raw(query, a)[:9],
        "authority count": raw(query, a, nscount=1),
        "OPT with an option": raw(
            query, a, opt=b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 4) + b"\x00\x0c\x00\x00"
        ),
        "OPT extended rcode": raw(
            query, a, opt=b"\x00" + struct.pack("!HHIH", 41, 1232, 1 << 24, 0)
        ),
        "OPT not at root": raw(query, a, opt=b"\xc0\x0c" + struct.pack("!HHIH", 41, 1232, 0, 0)),
        "OPT DO bit": raw(query, a, opt=b"\x00" + struct.pack("!HHIH", 41, 4096, 0x8000, 0)),
        "OPT in the answer": raw(query, [rr(41, b"", owner=b"\x00")]),
        "empty message": b"",
    }


@pytest.mark.parametrize("query_type", ["A", "AAAA"])
def test_replies_read_without_dnspython_read_as_with_it(query_type: str) -> None:
    query = wire._make_query(HOST, query_type)
    outcomes = {}
    for name, data in cases(query).items():
        assert ours(query, data) == reference(query, data), name
        outcomes[name] = ours(query, data)
    # the cases cover what they claim: good replies, and each kind of refusal
    assert outcomes["wrong id"] == "wrong id"
    assert outcomes["not QR"] == "not a response"
    assert outcomes["cut in a record"] == "unparsable"
    duplicates = outcomes["duplicate rdata"]
    assert isinstance(duplicates, tuple)
    assert [(a["ipv4"], a["ttl"]) for a in duplicates[3]] == [
        ("127.1.0.2", 10),
        ("10.10.34.34", 10),
    ]
    assert len(outcomes["70 answers"][3]) == wire.MAX_ANSWERS_PER_REPLY  # type: ignore[index]


def test_the_plain_form_skips_dnspython() -> None:
    """The fast path is taken for the plain replies (else it would be dead code)."""
    query = wire._make_query(HOST, "A")
    assert wire._simple_reply(query, response(query, ("A", 300, "127.1.0.2"))) is not None
    assert wire._simple_reply(query, raw(query, [rr(5, b"\x00")])) is None


def test_the_protocol_numbers_are_dnspythons() -> None:
    """wire.py writes the protocol's numbers itself rather than import dnspython's enums."""
    assert (wire._A, wire._CNAME, wire._AAAA, wire._OPT) == (
        dns.rdatatype.A,
        dns.rdatatype.CNAME,
        dns.rdatatype.AAAA,
        dns.rdatatype.OPT,
    )
    assert wire._IN == dns.rdataclass.IN
    assert (wire._NOERROR, wire._FORMERR, wire._SERVFAIL) == (0, dns.rcode.FORMERR, 2)
    assert (wire._NXDOMAIN, wire._NOTIMP, wire._REFUSED) == (
        dns.rcode.NXDOMAIN,
        dns.rcode.NOTIMP,
        dns.rcode.REFUSED,
    )
    assert dns.rcode.NOERROR == 0 and dns.rcode.SERVFAIL == 2 and dns.opcode.QUERY == 0
    assert wire.QUERY_TYPES == {"A": dns.rdatatype.A, "AAAA": dns.rdatatype.AAAA}
