"""Where the probe stands: its network (ASN, country), its resolver, and the public address it
must never write down.

The public address is learned from the control server's echo and kept only in memory, in a
`Scrubber` (probe/scrub.py, re-exported here) that replaces it (and the machine's own global
IPv6 addresses, which identify a household as well as an IPv4 address does) with ``[scrubbed]``
in every record before it is written.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from probe.addresses import is_public
from probe.scrub import Scrubber as Scrubber  # re-exported: `from probe.vantage import Scrubber`

PROBE_IP = "127.0.0.1"
UNKNOWN_ASN = "AS0"
UNKNOWN_CC = "ZZ"


def local_global_ipv6_addresses(path: str = "/proc/net/if_inet6") -> list[str]:
    """The machine's own global IPv6 addresses (Linux); empty where unknown."""
    found: list[str] = []
    try:
        text = Path(path).read_text()
    except OSError:
        return found
    for line in text.splitlines():
        fields = line.split()
        if not fields or len(fields[0]) != 32:
            continue
        raw = fields[0]
        address = str(ipaddress.IPv6Address(int(raw, 16)))
        if is_public(address):
            found.append(address)
    return found


@dataclass(slots=True)
class Vantage:
    """What a record says about where it was measured (never the public address itself)."""

    probe_asn: str = UNKNOWN_ASN
    probe_cc: str = UNKNOWN_CC
    probe_network_name: str | None = None
    resolver_ip: str | None = None
    resolver_asn: str = UNKNOWN_ASN
    resolver_network_name: str | None = None
    network_type: str | None = None  # "vpn" when the measurement seems to go through a tunnel
    notes: list[str] = field(default_factory=list)


# --- VPN detection ------------------------------------------------------------------------

#: interface name prefixes of tunnels (OpenVPN/WireGuard/IPsec/PPP and commercial clients)
TUNNEL_PREFIXES = ("tun", "tap", "wg", "ppp", "utun", "ipsec", "nordlynx", "proton", "mullvad")


def default_route_interfaces(
    route_v4: str = "/proc/net/route", route_v6: str = "/proc/net/ipv6_route"
) -> list[str]:
    """Interfaces that carry a default route (Linux; empty elsewhere)."""
    found: list[str] = []
    try:
        for line in Path(route_v4).read_text().splitlines()[1:]:
            fields = line.split()
            # Iface Destination Gateway Flags ... Mask: a default route has destination and
            # mask zero; Flags bit 0x1 = up.
            if len(fields) >= 8 and fields[1] == "00000000" and fields[7] == "00000000":
                if int(fields[3], 16) & 0x1 and fields[0] not in found:
                    found.append(fields[0])
    except (OSError, ValueError):
        pass
    try:
        for line in Path(route_v6).read_text().splitlines():
            fields = line.split()
            # dest prefixlen src srclen nexthop metric refcnt use flags iface
            if len(fields) >= 10 and fields[0] == "0" * 32 and fields[1] == "00":
                if fields[9] != "lo" and fields[9] not in found:
                    found.append(fields[9])
    except (OSError, ValueError):
        pass
    return found


def is_tunnel_interface(name: str, sys_class_net: str = "/sys/class/net") -> bool:
    """A tun/tap device (the kernel marks it with `tun_flags`), a PPP link, or a known tunnel
    name."""
    if name.startswith(TUNNEL_PREFIXES):
        return True
    base = Path(sys_class_net) / name
    if (base / "tun_flags").exists():
        return True
    try:
        # ARPHRD_PPP = 512, ARPHRD_NONE = 65534 (tun, wireguard)
        return int((base / "type").read_text().strip()) in (512, 65534)
    except (OSError, ValueError):
        return False


def tunnel_default_routes() -> list[str]:
    """The default-route interfaces that are tunnels: the traffic goes through a VPN."""
    return [name for name in default_route_interfaces() if is_tunnel_interface(name)]


# --- resolver identity --------------------------------------------------------------------

#: answers the address of the resolver that asked it (its egress), as an A record
WHOAMI_NAME = "whoami.akamai.net"
