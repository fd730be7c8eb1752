"""DNS messages at wire level: building our queries, reading a reply, and the `DNSQuery` a
reply (or its absence) becomes. Shared by the UDP, TCP and DoH engines; dnspython only builds
and parses, the engines do the I/O."""

from __future__ import annotations

import base64
from functools import lru_cache

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
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
def _query_name(hostname: str) -> dns.name.Name:
    """`hostname` as a DNS name, converted once for its A and AAAA queries: make_query with a
    ready Name costs 26 instead of 40 us (timeit, one core). Names are immutable; a
    name that does not convert raises each time (exceptions are not cached)."""
    return dns.name.from_text(hostname)


#: The OPT record of every query (EDNS0, payload EDNS_PAYLOAD, no flags, no options), built
#: once: make_query(use_edns=0) builds a new one per query, 70 % of its cost (~2.5 % of an https
#: measurement's CPU in bench/success_overhead.py). dnspython only reads a message's OPT RRset
#: (to render it, or for `edns`/`payload`), so queries can share one. tests/test_dns_queries.py
#: checks that our queries are the same as make_query(use_edns=0, payload=EDNS_PAYLOAD).
_QUERY_OPT = dns.message.make_query("query.opt.", "A", use_edns=0, payload=EDNS_PAYLOAD).opt


def _make_query(hostname: str, query_type: str) -> dns.message.QueryMessage:
    """The query, or ProbeFailure(dns_invalid_hostname) for a name DNS cannot carry."""
    try:
        query = dns.message.make_query(_query_name(hostname), QUERY_TYPES[query_type])
    except (dns.exception.DNSException, UnicodeError, ValueError) as exc:
        raise failures.ProbeFailure(failures.DNS_INVALID_HOSTNAME, str(exc)) from exc
    query.opt = _QUERY_OPT  # what use_edns(0, payload=EDNS_PAYLOAD) sets, without rebuilding it
    query.request_payload = EDNS_PAYLOAD
    return query


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


def _parse_reply(query: dns.message.Message, wire: bytes) -> dns.message.Message:
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
