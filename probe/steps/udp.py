"""UDP plumbing shared by the steps that speak over datagrams (DNS over UDP, STUN): a
non-blocking socket of the server's family, and one datagram before a deadline."""

from __future__ import annotations

import asyncio
import socket


def udp_socket(server_ip: str, source_address: str | None) -> socket.socket:
    """A non-blocking UDP socket of `server_ip`'s family, bound to `source_address` if given."""
    family = socket.AF_INET6 if ":" in server_ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        if source_address:
            sock.bind((source_address, 0))
    except BaseException:
        sock.close()
        raise
    return sock


async def receive_before(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, when: float | None, size: int
) -> bytes | None:
    """One datagram of at most `size` bytes, or None when none came before loop time `when`
    (None: no limit here; the step's own deadline still applies)."""
    if when is None:
        return await loop.sock_recv(sock, size)
    if loop.time() >= when:
        return None
    try:
        async with asyncio.timeout_at(when):
            return await loop.sock_recv(sock, size)
    except TimeoutError:
        return None
