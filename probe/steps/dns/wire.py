"""DNS messages at wire level: building our queries, reading a reply, and the `DNSQuery` a
reply (or its absence) becomes. Shared by the UDP, TCP and DoH engines; dnspython only builds
and parses, the engines do the I/O."""

from __future__ import annotations

import base64
import secrets
import struct
from functools import lru_cache

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from probe import failures
from probe.observations import DNSAnswer, DNSQuery, Trace

DNS_PORT = 53
#: The largest DNS message: the TCP length prefix is two bytes, and no UDP datagram is larger.
MAX_DNS_MESSAGE = 65535
#: EDNS0 payload size we advertise (DNS flag day 2020: avoids IP fragmentation).
EDNS_PAYLOAD = 1232
#: Answer records kept per reply (a 64 KB reply could carry thousands).
MAX_ANSWERS_PER_REPLY = 64

QUERY_TYPES: dict[str, dns.rdatatype.RdataType] = {
    "A": dns.rdatatype.A,
    "AAAA": dns.rdatatype.AAAA,
}

_RCODE_FAILURES: dict[int, str] = {
    dns.rcode.NXDOMAIN: failures.DNS_NXDOMAIN,
    dns.rcode.SERVFAIL: failures.DNS_SERVFAIL,
    dns.rcode.REFUSED: failures.DNS_REFUSED,
}


# --- building a query ------------------------------------------------------------------------


def _check_query_type(query_type: str) -> None:
    """A wrong query type is the caller's bug, not a network outcome: it raises."""
    if query_type not in QUERY_TYPES:
        raise ValueError(f"unsupported DNS query type {query_type!r} (expected A or AAAA)")


@lru_cache(maxsize=4096)
def _query_name(hostname: str) -> tuple[dns.name.Name, bytes]:
    """`hostname` as a DNS name and its wire form, converted once for its A and AAAA queries.
    Names are immutable; a name that does not convert raises each time (exceptions are not
    cached)."""
    name = dns.name.from_text(hostname)
    wire = name.to_wire()
    assert wire is not None  # None only when writing into a file
    return name, wire


#: Flags of every query (recursion desired, as make_query), then one question and one
#: additional record: the EDNS0 OPT record (root name, payload EDNS_PAYLOAD, no flags, no
#: options).
_QUERY_FLAGS = int(dns.flags.RD)
_QUERY_COUNTS = struct.pack("!HHHH", 1, 0, 0, 1)
_QUERY_OPT = b"\0" + struct.pack("!HHIH", dns.rdatatype.OPT, EDNS_PAYLOAD, 0, 0)
_IN = int(dns.rdataclass.IN)
#: rcodes for which dnspython's is_response accepts an empty question section
_EMPTY_QUESTION_OK = frozenset(
    {dns.rcode.FORMERR, dns.rcode.SERVFAIL, dns.rcode.NOTIMP, dns.rcode.REFUSED}
)


class Query:
    """One query as it goes on the wire, built by hand: the same bytes as dnspython's
    `make_query(name, type, use_edns=0, payload=EDNS_PAYLOAD)` (tests/test_dns_queries.py
    compares them) for a twentieth of the CPU (dnspython builds a message object, an RRset per
    question and a renderer, ~25 us per query; this is a few bytes joined)."""

    __slots__ = ("id", "name", "rdtype", "wire")

    def __init__(
        self, name: dns.name.Name, name_wire: bytes, rdtype: int, query_id: int | None = None
    ) -> None:
        self.id = secrets.randbits(16) if query_id is None else query_id
        self.name = name
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

    def is_response(self, other: dns.message.Message) -> bool:
        """dnspython's `Message.is_response` for this query (opcode QUERY, one question, no
        origin): QR set, the same id and opcode, and the same question (names compared as DNS
        names, ignoring case); a FORMERR, SERVFAIL, NOTIMP or REFUSED reply may leave the
        question out."""
        if (
            other.flags & dns.flags.QR == 0
            or self.id != other.id
            or dns.opcode.from_flags(int(other.flags)) != dns.opcode.QUERY
        ):
            return False
        if other.rcode() in _EMPTY_QUESTION_OK and len(other.question) == 0:
            return True
        ours = (self.name, _IN, self.rdtype, dns.rdatatype.NONE)
        theirs = other._absolute_question()
        return all(n == ours for n in theirs) and ours in theirs


def _make_query(hostname: str, query_type: str, query_id: int | None = None) -> Query:
    """The query (with a random id unless `query_id`), or ProbeFailure(dns_invalid_hostname)
    for a name DNS cannot carry."""
    try:
        name, name_wire = _query_name(hostname)
    except (dns.exception.DNSException, UnicodeError, ValueError) as exc:
        raise failures.ProbeFailure(failures.DNS_INVALID_HOSTNAME, str(exc)) from exc
    return Query(name, name_wire, QUERY_TYPES[query_type], query_id)


# --- reading a reply -------------------------------------------------------------------------


def _answers(message: dns.message.Message) -> list[DNSAnswer]:
    """The A, AAAA and CNAME records of the answer section, in order, at most a cap."""
    answers: list[DNSAnswer] = []
    for rrset in message.answer:
        for rdata in rrset:
            if len(answers) >= MAX_ANSWERS_PER_REPLY:
                return answers
            if rrset.rdtype == dns.rdatatype.A:
                answers.append(DNSAnswer("A", ipv4=rdata.address, ttl=rrset.ttl))
            elif rrset.rdtype == dns.rdatatype.AAAA:
                answers.append(DNSAnswer("AAAA", ipv6=rdata.address, ttl=rrset.ttl))
            elif rrset.rdtype == dns.rdatatype.CNAME:
                hostname = rdata.target.to_text(omit_final_dot=True)
                answers.append(DNSAnswer("CNAME", hostname=hostname, ttl=rrset.ttl))
    return answers


def _reply_failure(
    message: dns.message.Message, query_type: str, answers: list[DNSAnswer]
) -> str | None:
    rcode = message.rcode()
    if rcode != dns.rcode.NOERROR:
        return _RCODE_FAILURES.get(rcode, failures.DNS_SERVER_MISBEHAVING)
    if any(a.answer_type == query_type for a in answers):
        return None
    if message.flags & dns.flags.TC:
        # A truncated reply is not an empty one: the TCP retry that follows carries the answer.
        return None
    return failures.DNS_NO_ANSWER


class _WrongQueryId(Exception):
    pass


def _parse_reply(query: Query, wire: bytes) -> dns.message.Message:
    """The reply, if `wire` is a well-formed response to `query`; else ProbeFailure/_WrongQueryId.

    dnspython raises many exception types for malformed input; all of them mean the same to us."""
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
    return message


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

    def reply(
        self, message: dns.message.Message, data: bytes, *, duplicate: bool = False
    ) -> DNSQuery:
        """A valid reply: its answers, and its rcode (or an empty answer) as the failure."""
        answers = _answers(message)
        return DNSQuery(
            hostname=self.hostname,
            query_type=self.query_type,
            engine=self.engine,
            resolver_address=self.resolver_address,
            answers=answers,
            failure=_reply_failure(message, self.query_type, answers),
            rcode=message.rcode(),
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
