"""MTProto: one unencrypted ``req_pq_multi`` over one transport, and what came back.

A TCP connect only shows that *something* accepts connections on a Telegram address. This step
speaks the first message of Telegram's key exchange (FACTS.md §2): a fresh random nonce in a
``req_pq_multi``. An MTProto server answers with a ``resPQ`` that echoes our nonce (or, when it
refuses to serve us, with a transport error code such as -404, framed like any packet). That
shows a peer that speaks MTProto and read our request; it is not cryptographic proof that the
peer is Telegram (docs/telegram.md says what would be). Any other answer came from something
else on the path: a blockpage, a TLS middlebox, a reset injector.

The request is shaped like an official client's (docs/telegram.md "The request"): TDLib's
message id (unixtime·2³² with its sub-second fraction and 22 randomised low bits, divisible by
4), TDLib's padding inside ``message_data_length`` and, on obfuscated2, the DC id in header
bytes 60–61.

Transports (the first bytes on the wire are what a censor's DPI keys on):

- ``abridged``: ``0xef``, then each packet prefixed by length/4 in one byte (``0x7f`` + 3 bytes
  little endian when the quotient is 0x7f or more).
- ``intermediate``: ``ee ee ee ee``, then a 4-byte little-endian length per packet.
- ``padded_intermediate``: ``dd dd dd dd``, the same with 0–15 random bytes of padding counted
  in the length.
- ``obfuscated2``: a 64-byte random header carrying an AES-256-CTR key and IV, after which every
  byte in both directions is encrypted, so no fixed byte pattern is left for DPI. Inside it we
  use the intermediate framing (tag ``ee ee ee ee``), as TDLib does for connections without an
  MTProxy secret.

The reply is read by a bounded parser (`examine_reply`): we never read more than the largest
reply a ``req_pq_multi`` can plausibly get (`MAX_REPLY_LENGTH`), whatever length the peer
announces, and a reply whose nonce is not ours is never trusted. Within those bounds it accepts
what TDLib and Telegram Desktop accept (padding after the resPQ object, bytes after the
declared message): only the constructor, the nonce echo and sane lengths decide.
"""

from __future__ import annotations

import asyncio
import secrets
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from probe import failures
from probe.observations import MTProtoHandshake, Trace
from probe.tcp import ByteStream

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

# TL constructors, as they appear on the wire (little endian).
REQ_PQ_MULTI = b"\xf1\x8e\x7e\xbe"  # req_pq_multi#be7e8ef1
RES_PQ = b"\x63\x24\x16\x05"  # resPQ#05162463
VECTOR = b"\x15\xc4\xb5\x1c"  # vector#1cb5c415
NONCE_LENGTH = 16
UNENCRYPTED_HEADER_LENGTH = 20  # auth_key_id (8) + message_id (8) + length (4)
#: msg_id is an unsigned 64-bit number: unixtime·2³². It passes 2⁶³ in January 2038 and its
#: 32 seconds bits wrap on 2106-02-07, like every 32-bit unixtime field.
MESSAGE_ID_MODULUS = 1 << 64
#: TDLib's AuthData::next_message_id XORs this many random low bits into the message id, for
#: clocks with a coarse resolution (at most 2²² / 2³² s, about a millisecond).
MESSAGE_ID_RANDOM_BITS = 22
#: TDLib's NoCryptoImpl pads an unencrypted message to a multiple of 16 bytes, then adds 0–15
#: random blocks of 16, all counted in message_data_length.
MESSAGE_PADDING_BLOCKS = 16
#: Bytes 60–61 of an obfuscated2 header: the DC id, a signed little-endian int16.
DC_ID_RANGE = range(-(1 << 15), 1 << 15)

#: Fingerprints (hex of the unsigned 64-bit value) of the RSA keys built into official clients;
#: a resPQ naming one of them is consistent with Telegram (docs/telegram.md: not proof, the
#: fingerprints are public). tests/mtproto_reference.py recomputes each from its PEM key.
KNOWN_KEY_FINGERPRINTS: dict[str, str] = {
    "d09d1d85de64fd85": "production key: TDLib PublicRsaKeySharedMain.cpp, Telegram Desktop",
    "b25898df208d2603": "test-DC key: TDLib PublicRsaKeySharedMain.cpp",
    "c3b42b026ce86b21": "older production key: Telegram Desktop mtproto_dc_options.cpp",
    "0bc35f3509f7b7a5": "older production key: Telegram Desktop mtproto_dc_options.cpp",
    "15ae5fa8b5529542": "older production key: Telegram Desktop mtproto_dc_options.cpp",
    "aeae98e13cd7f94f": "older production key: Telegram Desktop mtproto_dc_options.cpp",
    "5a181b2235057d98": "older production key: Telegram Desktop mtproto_dc_options.cpp",
}

#: The largest reply packet we read. A resPQ with one key fingerprint is 84 bytes; 4 KiB leaves
#: room for hundreds of fingerprints. A peer announcing more (up to the protocol's own limit) is
#: refused with `mtproto_absurd_length`, never allocated or waited for.
MAX_REPLY_LENGTH = 4096
#: The largest packet MTProto's TCP transports allow at all (TDLib refuses bigger ones). A length
#: prefix beyond it is not an MTProto length: the bytes are something else (foreign).
PROTOCOL_MAX_PACKET = 1 << 24
#: How many raw reply bytes we keep as evidence (`first_bytes`) when the reply is foreign.
FIRST_BYTES_KEPT = 32
# Transport error codes are small negative numbers shaped like HTTP statuses (-404, -429, -444).
_MAX_TRANSPORT_ERROR = 999
_MAX_PADDING = 15


# --- the request ----------------------------------------------------------------------------


def new_message_id(unix_ns: int, *, random_bits: int | None = None) -> int:
    """A client message_id as TDLib's AuthData::next_message_id makes it: unixtime·2³² with the
    sub-second fraction (computed exactly from nanoseconds: a float product keeps 53 bits, so
    its low 10 bits would always be zero), the low 22 bits XORed with random bits, divisible
    by 4; an unsigned 64-bit number, wrapping after 2106 (`MESSAGE_ID_MODULUS`)."""
    if random_bits is None:
        random_bits = secrets.randbits(MESSAGE_ID_RANDOM_BITS)
    exact = (unix_ns << 32) // 1_000_000_000
    mixed = exact ^ (random_bits & ((1 << MESSAGE_ID_RANDOM_BITS) - 1))
    return (mixed & ~3) % MESSAGE_ID_MODULUS


def message_padding() -> bytes:
    """Random padding for the req_pq_multi message, as TDLib's NoCryptoImpl draws it: up to a
    multiple of 16 bytes, plus 0–15 random blocks of 16 (12, 28, …, 252 bytes)."""
    size = -(len(REQ_PQ_MULTI) + NONCE_LENGTH) % 16
    size += 16 * secrets.randbelow(MESSAGE_PADDING_BLOCKS)
    return secrets.token_bytes(size)


def req_pq_multi(nonce: bytes, message_id: int, padding: bytes = b"") -> bytes:
    """The unencrypted message: auth_key_id 0, message_id (unsigned), message_data_length
    (body + `padding`), the body and the padding. 40 bytes without padding."""
    if len(nonce) != NONCE_LENGTH:
        raise ValueError("the nonce is 16 bytes")
    if not 0 <= message_id < MESSAGE_ID_MODULUS:
        raise ValueError("the message id is an unsigned 64-bit number")
    body = REQ_PQ_MULTI + nonce
    return struct.pack("<qQi", 0, message_id, len(body) + len(padding)) + body + padding


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


# --- the reply ------------------------------------------------------------------------------


@dataclass(slots=True)
class ReplyOutcome:
    """What a complete (or refused) reply says."""

    failure: str | None = None
    reply: str | None = None  # "res_pq" | "transport_error"
    error_code: int | None = None
    server_public_key_fingerprints: list[str] = field(default_factory=list)
    #: for a resPQ: does it name one of Telegram's RSA keys (`KNOWN_KEY_FINGERPRINTS`)?
    known_key: bool | None = None


def known_key(fingerprints: Iterable[str]) -> bool:
    """True if any of the resPQ's key fingerprints (hex) is one of Telegram's known RSA keys.

    What it shows: the peer named a key that official clients carry, as Telegram's DCs do. It
    costs no extra packet, but proves little on its own: the fingerprints are public, so anyone
    can echo them. CDN DCs (e.g. DC 203) use their own keys (help.getCdnConfig): False there."""
    return any(f.lower() in KNOWN_KEY_FINGERPRINTS for f in fingerprints)


def _foreign() -> ReplyOutcome:
    return ReplyOutcome(failure=failures.MTPROTO_FOREIGN_REPLY)


def looks_foreign(raw: bytes) -> bool:
    """Bytes that are certainly some other protocol: an HTTP status line or a TLS record."""
    if raw.startswith(b"HTTP/"):
        return True
    return len(raw) >= 3 and 0x14 <= raw[0] <= 0x17 and raw[1] == 0x03 and raw[2] <= 0x04


def _printable(data: bytes) -> bool:
    return all(0x20 <= b < 0x7F or b in (0x09, 0x0A, 0x0D) for b in data)


def _int32(data: bytes) -> int:
    value: int = struct.unpack_from("<i", data)[0]
    return value


def _transport_error(code: int) -> ReplyOutcome | None:
    if -_MAX_TRANSPORT_ERROR <= code <= -1:
        return ReplyOutcome(reply="transport_error", error_code=code)
    return None


def _length_prefix(inner: str, decoded: bytes) -> tuple[int, int] | None:
    """(prefix length, packet length) from the first 4 decoded bytes; None if impossible."""
    if inner == ABRIDGED:
        first = decoded[0]
        if first < 0x7F:
            header, length = 1, first * 4
        elif first == 0x7F:
            header, length = 4, int.from_bytes(decoded[1:4], "little") * 4
        else:
            return None  # a quick-ack token; we asked for none
    else:
        header, length = 4, int.from_bytes(decoded[:4], "little")
        if inner == INTERMEDIATE and length % 4:
            return None  # MTProto packets are whole 32-bit words
    if length < 4:
        return None
    return header, length


def examine_reply(
    transport: str,
    raw: bytes,
    decoded: bytes,
    nonce: bytes,
    *,
    max_length: int = MAX_REPLY_LENGTH,
) -> int | ReplyOutcome:
    """Decide what the reply received so far is, or say how many bytes are needed first.

    `raw` is what arrived on the wire, `decoded` the same after obfuscated2's decryption (equal
    for the plain transports). Returns an int greater than ``len(decoded)`` (read until there
    are that many bytes) or the outcome. Never asks for more than ``max_length + 4`` bytes."""
    inner = OBFUSCATED2_INNER if transport == OBFUSCATED2 else transport
    if len(decoded) < 4:
        return 4
    # A plain transport's genuine reply starts with a small length or a negative error code,
    # never with text or a TLS record: decide at once instead of waiting for an announced size.
    # For obfuscated2 the raw bytes are ciphertext, so this test is only a tie-breaker (below).
    if transport != OBFUSCATED2 and (looks_foreign(raw) or _printable(raw[:4])):
        return _foreign()
    # A transport error is a packet like any other: its 4-byte code comes framed (TDLib reads
    # it in Transport::read after the transport removed the length; MTProxy frames every packet
    # in tcp_rpc_write_packet_compact). 4 bare bytes read here as a length: on intermediate far
    # beyond 16 MiB (foreign below); on abridged a plausible one, sorted out at EOF
    # (`unframed_error`).
    prefix = _length_prefix(inner, decoded)
    if prefix is None:
        return _foreign()
    header, length = prefix
    if length > max_length:
        # obfuscated2: a clear-text blockpage decrypts to noise; the raw bytes tell what it was.
        if length > PROTOCOL_MAX_PACKET or looks_foreign(raw):
            return _foreign()
        return ReplyOutcome(failure=failures.MTPROTO_ABSURD_LENGTH)
    if len(decoded) < header + length:
        return header + length
    packet = decoded[header : header + length]
    return parse_packet(packet, nonce, padded=inner == PADDED_INTERMEDIATE)


def unframed_error(decoded: bytes) -> bool:
    """Exactly 4 bytes that read as a transport error code, then the connection closed: a bare
    code without the framing every real DC puts around it (on abridged its first byte looked
    like a length). Something imitating Telegram's error, not Telegram: foreign."""
    return len(decoded) == 4 and _transport_error(_int32(decoded)) is not None


def parse_packet(packet: bytes, nonce: bytes, *, padded: bool = False) -> ReplyOutcome:
    """Parse one reply packet (transport framing removed): a transport error or a resPQ.

    Like Telegram Desktop (AbstractConnection::parseNotSecureResponse) we require an
    unencrypted server message: auth_key_id 0, msg_id ≡ 1 mod 4 and a declared length that
    fits the packet. Like TDLib (HandshakeConnection::on_raw_packet) we then parse the resPQ
    from everything after the 20-byte header, so padding inside the declared length and bytes
    after it do not matter."""
    if len(packet) < UNENCRYPTED_HEADER_LENGTH:
        # A framed transport error: the 4-byte code (padded intermediate may add padding).
        if len(packet) == 4 or (padded and len(packet) <= 4 + _MAX_PADDING):
            outcome = _transport_error(_int32(packet))
            if outcome is not None:
                return outcome
        return _foreign()
    auth_key_id, message_id, message_length = struct.unpack_from("<qQi", packet)
    if auth_key_id != 0 or message_id % 4 != 1:
        return _foreign()  # not an unencrypted server message
    if not 4 <= message_length <= len(packet) - UNENCRYPTED_HEADER_LENGTH:
        return _foreign()
    return parse_res_pq(packet[UNENCRYPTED_HEADER_LENGTH:], nonce)


def parse_res_pq(body: bytes, nonce: bytes) -> ReplyOutcome:
    """resPQ nonce:int128 server_nonce:int128 pq:bytes server_public_key_fingerprints:Vector<long>.

    The nonce is checked first: a resPQ that is not an answer to *our* request is never trusted,
    however well-formed the rest. The object must fit in `body`; bytes after it are ignored."""
    if body[:4] != RES_PQ or len(body) < 4 + 2 * NONCE_LENGTH:
        return _foreign()
    if not secrets.compare_digest(body[4:20], nonce):
        return ReplyOutcome(failure=failures.MTPROTO_NONCE_MISMATCH)
    offset = 4 + 2 * NONCE_LENGTH  # constructor, nonce, server_nonce
    pq = _tl_bytes_end(body, offset)
    if pq is None:
        return _foreign()
    offset = pq
    if body[offset : offset + 4] != VECTOR or len(body) < offset + 8:
        return _foreign()
    count = _int32(body[offset + 4 : offset + 8])
    offset += 8
    if count < 0 or len(body) < offset + 8 * count:
        return _foreign()
    fingerprints = [
        f"{int.from_bytes(body[offset + 8 * i : offset + 8 * i + 8], 'little'):016x}"
        for i in range(count)
    ]
    return ReplyOutcome(
        reply="res_pq",
        server_public_key_fingerprints=fingerprints,
        known_key=known_key(fingerprints),
    )


def _tl_bytes_end(body: bytes, offset: int) -> int | None:
    """End offset of a TL `bytes` value starting at `offset` (padded to 4), None if malformed."""
    if offset >= len(body):
        return None
    first = body[offset]
    if first < 254:
        size, start = first, offset + 1
    elif first == 254 and offset + 4 <= len(body):
        size, start = int.from_bytes(body[offset + 1 : offset + 4], "little"), offset + 4
    else:
        return None
    end = start + size
    end += -(end - offset) % 4
    return end if end <= len(body) else None


# --- the step -------------------------------------------------------------------------------


class _ReplyReader:
    """Accumulates the reply, decrypting as it arrives; reads only what `examine_reply` needs."""

    def __init__(self, stream: ByteStream, framing: ClientFraming, nonce: bytes) -> None:
        self.stream = stream
        self.framing = framing
        self.nonce = nonce
        self.raw = bytearray()
        self.decoded = bytearray()

    async def read_outcome(self) -> ReplyOutcome:
        # Each round reads at least one byte and the parser never asks for more than
        # MAX_REPLY_LENGTH + 4, so this bound is never the one that stops the loop.
        for _ in range(MAX_REPLY_LENGTH + 8):
            needed = examine_reply(
                self.framing.transport, bytes(self.raw), bytes(self.decoded), self.nonce
            )
            if isinstance(needed, ReplyOutcome):
                return needed
            # Ask for a few bytes beyond the minimum on the first read: evidence for first_bytes.
            want = max(needed, min(FIRST_BYTES_KEPT, MAX_REPLY_LENGTH)) - len(self.raw)
            chunk = await self.stream.receive_some(max(1, want))
            if not chunk:
                if unframed_error(bytes(self.decoded)):
                    return _foreign()
                raise failures.ProbeFailure(failures.EOF_ERROR)
            self.raw += chunk
            self.decoded += self.framing.decryptor.update(chunk)
        raise failures.ProbeFailure(failures.MTPROTO_ABSURD_LENGTH)  # pragma: no cover

    def first_bytes(self) -> str | None:
        return bytes(self.raw[:FIRST_BYTES_KEPT]).hex() if self.raw else None


async def mtproto_handshake(
    stream: ByteStream,
    transport: str,
    *,
    trace: Trace,
    timeout: float,
    address: str,
    dc: int | None = None,
    clock_ns: Callable[[], int] = time.time_ns,
) -> MTProtoHandshake:
    """Send ``req_pq_multi`` over `transport` on the open `stream` and classify the reply.

    Success means the peer speaks MTProto: a resPQ echoing our nonce, or a framed transport
    error code. Failures are data (only cancellation escapes); the caller owns and closes
    `stream`. `dc` (the target's DC id, obfuscated2 only) goes into the obfuscation header;
    `clock_ns` gives the time for the message id (tests inject other years)."""
    if transport not in TRANSPORTS:
        raise ValueError(f"unknown MTProto transport {transport!r}")
    observation = MTProtoHandshake(
        address=address,
        transport=transport,
        t0=trace.now(),
        transaction_id=trace.transaction_id,
    )
    nonce = secrets.token_bytes(NONCE_LENGTH)
    message = req_pq_multi(nonce, new_message_id(clock_ns()), message_padding())
    framing = frame_request(transport, message, dc=dc if transport == OBFUSCATED2 else None)
    reader = _ReplyReader(stream, framing, nonce)
    operation = failures.WRITE
    outcome: ReplyOutcome
    try:
        async with asyncio.timeout(timeout):
            await stream.send_all(framing.wire)
            operation = failures.MTPROTO_HANDSHAKE
            outcome = await reader.read_outcome()
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        outcome = ReplyOutcome(failure=failures.classify(exc))
    observation.failure = outcome.failure
    observation.failed_operation = operation if outcome.failure is not None else None
    observation.success = outcome.failure is None
    observation.reply = outcome.reply
    observation.error_code = outcome.error_code
    observation.server_public_key_fingerprints = outcome.server_public_key_fingerprints
    observation.known_key = outcome.known_key
    if outcome.failure in (failures.MTPROTO_FOREIGN_REPLY, failures.MTPROTO_ABSURD_LENGTH):
        observation.first_bytes = reader.first_bytes()
    observation.bytes_sent = stream.bytes_sent
    observation.bytes_received = stream.bytes_received
    observation.t = trace.now()
    return observation
