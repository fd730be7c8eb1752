"""DNS messages at wire level: building our queries, reading a reply, and the `DNSQuery` a
reply (or its absence) becomes. Shared by the UDP, TCP and DoH engines; dnspython only builds
and parses, the engines do the I/O."""

from __future__ import annotations

import base64
import re
import secrets
import socket
import struct
from functools import lru_cache
from typing import TYPE_CHECKING

import dns.exception
import dns.flags

from probe import failures
from probe.observations import DNSAnswer, DNSQuery, Trace

if TYPE_CHECKING:
    import dns.message
    import dns.name

DNS_PORT = 53
#: The largest DNS message: the TCP length prefix is two bytes, and no UDP datagram is larger.
MAX_DNS_MESSAGE = 65535
#: EDNS0 payload size we advertise (DNS flag day 2020: avoids IP fragmentation).
EDNS_PAYLOAD = 1232
#: Answer records kept per reply (a 64 KB reply could carry thousands).
MAX_ANSWERS_PER_REPLY = 64

# The protocol's numbers (RFC 1035, 3596, 6891) rather than dnspython's enums: its rdatatype,
# rcode, opcode and rdataclass modules cost ~16 M instructions to import at every start-up,
# and only the replies the plain reader does not take need them (tests/test_dns_replies.py
# checks these against dnspython's).
_A, _CNAME, _AAAA, _OPT = 1, 5, 28, 41
_IN = 1
_NOERROR, _FORMERR, _SERVFAIL, _NXDOMAIN, _NOTIMP, _REFUSED = 0, 1, 2, 3, 4, 5

QUERY_TYPES: dict[str, int] = {"A": _A, "AAAA": _AAAA}

_RCODE_FAILURES: dict[int, str] = {
    _NXDOMAIN: failures.DNS_NXDOMAIN,
    _SERVFAIL: failures.DNS_SERVFAIL,
    _REFUSED: failures.DNS_REFUSED,
}


# --- building a query ------------------------------------------------------------------------


def _check_query_type(query_type: str) -> None:
    """A wrong query type is the caller's bug, not a network outcome: it raises."""
    if query_type not in QUERY_TYPES:
        raise ValueError(f"unsupported DNS query type {query_type!r} (expected A or AAAA)")


#: A plain host name: ASCII labels of letters, digits, hyphens and underscores, 1-63 octets
#: each, and an optional final dot. dnspython reads such text byte for byte (no IDNA, no
#: escapes), so its wire form is the labels with their lengths, then the root label.
_PLAIN_NAME = re.compile(r"(?:[A-Za-z0-9_-]{1,63}\.)*[A-Za-z0-9_-]{1,63}\.?")
#: the longest name in wire form (RFC 1035 section 3.1), as dnspython checks it
_MAX_NAME_WIRE = 255


@lru_cache(maxsize=4096)
def _query_name(hostname: str) -> bytes:
    """`hostname`'s wire form, converted once for its A and AAAA queries: the same bytes as
    `dns.name.from_text(hostname).to_wire()` (tests/test_dns_queries.py compares them over
    generated names). A plain name is converted here, since dnspython's name module costs
    ~25 M instructions to import (it pulls importlib.metadata, email and idna); anything else
    (IDNA, escapes, "@", too long, empty labels) goes to dnspython, which converts it or
    raises as always. Exceptions are not cached: a bad name raises each time."""
    if _PLAIN_NAME.fullmatch(hostname):
        labels = hostname.rstrip(".").split(".")
        wire = b"".join(bytes((len(label),)) + label.encode("ascii") for label in labels) + b"\0"
        if len(wire) <= _MAX_NAME_WIRE:
            return wire
    converted = _dnspython_name(hostname).to_wire()
    assert converted is not None  # None only when writing into a file
    return converted


def _dnspython_name(hostname: str) -> dns.name.Name:
    import dns.name  # see _query_name: imported only for names it does not convert itself

    return dns.name.from_text(hostname)


#: Flags of every query (recursion desired, as make_query), then one question and one
#: additional record: the EDNS0 OPT record (root name, payload EDNS_PAYLOAD, no flags, no
#: options).
_QUERY_FLAGS = int(dns.flags.RD)
_QUERY_COUNTS = struct.pack("!HHHH", 1, 0, 0, 1)
_QUERY_OPT = b"\0" + struct.pack("!HHIH", _OPT, EDNS_PAYLOAD, 0, 0)
#: rcodes for which dnspython's is_response accepts an empty question section
_EMPTY_QUESTION_OK = frozenset({_FORMERR, _SERVFAIL, _NOTIMP, _REFUSED})


class Query:
    """One query as it goes on the wire, built by hand: the same bytes as dnspython's
    `make_query(name, type, use_edns=0, payload=EDNS_PAYLOAD)` (tests/test_dns_queries.py
    compares them) for a twentieth of the CPU (dnspython builds a message object, an RRset per
    question and a renderer, ~25 us per query; this is a few bytes joined)."""

    __slots__ = ("_name", "hostname", "id", "name_wire", "rdtype", "wire")

    def __init__(
        self, hostname: str, name_wire: bytes, rdtype: int, query_id: int | None = None
    ) -> None:
        self.id = secrets.randbits(16) if query_id is None else query_id
        self.hostname = hostname
        self._name: dns.name.Name | None = None
        self.name_wire = name_wire
        self.rdtype = rdtype
        self.wire = (
            struct.pack("!HH", self.id, _QUERY_FLAGS)
            + _QUERY_COUNTS
            + name_wire
            + struct.pack("!HH", rdtype, _IN)
            + _QUERY_OPT
        )

    def to_wire(self) -> bytes:
        return self.wire

    @property
    def name(self) -> dns.name.Name:
        """The question's name as dnspython's object, made only when a reply needs dnspython
        (`is_response`): the plain reader compares wire bytes."""
        if self._name is None:
            self._name = _dnspython_name(self.hostname)
        return self._name

    def is_response(self, other: dns.message.Message) -> bool:
        """dnspython's `Message.is_response` for this query (opcode QUERY, one question, no
        origin): QR set, the same id and opcode, and the same question (names compared as DNS
        names, ignoring case); a FORMERR, SERVFAIL, NOTIMP or REFUSED reply may leave the
        question out."""
        import dns.opcode  # loaded with dns.message, which made `other`

        if (
            other.flags & dns.flags.QR == 0
            or self.id != other.id
            or dns.opcode.from_flags(int(other.flags)) != dns.opcode.QUERY
        ):
            return False
        if other.rcode() in _EMPTY_QUESTION_OK and len(other.question) == 0:
            return True
        ours = (self.name, _IN, self.rdtype, 0)  # 0: rdatatype NONE, no covered type
        theirs = other._absolute_question()
        return all(n == ours for n in theirs) and ours in theirs


def _make_query(hostname: str, query_type: str, query_id: int | None = None) -> Query:
    """The query (with a random id unless `query_id`), or ProbeFailure(dns_invalid_hostname)
    for a name DNS cannot carry."""
    try:
        name_wire = _query_name(hostname)
    except (dns.exception.DNSException, UnicodeError, ValueError) as exc:
        raise failures.ProbeFailure(failures.DNS_INVALID_HOSTNAME, str(exc)) from exc
    return Query(hostname, name_wire, QUERY_TYPES[query_type], query_id)


# --- reading a reply -------------------------------------------------------------------------


class Reply:
    """What the steps read of a reply: its id, flags, rcode (EDNS extended bits included) and
    the A, AAAA and CNAME records of its answer section (`DNSAnswer`s, in order, at most
    MAX_ANSWERS_PER_REPLY)."""

    __slots__ = ("answers", "flags", "id", "rcode")

    def __init__(self, reply_id: int, flags: int, rcode: int, answers: list[DNSAnswer]) -> None:
        self.id = reply_id
        self.flags = flags
        self.rcode = rcode
        self.answers = answers

    @classmethod
    def of(cls, message: dns.message.Message) -> Reply:
        return cls(message.id, int(message.flags), int(message.rcode()), _answers(message))


def _answers(message: dns.message.Message) -> list[DNSAnswer]:
    """The A, AAAA and CNAME records of the answer section, in order, at most a cap."""
    answers: list[DNSAnswer] = []
    for rrset in message.answer:
        for rdata in rrset:
            if len(answers) >= MAX_ANSWERS_PER_REPLY:
                return answers
            if rrset.rdtype == _A:
                answers.append(DNSAnswer("A", ipv4=rdata.address, ttl=rrset.ttl))
            elif rrset.rdtype == _AAAA:
                answers.append(DNSAnswer("AAAA", ipv6=rdata.address, ttl=rrset.ttl))
            elif rrset.rdtype == _CNAME:
                hostname = rdata.target.to_text(omit_final_dot=True)
                answers.append(DNSAnswer("CNAME", hostname=hostname, ttl=rrset.ttl))
    return answers


def _reply_failure(reply: Reply, query_type: str) -> str | None:
    rcode = reply.rcode
    if rcode != _NOERROR:
        return _RCODE_FAILURES.get(rcode, failures.DNS_SERVER_MISBEHAVING)
    if any(a.answer_type == query_type for a in reply.answers):
        return None
    if reply.flags & dns.flags.TC:
        # A truncated reply is not an empty one: the TCP retry that follows carries the answer.
        return None
    return failures.DNS_NO_ANSWER


class _WrongQueryId(Exception):
    pass


def _parse_reply(query: Query, wire: bytes) -> Reply:
    """The reply, if `wire` is a well-formed response to `query`; else ProbeFailure/_WrongQueryId.

    dnspython raises many exception types for malformed input; all of them mean the same to us."""
    reply = _simple_reply(query, wire)
    if reply is not None:
        if reply.id != query.id:
            raise _WrongQueryId()
        return reply
    # dnspython's message parser (~80 M instructions to import) only for the replies the
    # plain reader above does not take: imported on the first such reply, not at start-up
    import dns.message

    try:
        message = dns.message.from_wire(wire)
    except Exception as exc:
        raise failures.ProbeFailure(failures.DNS_SERVER_MISBEHAVING, "unparsable reply") from exc
    if message.id != query.id:
        raise _WrongQueryId()
    try:
        is_response = query.is_response(message)
    except Exception:
        is_response = False
    if not is_response:  # not a response (QR clear), another opcode, or another question
        raise failures.ProbeFailure(failures.DNS_SERVER_MISBEHAVING, "not a response to our query")
    return Reply.of(message)


#: QR set, opcode QUERY, TC clear: what `_simple_reply` reads itself (with any other bits)
_SIMPLE_FLAGS_MASK = int(dns.flags.QR) | 0x7800 | int(dns.flags.TC)
_SIMPLE_FLAGS = int(dns.flags.QR)
#: an owner name that is a pointer to the question's name (offset 12)
_POINTER_TO_QUESTION = b"\xc0\x0c"
_RR_HEADER = struct.Struct("!HHIH")
_MAX_TTL = 0x7FFFFFFF


def _simple_reply(query: Query, wire: bytes) -> Reply | None:
    """The reply read without dnspython when it is the plain form nearly every resolver sends
    (tests/test_dns_replies.py holds this to dnspython, field by field, on good and broken
    replies): a response to `query`'s question (the same name bytes but for case, type and
    class), not truncated, an answer section of A and AAAA records whose owner is a pointer to
    the question, no authority section, and at most one EDNS OPT record without options or
    extended rcode bits. None for anything else (CNAMEs, NXDOMAIN's SOA, compression other than
    to the question, trailing bytes, ...): dnspython reads it. Records are grouped by type
    into RRsets as dnspython does (first appearance order, duplicates once, the smallest TTL,
    a TTL above 2^31 - 1 read as 0). A 20-line reader instead of dnspython's ~150 Python calls
    per reply."""
    size = len(wire)
    if size < 12:
        return None
    reply_id, flags, qdcount, ancount, nscount, arcount = struct.unpack_from("!6H", wire)
    if flags & _SIMPLE_FLAGS_MASK != _SIMPLE_FLAGS or qdcount != 1 or nscount != 0:
        return None
    name = query.name_wire
    offset = 12 + len(name)
    if wire[12:offset].lower() != name.lower() or wire[offset : offset + 4] != struct.pack(
        "!HH", query.rdtype, _IN
    ):
        return None
    offset += 4
    groups: dict[int, tuple[list[bytes], list[int]]] = {}  # type -> (rdata once each, TTLs)
    for _ in range(ancount):
        if wire[offset : offset + 2] != _POINTER_TO_QUESTION or offset + 12 > size:
            return None
        rdtype, rdclass, ttl, rdlength = _RR_HEADER.unpack_from(wire, offset + 2)
        offset += 12
        if rdclass != _IN or rdlength != (4 if rdtype == _A else 16 if rdtype == _AAAA else -1):
            return None
        rdata = wire[offset : offset + rdlength]
        offset += rdlength
        if len(rdata) != rdlength:
            return None
        group = groups.setdefault(rdtype, ([], []))
        if rdata not in group[0]:
            group[0].append(rdata)
        group[1].append(0 if ttl > _MAX_TTL else ttl)
    rcode = flags & 0xF
    if arcount > 1:
        return None
    if arcount == 1:  # the OPT record: root owner, no options, no extended rcode bits
        if wire[offset : offset + 1] != b"\0" or offset + 11 > size:
            return None
        rdtype, _payload, ttl, rdlength = _RR_HEADER.unpack_from(wire, offset + 1)
        if rdtype != _OPT or rdlength != 0 or ttl & 0xFF000000:
            return None
        offset += 11
    if offset != size:
        return None
    return Reply(reply_id, flags, rcode, _rrset_answers(groups))


def _rrset_answers(groups: dict[int, tuple[list[bytes], list[int]]]) -> list[DNSAnswer]:
    """The answers of `_simple_reply`'s RRsets (type -> distinct rdata, TTLs), as `_answers`
    gives them: RRset by RRset, each with its smallest TTL, at most MAX_ANSWERS_PER_REPLY."""
    answers: list[DNSAnswer] = []
    for rdtype, (rdatas, ttls) in groups.items():
        ttl = min(ttls)
        for rdata in rdatas:
            if len(answers) >= MAX_ANSWERS_PER_REPLY:
                return answers
            if rdtype == _A:
                answers.append(DNSAnswer("A", ipv4=socket.inet_ntoa(rdata), ttl=ttl))
            else:
                answers.append(DNSAnswer("AAAA", ipv6=_ipv6_text(rdata), ttl=ttl))
    return answers


def _ipv6_text(packed: bytes) -> str:
    """dnspython's text form of an IPv6 address (its own compression rules, as records have
    always had), imported on the first AAAA answer rather than at start-up."""
    import dns.ipv6

    return dns.ipv6.inet_ntoa(packed)


def _b64(wire: bytes) -> str:
    return base64.b64encode(wire).decode("ascii")


# --- the observation -------------------------------------------------------------------------


class _QueryRecorder:
    """One query's fixed facts (name, type, engine, server, start time) and the `DNSQuery`
    observations made from them: one per valid reply, or one saying why none came."""

    __slots__ = ("engine", "hostname", "query_type", "resolver_address", "t0", "trace")

    def __init__(
        self, hostname: str, query_type: str, engine: str, resolver_address: str, trace: Trace
    ) -> None:
        self.hostname = hostname
        self.query_type = query_type
        self.engine = engine
        self.resolver_address = resolver_address
        self.trace = trace
        self.t0 = trace.now()

    def reply(self, reply: Reply, data: bytes, *, duplicate: bool = False) -> DNSQuery:
        """A valid reply: its answers, and its rcode (or an empty answer) as the failure."""
        return DNSQuery(
            hostname=self.hostname,
            query_type=self.query_type,
            engine=self.engine,
            resolver_address=self.resolver_address,
            answers=reply.answers,
            failure=_reply_failure(reply, self.query_type),
            rcode=reply.rcode,
            raw_response=_b64(data),
            t0=self.t0,
            t=self.trace.now(),
            transaction_id=self.trace.transaction_id,
            x_duplicate=duplicate,
        )

    def no_reply(self, failure: str | None, data: bytes | None) -> DNSQuery:
        """No valid reply: the failure, and `data` (bytes we could not use) as evidence."""
        return DNSQuery(
            hostname=self.hostname,
            query_type=self.query_type,
            engine=self.engine,
            resolver_address=self.resolver_address,
            failure=failure,
            raw_response=_b64(data) if data is not None else None,
            t0=self.t0,
            t=self.trace.now(),
            transaction_id=self.trace.transaction_id,
        )
