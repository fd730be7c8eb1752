"""A fake Telegram data centre on loopback: answers ``req_pq_multi``, or misbehaves on purpose.

It listens on several ports at once (like a real DC's 443, 80 and 5222), recognises the client's
transport from its first bytes (``0xef`` abridged, ``ee ee ee ee`` intermediate, ``dd dd dd dd``
padded intermediate, else an obfuscated2 header whose decrypted tag names the inner framing and
whose bytes 60–61 the DC id), reads the first packet and then acts according to a *mode*:

===================  =========================================================================
ok                   a well-formed resPQ echoing the client's nonce (one key fingerprint)
padded_res_pq        the same with 16 bytes of padding inside message_data_length
error_404            a framed transport error -404 (what a DC says when it will not serve you)
error_429            a framed transport error -429 (flood)
bare_error_429       -429 as 4 unframed bytes: no real DC does this (TDLib and Telegram Desktop
                     read error codes only inside the framing); a middlebox imitating one
reset                TCP reset right after the client's first packet (protocol DPI)
silent               read, then say nothing until the client gives up (drop / protocol filter)
http                 an HTTP 403 blockpage in clear text, then close (a middlebox answered)
tls_alert            a TLS alert record in clear text, then close
garbage              bytes that are not MTProto, inside the transport's framing/encryption
wrong_nonce          a well-formed resPQ with somebody else's nonce
huge_length          a length prefix of almost 16 MiB, a few bytes, then silence
close_mid_reply      half of a genuine resPQ, then FIN
===================  =========================================================================

The mode can depend on the client's source address (the probe is 127.0.0.2, the control
127.0.0.3), on the transport and on the port, through `Rule`s: ``Rule("reset", transport=
"intermediate")`` is a DPI that recognises the plain transport's tag and lets obfuscated2 pass.

Like a real server it answers only a well-formed request (`check_request`) and closes the
connection without a word otherwise, logging why (`ConnectionLog.rejected`); the modes that
imitate a middlebox in front of the DC (`MIDDLEBOX_MODES`) act whatever the request. Well-formed
is what official clients send:

- auth_key_id 0; body ``req_pq_multi`` or ``req_pq`` (Telegram Desktop's connection check,
  AbstractConnection::preparePQFake) with the 16-byte nonce;
- message_data_length a whole number of 32-bit words, at least the body, and exactly what the
  packet holds (padded intermediate: plus 0–15 transport padding bytes). Padding inside the
  declared length is normal: TDLib's NoCryptoImpl adds 12–252 bytes, Telegram Desktop's
  prepareNotSecurePacket 0–63 random words;
- msg_id divisible by 4 and within 300 s before / 30 s after the server's clock (MTProto's
  rule, core.telegram.org/mtproto/description), compared modulo 2⁶⁴ so that ids past 2038
  (≥ 2⁶³) and past 2106 (wrapped) work. Two fixed ids are accepted as well because TDLib sends
  them before it knows the server's time: 0 (HandshakeConnection, ``MessageId()``) and 1
  (PingConnectionReqPQ, ``MessageId(1)``); Telegram's servers evidently answer both.

In-process: ``async with FakeDC(rules=[...]) as dc: dc.ports``. Standalone (for the lab):
``python -m tests.servers.fake_dc --host H --ports 443,80,5222 --mode ok [--rule ...]``
prints one JSON line ``{"host": H, "ports": [...]}`` when it is listening.

Its MTProto code is written from the protocol text, separately from probe.steps.mtproto (it uses the
library's CTR mode on the server's side; tests/mtproto_reference.py is the independent check of
the client's bytes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

MODES = (
    "ok",
    "padded_res_pq",
    "error_404",
    "error_429",
    "bare_error_429",
    "reset",
    "silent",
    "http",
    "tls_alert",
    "garbage",
    "wrong_nonce",
    "huge_length",
    "close_mid_reply",
)
TAGS = {
    b"\xef\xef\xef\xef": "abridged",
    b"\xee\xee\xee\xee": "intermediate",
    b"\xdd\xdd\xdd\xdd": "padded_intermediate",
}
#: modes that imitate something in front of the DC: they act whatever the client sent
MIDDLEBOX_MODES = frozenset(
    {"reset", "silent", "http", "tls_alert", "garbage", "huge_length", "bare_error_429"}
)
REQ_PQ_MULTI = bytes.fromhex("f18e7ebe")
REQ_PQ = bytes.fromhex("78974660")  # req_pq#60469778, Telegram Desktop's connection check
RES_PQ = bytes.fromhex("63241605")
VECTOR = bytes.fromhex("15c4b51c")
#: pq from Telegram's own key-exchange example; the fingerprint of Telegram's production key.
PQ = (0x17ED48941A08F981).to_bytes(8, "big")
FINGERPRINT = 0xD09D1D85DE64FD85
HTTP_BLOCKPAGE = (
    b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n"
    b'<html><body><iframe src="http://10.10.34.34/?type=Invalid Keyword&policy=MainPolicy " '
    b'style="width: 100%; height: 100%"></iframe></body></html>'
)
TLS_ALERT = bytes.fromhex("15030300020228")  # fatal handshake_failure
# Not MTProto on any transport: as a length prefix this is 0x02c7419e, neither a whole number
# of words (intermediate) nor within the protocol's 16 MiB limit, and 0x9e is no abridged length.
GARBAGE = bytes.fromhex("9e41c702d35f8a17b6e0492cc3785a01f29d6e4b807a13c5e9264fb1d0385c6a")
HUGE_QUARTERS = 0x3FFFF0  # abridged: announces 16 MiB - 64 bytes
HUGE_LENGTH = 0x00FFFFF0  # intermediate: 16 MiB - 16 bytes
#: TDLib's fixed message ids for unencrypted messages sent before it knows the server time
TDLIB_FIXED_MESSAGE_IDS = (0, 1)
MAX_MESSAGE_AGE = 300.0  # seconds; MTProto rejects client messages older than this…
MAX_MESSAGE_AHEAD = 30.0  # …or this far in the future
MESSAGE_ID_MODULUS = 1 << 64
READ_TIMEOUT = 30.0  # the longest we wait for a client's first packet
SILENCE_LIMIT = 120.0  # a silent connection is closed after this even if the client stays
MAX_CLIENT_PACKET = 1 << 20
MAX_LOGGED_CONNECTIONS = 10_000


@dataclass(frozen=True, slots=True)
class Rule:
    """`mode` for connections matching every given field (None matches anything)."""

    mode: str
    peer: str | None = None
    transport: str | None = None
    port: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown fake DC mode {self.mode!r}")

    def matches(self, peer: str, transport: str, port: int) -> bool:
        return (
            (self.peer is None or self.peer == peer)
            and (self.transport is None or self.transport == transport)
            and (self.port is None or self.port == port)
        )


@dataclass(slots=True)
class ConnectionLog:
    """What the fake DC saw on one connection (tests assert on these)."""

    peer: str
    port: int
    transport: str | None = None  # None: the first bytes were no MTProto transport
    mode: str | None = None
    nonce: bytes | None = None  # the req_pq_multi nonce, when the packet was a good request
    dc: int | None = None  # obfuscated2: the DC id in header bytes 60-61 (random if unset)
    rejected: str | None = None  # why the request was refused, when it was


class _Clear:
    def update(self, data: bytes) -> bytes:
        return data


@dataclass(slots=True)
class _Session:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    transport: str = ""
    inner: str = ""
    dc: int | None = None
    decrypt: Any = field(default_factory=_Clear)
    encrypt: Any = field(default_factory=_Clear)

    async def read(self, n: int) -> bytes:
        return bytes(self.decrypt.update(await self.reader.readexactly(n)))

    def send(self, data: bytes) -> None:
        self.writer.write(self.encrypt.update(data))

    def send_clear(self, data: bytes) -> None:
        self.writer.write(data)


def _ctr(key: bytes, iv: bytes) -> Any:
    return Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()


async def _detect_transport(session: _Session) -> bool:
    first = await session.reader.readexactly(1)
    if first == b"\xef":
        session.transport = session.inner = "abridged"
        return True
    four = first + await session.reader.readexactly(3)
    if four in (b"\xee\xee\xee\xee", b"\xdd\xdd\xdd\xdd"):
        session.transport = session.inner = TAGS[four]
        return True
    header = four + await session.reader.readexactly(60)
    # The client's sending key/IV is ours for reading; the reversed run is ours for writing.
    decrypt = _ctr(header[8:40], header[40:56])
    plain = decrypt.update(header)
    tag = plain[56:60]
    if tag not in TAGS:
        return False
    run = header[8:56][::-1]
    session.dc = struct.unpack("<h", plain[60:62])[0]
    session.transport, session.inner = "obfuscated2", TAGS[tag]
    session.decrypt, session.encrypt = decrypt, _ctr(run[:32], run[32:48])
    return True


async def _read_packet(session: _Session) -> bytes:
    if session.inner == "abridged":
        quarter = (await session.read(1))[0]
        if quarter == 0x7F:
            quarter = int.from_bytes(await session.read(3), "little")
        length = quarter * 4
    else:
        length = struct.unpack("<I", await session.read(4))[0]
    if length > MAX_CLIENT_PACKET:
        raise ValueError("client packet too long")
    return await session.read(length)


def seconds_from(message_id: int, now: float) -> float:
    """How far (in seconds, negative: in the past) `message_id` is from the clock `now`,
    modulo 2⁶⁴: right across 2038 (ids ≥ 2⁶³) and across the 2106 wrap."""
    now_id = int(now * 2**32) % MESSAGE_ID_MODULUS
    half = MESSAGE_ID_MODULUS // 2
    return ((message_id - now_id + half) % MESSAGE_ID_MODULUS - half) / 2**32


def check_request(
    packet: bytes, *, now: float, transport_padding: int = 0
) -> tuple[bytes | None, str | None]:
    """(nonce, None) for a well-formed unencrypted req_pq_multi / req_pq (module docstring),
    (None, reason) otherwise. `transport_padding`: how many bytes after the message the
    transport may add (padded intermediate: 15)."""
    if len(packet) < 20:
        return None, f"length: {len(packet)} bytes is no unencrypted message"
    auth_key_id, message_id, length = struct.unpack_from("<QQI", packet)
    if auth_key_id != 0:
        return None, f"auth_key_id {auth_key_id:#x} is not 0"
    available = len(packet) - 20
    if length % 4 or length < 20 or not 0 <= available - length <= transport_padding:
        return None, f"length {length} does not fit the {available} bytes after the header"
    body = packet[20 : 20 + length]
    if body[:4] not in (REQ_PQ_MULTI, REQ_PQ):
        return None, f"constructor {body[:4].hex()} is neither req_pq_multi nor req_pq"
    if message_id not in TDLIB_FIXED_MESSAGE_IDS:
        if message_id % 4:
            return None, f"msg_id {message_id:#x} is not divisible by 4"
        offset = seconds_from(message_id, now)
        if not -MAX_MESSAGE_AGE <= offset <= MAX_MESSAGE_AHEAD:
            return None, f"msg_id is {offset:+.0f} s from the server's clock"
    return body[4:20], None


def _frame(inner: str, packet: bytes) -> bytes:
    if inner == "abridged":
        quarter = len(packet) // 4
        prefix = bytes([quarter]) if quarter < 0x7F else b"\x7f" + quarter.to_bytes(3, "little")
        return prefix + packet
    padding = secrets.token_bytes(secrets.randbelow(16)) if inner == "padded_intermediate" else b""
    return struct.pack("<I", len(packet) + len(padding)) + packet + padding


def res_pq_message(nonce: bytes, *, now: float | None = None, padding: bytes = b"") -> bytes:
    """An unencrypted resPQ server message (84 bytes) echoing `nonce`; `padding` goes inside
    message_data_length."""
    pq = bytes([len(PQ)]) + PQ
    pq += b"\x00" * (-len(pq) % 4)
    body = (
        RES_PQ
        + nonce
        + secrets.token_bytes(16)  # server_nonce
        + pq
        + VECTOR
        + struct.pack("<i", 1)
        + FINGERPRINT.to_bytes(8, "little")
        + padding
    )
    if now is None:
        now = time.time()
    message_id = ((int(now * 2**32) % MESSAGE_ID_MODULUS) & ~3) | 1  # server: ≡ 1 mod 4
    return struct.pack("<qQi", 0, message_id, len(body)) + body


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _wait_for_client_close(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(TimeoutError, OSError):
        async with asyncio.timeout(SILENCE_LIMIT):
            while await reader.read(4096):
                pass


class FakeDC:
    """The server. Use as ``async with FakeDC(...) as dc`` (ports in `dc.ports`)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        ports: Sequence[int] = (0, 0, 0),
        *,
        mode: str = "ok",
        rules: Sequence[Rule] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown fake DC mode {mode!r}")
        self.clock = clock
        self.host = host
        self.requested_ports = tuple(ports)
        self.mode = mode
        self.rules = tuple(rules)
        self.ports: list[int] = []
        self.connections: list[ConnectionLog] = []
        self._servers: list[asyncio.Server] = []
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    def mode_for(self, peer: str, transport: str, port: int) -> str:
        for rule in self.rules:
            if rule.matches(peer, transport, port):
                return rule.mode
        return self.mode

    async def start(self) -> FakeDC:
        for port in self.requested_ports:
            server = await asyncio.start_server(self._handle, self.host, port)
            self._servers.append(server)
            self.ports.append(server.sockets[0].getsockname()[1])
        return self

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        # Aborting the connections ends every handler's read (no cancellation: asyncio's stream
        # callback would log a cancelled handler as an error).
        for writer in list(self._writers):
            writer.transport.abort()
        if self._handlers:
            _, pending = await asyncio.wait(list(self._handlers), timeout=5.0)
            for task in pending:
                task.cancel()
        for server in self._servers:
            await server.wait_closed()

    async def __aenter__(self) -> FakeDC:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        peer = writer.get_extra_info("peername")[0]
        port = writer.get_extra_info("sockname")[1]
        log = ConnectionLog(peer=peer, port=port)
        if len(self.connections) < MAX_LOGGED_CONNECTIONS:
            self.connections.append(log)
        session = _Session(reader, writer)
        try:
            await self._serve(session, log)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, ValueError, OSError):
            pass  # the client went away or sent nonsense: nothing to answer
        finally:
            self._handlers.discard(task)
            self._writers.discard(writer)
            writer.transport.abort()

    async def _serve(self, session: _Session, log: ConnectionLog) -> None:
        async with asyncio.timeout(READ_TIMEOUT):
            if not await _detect_transport(session):
                return
            log.transport = session.transport
            log.dc = session.dc
            packet = await _read_packet(session)
        padding = 15 if session.inner == "padded_intermediate" else 0
        log.nonce, log.rejected = check_request(packet, now=self.clock(), transport_padding=padding)
        log.mode = mode = self.mode_for(log.peer, session.transport, log.port)
        if log.nonce is None and mode not in MIDDLEBOX_MODES:
            return  # a real DC does not answer what it cannot parse
        if mode == "reset":
            _reset(session.writer)
            return
        if mode in ("silent", "huge_length"):
            if mode == "huge_length":
                if session.inner == "abridged":
                    prefix = b"\x7f" + HUGE_QUARTERS.to_bytes(3, "little")
                else:
                    prefix = struct.pack("<I", HUGE_LENGTH)
                session.send(prefix + bytes(60))
                await session.writer.drain()
            await _wait_for_client_close(session.reader)
            return
        if mode == "http":
            session.send_clear(HTTP_BLOCKPAGE)
        elif mode == "tls_alert":
            session.send_clear(TLS_ALERT)
        elif mode == "garbage":
            session.send(GARBAGE)
        elif mode in ("error_404", "error_429"):
            code = -404 if mode == "error_404" else -429
            session.send(_frame(session.inner, struct.pack("<i", code)))
        elif mode == "bare_error_429":
            session.send(struct.pack("<i", -429))
        else:
            assert log.nonce is not None
            nonce = secrets.token_bytes(16) if mode == "wrong_nonce" else log.nonce
            padding = secrets.token_bytes(16) if mode == "padded_res_pq" else b""
            reply = _frame(session.inner, res_pq_message(nonce, now=self.clock(), padding=padding))
            if mode == "close_mid_reply":
                reply = reply[: len(reply) // 2]
            session.send(reply)
        await session.writer.drain()
        if session.writer.can_write_eof():
            session.writer.write_eof()  # FIN: we are done talking
        await _wait_for_client_close(session.reader)


class BlackholedPort:
    """A loopback port where TCP connects time out, as if a firewall dropped the SYNs.

    A listening socket with a backlog of 0 whose single accept-queue slot is taken by a
    connection nobody accepts: Linux then drops further SYNs (tcp_abort_on_overflow = 0).
    ``with BlackholedPort() as port: ...``"""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self._sockets: list[socket.socket] = []

    def __enter__(self) -> int:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sockets.append(listener)
        listener.bind((self.host, 0))
        listener.listen(0)
        self.port = listener.getsockname()[1]
        filler = socket.create_connection((self.host, self.port), timeout=2.0)
        self._sockets.append(filler)
        return self.port

    def __exit__(self, *exc_info: object) -> None:
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()


# --- standalone -----------------------------------------------------------------------------


def parse_rule(text: str) -> Rule:
    """``MODE[:key=value,...]`` with keys peer, transport, port, e.g.
    ``reset:peer=127.0.0.2,transport=intermediate``."""
    mode, _, conditions = text.partition(":")
    fields: dict[str, Any] = {}
    for condition in filter(None, conditions.split(",")):
        key, sep, value = condition.partition("=")
        if not sep or key not in ("peer", "transport", "port"):
            raise ValueError(f"bad rule condition {condition!r} (peer=, transport=, port=)")
        fields[key] = int(value) if key == "port" else value
    return Rule(mode.strip(), **fields)


async def _serve_forever(dc: FakeDC) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with dc:
        print(json.dumps({"host": dc.host, "ports": dc.ports}), flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.servers.fake_dc", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--ports", default="0,0,0", help="comma-separated; 0 = ephemeral")
    parser.add_argument("--mode", default="ok", choices=MODES)
    parser.add_argument(
        "--rule", action="append", default=[], help="MODE:peer=IP,transport=T,port=P (first wins)"
    )
    args = parser.parse_args(argv)
    try:
        ports = [int(p) for p in args.ports.split(",") if p.strip()]
        rules = [parse_rule(r) for r in args.rule]
    except ValueError as exc:
        print(f"fake_dc: error: {exc}", file=sys.stderr)
        return 2
    asyncio.run(_serve_forever(FakeDC(args.host, ports, mode=args.mode, rules=rules)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
