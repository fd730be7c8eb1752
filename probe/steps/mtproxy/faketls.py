"""Fake-TLS (``ee`` secrets): the disguise MTProxy puts around obfuscated2.

The client sends a browser-like TLS 1.3 ClientHello for the secret's domain whose 32-byte
``random`` is HMAC-SHA256(secret, the whole hello with the random zeroed), its last four bytes
XORed with the unix time. A proxy that knows the secret answers with a ServerHello, a
ChangeCipherSpec and one application-data record; the ServerHello's random is
HMAC-SHA256(secret, client random ‖ that whole answer with the random zeroed). Anything else
(a real TLS server for the domain, a censor's middlebox) cannot produce that HMAC: the check
fails with ``mtproxy_fake_tls_mismatch``. Then the client sends a ChangeCipherSpec and from
there on every byte of the obfuscated2 stream travels inside application-data records
(`TLSRecordStream`), both ways.

Written from MTProxy's net-tcp-rpc-ext-server.c and TDLib's TlsInit/TlsReaderByteFlow as
documented publicly; the ClientHello is shaped like a current browser's (GREASE, x25519 key
share, ALPN h2, padded to 517 bytes on the wire), not copied byte for byte.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct

from probe import failures
from probe.steps.tcp import ByteStream

HANDSHAKE = 0x16
CHANGE_CIPHER_SPEC_RECORD = b"\x14\x03\x03\x00\x01\x01"
APPLICATION_DATA = b"\x17\x03\x03"
#: TLS's own limit on a record's payload; bigger records are not TLS (foreign)
MAX_RECORD = 16384 + 256
#: what a browser's first record weighs on the wire (TDLib pads its hello to the same)
HELLO_WIRE_LENGTH = 517
RANDOM_OFFSET = 11  # record header (5) + handshake header (4) + legacy version (2)
RANDOM_LENGTH = 32
_GREASE = tuple(0x0A0A + 0x1010 * i for i in range(16))


def _ext(kind: int, body: bytes) -> bytes:
    return struct.pack(">HH", kind, len(body)) + body


def _u16_list(values: list[int]) -> bytes:
    body = b"".join(struct.pack(">H", v) for v in values)
    return struct.pack(">H", len(body)) + body


def _extensions(domain: str, grease: list[int]) -> list[bytes]:
    name = domain.encode("ascii")
    server_name = struct.pack(">HBH", len(name) + 3, 0, len(name)) + name
    alpn = b"".join(bytes([len(p)]) + p for p in (b"h2", b"http/1.1"))
    key_share = struct.pack(">HH", grease[1], 1) + b"\x00"
    key_share += struct.pack(">HH", 0x001D, 32) + secrets.token_bytes(32)
    versions = b"".join(struct.pack(">H", v) for v in (grease[2], 0x0304, 0x0303))
    signature_algorithms = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]
    return [
        _ext(grease[0], b""),
        _ext(0x0000, server_name),
        _ext(0x0017, b""),  # extended_master_secret
        _ext(0xFF01, b"\x00"),  # renegotiation_info
        _ext(0x000A, _u16_list([grease[1], 0x001D, 0x0017, 0x0018])),  # supported_groups
        _ext(0x000B, b"\x01\x00"),  # ec_point_formats
        _ext(0x0023, b""),  # session_ticket
        _ext(0x0010, struct.pack(">H", len(alpn)) + alpn),
        _ext(0x0005, b"\x01\x00\x00\x00\x00"),  # status_request
        _ext(0x000D, _u16_list(signature_algorithms)),
        _ext(0x0012, b""),  # signed_certificate_timestamp
        _ext(0x0033, struct.pack(">H", len(key_share)) + key_share),
        _ext(0x002D, b"\x01\x01"),  # psk_key_exchange_modes
        _ext(0x002B, bytes([len(versions)]) + versions),
        _ext(0x001B, b"\x02\x00\x02"),  # compress_certificate: brotli
        _ext(grease[3], b"\x00"),
    ]


def client_hello(domain: str, secret: bytes, unix_time: int) -> tuple[bytes, bytes]:
    """(the ClientHello record, its random) for `domain`, signed with `secret` at `unix_time`."""
    grease = [secrets.choice(_GREASE) for _ in range(4)]
    if grease[3] == grease[0]:  # two extensions of one type would be malformed
        grease[3] = _GREASE[(_GREASE.index(grease[0]) + 1) % len(_GREASE)]
    suites = [grease[0], 0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8]
    suites += [0xC013, 0xC014, 0x009C, 0x009D, 0x002F, 0x0035]
    before = b"\x03\x03" + bytes(RANDOM_LENGTH) + b"\x20" + secrets.token_bytes(32)
    before += _u16_list(suites) + b"\x01\x00"
    extensions = b"".join(_extensions(domain, grease))
    # The padding extension (21) brings the record to a browser's 517 bytes when there is room.
    fixed = 5 + 4 + len(before) + 2 + len(extensions) + 4
    extensions += _ext(0x0015, bytes(max(0, HELLO_WIRE_LENGTH - fixed)))
    body = before + struct.pack(">H", len(extensions)) + extensions
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    record = bytearray(b"\x16\x03\x01" + struct.pack(">H", len(handshake)) + handshake)
    digest = hmac.new(secret, bytes(record), hashlib.sha256).digest()
    stamp = int.from_bytes(digest[28:32], "little") ^ (unix_time & 0xFFFFFFFF)
    random = digest[:28] + stamp.to_bytes(4, "little")
    record[RANDOM_OFFSET : RANDOM_OFFSET + RANDOM_LENGTH] = random
    return bytes(record), random


def server_hello_matches(answer: bytes, client_random: bytes, secret: bytes) -> bool:
    """Does the server's random carry HMAC-SHA256(secret, client random ‖ answer, random zeroed)?"""
    zeroed = bytearray(answer)
    zeroed[RANDOM_OFFSET : RANDOM_OFFSET + RANDOM_LENGTH] = bytes(RANDOM_LENGTH)
    expected = hmac.new(secret, client_random + bytes(zeroed), hashlib.sha256).digest()
    return hmac.compare_digest(expected, answer[RANDOM_OFFSET : RANDOM_OFFSET + RANDOM_LENGTH])


class BufferedStream:
    """Reads exact sizes from a ByteStream, keeping what arrived beyond them."""

    def __init__(self, stream: ByteStream) -> None:
        self.stream = stream
        self.buffer = bytearray()
        self.head = b""  # the first bytes received, as evidence when they were foreign

    async def read_exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            chunk = await self.stream.receive_some(max(size - len(self.buffer), 4096))
            if not chunk:
                raise failures.ProbeFailure(failures.EOF_ERROR)
            if len(self.head) < 32:
                self.head += chunk[: 32 - len(self.head)]
            self.buffer += chunk
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data


def _is_tls_record(header: bytes, kind: int) -> bool:
    return header[0] == kind and header[1] == 0x03 and header[2] <= 0x04


async def read_server_hello(reader: BufferedStream) -> bytes:
    """The proxy's answer: ServerHello record, ChangeCipherSpec, one application-data record.

    Raises ProbeFailure: ``ssl_failed_handshake`` for a TLS alert, ``mtproxy_fake_tls_mismatch``
    for TLS shaped otherwise (a real TLS server), ``mtproto_foreign_reply`` for non-TLS bytes."""
    first = await reader.read_exactly(5)
    if _is_tls_record(first, 0x15):
        raise failures.ProbeFailure(failures.SSL_FAILED_HANDSHAKE)
    if not _is_tls_record(first, HANDSHAKE):
        raise failures.ProbeFailure(failures.MTPROTO_FOREIGN_REPLY)
    length = struct.unpack(">H", first[3:5])[0]
    if not RANDOM_OFFSET + RANDOM_LENGTH - 5 <= length <= MAX_RECORD:
        raise failures.ProbeFailure(failures.MTPROXY_FAKE_TLS_MISMATCH)
    hello = first + await reader.read_exactly(length)
    middle = await reader.read_exactly(len(CHANGE_CIPHER_SPEC_RECORD) + 5)
    if middle[:6] != CHANGE_CIPHER_SPEC_RECORD or middle[6:9] != APPLICATION_DATA:
        raise failures.ProbeFailure(failures.MTPROXY_FAKE_TLS_MISMATCH)
    data_length = struct.unpack(">H", middle[9:11])[0]
    if data_length > MAX_RECORD:
        raise failures.ProbeFailure(failures.MTPROXY_FAKE_TLS_MISMATCH)
    return hello + middle + await reader.read_exactly(data_length)


class TLSRecordStream:
    """The obfuscated2 stream inside TLS application-data records (after the hello)."""

    def __init__(self, reader: BufferedStream) -> None:
        self.reader = reader
        self._sent_change_cipher_spec = False
        self.bytes_sent = reader.stream.bytes_sent  # the TCP stream's counts, kept up to date
        self.bytes_received = reader.stream.bytes_received

    async def send_all(self, data: bytes) -> None:
        wire = bytearray()
        if not self._sent_change_cipher_spec:
            wire += CHANGE_CIPHER_SPEC_RECORD
            self._sent_change_cipher_spec = True
        for start in range(0, len(data), 16384):
            part = data[start : start + 16384]
            wire += APPLICATION_DATA + struct.pack(">H", len(part)) + part
        await self.reader.stream.send_all(bytes(wire))
        self.bytes_sent = self.reader.stream.bytes_sent

    async def receive_some(self, max_bytes: int = 65536) -> bytes:
        """One record's payload (b"" at a clean end of stream between records)."""
        try:
            return await self._next_record()
        finally:
            self.bytes_received = self.reader.stream.bytes_received

    async def _next_record(self) -> bytes:
        if not self.reader.buffer:
            chunk = await self.reader.stream.receive_some(4096)
            if not chunk:
                return b""
            self.reader.buffer += chunk
        while True:  # empty records carry nothing: skip them (a peer sending only those times out)
            header = await self.reader.read_exactly(5)
            if header[:3] != APPLICATION_DATA:
                raise failures.ProbeFailure(failures.MTPROTO_FOREIGN_REPLY)
            length = struct.unpack(">H", header[3:5])[0]
            if length > MAX_RECORD:
                raise failures.ProbeFailure(failures.MTPROTO_FOREIGN_REPLY)
            if length:
                return await self.reader.read_exactly(length)

    async def aclose(self) -> None:
        await self.reader.stream.aclose()

    def expect(self, needed: int | None) -> None:
        self.reader.stream.expect(None if needed is None else needed + 5)
