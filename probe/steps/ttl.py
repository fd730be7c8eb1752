"""TTL-limited probes (issue 19 item 4, like OONI's tlsmiddlebox): where on the path does the
interference start?

The trigger (a TLS ClientHello with the blocked SNI, an HTTP request with the blocked Host, or a
DNS query for the blocked name) is sent with IP TTL (IPv6 hop limit) n = 1, 2, ...; beside it
the same kind of message for a neutral name. A packet whose TTL runs out at a router is
dropped there, so a reply to a probe with TTL n came from at most n hops away: the first TTL at
which the trigger gets a reply (a reset, a blockpage, a forged DNS answer) before the neutral
message does is where the censor sits. TCP connects with the normal TTL (the handshake must
reach the server); only the payload is TTL-limited. Only replies on our own sockets are read:
never ICMP, so no router's address is ever seen, let alone recorded. The judgement is
probe/analysis/censor_location.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any

import dns.exception

from probe import failures

MAX_TTL = 16
#: TTLs probed at once (each with a trigger and a neutral socket)
WINDOW = 4
#: how long one probe waits for a reply after its payload
WAIT = 2.0
NEUTRAL_NAME = "example.com"
TRIGGERS = ("tls", "http", "dns")

# what came back on a socket
SILENT = "silent"
RESET = "reset"
EOF = "eof"
TLS_HANDSHAKE = "tls_handshake"
TLS_ALERT = "tls_alert"
HTTP_RESPONSE = "http_response"
DNS_ANSWER = "dns_answer"
DATA = "data"
CONNECT_FAILED = "connect_failed"


@dataclass(slots=True)
class HopProbe:
    ttl: int
    trigger: str
    neutral: str

    def to_dict(self) -> dict[str, Any]:
        return {"ttl": self.ttl, "trigger": self.trigger, "neutral": self.neutral}


@dataclass(slots=True)
class TTLSweep:
    """One sweep (`test_keys.x_censor_location`, with the judgement). No addresses."""

    trigger: str
    port: int
    max_ttl: int
    hops: list[HopProbe] = field(default_factory=list)
    failure: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "trigger": self.trigger,
            "port": self.port,
            "max_ttl": self.max_ttl,
            "hops": [h.to_dict() for h in self.hops],
            "failure": self.failure,
        }


def client_hello(sni: str) -> bytes:
    """The first flight of a real TLS handshake for `sni` (Python's own ClientHello)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=sni)
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def payload(trigger: str, name: str) -> bytes:
    if trigger == "tls":
        return client_hello(name)
    if trigger == "http":
        return b"GET / HTTP/1.1\r\nHost: %s\r\nAccept: */*\r\nConnection: close\r\n\r\n" % (
            name.encode("idna")
        )
    import dns.message  # only for a TTL sweep with a DNS trigger, not at every start-up
    import dns.rdatatype

    return dns.message.make_query(name, dns.rdatatype.A).to_wire()


def _set_ttl(sock: socket.socket, family: int, ttl: int) -> None:
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
    else:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)


def reply_kind(data: bytes) -> str:
    if data[:1] == b"\x16":
        return TLS_HANDSHAKE
    if data[:1] == b"\x15":
        return TLS_ALERT
    if data.startswith(b"HTTP/"):
        return HTTP_RESPONSE
    return DATA


async def tcp_probe(ip: str, port: int, data: bytes, ttl: int, timeout: float, wait: float) -> str:
    """Connect normally, send `data` with TTL `ttl`, say what came back within `wait`."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ipaddress.ip_address(ip).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        try:
            async with asyncio.timeout(timeout):
                await loop.sock_connect(sock, (ip, port))
        except (OSError, TimeoutError):
            return CONNECT_FAILED
        _set_ttl(sock, family, ttl)
        await loop.sock_sendall(sock, data)
        try:
            async with asyncio.timeout(wait):
                first = await loop.sock_recv(sock, 512)
        except TimeoutError:
            return SILENT
        except ConnectionResetError:
            return RESET
        except OSError as exc:
            return failures.classify(exc)
        return reply_kind(first) if first else EOF
    except OSError as exc:
        return failures.classify(exc)
    finally:
        sock.close()


async def dns_probe(ip: str, port: int, data: bytes, ttl: int, wait: float) -> str:
    """Send the query with TTL `ttl` (unconnected: ICMP errors are not reported to us); any
    reply to it within `wait` is an answer."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ipaddress.ip_address(ip).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        _set_ttl(sock, family, ttl)
        await loop.sock_sendto(sock, data, (ip, port))
        query_id = data[:2]
        async with asyncio.timeout(wait):
            while True:
                reply = await loop.sock_recv(sock, 4096)
                if reply[:2] == query_id:
                    return DNS_ANSWER
    except TimeoutError:
        return SILENT
    except OSError as exc:
        return failures.classify(exc)
    finally:
        sock.close()


async def _probe(
    trigger: str, ip: str, port: int, data: bytes, ttl: int, timeout: float, wait: float
) -> str:
    if trigger == "dns":
        return await dns_probe(ip, port, data, ttl, wait)
    return await tcp_probe(ip, port, data, ttl, timeout, wait)


async def ttl_sweep(
    trigger: str,
    ip: str,
    port: int,
    name: str,
    *,
    neutral_name: str = NEUTRAL_NAME,
    max_ttl: int = MAX_TTL,
    timeout: float = 10.0,
    wait: float = WAIT,
) -> TTLSweep:
    """Probe TTL 1..max_ttl, WINDOW at a time, until both the trigger and the neutral message
    got a reply (then the farther hops add nothing). Deadline: per window, the connect
    timeout plus the wait, plus a second."""
    sweep = TTLSweep(trigger=trigger, port=port, max_ttl=max_ttl)
    try:
        blocked, neutral = payload(trigger, name), payload(trigger, neutral_name)
    except (ValueError, UnicodeError, dns.exception.DNSException) as exc:  # a name it cannot send
        sweep.failure = failures.classify(exc)
        return sweep
    for start in range(1, max_ttl + 1, WINDOW):
        ttls = range(start, min(start + WINDOW, max_ttl + 1))
        try:
            async with asyncio.timeout(timeout + wait + 1), asyncio.TaskGroup() as group:
                tasks = [
                    (
                        ttl,
                        group.create_task(_probe(trigger, ip, port, blocked, ttl, timeout, wait)),
                        group.create_task(_probe(trigger, ip, port, neutral, ttl, timeout, wait)),
                    )
                    for ttl in ttls
                ]
        except TimeoutError:
            sweep.failure = failures.GENERIC_TIMEOUT
            return sweep
        for ttl, mine, theirs in tasks:
            sweep.hops.append(HopProbe(ttl, mine.result(), theirs.result()))
        if any(CONNECT_FAILED in (h.trigger, h.neutral) for h in sweep.hops):
            return sweep  # nothing to locate on a path that refuses the connection itself
        replied = [h for h in sweep.hops if h.trigger != SILENT]
        if replied and any(h.neutral != SILENT for h in sweep.hops):
            break
    return sweep
