"""IP address facts shared by the layers: literals, bogons, and what counts as public."""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from functools import lru_cache

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: A DNS answer in these ranges for a public name is suspicious (FACTS.md §5).
BOGON_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "::ffff:0:0/96",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
        "2001:db8::/32",
    )
)


#: every character an IPv4 or IPv6 literal can hold once brackets and a zone are removed
_IP_CHARACTERS = frozenset("0123456789abcdefABCDEF.:")
#: a dotted quad exactly as `ipaddress` accepts one (0-255, no leading zeros): read from its
#: packed form, 2 Python calls instead of the 7 of parsing the text octet by octet
_DOTTED_QUAD = re.compile(
    r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
    r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
)


@lru_cache(maxsize=4096)
def parse_ip(text: str) -> IPAddress | None:
    """The address for an IP literal (IPv6 may carry brackets or a zone), else None."""
    candidate = text.strip()
    if candidate.startswith("[") and candidate.endswith("]"):
        candidate = candidate[1:-1]
    candidate = candidate.split("%", 1)[0]
    if not candidate or not _IP_CHARACTERS.issuperset(candidate):
        return None  # a host name: no need to let both parsers raise (a round asks per target)
    if _DOTTED_QUAD.fullmatch(candidate):
        return ipaddress.IPv4Address(socket.inet_aton(candidate))
    try:
        return ipaddress.ip_address(candidate)
    except ValueError:
        return None


# Cached like parse_ip: the steps ask these of the same address several times per
# measurement, and a cache hit costs no Python call.
@lru_cache(maxsize=4096)
def is_ip_literal(text: str) -> bool:
    return parse_ip(text) is not None


@lru_cache(maxsize=4096)
def is_ipv6(text: str) -> bool:
    return isinstance(parse_ip(text), ipaddress.IPv6Address)


@lru_cache(maxsize=4096)
def parse_unmapped(text: str) -> IPAddress | None:
    """Like `parse_ip`, but an IPv4-mapped IPv6 address (::ffff:a.b.c.d) comes back as its
    IPv4 address: range checks must not be dodged by writing an address the other way."""
    address = parse_ip(text)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def in_networks(
    address: IPAddress, networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> bool:
    # A network of the other version never contains the address (`__contains__` compares
    # versions first); a plain loop, as this runs for every answer and address judged.
    for network in networks:
        if address in network:
            return True
    return False


def _ranges(version: int) -> tuple[tuple[int, int], ...]:
    return tuple(
        (int(n.network_address), int(n.netmask)) for n in BOGON_NETWORKS if n.version == version
    )


#: BOGON_NETWORKS of each version as (network, netmask) integers: what a network's
#: `__contains__` compares, without a Python call per network (this runs for every answer and
#: address judged)
_BOGON_RANGES_V4 = _ranges(4)
_BOGON_RANGES_V6 = _ranges(6)


def _in_bogons(address: IPAddress) -> bool:
    value = int(address)
    v4 = isinstance(address, ipaddress.IPv4Address)
    for network, netmask in _BOGON_RANGES_V4 if v4 else _BOGON_RANGES_V6:
        if value & netmask == network:
            return True
    return False


def is_bogon(ip: str) -> bool:
    """True for addresses in the bogon ranges (an IPv4-mapped IPv6 address counts as its v4)."""
    address = parse_unmapped(ip)
    return address is not None and _in_bogons(address)


_NAT64_PREFIXES = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address leads to through a translator: NAT64 (64:ff9b::/96,
    64:ff9b:1::/48), 6to4 (2002::/16) or Teredo (the client)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if in_networks(address, _NAT64_PREFIXES):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def _public(address: IPAddress) -> bool:
    return address.is_global and not _in_bogons(address)


def is_public(ip: str) -> bool:
    """Globally routable: not private, loopback, link-local, reserved or a bogon — and neither
    is any address it leads to (`destinations`: the IPv4 address inside an IPv4-compatible,
    SIIT, NAT64, 6to4, Teredo or ISATAP address), nor site-local (fec0::/10). The probe and the
    control's guard judge addresses by this same rule."""
    address = parse_unmapped(ip)
    return address is not None and _public(address) and is_public_destination(address)


#: IPv6 ranges that are never a destination for the control, whatever Python thinks of them:
#: site-local (fec0::/10, deprecated by RFC 3879, still routed inside some networks) and the
#: local-use NAT64 prefix (64:ff9b:1::/48, RFC 8215: a translator of the local network, with a
#: layout that cannot be known from outside).
_NEVER_PUBLIC_V6 = (ipaddress.ip_network("fec0::/10"), ipaddress.ip_network("64:ff9b:1::/48"))
_SIIT_PREFIX = ipaddress.ip_network("::ffff:0:0:0/96")
_COMPATIBLE_PREFIX = ipaddress.ip_network("::/96")
_NAT64_LOCAL_PREFIX = _NEVER_PUBLIC_V6[1]


#: ISATAP interface identifiers (RFC 5214): ::0:5efe:a.b.c.d and ::200:5efe:a.b.c.d.
_ISATAP_IDS = (0x00005EFE, 0x02005EFE)


def destinations(address: IPAddress) -> tuple[IPAddress, ...]:
    """The addresses a connection to `address` may really reach: the IPv4 address embedded in
    an IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d), SIIT (::ffff:0:a.b.c.d),
    NAT64 (64:ff9b::/96), 6to4 (2002::/16) or Teredo (2001::/32, the client) address, else
    `address` itself; an ISATAP address (any prefix, interface id ::5efe:a.b.c.d) reaches both
    itself and a.b.c.d. `::` and `::1` are not IPv4-compatible addresses; the local-use NAT64
    prefix (64:ff9b:1::/48) is judged as itself (never public)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return (address,)
    if address.ipv4_mapped is not None:
        return (address.ipv4_mapped,)
    value = int(address)
    low = ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if address in _SIIT_PREFIX or (address in _COMPATIBLE_PREFIX and value > 1):
        return (low,)
    if address in _NAT64_LOCAL_PREFIX:
        return (address,)
    inner = embedded_ipv4(address)
    if inner is not None:
        return (inner,)
    if (value >> 32) & 0xFFFFFFFF in _ISATAP_IDS:
        return (address, low)
    return (address,)


def is_public_destination(address: IPAddress) -> bool:
    """Whether a connection to `address` reaches only globally routable addresses, judged on
    the embedded IPv4 address of every IPv6 form that carries one (see `destinations`)."""
    for destination in destinations(address):
        if not _public(destination):
            return False
        # the never-public ranges are IPv6 only: an IPv4 destination is not looked for there
        v6 = isinstance(destination, ipaddress.IPv6Address)
        if v6 and in_networks(destination, _NEVER_PUBLIC_V6):
            return False
    return True
