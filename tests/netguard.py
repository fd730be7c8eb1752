"""The test suite's network guard: no test may send a packet outside loopback and the lab ranges
(198.18.0.0/15; for IPv6, 2001:2::/48).

Every socket connect/sendto and every getaddrinfo call in the test process is checked. A call to
a forbidden destination raises *and* is recorded, and the autouse fixture in conftest.py fails the
test that made it (a step would otherwise swallow the error as a failure string).
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

ALLOWED_NETWORKS = [
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
    ipaddress.ip_network("198.18.0.0/15"),
    # the IPv6 lab (tests/lab): the benchmarking range's first /48 only, never more
    ipaddress.ip_network("2001:2::/48"),
]
# Unix sockets and unspecified addresses (binding, not sending) are fine.
violations: list[str] = []


class NetworkGuardError(OSError):
    pass


def allowed_ip(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in ALLOWED_NETWORKS)


def _never_leaves(name: str) -> bool:
    """Names no resolver sends anywhere: refused by the IDNA codec or by the C library itself
    (a space, an empty label, a label longer than 63 bytes)."""
    labels = name.split(".")
    return " " in name or "" in labels or any(len(label) > 63 for label in labels)


def allowed_name(host: str) -> bool:
    """Only "localhost" itself (and names that cannot leave the machine): glibc sends other
    well-formed *.localhost names to the configured DNS server (seen under strace here)."""
    name = host.rstrip(".").lower()
    return name == "localhost" or allowed_ip(name) or _never_leaves(name)


def _check_address(address: Any, what: str) -> None:
    if isinstance(address, tuple) and address and isinstance(address[0], str):
        host = address[0]
        if not allowed_ip(host):
            message = f"network guard: {what} to {host} is outside loopback and the lab range"
            violations.append(message)
            raise NetworkGuardError(message)


_original_connect = socket.socket.connect
_original_connect_ex = socket.socket.connect_ex
_original_sendto = socket.socket.sendto
_original_getaddrinfo = socket.getaddrinfo


def _connect(self: socket.socket, address: Any) -> None:
    _check_address(address, "connect")
    return _original_connect(self, address)


def _connect_ex(self: socket.socket, address: Any) -> int:
    _check_address(address, "connect")
    return _original_connect_ex(self, address)


def _sendto(self: socket.socket, data: Any, *args: Any) -> int:
    _check_address(args[-1], "sendto")
    return _original_sendto(self, data, *args)  # type: ignore[arg-type]


def _getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if isinstance(host, bytes):
        # the idna codec has no "replace" handler: a name that is not IDNA is checked as
        # latin-1 (still refused unless it is a localhost name)
        try:
            host = host.decode("idna")
        except UnicodeError:
            host = host.decode("latin-1")
    if host is not None and not allowed_name(str(host)):
        message = f"network guard: system resolver asked for {host!r} (only localhost names)"
        violations.append(message)
        raise socket.gaierror(socket.EAI_NONAME, message)
    return _original_getaddrinfo(host, *args, **kwargs)


def install() -> None:
    socket.socket.connect = _connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _connect_ex  # type: ignore[method-assign]
    socket.socket.sendto = _sendto  # type: ignore[method-assign,assignment]
    socket.getaddrinfo = _getaddrinfo
