"""Reading the reply with bounds: the transport's framing removed, then `parse_packet`.

We never read more than the largest reply a ``req_pq_multi`` can plausibly get
(`MAX_REPLY_LENGTH`), whatever length the peer announces. Within those bounds it accepts what
TDLib and Telegram Desktop accept (padding after the resPQ object, bytes after the declared
message): only the constructor, the nonce echo and sane lengths decide."""

from __future__ import annotations

from probe import failures
from probe.steps.mtproto.messages import (
    ReplyOutcome,
    _foreign,
    _int32,
    _transport_error,
    parse_packet,
)
from probe.steps.mtproto.transports import (
    ABRIDGED,
    INTERMEDIATE,
    OBFUSCATED2,
    OBFUSCATED2_INNER,
    PADDED_INTERMEDIATE,
)

#: The largest reply packet we read. A resPQ with one key fingerprint is 84 bytes; 4 KiB leaves
#: room for hundreds of fingerprints. A peer announcing more (up to the protocol's own limit) is
#: refused with `mtproto_absurd_length`, never allocated or waited for.
MAX_REPLY_LENGTH = 4096
#: The largest packet MTProto's TCP transports allow at all (TDLib refuses bigger ones). A length
#: prefix beyond it is not an MTProto length: the bytes are something else (foreign).
PROTOCOL_MAX_PACKET = 1 << 24
#: How many raw reply bytes we keep as evidence (`first_bytes`) when the reply is foreign.
FIRST_BYTES_KEPT = 32


def looks_foreign(raw: bytes) -> bool:
    """Bytes that are certainly some other protocol: an HTTP status line or a TLS record."""
    if raw.startswith(b"HTTP/"):
        return True
    return len(raw) >= 3 and 0x14 <= raw[0] <= 0x17 and raw[1] == 0x03 and raw[2] <= 0x04


def _printable(data: bytes) -> bool:
    return all(0x20 <= b < 0x7F or b in (0x09, 0x0A, 0x0D) for b in data)


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
