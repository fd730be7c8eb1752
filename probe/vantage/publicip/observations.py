"""What one attempt to learn the public address records, and the helpers every step shares.

A `PublicIPObservation` never holds the answered address, in any form: only whether there was
one, its family, whether it is public and whether it agreed with the majority. The address
travels beside it (`PublicIPResult.address`, `Discovery.ipv4`/`ipv6`/`answers`), in memory only,
and is left out of every `repr`.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from probe import failures
from probe.addresses import in_networks, is_public, parse_unmapped
from probe.observations import Trace

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Observation `method` values.
STUN = "stun"
HTTPS_ECHO = "https_echo"


@dataclass(slots=True)
class PublicIPObservation:
    """One attempt to learn our address from one server address. Never holds the answer.

    `public` is true when the answer counts as a public address (globally routable, or inside
    the lab's `allow_nets`); `agreed` when it equals the majority of its family's answers.
    `response_code` is the HTTP status of an echo page, or the error code of a STUN error
    response."""

    method: str
    server: str  # "host:port" of a STUN server as configured, or the echo URL
    server_address: str | None = None  # "ip:port" contacted; None when the name did not resolve
    server_family: int | None = None  # 4 | 6
    answer_family: int | None = None  # 4 | 6 when an address came back
    public: bool = False
    agreed: bool = False
    response_code: int | None = None
    failure: str | None = None
    failed_operation: str | None = None
    t0: float = 0.0
    t: float = 0.0

    @property
    def answered(self) -> bool:
        return self.answer_family is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "server": self.server,
            "server_address": self.server_address,
            "server_family": self.server_family,
            "answer_family": self.answer_family,
            "public": self.public,
            "agreed": self.agreed,
            "response_code": self.response_code,
            "failure": self.failure,
            "failed_operation": self.failed_operation,
            "t0": self.t0,
            "t": self.t,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PublicIPObservation:
        def text(key: str) -> str | None:
            value = d.get(key)
            return value if isinstance(value, str) else None

        def integer(key: str) -> int | None:
            value = d.get(key)
            return value if type(value) is int else None

        def number(key: str) -> float:
            value = d.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                return 0.0
            return float(value) if abs(value) < float("inf") else 0.0

        return cls(
            method=text("method") or "",
            server=text("server") or "",
            server_address=text("server_address"),
            server_family=integer("server_family"),
            answer_family=integer("answer_family"),
            public=d.get("public") is True,
            agreed=d.get("agreed") is True,
            response_code=integer("response_code"),
            failure=text("failure"),
            failed_operation=text("failed_operation"),
            t0=number("t0"),
            t=number("t"),
        )


@dataclass(slots=True)
class PublicIPResult:
    """What a step returns: the observation, and the answered address kept only in memory."""

    observation: PublicIPObservation
    address: str | None = field(default=None, repr=False)


@dataclass(slots=True)
class Discovery:
    """The outcome of `discover`. The addresses stay in memory (not in `repr`, not in
    `to_dict`).

    `ipv4`/`ipv6`: the strict majority of the answers of that family when it is a public (or
    allowed) address, else None. `answers`: every distinct public (or allowed) address any server
    answered, the majority's first. Scrubbing all of `answers` protects the volunteer when the
    majority is wrong, at a price: a lying server can then make an address of its choice vanish
    from the records."""

    ipv4: str | None = field(default=None, repr=False)
    ipv6: str | None = field(default=None, repr=False)
    answers: tuple[str, ...] = field(default=(), repr=False)
    observations: list[PublicIPObservation] = field(default_factory=list)

    def _family(self, family: int, found: str | None) -> dict[str, Any]:
        answered = [o for o in self.observations if o.answer_family == family]
        return {
            "found": found is not None,
            "answers": len(answered),
            "agreed": sum(o.agreed for o in answered),
        }

    def to_dict(self) -> dict[str, Any]:
        """``{"ipv4": {found, answers, agreed}, "ipv6": {...}, "observations": [...]}``."""
        return {
            "ipv4": self._family(4, self.ipv4),
            "ipv6": self._family(6, self.ipv6),
            "observations": [o.to_dict() for o in self.observations],
        }


# --- addresses -------------------------------------------------------------------------------


def networks(allow_nets: Iterable[str | Network]) -> tuple[Network, ...]:
    """The allowed networks; ValueError for a malformed one (the caller's bug)."""
    return tuple(ipaddress.ip_network(n) if isinstance(n, str) else n for n in allow_nets)


def normalize(text: str) -> str | None:
    """One spelling per address: IPv4-mapped IPv6 becomes its IPv4, IPv6 compressed."""
    address = parse_unmapped(text)
    return str(address) if address is not None else None


def family_of(address: str) -> int:
    return 6 if ":" in address else 4


def counts_as_public(address: str, allow_nets: Sequence[Network] = ()) -> bool:
    """True when `address` may be taken as the probe's own: public (`addresses.is_public`,
    which also refuses IPv4-mapped, NAT64, 6to4 and Teredo forms of private addresses), or
    inside `allow_nets`."""
    parsed = parse_unmapped(address)
    if parsed is None:
        return False
    return in_networks(parsed, allow_nets) or is_public(str(parsed))


# --- shared by the steps ---------------------------------------------------------------------


def check_source(server_ip: str, source_address: str | None) -> None:
    """A source address of the other family cannot be bound (the C library would say so as a
    lookup failure, which reads like DNS): name it address_not_available instead."""
    if source_address and family_of(source_address) != family_of(server_ip):
        raise failures.ProbeFailure(failures.ADDRESS_NOT_AVAILABLE, "source of another family")


def new_trace(trace: Trace | None) -> Trace:
    return trace if trace is not None else Trace(zero=time.monotonic(), transaction_id=0)


def finish(
    observation: PublicIPObservation,
    address: str | None,
    trace: Trace,
    allow_nets: Sequence[Network],
) -> PublicIPResult:
    if address is not None:
        observation.answer_family = family_of(address)
        observation.public = counts_as_public(address, allow_nets)
    observation.t = trace.now()
    return PublicIPResult(observation, address)
