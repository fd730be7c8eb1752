"""STUN (RFC 5389): the Binding request's wire format and the step that asks one server.

`stun_binding` sends one Binding request over UDP to one server address; the reply's
XOR-MAPPED-ADDRESS (or, from old servers, MAPPED-ADDRESS) is where our datagram came from.
STUN is unauthenticated UDP, so an on-path censor can rewrite its answers: the discovery takes
a majority over several servers and the HTTPS echo pages (`probe.vantage.publicip.discovery`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from probe import failures
from probe.observations import Trace, format_address
from probe.steps import tcp, udp
from probe.vantage.publicip.observations import (
    STUN,
    Network,
    PublicIPObservation,
    PublicIPResult,
    check_source,
    family_of,
    finish,
    networks,
    new_trace,
    normalize,
)

STUN_MAGIC_COOKIE = 0x2112A442
STUN_BINDING_REQUEST = 0x0001
STUN_BINDING_SUCCESS = 0x0101
STUN_BINDING_ERROR = 0x0111
STUN_ATTR_MAPPED_ADDRESS = 0x0001
STUN_ATTR_ERROR_CODE = 0x0009
STUN_ATTR_XOR_MAPPED_ADDRESS = 0x0020
STUN_HEADER_SIZE = 20
#: Bytes read per datagram: a Binding response is well under 100 bytes; anything that does not
#: fit is cut by the kernel, fails the length check and is skipped.
MAX_STUN_DATAGRAM = 2048
#: Datagrams read for one Binding request before we stop listening (a flood must not keep us
#: busy until the deadline).
MAX_STUN_DATAGRAMS = 32
#: Attributes looked at in one message (each takes at least 4 bytes, so a datagram bounds this
#: too).
MAX_STUN_ATTRIBUTES = 64
#: RFC 5389 7.2.1: retransmit after 500 ms, doubling each time; the deadline bounds the rest.
STUN_INITIAL_RTO = 0.5
#: Requests sent for one Binding transaction, retransmissions included (3 fit in 3 s).
MAX_STUN_REQUESTS = 3

_FAMILY_IPV4 = 0x01
_FAMILY_IPV6 = 0x02
_COOKIE_BYTES = STUN_MAGIC_COOKIE.to_bytes(4, "big")

StunOutcome = Literal["success", "error", "wrong_id", "invalid"]

# --- the wire format -------------------------------------------------------------------------


def binding_request(transaction_id: bytes) -> bytes:
    """A Binding request without attributes (RFC 5389 6): nothing but the 20-byte header."""
    if len(transaction_id) != 12:
        raise ValueError("a STUN transaction id is 96 bits")
    return struct.pack("!HHI", STUN_BINDING_REQUEST, 0, STUN_MAGIC_COOKIE) + transaction_id


@dataclass(frozen=True, slots=True)
class StunReply:
    """What one datagram was: our success response (with the address), our error response
    (with its code, when readable), a STUN message of another transaction, or not valid."""

    outcome: StunOutcome
    address: str | None = field(default=None, repr=False)
    error_code: int | None = None


_INVALID = StunReply("invalid")


def _decode_address(value: bytes, xor: bool, transaction_id: bytes) -> str | None:
    """MAPPED-ADDRESS / XOR-MAPPED-ADDRESS value → address text, or None when malformed."""
    if len(value) < 4:
        return None
    family = value[1]
    raw = value[4:]
    if family == _FAMILY_IPV4 and len(raw) == 4:
        mask = _COOKIE_BYTES
    elif family == _FAMILY_IPV6 and len(raw) == 16:
        mask = _COOKIE_BYTES + transaction_id
    else:
        return None
    if xor:
        raw = bytes(a ^ b for a, b in zip(raw, mask, strict=True))
    return normalize(str(ipaddress.ip_address(raw)))


def _error_code(value: bytes) -> int | None:
    """ERROR-CODE (RFC 5389 15.6): class (3..6) x 100 + number (0..99); None when malformed.
    The reason phrase is never read: it is the server's free text."""
    if len(value) < 4:
        return None
    error_class, number = value[2] & 0x07, value[3]
    if not 3 <= error_class <= 6 or number > 99:
        return None
    return error_class * 100 + number


def parse_stun_reply(data: bytes, transaction_id: bytes) -> StunReply:
    """Classify one datagram as a reply to our Binding request. Never raises.

    The header must have the two top bits clear, the magic cookie, and a length that is a
    multiple of 4 and equals the bytes that follow; every attribute must fit inside the message.
    Only the first occurrence of an attribute counts (RFC 5389 15); XOR-MAPPED-ADDRESS wins over
    MAPPED-ADDRESS; a malformed address attribute makes the whole reply invalid."""
    if len(data) < STUN_HEADER_SIZE:
        return _INVALID
    message_type, length, cookie = struct.unpack_from("!HHI", data)
    if message_type & 0xC000 or cookie != STUN_MAGIC_COOKIE:
        return _INVALID
    if length % 4 or STUN_HEADER_SIZE + length != len(data):
        return _INVALID
    if data[8:20] != transaction_id:
        return StunReply("wrong_id")
    if message_type not in (STUN_BINDING_SUCCESS, STUN_BINDING_ERROR):
        return _INVALID
    attributes: dict[int, bytes] = {}
    offset = STUN_HEADER_SIZE
    for _ in range(MAX_STUN_ATTRIBUTES):
        if offset >= len(data):
            break
        if offset + 4 > len(data):
            return _INVALID
        attribute_type, attribute_length = struct.unpack_from("!HH", data, offset)
        start = offset + 4
        end = start + attribute_length
        if end > len(data):
            return _INVALID  # a truncated attribute
        attributes.setdefault(attribute_type, data[start:end])
        offset = end + (-attribute_length % 4)
    if offset != len(data):  # padding missing, or more attributes than we read
        return _INVALID
    if message_type == STUN_BINDING_ERROR:
        value = attributes.get(STUN_ATTR_ERROR_CODE)
        return StunReply("error", error_code=_error_code(value) if value is not None else None)
    for attribute_type, xor in (
        (STUN_ATTR_XOR_MAPPED_ADDRESS, True),
        (STUN_ATTR_MAPPED_ADDRESS, False),
    ):
        value = attributes.get(attribute_type)
        if value is not None:
            address = _decode_address(value, xor, transaction_id)
            return StunReply("success", address=address) if address is not None else _INVALID
    return _INVALID


# --- the step --------------------------------------------------------------------------------


async def stun_binding(
    server_ip: str,
    port: int,
    *,
    timeout: float,
    trace: Trace | None = None,
    source_address: str | None = None,
    counter: tcp.ByteCounter | None = None,
    allow_nets: Iterable[str | Network] = (),
    server: str | None = None,
) -> PublicIPResult:
    """One STUN Binding transaction with `server_ip`:`port` over UDP, within `timeout` seconds.

    The socket is connected, so the kernel drops datagrams from any other source (and an ICMP
    port unreachable becomes connection_refused). The request is sent again after 0.5 s and 1 s
    more (RFC 5389's retransmission, at most `MAX_STUN_REQUESTS` in all), with the same random
    96-bit transaction id. Datagrams that are not a valid reply to it are skipped while we wait;
    when nothing valid came, the failure says what we saw: `stun_wrong_transaction_id`, else
    `stun_invalid_reply`, else generic_timeout_error. An error response ends the transaction
    (`stun_error_response`). `server` names the server in the observation (default ip:port).
    Only cancellation escapes."""
    nets = networks(allow_nets)
    trace = new_trace(trace)
    loop = asyncio.get_running_loop()
    contacted = format_address(server_ip, port)
    observation = PublicIPObservation(
        method=STUN,
        server=server or contacted,
        server_address=contacted,
        server_family=family_of(server_ip),
        t0=trace.now(),
    )
    address: str | None = None
    progress = _Progress()
    sock: socket.socket | None = None
    try:
        async with asyncio.timeout(timeout):
            transaction_id = os.urandom(12)
            request = binding_request(transaction_id)
            check_source(server_ip, source_address)
            sock = udp.udp_socket(server_ip, source_address)
            if "%" in server_ip:  # a zone needs the loop's address resolution (a scope id)
                await loop.sock_connect(sock, (server_ip, port))
            else:
                sock.connect((server_ip, port))  # UDP: sets the peer, never blocks
            address = await _transact(sock, request, transaction_id, observation, progress, counter)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        failure = failures.classify(exc)
        if failure == failures.GENERIC_TIMEOUT and progress.saw_wrong_id:
            failure = failures.STUN_WRONG_TRANSACTION_ID
        elif failure == failures.GENERIC_TIMEOUT and progress.saw_invalid:
            failure = failures.STUN_INVALID_REPLY
        observation.failure = failure
        observation.failed_operation = progress.operation
    finally:
        if sock is not None:
            sock.close()
    return finish(observation, address, trace, nets)


@dataclass(slots=True)
class _Progress:
    """How far one Binding transaction got: the operation under way, and what came that was
    not our answer (for the failure when none comes)."""

    operation: str = failures.CONNECT
    saw_wrong_id: bool = False
    saw_invalid: bool = False


async def _transact(
    sock: socket.socket,
    request: bytes,
    transaction_id: bytes,
    observation: PublicIPObservation,
    progress: _Progress,
    counter: tcp.ByteCounter | None,
) -> str | None:
    """Send `request` (again after each RTO, `MAX_STUN_REQUESTS` in all) and read datagrams
    until our answer comes: its address. Raises for an error response or too much noise; the
    caller's deadline ends the rest."""
    loop = asyncio.get_running_loop()
    requests = datagrams = 0
    rto = STUN_INITIAL_RTO
    next_send = loop.time()
    while True:
        if requests < MAX_STUN_REQUESTS and loop.time() >= next_send:
            progress.operation = failures.WRITE
            await loop.sock_sendall(sock, request)
            requests += 1
            if counter is not None:
                counter.sent += len(request)
            next_send = loop.time() + rto
            rto *= 2
        progress.operation = failures.STUN_BINDING
        data = await udp.receive_before(
            loop,
            sock,
            next_send if requests < MAX_STUN_REQUESTS else None,
            MAX_STUN_DATAGRAM,
        )
        if data is None:
            continue  # time to retransmit
        datagrams += 1
        if counter is not None:
            counter.received += len(data)
        reply = parse_stun_reply(data, transaction_id)
        if reply.outcome == "success":
            return reply.address
        if reply.outcome == "error":
            observation.response_code = reply.error_code
            raise failures.ProbeFailure(failures.STUN_ERROR_RESPONSE)
        if reply.outcome == "wrong_id":
            progress.saw_wrong_id = True
        else:
            progress.saw_invalid = True
        if datagrams >= MAX_STUN_DATAGRAMS:
            raise TimeoutError  # enough noise: as if the deadline had come
