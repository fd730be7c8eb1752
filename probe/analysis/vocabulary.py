"""The analysis's words: statuses, blocking layers, the thresholds of the comparisons, and the
result types (`Verdict`, `EndpointOutcome`, `Analysis`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from probe import failures
from probe.i18n.message import Arg, C, M, Msg, Text
from probe.observations import format_address


class Status(StrEnum):
    """A target's (or an endpoint's) status; `skipped` only for endpoints."""

    OK = "ok"
    BLOCKED = "blocked"
    DOWN = "down"
    INCONCLUSIVE = "inconclusive"
    SKIPPED = "skipped"


class Blocking(StrEnum):
    """The layer at which a target is blocked, in the order `blocking` names the first."""

    DNS = "dns"
    TCP = "tcp"
    TLS = "tls"
    HTTP_FAILURE = "http-failure"
    HTTP_DIFF = "http-diff"
    PROTOCOL = "protocol"


OK = Status.OK
BLOCKED = Status.BLOCKED
DOWN = Status.DOWN
INCONCLUSIVE = Status.INCONCLUSIVE
SKIPPED = Status.SKIPPED
STATUSES = (OK, BLOCKED, DOWN, INCONCLUSIVE)

DNS = Blocking.DNS
TCP = Blocking.TCP
TLS = Blocking.TLS
HTTP_FAILURE = Blocking.HTTP_FAILURE
HTTP_DIFF = Blocking.HTTP_DIFF
PROTOCOL = Blocking.PROTOCOL
#: The order in which `blocking` names the first layer that failed.
LAYERS = (DNS, TCP, TLS, HTTP_FAILURE, HTTP_DIFF, PROTOCOL)

CERTIFICATE_FAILURES = frozenset(
    {
        failures.SSL_INVALID_HOSTNAME,
        failures.SSL_UNKNOWN_AUTHORITY,
        failures.SSL_INVALID_CERTIFICATE,
    }
)
#: A forged MTProto reply: no genuine data centre sends these, so they need no control.
FORGED_MTPROTO = frozenset({failures.MTPROTO_FOREIGN_REPLY, failures.MTPROTO_NONCE_MISMATCH})
#: Observations that say nothing about the network (the step did not run, or was refused).
NOT_MEASURED = frozenset({failures.SKIPPED, failures.CONTROL_REFUSED_DESTINATION})
#: What a vantage without an IPv6 route says when asked to reach an IPv6 address.
NO_ROUTE = frozenset(
    {
        failures.NETWORK_UNREACHABLE,
        failures.HOST_UNREACHABLE,
        failures.NETWORK_DOWN,
        failures.ADDRESS_NOT_AVAILABLE,
        failures.PROTOCOL_NOT_SUPPORTED,
    }
)

# OONI's Web Connectivity comparison (FACTS.md §4).
BODY_PROPORTION_THRESHOLD = 0.7
TITLE_WORD_MIN = 5
#: Header names every server sends; only the others characterise a server (OONI's list).
COMMON_HEADERS = frozenset(
    {
        "date",
        "content-type",
        "server",
        "cache-control",
        "vary",
        "set-cookie",
        "location",
        "expires",
        "x-powered-by",
        "content-encoding",
        "last-modified",
        "accept-ranges",
        "pragma",
        "x-frame-options",
        "etag",
        "x-content-type-options",
        "age",
        "via",
        "p3p",
        "x-xss-protection",
        "content-language",
        "cf-ray",
        "strict-transport-security",
        "link",
        "x-varnish",
        "content-length",
        "connection",
        "transfer-encoding",
        "keep-alive",
    }
)
#: a fingerprint's scope, as the adjective of "blocking address" or "blockpage"
SCOPE_WORDS: dict[str, Msg] = {
    "nat": C("fingerprint scope", "national"),
    "isp": C("fingerprint scope", "ISP-level"),
    "prod": C("fingerprint scope", "filtering-product"),
    "inst": C("fingerprint scope", "institutional"),
    "vbw": C("fingerprint scope", "filtering"),
    "prov": C("fingerprint scope", "provider"),
    "injb": C("fingerprint scope", "injected"),
}
#: At most this many addresses are named in one reason.
MAX_NAMED = 3
#: DNS engines whose answers an on-path censor cannot forge (OONI's `doh` and `dot`).
ENCRYPTED_ENGINES = frozenset({"doh", "dot"})
ENGINE_WORDS: dict[str, Msg] = {
    "getaddrinfo": M("the system resolver"),
    "doh": M("DNS over HTTPS"),
    "dot": M("DNS over TLS"),
    "udp": M("DNS over UDP"),
    "tcp": M("DNS over TCP"),
}
#: Checks whose `ok` needs a connection (DNS alone is not enough), and those that need a page
#: or a verified handshake (a bare TCP connect is not enough).
CONNECTING_CHECKS = frozenset({"tcp", "tls", "http", "https", "mtproto"})
PAGE_CHECKS = frozenset({"http", "https"})

# How far an attempt on an endpoint got (`EndpointOutcome.reached`): a failure is hidden by
# another attempt on the same endpoint that got further than the step that failed.
REACHED_NOTHING = 0  # the TCP connect failed
REACHED_TCP = 1  # connected (TLS, the HTTP exchange or MTProto failed next)
REACHED_TLS = 2  # the handshake completed (or, for plain HTTP, the exchange failed)
REACHED_RESPONSE = 3  # a first HTTP response (a redirect), or an MTProto reply
REACHED_PAGE = 4  # the chain ended in a final response
#: The step a failure at each layer stopped at.
REACHED_BEFORE: dict[Blocking, int] = {
    TCP: REACHED_NOTHING,
    TLS: REACHED_TCP,
    HTTP_FAILURE: REACHED_TLS,
    PROTOCOL: REACHED_TLS,
    DNS: REACHED_RESPONSE,
    HTTP_DIFF: REACHED_RESPONSE,
}


# --- results --------------------------------------------------------------------------------


INTERRUPTED_MESSAGE = M("The run was interrupted before this target was measured.")
INTERRUPTED_REASON = INTERRUPTED_MESSAGE.english()


@dataclass(frozen=True, slots=True)
class Verdict:
    status: Status  # ok | blocked | down | inconclusive
    blocking: Blocking | None  # the first layer that failed, when blocked
    confirmed: bool  # a known blocking fingerprint matched
    fingerprints: list[str]
    #: one human sentence naming the evidence, as a message: English in the record (`reason`),
    #: in the volunteer's language on screen (probe/i18n)
    message: Text
    #: how a `tls` block works (probe/analysis/sni_swap.py): "sni-filter" | "ip-filter" | None
    evidence: str | None = None
    #: how long residual blocking lasted (sni_swap.residual), when it was measured
    residual: dict[str, Any] | None = None
    #: what the target's QUIC handshakes add (probe/analysis/quic.py); None: none made
    quic: dict[str, Any] | None = None
    #: what the target's STUN transactions add (probe/analysis/stun.py); None: none made
    stun: dict[str, Any] | None = None

    @property
    def reason(self) -> str:
        return self.message.english()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            # plain strings in the record, not enum members (a record is plain JSON data)
            "status": str(self.status),
            "blocking": None if self.blocking is None else str(self.blocking),
            "confirmed": self.confirmed,
            "fingerprints": list(self.fingerprints),
            "reason": self.reason,
            **({"x_quic": dict(self.quic)} if self.quic is not None else {}),
            **({"x_stun": dict(self.stun)} if self.stun is not None else {}),
        }
        # only when measured, so that records without an SNI swap stay as they were
        if self.evidence is not None:
            out["x_evidence"] = self.evidence
        if self.residual is not None:
            out["x_residual"] = dict(self.residual)
        return out


@dataclass(slots=True)
class EndpointOutcome:
    """What happened on one endpoint flow. `why` is the phrase the reason is built from
    (`evidence` in English)."""

    address: str
    port: int
    transport: str | None
    outcome: Status
    failure: str | None = None
    failed_operation: str | None = None
    blocking: Blocking | None = None
    confirmed: bool = False
    fingerprints: list[str] = field(default_factory=list)
    why: Text | None = None
    #: the address proved it belongs to the service (verified TLS, MTProto reply, HTTP match)
    proves_address: bool = False
    #: the layer of a failure here that had no control to compare with (the candidates for
    #: the service-level local evidence of probe.service); None otherwise
    unexplained_layer: Blocking | None = None
    #: what failed, without the "no control" clause (for the local-evidence sentence)
    unexplained_what: Text | None = None
    #: how far this attempt got (REACHED_*): judging attempts on one endpoint together
    reached: int = REACHED_NOTHING

    @property
    def evidence(self) -> str:
        return self.why.english() if self.why is not None else ""

    @property
    def label(self) -> Arg:
        """The endpoint as a reason names it: `ip:port (transport)`, a technical token."""
        if not self.address:
            return M("an unrecorded address")
        where = format_address(self.address, self.port) if self.port else self.address
        return f"{where} ({self.transport})" if self.transport else where

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "port": self.port,
            "transport": self.transport,
            "outcome": str(self.outcome),
            "blocking": None if self.blocking is None else str(self.blocking),
            "failure": self.failure,
            "failed_operation": self.failed_operation,
        }


@dataclass(frozen=True, slots=True)
class Analysis:
    verdict: Verdict
    endpoints: list[EndpointOutcome]

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.to_dict(),
            "x_endpoints": [e.to_dict() for e in self.endpoints],
        }
