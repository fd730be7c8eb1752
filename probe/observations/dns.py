"""DNS observations: `DNSQuery` (df-002, one query and its reply) and its `DNSAnswer`s."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from probe.observations._read import (
    INF,
    read_float,
    read_float_or_none,
    read_int,
    read_int_or_none,
    read_list,
    read_str,
    read_str_or_none,
)


@dataclass(slots=True)
class DNSAnswer:
    """One answer record. `answer_type` is A, AAAA or CNAME."""

    answer_type: str
    ipv4: str | None = None
    ipv6: str | None = None
    hostname: str | None = None
    ttl: int | None = None
    asn: int | None = None
    as_org_name: str | None = None

    @property
    def ip(self) -> str | None:
        return self.ipv4 or self.ipv6

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"answer_type": self.answer_type, "ttl": self.ttl}
        if self.ipv4 is not None:
            d["ipv4"] = self.ipv4
        if self.ipv6 is not None:
            d["ipv6"] = self.ipv6
        if self.hostname is not None:
            d["hostname"] = self.hostname
        d["asn"] = self.asn
        d["as_org_name"] = self.as_org_name
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DNSAnswer:
        if type(d) is dict:  # fast path: an answer as `to_dict` writes it (exact types)
            get = d.get
            answer_type, ipv4, ipv6 = get("answer_type"), get("ipv4"), get("ipv6")
            hostname, ttl, asn, org = get("hostname"), get("ttl"), get("asn"), get("as_org_name")
            if (
                type(answer_type) is str
                and (ipv4 is None or type(ipv4) is str)
                and (ipv6 is None or type(ipv6) is str)
                and (hostname is None or type(hostname) is str)
                and (ttl is None or type(ttl) is int)
                and (asn is None or type(asn) is int)
                and (org is None or type(org) is str)
            ):
                return cls(answer_type, ipv4, ipv6, hostname, ttl, asn, org)
        return cls(
            answer_type=read_str(d.get("answer_type")),
            ipv4=read_str_or_none(d.get("ipv4")),
            ipv6=read_str_or_none(d.get("ipv6")),
            hostname=read_str_or_none(d.get("hostname")),
            ttl=read_int_or_none(d.get("ttl")),
            asn=read_int_or_none(d.get("asn")),
            as_org_name=read_str_or_none(d.get("as_org_name")),
        )


@dataclass(slots=True)
class DNSQuery:
    """df-002: one query and its reply. A duplicate reply to one UDP query (an injected answer
    racing the genuine one) is recorded as a second DNSQuery with `x_duplicate = True`."""

    hostname: str
    query_type: str  # A | AAAA | ANY (getaddrinfo asks for both)
    engine: str  # getaddrinfo | udp | tcp | doh
    resolver_address: str  # "" for getaddrinfo (the system decides)
    answers: list[DNSAnswer] = field(default_factory=list)
    failure: str | None = None
    rcode: int | None = None
    raw_response: str | None = None  # base64 of the reply message
    t0: float = 0.0
    t: float = 0.0
    transaction_id: int = 0
    x_duplicate: bool = False
    x_queue_time: float | None = None  # getaddrinfo: seconds spent waiting for a worker

    @property
    def failed_operation(self) -> str | None:
        return "resolve" if self.failure else None

    def addresses(self) -> list[str]:
        return [a.ip for a in self.answers if a.ip]

    def to_dict(self) -> dict[str, Any]:
        return {
            "answers": [a.to_dict() for a in self.answers],
            "engine": self.engine,
            "failure": self.failure,
            "failed_operation": "resolve" if self.failure else None,
            "hostname": self.hostname,
            "query_type": self.query_type,
            "rcode": self.rcode,
            "raw_response": self.raw_response,
            "resolver_address": self.resolver_address,
            "t0": self.t0,
            "t": self.t,
            "transaction_id": self.transaction_id,
            "x_duplicate": self.x_duplicate,
            "x_queue_time": self.x_queue_time,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DNSQuery:
        exact = _exact_query(d) if type(d) is dict else None
        if exact is not None:
            return exact
        return cls(
            hostname=read_str(d.get("hostname")),
            query_type=read_str(d.get("query_type")),
            engine=read_str(d.get("engine")),
            resolver_address=read_str(d.get("resolver_address")),
            answers=[
                DNSAnswer.from_dict(a) for a in read_list(d.get("answers")) if isinstance(a, dict)
            ],
            failure=read_str_or_none(d.get("failure")),
            rcode=read_int_or_none(d.get("rcode")),
            raw_response=read_str_or_none(d.get("raw_response")),
            t0=read_float(d.get("t0")),
            t=read_float(d.get("t")),
            transaction_id=read_int(d.get("transaction_id")),
            x_duplicate=d.get("x_duplicate") is True,
            x_queue_time=read_float_or_none(d.get("x_queue_time")),
        )


def _exact_query(d: dict[str, Any]) -> DNSQuery | None:
    """`from_dict`'s fast path: a query as `to_dict` writes it (all keys, exact types), else
    None."""
    try:
        hostname, query_type, engine = d["hostname"], d["query_type"], d["engine"]
        resolver, answers, failure = d["resolver_address"], d["answers"], d["failure"]
        rcode, raw, t0, t = d["rcode"], d["raw_response"], d["t0"], d["t"]
        tid, duplicate, queue = d["transaction_id"], d["x_duplicate"], d["x_queue_time"]
    except KeyError:
        return None
    if not (
        type(hostname) is str
        and type(query_type) is str
        and type(engine) is str
        and type(resolver) is str
        and type(answers) is list
        and (failure is None or type(failure) is str)
        and (rcode is None or type(rcode) is int)
        and (raw is None or type(raw) is str)
        and type(t0) is float
        and -INF < t0 < INF
        and type(t) is float
        and -INF < t < INF
        and type(tid) is int
        and (queue is None or (type(queue) is float and -INF < queue < INF))
    ):
        return None
    parse = DNSAnswer.from_dict
    return DNSQuery(
        hostname,
        query_type,
        engine,
        resolver,
        [parse(a) for a in answers if isinstance(a, dict)],
        failure,
        rcode,
        raw,
        t0,
        t,
        tid,
        duplicate is True,
        queue,
    )
