"""parse_ip: the quick refusal of host names gives the same answers as the ipaddress module."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe import addresses
from probe.addresses import BOGON_NETWORKS, in_networks, is_bogon, is_ip_literal, parse_ip

TRICKY = [
    "127.0.0.1",
    "198.18.0.1",
    "::1",
    "2001:2::1",
    "2001:2::ABCD",
    "::ffff:127.0.0.1",
    "[2001:2::1]",
    "fe80::1%eth0",
    "[fe80::1%eth0]",
    " 10.0.0.1 ",
    "cafe.de",  # only characters a literal may hold, still a name
    "dead::beef::1",
    "2130706433",
    "0x7f.1",
    "01.2.3.4",
    "1.2.3.04",
    "256.1.1.1",
    "255.255.255.255",
    "0.0.0.0",
    "1.2.3.4.",
    "1..2.3",
    "1.2.3.4.5",
    "1.2.3",
    "localhost",
    "h1.bench.test",
    "١٢٧.0.0.1",  # Arabic-Indic digits: not an address to ipaddress either
    "127.0.0.1\n",
    "",
    "[]",
    ":",
    ".",
]


def _reference(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    candidate = text.strip()
    if candidate.startswith("[") and candidate.endswith("]"):
        candidate = candidate[1:-1]
    try:
        return ipaddress.ip_address(candidate.split("%", 1)[0])
    except ValueError:
        return None


@pytest.mark.parametrize("text", TRICKY)
def test_parse_ip_agrees_with_the_ipaddress_module(text: str) -> None:
    assert parse_ip(text) == _reference(text)
    assert is_ip_literal(text) == (_reference(text) is not None)


def test_literals_and_names() -> None:
    assert parse_ip("[2001:2::1]") == ipaddress.IPv6Address("2001:2::1")
    assert parse_ip("fe80::1%eth0") == ipaddress.IPv6Address("fe80::1")
    assert parse_ip("198.18.0.1") == ipaddress.IPv4Address("198.18.0.1")
    assert parse_ip("cafe.de") is None
    assert parse_ip("h1.bench.test") is None


_octets = st.one_of(
    st.integers(0, 255).map(str),
    st.sampled_from(["00", "01", "010", "256", "999", "0255", "", "1a", "ff", "-1"]),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(_octets, min_size=1, max_size=6).map(".".join))
def test_dotted_quads_parse_as_the_ipaddress_module_reads_them(text: str) -> None:
    """The packed-form shortcut for dotted quads: the same address, or None, as ipaddress."""
    assert parse_ip(text) == _reference(text)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.ip_addresses(), st.ip_addresses(v=4)))
def test_bogons_are_the_ranges_of_both_versions(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    """in_networks without a version test of its own: a network of the other version never
    holds the address."""
    expected = any(address.version == n.version and address in n for n in BOGON_NETWORKS)
    assert in_networks(address, BOGON_NETWORKS) == expected
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    judged = mapped or address  # ::ffff:a.b.c.d is judged as a.b.c.d
    assert is_bogon(str(address)) == any(
        judged.version == n.version and judged in n for n in BOGON_NETWORKS
    )


def _edges() -> list[str]:
    """Each bogon range's first and last address and the ones just outside it."""
    edges = []
    for n in BOGON_NETWORKS:
        first, last = int(n.network_address), int(n.broadcast_address)
        top = 2**32 - 1 if n.version == 4 else 2**128 - 1
        for value in (first - 1, first, last, last + 1):
            if 0 <= value <= top:
                edges.append(
                    str(
                        ipaddress.ip_address(value)
                        if n.version == 4
                        else ipaddress.IPv6Address(value)
                    )
                )
    return edges


@pytest.mark.parametrize("text", _edges())
def test_bogon_range_edges(text: str) -> None:
    address = ipaddress.ip_address(text)
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    judged = mapped or address
    assert is_bogon(text) == any(judged in n for n in BOGON_NETWORKS if n.version == judged.version)


_PREFIXES = [
    "::ffff:0:0:0/96",
    "::/96",
    "64:ff9b::/96",
    "64:ff9b:1::/48",
    "2002::/16",
    "2001::/32",
    "fec0::/10",
    "fe80::/10",
    "2001:db8::/32",
    "100::/64",
]


@st.composite
def _judged_addresses(draw: st.DrawFn) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Any address, or one inside a prefix that embeds or refuses addresses."""
    if draw(st.booleans()):
        return draw(st.ip_addresses())
    network = ipaddress.ip_network(draw(st.sampled_from(_PREFIXES)))
    host = draw(st.integers(0, network.num_addresses - 1))
    return ipaddress.IPv6Address(int(network.network_address) + host)


@settings(max_examples=400, deadline=None)
@given(_judged_addresses())
def test_public_destination_is_every_destination_public(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    """The loop gives what the rule says: no destination in the never-public IPv6 ranges, and
    each one public."""
    expected = all(
        not any(d.version == n.version and d in n for n in addresses._NEVER_PUBLIC_V6)
        and addresses._public(d)
        for d in addresses.destinations(address)
    )
    assert addresses.is_public_destination(address) == expected
