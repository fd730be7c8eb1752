"""MTProto transports: the framing of a packet, and obfuscated2's header and AES-256-CTR.

The first bytes on the wire are what a censor's DPI keys on: `abridged` (``0xef``), the
`intermediate` (``ee ee ee ee``) and `padded_intermediate` (``dd dd dd dd``) markers, or
obfuscated2's 64 random bytes after which everything is encrypted (`frame_obfuscated2`)."""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

ABRIDGED = "abridged"
INTERMEDIATE = "intermediate"
PADDED_INTERMEDIATE = "padded_intermediate"
OBFUSCATED2 = "obfuscated2"
TRANSPORTS = (ABRIDGED, INTERMEDIATE, PADDED_INTERMEDIATE, OBFUSCATED2)
#: The framing used inside obfuscated2 (its tag travels encrypted in header bytes 56–59).
OBFUSCATED2_INNER = INTERMEDIATE

# What a client sends first on each plain transport, and the tag inside an obfuscated2 header.
ABRIDGED_MARKER = b"\xef"
INTERMEDIATE_MARKER = b"\xee\xee\xee\xee"
PADDED_INTERMEDIATE_MARKER = b"\xdd\xdd\xdd\xdd"
OBFUSCATED2_TAGS = {
    ABRIDGED: b"\xef\xef\xef\xef",
    INTERMEDIATE: INTERMEDIATE_MARKER,
    PADDED_INTERMEDIATE: PADDED_INTERMEDIATE_MARKER,
}
OBFUSCATION_HEADER_LENGTH = 64
# First four bytes an obfuscated2 header must not start with: they would make the connection
# look like (and be parsed by servers as) HTTP, a plain MTProto transport or TLS.
FORBIDDEN_HEADER_PREFIXES = (
    b"HEAD",
    b"POST",
    b"GET ",
    b"OPTI",
    b"\xdd\xdd\xdd\xdd",
    b"\xee\xee\xee\xee",
    b"\x16\x03\x01\x02",
)

#: Bytes 60–61 of an obfuscated2 header: the DC id, a signed little-endian int16.
DC_ID_RANGE = range(-(1 << 15), 1 << 15)
#: The most random padding padded intermediate adds to a packet (counted in its length).
_MAX_PADDING = 15


def random_obfuscation_header() -> bytes:
    """64 random bytes obeying obfuscated2's forbidden-prefix rules (the tag is set later)."""
    for _ in range(1000):  # a draw is rejected with probability about 2⁻⁸
        header = secrets.token_bytes(OBFUSCATION_HEADER_LENGTH)
        if header_is_allowed(header):
            return header
    raise RuntimeError("no acceptable obfuscation header in 1000 draws")  # pragma: no cover


def header_is_allowed(header: bytes) -> bool:
    return (
        header[0] != 0xEF
        and header[:4] not in FORBIDDEN_HEADER_PREFIXES
        and header[4:8] != b"\x00\x00\x00\x00"
    )


def _aes_ctr(key: bytes, iv: bytes) -> _StreamCipher:
    return Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()


class _StreamCipher(Protocol):
    def update(self, data: bytes) -> bytes: ...


class _Plain:
    """The identity 'cipher' of the plain transports."""

    def update(self, data: bytes) -> bytes:
        return data


@dataclass(slots=True)
class ClientFraming:
    """The bytes to send for one transport, and how to turn the reply back into plain bytes."""

    transport: str
    inner: str  # the framing of packets: abridged | intermediate | padded_intermediate
    wire: bytes  # everything we send: transport marker or obfuscation header + framed packet
    decryptor: _StreamCipher = field(default_factory=_Plain)


def frame_packet(inner: str, packet: bytes, padding: bytes = b"") -> bytes:
    """One packet with its length prefix (no transport marker)."""
    if inner == ABRIDGED:
        quarter = len(packet) // 4
        if quarter < 0x7F:
            return bytes([quarter]) + packet
        return b"\x7f" + quarter.to_bytes(3, "little") + packet
    if inner == INTERMEDIATE:
        return struct.pack("<I", len(packet)) + packet
    if inner == PADDED_INTERMEDIATE:
        return struct.pack("<I", len(packet) + len(padding)) + packet + padding
    raise ValueError(f"unknown inner transport {inner!r}")


def frame_request(
    transport: str,
    message: bytes,
    *,
    padding: bytes | None = None,
    obfuscation_header: bytes | None = None,
    dc: int | None = None,
) -> ClientFraming:
    """Frame `message` as the first packet of a new connection over `transport`.

    `padding` (padded intermediate only) and `obfuscation_header` (obfuscated2 only) are drawn
    at random when not given; tests pass fixed ones to compare against reference bytes. `dc`
    (obfuscated2 only) is the data centre's id, written into the header like TDLib does."""
    if transport == ABRIDGED:
        return ClientFraming(transport, ABRIDGED, ABRIDGED_MARKER + frame_packet(ABRIDGED, message))
    if transport == INTERMEDIATE:
        wire = INTERMEDIATE_MARKER + frame_packet(INTERMEDIATE, message)
        return ClientFraming(transport, INTERMEDIATE, wire)
    if transport == PADDED_INTERMEDIATE:
        if padding is None:
            padding = secrets.token_bytes(secrets.randbelow(_MAX_PADDING + 1))
        wire = PADDED_INTERMEDIATE_MARKER + frame_packet(PADDED_INTERMEDIATE, message, padding)
        return ClientFraming(transport, PADDED_INTERMEDIATE, wire)
    if transport == OBFUSCATED2:
        if obfuscation_header is None:
            obfuscation_header = random_obfuscation_header()
        return frame_obfuscated2(obfuscation_header, OBFUSCATED2_INNER, message, dc=dc)
    raise ValueError(f"unknown MTProto transport {transport!r}")


def frame_obfuscated2(
    header: bytes, inner: str, message: bytes, *, dc: int | None = None
) -> ClientFraming:
    """obfuscated2 without an MTProxy secret (FACTS.md §2): key and IV straight from the header.

    With `dc`, bytes 60–61 carry the DC id as a signed little-endian int16, negative for a
    media-only DC (TDLib ObfuscatedTransport::init and ConnectionCreator::get_transport_type;
    Telegram Desktop writes it too, and MTProxy reads it to pick the DC). 0 means "none" in
    TDLib, so it is refused here: pass None."""
    if len(header) != OBFUSCATION_HEADER_LENGTH or not header_is_allowed(header):
        raise ValueError("not an acceptable 64-byte obfuscation header")
    plain_header = bytearray(header)
    plain_header[56:60] = OBFUSCATED2_TAGS[inner]
    if dc is not None:
        if dc == 0 or dc not in DC_ID_RANGE:
            raise ValueError(f"a DC id is a signed 16-bit number other than 0, not {dc}")
        plain_header[60:62] = struct.pack("<h", dc)
    encrypt_key, encrypt_iv = bytes(plain_header[8:40]), bytes(plain_header[40:56])
    reversed_part = bytes(plain_header[8:56])[::-1]  # the server's direction
    decrypt_key, decrypt_iv = reversed_part[:32], reversed_part[32:48]
    encryptor = _aes_ctr(encrypt_key, encrypt_iv)
    encrypted_header = encryptor.update(bytes(plain_header))
    # Bytes 0–55 travel in clear (they *are* the key material); 56–63 encrypted, so the server
    # learns the tag only after deriving the key. The same keystream then covers the payload.
    wire_header = bytes(plain_header[:56]) + encrypted_header[56:64]
    payload = encryptor.update(frame_packet(inner, message))
    return ClientFraming(
        OBFUSCATED2, inner, wire_header + payload, _aes_ctr(decrypt_key, decrypt_iv)
    )
