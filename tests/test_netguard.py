"""The guard itself must work, or every other test's promise is empty."""

from __future__ import annotations

import socket

import pytest

from tests import netguard


def test_guard_blocks_public_connect():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        with pytest.raises(netguard.NetworkGuardError):
            sock.connect(("192.0.2.1", 443))  # TEST-NET-1: never routed, and never tried
    finally:
        sock.close()
    assert netguard.violations
    netguard.violations.clear()


def test_guard_blocks_udp_sendto_and_foreign_names():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        with pytest.raises(netguard.NetworkGuardError):
            sock.sendto(b"x", ("192.0.2.1", 53))
    finally:
        sock.close()
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("example.invalid", 443)
    assert len(netguard.violations) == 2
    netguard.violations.clear()


def test_guard_allows_loopback_and_lab():
    assert netguard.allowed_ip("127.0.0.2")
    assert netguard.allowed_ip("::1")
    assert netguard.allowed_ip("198.19.255.1")
    assert not netguard.allowed_ip("10.10.34.36")
    # the IPv6 lab: 2001:2::/48 and nothing around it
    assert netguard.allowed_ip("2001:2::130")
    assert netguard.allowed_ip("2001:2:0:ffff::1")
    assert not netguard.allowed_ip("2001:2:1::1")
    assert not netguard.allowed_ip("2001:1::1")
    assert not netguard.allowed_ip("2001:db8::1")
    assert not netguard.allowed_ip("2001:67c:4e8:f002::a")
    assert netguard.allowed_name("localhost")
    socket.getaddrinfo("localhost", 80)


def test_well_formed_localhost_subdomains_are_refused():
    # glibc sends them to the configured nameserver (outside loopback): the guard must stop it.
    assert not netguard.allowed_name("nonexistent.localhost")
    assert netguard.allowed_name("no such host.localhost")  # refused by the C library itself
