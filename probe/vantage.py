"""Where the probe stands: its network (ASN, country), its resolver, and the public address it
must never write down.

The public address is learned from the control server's echo and kept only in memory, in a
`Scrubber` that replaces it (and the machine's own global IPv6 addresses, which identify a
household as well as an IPv4 address does) with ``[scrubbed]`` in every record before it is
written.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

from probe.addresses import is_public, parse_ip
from probe.failures import SCRUBBED

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
class Scrubber:
    """Replaces the probe's own public addresses with ``[scrubbed]`` in text."""

    addresses: set[str] = field(default_factory=set)
    _pattern: re.Pattern[str] | None = None

    def add(self, address: str | None) -> None:
        if not address:
            return
        parsed = parse_ip(address)
        if parsed is None or parsed.is_loopback:
            return
        forms = {address, str(parsed)}
        if parsed.version == 6:
            forms.add(parsed.exploded)
        new = forms - self.addresses
        if new:
            self.addresses |= new
            alternatives = sorted(self.addresses, key=len, reverse=True)
            # Not inside a longer address: 1.2.3.4 must not match in 11.2.3.45.
            self._pattern = re.compile(
                r"(?<![\w.:])(?:"
                + "|".join(re.escape(a) for a in alternatives)
                + r")(?![\w:]|\.\d)",
                re.IGNORECASE,
            )

    def scrub(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(SCRUBBED, text)


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
