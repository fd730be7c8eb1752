"""The control is not an open proxy: the guard that refuses private and reserved destinations
(and every IPv6 form that embeds one), and what is kept from a caller of what the guard
refused (docs/control.md, "It is not an open proxy")."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence

from probe import failures
from probe.addresses import destinations, in_networks, is_public_destination, parse_ip
from probe.observations import Observations
from probe.targets import Target


def make_address_guard(
    allow_nets: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> Callable[[str], bool]:
    """True for an address the control must refuse. An IPv6 address that embeds an IPv4 address
    (mapped, compatible, SIIT, NAT64, 6to4, Teredo, ISATAP) is judged by what it embeds:
    refused unless that is public or `allow_nets` covers it. Other addresses: refused unless
    public (site-local fec0::/10 never is) or covered by `allow_nets`."""
    allowed = tuple(allow_nets)

    def refuse(ip: str) -> bool:
        address = parse_ip(ip)
        if address is None:
            return True
        return any(
            not in_networks(d, allowed) and not is_public_destination(d)
            for d in destinations(address)
        )

    return refuse


def redact_refused(
    observations: Observations, refuse: Callable[[str], bool], supplied: str | None
) -> None:
    """What the control resolved into a refused range is not told to the caller: such DNS
    answers are dropped with the raw reply that holds them (a query left without addresses
    fails `control_refused_destination`), and a refused connect (or STUN transaction) to an
    address the caller did not write itself has its address blanked. `supplied` is the IP
    literal of the target."""
    for query in observations.queries:
        kept = [a for a in query.answers if a.ip is None or not refuse(a.ip)]
        if len(kept) != len(query.answers):
            query.answers = kept
            query.raw_response = None
            if not any(a.ip is not None for a in kept):
                query.failure = failures.CONTROL_REFUSED_DESTINATION
    written = parse_ip(supplied) if supplied is not None else None
    for connect in observations.tcp_connect:
        if connect.failure != failures.CONTROL_REFUSED_DESTINATION:
            continue
        if written is None or parse_ip(connect.ip) != written:
            connect.ip = ""
    for check in observations.stun:
        if check.failure == failures.CONTROL_REFUSED_DESTINATION and (
            written is None or parse_ip(check.address) != written
        ):
            check.address = ""


def literal_of(target: Target) -> str | None:
    """The IP literal the caller wrote as the target's host (or URL host), if any."""
    host = target.hostname
    return host if host and parse_ip(host) is not None else None
