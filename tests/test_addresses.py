"""parse_ip: the quick refusal of host names gives the same answers as the ipaddress module."""

from __future__ import annotations

import ipaddress

import pytest

from probe.addresses import is_ip_literal, parse_ip

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
