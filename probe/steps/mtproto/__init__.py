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

Modules: `transports.py` (framing and obfuscated2), `messages.py` (req_pq_multi, the resPQ and
transport-error parser), `reply.py` (the bounded reading of the reply), `handshake.py` (the step).
"""

from __future__ import annotations

from probe.steps.mtproto.handshake import mtproto_handshake
from probe.steps.mtproto.messages import (
    KNOWN_KEY_FINGERPRINTS,
    MESSAGE_ID_MODULUS,
    MESSAGE_ID_RANDOM_BITS,
    MESSAGE_PADDING_BLOCKS,
    NONCE_LENGTH,
    REQ_PQ_MULTI,
    RES_PQ,
    UNENCRYPTED_HEADER_LENGTH,
    VECTOR,
    ReplyOutcome,
    known_key,
    message_padding,
    new_message_id,
    parse_packet,
    parse_res_pq,
    req_pq_multi,
)
from probe.steps.mtproto.reply import (
    FIRST_BYTES_KEPT,
    MAX_REPLY_LENGTH,
    PROTOCOL_MAX_PACKET,
    examine_reply,
    looks_foreign,
    unframed_error,
)
from probe.steps.mtproto.transports import (
    ABRIDGED,
    ABRIDGED_MARKER,
    DC_ID_RANGE,
    FORBIDDEN_HEADER_PREFIXES,
    INTERMEDIATE,
    INTERMEDIATE_MARKER,
    OBFUSCATED2,
    OBFUSCATED2_INNER,
    OBFUSCATED2_TAGS,
    OBFUSCATION_HEADER_LENGTH,
    PADDED_INTERMEDIATE,
    PADDED_INTERMEDIATE_MARKER,
    TRANSPORTS,
    ClientFraming,
    frame_obfuscated2,
    frame_packet,
    frame_request,
    header_is_allowed,
    random_obfuscation_header,
)

__all__ = [
    "ABRIDGED",
    "ABRIDGED_MARKER",
    "DC_ID_RANGE",
    "FIRST_BYTES_KEPT",
    "FORBIDDEN_HEADER_PREFIXES",
    "INTERMEDIATE",
    "INTERMEDIATE_MARKER",
    "KNOWN_KEY_FINGERPRINTS",
    "MAX_REPLY_LENGTH",
    "MESSAGE_ID_MODULUS",
    "MESSAGE_ID_RANDOM_BITS",
    "MESSAGE_PADDING_BLOCKS",
    "NONCE_LENGTH",
    "OBFUSCATED2",
    "OBFUSCATED2_INNER",
    "OBFUSCATED2_TAGS",
    "OBFUSCATION_HEADER_LENGTH",
    "PADDED_INTERMEDIATE",
    "PADDED_INTERMEDIATE_MARKER",
    "PROTOCOL_MAX_PACKET",
    "REQ_PQ_MULTI",
    "RES_PQ",
    "TRANSPORTS",
    "UNENCRYPTED_HEADER_LENGTH",
    "VECTOR",
    "ClientFraming",
    "ReplyOutcome",
    "examine_reply",
    "frame_obfuscated2",
    "frame_packet",
    "frame_request",
    "header_is_allowed",
    "known_key",
    "looks_foreign",
    "message_padding",
    "mtproto_handshake",
    "new_message_id",
    "parse_packet",
    "parse_res_pq",
    "random_obfuscation_header",
    "req_pq_multi",
    "unframed_error",
]
