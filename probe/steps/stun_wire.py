"""STUN (RFC 5389) Binding transactions on the wire: the request, the reply's parser and the
send/retransmit/read loop. Shared by the public-address discovery
(`probe.vantage.publicip.stun`, which wants the mapped address) and the target step
(`probe.steps.stun`, which must never look at it: the mapped address is the volunteer's own).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
from dataclasses import dataclass, field
from typing import Literal

from probe import failures
from probe.steps import tcp, udp

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


def binding_request(transaction_id: bytes) -> bytes:
    """A Binding request without attributes (RFC 5389 6): nothing but the 20-byte header."""
    if len(transaction_id) != 12:
        raise ValueError("a STUN transaction id is 96 bits")
    return struct.pack("!HHI", STUN_BINDING_REQUEST, 0, STUN_MAGIC_COOKIE) + transaction_id


@dataclass(frozen=True, slots=True)
class StunReply:
    """What one datagram was: our success response (with the address, when asked for), our
    error response (with its code, when readable), a STUN message of another transaction, or
    not valid."""

    outcome: StunOutcome
    address: str | None = field(default=None, repr=False)
    error_code: int | None = None


_INVALID = StunReply("invalid")
_SUCCESS = StunReply("success")


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
    address = ipaddress.ip_address(raw)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)  # one spelling per address
    return str(address)


def _error_code(value: bytes) -> int | None:
    """ERROR-CODE (RFC 5389 15.6): class (3..6) x 100 + number (0..99); None when malformed.
    The reason phrase is never read: it is the server's free text."""
    if len(value) < 4:
        return None
    error_class, number = value[2] & 0x07, value[3]
    if not 3 <= error_class <= 6 or number > 99:
        return None
    return error_class * 100 + number


def _attributes(data: bytes) -> dict[int, bytes] | None:
    """The message's attributes (first occurrence of each), or None when one does not fit."""
    attributes: dict[int, bytes] = {}
    offset = STUN_HEADER_SIZE
    for _ in range(MAX_STUN_ATTRIBUTES):
        if offset >= len(data):
            break
        if offset + 4 > len(data):
            return None
        attribute_type, attribute_length = struct.unpack_from("!HH", data, offset)
        start = offset + 4
        end = start + attribute_length
        if end > len(data):
            return None  # a truncated attribute
        attributes.setdefault(attribute_type, data[start:end])
        offset = end + (-attribute_length % 4)
    if offset != len(data):  # padding missing, or more attributes than we read
        return None
    return attributes


def parse_stun_reply(data: bytes, transaction_id: bytes, *, keep_address: bool = True) -> StunReply:
    """Classify one datagram as a reply to our Binding request. Never raises.

    The header must have the two top bits clear, the magic cookie, and a length that is a
    multiple of 4 and equals the bytes that follow; every attribute must fit inside the message.
    Only the first occurrence of an attribute counts (RFC 5389 15); XOR-MAPPED-ADDRESS wins over
    MAPPED-ADDRESS; a malformed address attribute makes the whole reply invalid. With
    `keep_address` false the address is checked but not kept: the reply says only "success"."""
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
    attributes = _attributes(data)
    if attributes is None:
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
            if address is None:
                return _INVALID
            return StunReply("success", address=address) if keep_address else _SUCCESS
    return _INVALID


@dataclass(slots=True)
class Progress:
    """How far one Binding transaction got: the operation under way, what came that was not
    our answer (for the failure when none comes), requests sent, and the loop time of the
    latest send (for the round-trip time of the answer)."""

    operation: str = failures.CONNECT
    saw_wrong_id: bool = False
    saw_invalid: bool = False
    requests: int = 0
    last_sent: float = 0.0

    def failure(self, exc: BaseException) -> str:
        """The failure of a transaction that raised `exc`: a deadline that passed while only
        wrong or invalid datagrams came says so."""
        failure = failures.classify(exc)
        if failure == failures.GENERIC_TIMEOUT and self.saw_wrong_id:
            return failures.STUN_WRONG_TRANSACTION_ID
        if failure == failures.GENERIC_TIMEOUT and self.saw_invalid:
            return failures.STUN_INVALID_REPLY
        return failure


async def transact(
    sock: socket.socket,
    transaction_id: bytes,
    progress: Progress,
    counter: tcp.ByteCounter | None = None,
    *,
    keep_address: bool = True,
    initial_rto: float = STUN_INITIAL_RTO,
) -> StunReply:
    """Send a Binding request on the connected `sock` (again after each RTO,
    `MAX_STUN_REQUESTS` in all, the first RTO `initial_rto`, doubling) and read datagrams
    until our answer comes: the success or error reply. Raises TimeoutError after too much
    noise; the caller's deadline ends the rest."""
    loop = asyncio.get_running_loop()
    request = binding_request(transaction_id)
    datagrams = 0
    rto = initial_rto
    next_send = loop.time()
    while True:
        if progress.requests < MAX_STUN_REQUESTS and loop.time() >= next_send:
            progress.operation = failures.WRITE
            await loop.sock_sendall(sock, request)
            progress.requests += 1
            progress.last_sent = loop.time()
            if counter is not None:
                counter.sent += len(request)
            next_send = progress.last_sent + rto
            rto *= 2
        progress.operation = failures.STUN_BINDING
        more = progress.requests < MAX_STUN_REQUESTS
        data = await udp.receive_before(loop, sock, next_send if more else None, MAX_STUN_DATAGRAM)
        if data is None:
            continue  # time to retransmit
        datagrams += 1
        if counter is not None:
            counter.received += len(data)
        reply = parse_stun_reply(data, transaction_id, keep_address=keep_address)
        if reply.outcome in ("success", "error"):
            return reply
        if reply.outcome == "wrong_id":
            progress.saw_wrong_id = True
        else:
            progress.saw_invalid = True
        if datagrams >= MAX_STUN_DATAGRAMS:
            raise TimeoutError  # enough noise: as if the deadline had come
