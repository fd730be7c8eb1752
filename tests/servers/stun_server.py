"""A real STUN (RFC 5389) server for tests and the lab: UDP on loopback, able to misbehave.

It answers Binding requests. Written independently of `probe.vantage.publicip` (its own encoder),
so a
bug in the client's parser is not mirrored here. Behaviours (`StunBehaviour`), for every client
or per client address (`by_peer={"127.0.0.2": "lie"}`):

    normal       success with XOR-MAPPED-ADDRESS = the client's address and port
    mapped       success with only the plain (old, RFC 3489) MAPPED-ADDRESS
    both         XOR-MAPPED-ADDRESS = the truth and MAPPED-ADDRESS = `lie_address` (XOR wins)
    lie          success with XOR-MAPPED-ADDRESS = `lie_address`
    garbage      `garbage` bytes (not STUN)
    wrong_id     the genuine success with another transaction id
    error        an error response (ERROR-CODE `error_code`, with a reason phrase)
    silence      no reply at all
    truncated    a success whose XOR-MAPPED-ADDRESS attribute runs past the end of the message
    short_attr   a success whose XOR-MAPPED-ADDRESS holds an IPv4 family with 2 address bytes
    bad_family   a success whose XOR-MAPPED-ADDRESS names family 0x03
    no_address   a success without any address attribute
    indication   a Binding indication (0x0011) with our id and a genuine address
    foreign      a lie from another port of the server first (a connected client never sees it),
                 then the genuine answer
    noise        garbage and a wrong-id reply first, then the genuine answer `gap` seconds later
    flood        `flood_count` wrong-id replies, never the answer

Every request is remembered (`received`: peer, port, transaction id) so tests can count
retransmissions. In-process::

    async with STUNServer(behaviour="lie", lie_address="198.51.100.7") as server:
        server.address   # (host, port)

Standalone (for subprocess tests and the lab), prints the port once ready, stops on SIGTERM::

    python -m tests.servers.stun_server --host 127.0.0.1 --port 0 --behaviour normal
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import ipaddress
import signal
import socket
import struct
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

MAGIC_COOKIE = 0x2112A442
BINDING_REQUEST = 0x0001
BINDING_INDICATION = 0x0011
BINDING_SUCCESS = 0x0101
BINDING_ERROR = 0x0111
MAPPED_ADDRESS = 0x0001
ERROR_CODE = 0x0009
XOR_MAPPED_ADDRESS = 0x0020
SOFTWARE = 0x8022
#: What `garbage` sends by default: a DNS-looking header, then bytes that are nothing.
GARBAGE = b"\x12\x34\x81\x80" + bytes(range(64))
#: Requests remembered (bounded: retransmission tests make several per client).
MAX_RECEIVED = 1000


class StunBehaviour(enum.StrEnum):
    NORMAL = "normal"
    MAPPED = "mapped"
    BOTH = "both"
    LIE = "lie"
    GARBAGE = "garbage"
    WRONG_ID = "wrong_id"
    ERROR = "error"
    SILENCE = "silence"
    TRUNCATED = "truncated"
    SHORT_ATTR = "short_attr"
    BAD_FAMILY = "bad_family"
    NO_ADDRESS = "no_address"
    INDICATION = "indication"
    FOREIGN = "foreign"
    NOISE = "noise"
    FLOOD = "flood"


@dataclass(slots=True)
class Received:
    peer: str
    port: int
    transaction_id: bytes


def _attribute(attribute_type: int, value: bytes) -> bytes:
    padding = b"\x00" * (-len(value) % 4)
    return struct.pack("!HH", attribute_type, len(value)) + value + padding


def _message(message_type: int, transaction_id: bytes, attributes: bytes) -> bytes:
    header = struct.pack("!HHI", message_type, len(attributes), MAGIC_COOKIE)
    return header + transaction_id + attributes


def address_value(ip: str, port: int, *, xor: bool, transaction_id: bytes) -> bytes:
    """The value of a (XOR-)MAPPED-ADDRESS attribute (RFC 5389 15.1, 15.2)."""
    address = ipaddress.ip_address(ip)
    raw = address.packed
    family = 0x01 if address.version == 4 else 0x02
    if xor:
        port ^= MAGIC_COOKIE >> 16
        mask = MAGIC_COOKIE.to_bytes(4, "big") + transaction_id
        raw = bytes(a ^ b for a, b in zip(raw, mask[: len(raw)], strict=True))
    return struct.pack("!BBH", 0, family, port) + raw


def success(ip: str, port: int, transaction_id: bytes, *, xor: bool = True) -> bytes:
    attribute = XOR_MAPPED_ADDRESS if xor else MAPPED_ADDRESS
    value = address_value(ip, port, xor=xor, transaction_id=transaction_id)
    return _message(BINDING_SUCCESS, transaction_id, _attribute(attribute, value))


def error_response(transaction_id: bytes, code: int, reason: str) -> bytes:
    value = struct.pack("!HBB", 0, code // 100, code % 100) + reason.encode()
    return _message(BINDING_ERROR, transaction_id, _attribute(ERROR_CODE, value))


def _other_id(transaction_id: bytes) -> bytes:
    return bytes(b ^ 0xFF for b in transaction_id)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, server: STUNServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.server._on_datagram(data, addr)


class STUNServer:
    """The server. `behaviour`, `by_peer` and `lie_address` may be changed between requests."""

    def __init__(
        self,
        behaviour: str = StunBehaviour.NORMAL,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        by_peer: Mapping[str, str] | None = None,
        lie_address: str = "198.51.100.7",
        error_code: int = 420,
        garbage: bytes = GARBAGE,
        gap: float = 0.05,
        flood_count: int = 200,
    ) -> None:
        self.behaviour = StunBehaviour(behaviour)
        self.host = host
        self.port = port
        self.by_peer = {peer: StunBehaviour(b) for peer, b in (by_peer or {}).items()}
        self.lie_address = lie_address
        self.error_code = error_code
        self.garbage = garbage
        self.gap = gap
        self.flood_count = flood_count
        self.received: list[Received] = []
        self._transport: asyncio.DatagramTransport | None = None
        self._foreign: asyncio.DatagramTransport | None = None
        self._pending: set[asyncio.TimerHandle] = set()

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    async def start(self) -> STUNServer:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self._transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=(self.host, self.port), family=family
        )
        self.port = self._transport.get_extra_info("sockname")[1]
        self._foreign, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=(self.host, 0), family=family
        )
        return self

    async def close(self) -> None:
        for handle in self._pending:
            handle.cancel()
        self._pending.clear()
        for transport in (self._transport, self._foreign):
            if transport is not None:
                transport.close()
        self._transport = self._foreign = None

    async def __aenter__(self) -> STUNServer:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # --- answering ---------------------------------------------------------------------------

    def replies(self, data: bytes, peer: str, port: int) -> list[tuple[float, bytes, bool]]:
        """What to send for one datagram: (delay, bytes, from the foreign port), in order."""
        if len(data) < 20:
            return []
        message_type, _length, cookie = struct.unpack_from("!HHI", data)
        if message_type != BINDING_REQUEST or cookie != MAGIC_COOKIE:
            return []  # not a Binding request: a real server drops it
        transaction_id = data[8:20]
        if len(self.received) < MAX_RECEIVED:
            self.received.append(Received(peer, port, transaction_id))
        behaviour = self.by_peer.get(peer, self.behaviour)
        genuine = success(peer, port, transaction_id)
        lie = success(self.lie_address, port, transaction_id)
        xor_value = address_value(peer, port, xor=True, transaction_id=transaction_id)
        if behaviour == StunBehaviour.SILENCE:
            return []
        if behaviour == StunBehaviour.MAPPED:
            return [(0.0, success(peer, port, transaction_id, xor=False), False)]
        if behaviour == StunBehaviour.BOTH:
            lie_value = address_value(
                self.lie_address, port, xor=False, transaction_id=transaction_id
            )
            attributes = _attribute(MAPPED_ADDRESS, lie_value) + _attribute(
                XOR_MAPPED_ADDRESS, xor_value
            )
            return [(0.0, _message(BINDING_SUCCESS, transaction_id, attributes), False)]
        if behaviour == StunBehaviour.LIE:
            return [(0.0, lie, False)]
        if behaviour == StunBehaviour.GARBAGE:
            return [(0.0, self.garbage, False)]
        if behaviour == StunBehaviour.WRONG_ID:
            return [(0.0, success(peer, port, _other_id(transaction_id)), False)]
        if behaviour == StunBehaviour.ERROR:
            return [(0.0, error_response(transaction_id, self.error_code, "Go away"), False)]
        if behaviour == StunBehaviour.TRUNCATED:
            # The attribute header announces 12 bytes; the message (length field included)
            # ends after 8 of them.
            attribute = struct.pack("!HH", XOR_MAPPED_ADDRESS, 12) + xor_value
            return [(0.0, _message(BINDING_SUCCESS, transaction_id, attribute), False)]
        if behaviour == StunBehaviour.SHORT_ATTR:
            return [
                (
                    0.0,
                    _message(
                        BINDING_SUCCESS,
                        transaction_id,
                        _attribute(XOR_MAPPED_ADDRESS, xor_value[:6]),
                    ),
                    False,
                )
            ]
        if behaviour == StunBehaviour.BAD_FAMILY:
            value = xor_value[:1] + b"\x03" + xor_value[2:]
            message = _message(
                BINDING_SUCCESS, transaction_id, _attribute(XOR_MAPPED_ADDRESS, value)
            )
            return [(0.0, message, False)]
        if behaviour == StunBehaviour.NO_ADDRESS:
            attributes = _attribute(SOFTWARE, b"probe-test-stun")
            return [(0.0, _message(BINDING_SUCCESS, transaction_id, attributes), False)]
        if behaviour == StunBehaviour.INDICATION:
            attributes = _attribute(XOR_MAPPED_ADDRESS, xor_value)
            return [(0.0, _message(BINDING_INDICATION, transaction_id, attributes), False)]
        if behaviour == StunBehaviour.FOREIGN:
            return [(0.0, lie, True), (self.gap, genuine, False)]
        if behaviour == StunBehaviour.NOISE:
            wrong = success(self.lie_address, port, _other_id(transaction_id))
            return [(0.0, self.garbage, False), (0.0, wrong, False), (self.gap, genuine, False)]
        if behaviour == StunBehaviour.FLOOD:
            wrong = success(self.lie_address, port, _other_id(transaction_id))
            return [(0.0, wrong, False)] * self.flood_count
        return [(0.0, genuine, False)]

    def _on_datagram(self, data: bytes, addr: tuple[Any, ...]) -> None:
        loop = asyncio.get_running_loop()
        peer = str(addr[0])
        for delay, payload, foreign in self.replies(data, peer, int(addr[1])):
            transport = self._foreign if foreign else self._transport
            if transport is None:
                continue
            if delay <= 0:
                transport.sendto(payload, addr)
                continue
            self._pending = {h for h in self._pending if h.when() > loop.time()}
            self._pending.add(loop.call_later(delay, _send_if_open, transport, payload, addr))


def _send_if_open(transport: asyncio.DatagramTransport, payload: bytes, addr: Any) -> None:
    if not transport.is_closing():
        transport.sendto(payload, addr)


# --- standalone -------------------------------------------------------------------------------


async def _serve(args: argparse.Namespace) -> None:
    server = STUNServer(
        args.behaviour, host=args.host, port=args.port, lie_address=args.lie_address
    )
    await server.start()
    print(server.port, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A STUN test server (loopback and lab only).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--behaviour", default="normal", choices=[b.value for b in StunBehaviour])
    parser.add_argument("--lie-address", default="198.51.100.7")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
