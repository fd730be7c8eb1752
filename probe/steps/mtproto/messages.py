"""The messages: the unencrypted ``req_pq_multi`` we send, shaped like an official client's,
and the parser of one reply packet (a ``resPQ`` echoing our nonce, or a transport error code).

The request is shaped like an official client's (docs/telegram.md "The request"): TDLib's
message id (unixtime·2³² with its sub-second fraction and 22 randomised low bits, divisible by
4) and TDLib's padding inside ``message_data_length``."""

from __future__ import annotations

import secrets
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from probe import failures
from probe.steps.mtproto.transports import _MAX_PADDING

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

# Transport error codes are small negative numbers shaped like HTTP statuses (-404, -429, -444).
_MAX_TRANSPORT_ERROR = 999


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


def _int32(data: bytes) -> int:
    value: int = struct.unpack_from("<i", data)[0]
    return value


def _transport_error(code: int) -> ReplyOutcome | None:
    if -_MAX_TRANSPORT_ERROR <= code <= -1:
        return ReplyOutcome(reply="transport_error", error_code=code)
    return None


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
