"""DNS over UDP: the engine that sees injection best.

An on-path injector answers before the real server does, so after the first valid reply we keep
listening for a short window and record every further valid reply as a duplicate
(`x_duplicate = True`), in arrival order. The step is three parts: `_send_query` (connect and
send within the deadline), `_listen` (the receive loop: which datagrams are read, for how long)
and `_Replies` (the duplicate-window collector: what each datagram is, and the observations)."""

from __future__ import annotations

import asyncio
import socket

import dns.flags
import dns.message

from probe import failures
from probe.observations import DNSQuery, Trace, format_address
from probe.steps.dns.tcp import resolve_tcp
from probe.steps.dns.wire import (
    MAX_DNS_MESSAGE,
    _check_query_type,
    _make_query,
    _parse_reply,
    _QueryRecorder,
    _WrongQueryId,
)
from probe.steps.tcp import ByteCounter
from probe.steps.udp import receive_before, udp_socket

#: Datagrams read for one UDP query before we stop listening (a flood must not keep us busy).
MAX_DATAGRAMS_PER_QUERY = 64


async def resolve_udp(
    hostname: str,
    query_type: str,
    server: tuple[str, int],
    *,
    trace: Trace,
    timeout: float,
    duplicate_window: float = 0.3,
    source_address: str | None = None,
    counter: ByteCounter | None = None,
) -> list[DNSQuery]:
    """Ask `server` over UDP; return the first valid reply and every duplicate that follows.

    After the first valid reply we keep listening `duplicate_window` seconds (never past the
    deadline): an injected answer and the genuine one are then both recorded, in arrival order,
    the later ones with `x_duplicate = True`. Replies with another query id or that do not parse
    are skipped while we wait; when nothing valid came, the failure says which of them we saw.
    A truncated first reply is followed by the same query over TCP (appended, engine "tcp").
    The whole exchange, TCP retry included, ends within `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    resolver_address = format_address(server[0], server[1])
    _check_query_type(query_type)
    recorder = _QueryRecorder(hostname, query_type, "udp", resolver_address, trace)
    replies: _Replies | None = None
    failure: str | None = None
    sock: socket.socket | None = None
    try:
        query = _make_query(hostname, query_type)
        replies = _Replies(query, recorder)
        sock = udp_socket(server[0], source_address)
        await _send_query(loop, sock, server, query, deadline, counter)
        await _listen(loop, sock, replies, deadline, duplicate_window, counter)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        failure = failures.classify(exc)
    finally:
        if sock is not None:
            sock.close()

    if replies is None:  # no query to send: the name cannot be carried by DNS
        return [recorder.no_reply(failure, None)]
    if not replies.valid:
        return [replies.no_reply(failure)]
    if replies.truncated:
        replies.valid.append(
            await resolve_tcp(
                hostname,
                query_type,
                server,
                trace=trace,
                timeout=max(deadline - loop.time(), 0.0),
                source_address=source_address,
                counter=counter,
            )
        )
    return replies.valid


async def _send_query(
    loop: asyncio.AbstractEventLoop,
    sock: socket.socket,
    server: tuple[str, int],
    query: dns.message.Message,
    deadline: float,
    counter: ByteCounter | None,
) -> None:
    # A connected socket: the kernel drops datagrams from any other source, and an ICMP
    # port-unreachable surfaces as connection_refused instead of a silent timeout. A UDP
    # connect only sets the peer address and never blocks, so it is a plain call (through
    # the event loop it cost a future and a loop iteration per query); an IPv6 zone
    # ("fe80::1%eth0") needs the loop's address resolution to become a scope id.
    async with asyncio.timeout_at(deadline):
        if "%" in server[0]:
            await loop.sock_connect(sock, server)
        else:
            sock.connect(server)
        wire = query.to_wire()
        await loop.sock_sendall(sock, wire)
    if counter is not None:
        counter.sent += len(wire)


async def _listen(
    loop: asyncio.AbstractEventLoop,
    sock: socket.socket,
    replies: _Replies,
    deadline: float,
    duplicate_window: float,
    counter: ByteCounter | None,
) -> None:
    """Read datagrams into `replies` until the deadline, or until the duplicate window after
    the first valid reply closes, or a truncated first reply, or the datagram cap."""
    listen_until = deadline
    for _ in range(MAX_DATAGRAMS_PER_QUERY):
        try:
            data = await receive_before(loop, sock, listen_until, MAX_DNS_MESSAGE)
        except OSError:
            if replies.valid:
                break  # an ICMP error after the answer ends the duplicate window, no more
            raise
        if data is None:
            break
        if counter is not None:
            counter.received += len(data)
        if replies.add(data):  # the first valid reply: the duplicate window opens
            if replies.truncated:
                break
            listen_until = min(deadline, loop.time() + duplicate_window)


class _Replies:
    """The duplicate-window collector: every valid reply as an observation, in arrival order,
    and what the rejected datagrams were (the failure when no valid reply comes)."""

    __slots__ = (
        "first_rejected",
        "query",
        "recorder",
        "saw_malformed",
        "saw_wrong_id",
        "truncated",
        "valid",
    )

    def __init__(self, query: dns.message.Message, recorder: _QueryRecorder) -> None:
        self.query = query
        self.recorder = recorder
        self.valid: list[DNSQuery] = []
        self.first_rejected: bytes | None = None  # kept as evidence when no valid reply came
        self.saw_wrong_id = False
        self.saw_malformed = False
        self.truncated = False

    def add(self, data: bytes) -> bool:
        """Take one datagram; True when it is the first valid reply."""
        try:
            message = _parse_reply(self.query, data)
        except _WrongQueryId:
            self.saw_wrong_id = True
            self.first_rejected = self.first_rejected or data
            return False
        except failures.ProbeFailure:
            self.saw_malformed = True
            self.first_rejected = self.first_rejected or data
            return False
        first = not self.valid
        self.valid.append(self.recorder.reply(message, data, duplicate=not first))
        if first and message.flags & dns.flags.TC:
            self.truncated = True
        return first

    def no_reply(self, failure: str | None) -> DNSQuery:
        """The one observation when no valid reply came: `failure` (the step's error) if any,
        else what the rejected datagrams were, else a timeout."""
        if failure is None:
            if self.saw_wrong_id:
                failure = failures.DNS_WRONG_QUERY_ID
            elif self.saw_malformed:
                failure = failures.DNS_SERVER_MISBEHAVING
            else:
                failure = failures.GENERIC_TIMEOUT
        return self.recorder.no_reply(failure, self.first_rejected)
