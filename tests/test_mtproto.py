"""MTProto handshake step: framing checked byte for byte, obfuscated2 against an independent
reference, the reply parser under arbitrary bytes, and every outcome for every transport over
real loopback connections to the fake data centre."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe import failures
from probe.observations import MTProtoHandshake, Trace
from probe.round.measure import MeasureConfig, RunState, measure_target
from probe.steps import dns, mtproto
from probe.steps.tcp import tcp_connect
from probe.targets import Target
from tests.lab import servers as lab_servers
from tests.mtproto_reference import (
    TELEGRAM_PUBLIC_KEYS,
    ReferenceCTR,
    raw_exchange,
    reference_fingerprint,
    reference_obfuscated2,
    reference_server_reply,
    unencrypted_message,
)
from tests.servers.fake_dc import (
    FINGERPRINT,
    MODES,
    BlackholedPort,
    FakeDC,
    Rule,
    parse_rule,
    res_pq_message,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 0.75
HANG_BOUND = 3 * TIMEOUT + 2
NONCE = bytes(range(16))
MESSAGE_ID = 0x65A1B2C300000004  # about 2024-01-12 in unixtime·2³², divisible by 4
FINGERPRINT_HEX = f"{FINGERPRINT:016x}"

# --- framing, byte for byte (FACTS.md §2) ---------------------------------------------------

# auth_key_id 0 | message_id LE | length 20 | req_pq_multi | nonce 00..0f
MESSAGE_HEX = "000000000000000004000000c3b2a16514000000f18e7ebe000102030405060708090a0b0c0d0e0f"


def test_req_pq_multi_message_bytes() -> None:
    message = mtproto.req_pq_multi(NONCE, MESSAGE_ID)
    assert message.hex() == MESSAGE_HEX
    assert len(message) == 40


def test_abridged_framing_is_42_bytes_on_the_wire() -> None:
    framing = mtproto.frame_request("abridged", bytes.fromhex(MESSAGE_HEX))
    assert framing.wire.hex() == "ef" + "0a" + MESSAGE_HEX  # 40 / 4 = 10
    assert len(framing.wire) == 42


def test_intermediate_framing_is_48_bytes_on_the_wire() -> None:
    framing = mtproto.frame_request("intermediate", bytes.fromhex(MESSAGE_HEX))
    assert framing.wire.hex() == "eeeeeeee" + "28000000" + MESSAGE_HEX
    assert len(framing.wire) == 48


def test_padded_intermediate_framing_counts_the_padding() -> None:
    framing = mtproto.frame_request(
        "padded_intermediate", bytes.fromhex(MESSAGE_HEX), padding=b"\xaa\xbb\xcc"
    )
    assert framing.wire.hex() == "dddddddd" + "2b000000" + MESSAGE_HEX + "aabbcc"


def test_padded_intermediate_draws_0_to_15_padding_bytes() -> None:
    lengths = {
        len(mtproto.frame_request("padded_intermediate", bytes(40)).wire) for _ in range(400)
    }
    assert lengths <= set(range(48, 64))
    assert len(lengths) > 8  # random, not fixed


def test_abridged_long_packet_uses_the_0x7f_form() -> None:
    packet = bytes(0x7F * 4)
    assert mtproto.frame_packet("abridged", packet)[:4] == b"\x7f\x7f\x00\x00"
    assert mtproto.frame_packet("abridged", bytes(0x7E * 4))[:1] == b"\x7e"


def test_message_id_is_time_shaped_and_divisible_by_4() -> None:
    now = time.time_ns()
    message_id = mtproto.new_message_id(now)
    assert message_id % 4 == 0
    assert abs(message_id / 2**32 - now / 1e9) < 1


def test_message_id_keeps_the_sub_second_fraction() -> None:
    """unixtime·2³² computed exactly (TDLib's AuthData::next_message_id), not through a float:
    a float product has 53 bits, so its low 10 bits would always be zero."""
    clocks = [1_733_390_000_123_456_789 + 7_919 * i for i in range(64)]
    ids = [mtproto.new_message_id(ns, random_bits=0) for ns in clocks]
    assert ids == [((ns << 32) // 10**9) & ~3 for ns in clocks]
    assert any(message_id & 0x3FF for message_id in ids)
    # TDLib then XORs 22 random low bits in, for clocks with a coarse resolution.
    for ns in clocks:
        drawn = mtproto.new_message_id(ns)
        assert drawn % 4 == 0 and abs(drawn - ((ns << 32) // 10**9)) < 2**22


YEAR_2040 = 2_208_988_800  # 2040-01-01T00:00:00Z: unixtime·2³² no longer fits a signed int64
YEAR_2106 = 4_296_000_000  # 2106-02-19: unixtime itself no longer fits 32 bits


@pytest.mark.parametrize("unixtime", [YEAR_2040, YEAR_2106], ids=["2040", "2106"])
def test_message_id_after_2038_and_2106(unixtime: int) -> None:
    """msg_id is an unsigned 64-bit number: past 2038 it exceeds int64 (and must still pack),
    past 2106-02-07 its 32 seconds bits wrap, like every 32-bit unixtime field."""
    ns = unixtime * 10**9 + 250_000_000
    message_id = mtproto.new_message_id(ns, random_bits=0)
    assert 0 <= message_id < 2**64 and message_id % 4 == 0
    assert message_id >> 32 == unixtime % 2**32
    assert (message_id & 0xFFFFFFFF) == 2**30  # a quarter second
    if unixtime == YEAR_2040:
        assert message_id >= 2**63
    message = mtproto.req_pq_multi(NONCE, message_id)
    assert struct.unpack_from("<Q", message, 8)[0] == message_id


def test_request_carries_tdlib_padding_inside_the_message_length() -> None:
    """TDLib's NoCryptoImpl pads every unencrypted message to 16 bytes plus 0-15 random blocks
    of 16, counted in message_data_length; Telegram Desktop pads with 0-63 random words."""
    message = mtproto.req_pq_multi(NONCE, MESSAGE_ID, padding=b"\xaa" * 12)
    assert message[:16].hex() == MESSAGE_HEX[:32]
    assert struct.unpack_from("<I", message, 16)[0] == 32
    assert message[20:40].hex() == MESSAGE_HEX[40:] and message[40:] == b"\xaa" * 12
    sizes = {len(mtproto.message_padding()) for _ in range(400)}
    assert sizes <= {12 + 16 * k for k in range(16)}
    assert len(sizes) > 8  # random, not fixed


def test_unknown_transport_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        mtproto.frame_request("full", bytes(40))


# --- obfuscated2 against the independent reference ------------------------------------------


def test_reference_ctr_matches_nist_sp800_38a_f55() -> None:
    """The reference's own AES-256-CTR is checked against the published NIST vector first."""
    key = bytes.fromhex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
    counter = bytes.fromhex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")
    plaintext = bytes.fromhex(
        "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
        "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"
    )
    expected = (
        "601ec313775789a5b7a7f504bbf3d228f443e3ca4d62b59aca84e990cacaf5c5"
        "2b0930daa23de94ce87017ba2d84988ddfc9c58db67aada613c2dd08457941a6"
    )
    ctr = ReferenceCTR(key, counter)
    # Uneven pieces: the keystream must carry over between calls.
    out = ctr.apply(plaintext[:5]) + ctr.apply(plaintext[5:37]) + ctr.apply(plaintext[37:])
    assert out.hex() == expected


FIXED_HEADERS = [
    bytes(range(1, 65)),
    hashlib.sha512(b"probe obfuscated2 test header").digest(),
]


@pytest.mark.parametrize("header", FIXED_HEADERS, ids=["counting", "sha512"])
@pytest.mark.parametrize("inner", ["abridged", "intermediate", "padded_intermediate"])
def test_obfuscated2_matches_reference(header: bytes, inner: str) -> None:
    assert mtproto.header_is_allowed(header)
    message = bytes.fromhex(MESSAGE_HEX)
    framing = mtproto.frame_obfuscated2(header, inner, message)
    tag = mtproto.OBFUSCATED2_TAGS[inner]
    expected_wire, reference_decrypt = reference_obfuscated2(
        header, tag, mtproto.frame_packet(inner, message)
    )
    assert framing.wire == expected_wire
    assert framing.wire[:56] == header[:56]  # the key material travels in clear
    assert framing.wire[56:64] != tag + header[60:64]  # the tag does not
    # And the other direction: what the server sends decrypts with our key.
    reply = mtproto.frame_packet(inner, res_pq_message(NONCE))
    on_the_wire = reference_server_reply(header, tag, reply)
    assert framing.decryptor.update(on_the_wire[:7]) + framing.decryptor.update(
        on_the_wire[7:]
    ) == reference_decrypt.apply(on_the_wire)
    assert reference_decrypt is not None


def test_obfuscated2_step_framing_is_intermediate_inside() -> None:
    header = FIXED_HEADERS[1]
    message = bytes.fromhex(MESSAGE_HEX)
    framing = mtproto.frame_request("obfuscated2", message, obfuscation_header=header)
    expected, _ = reference_obfuscated2(
        header, b"\xee\xee\xee\xee", struct.pack("<I", 40) + message
    )
    assert framing.wire == expected
    assert len(framing.wire) == 64 + 48 - 4


@pytest.mark.parametrize("dc", [2, -4, 203, 10002], ids=["dc2", "media-dc4", "cdn-203", "test"])
def test_obfuscated2_header_carries_the_dc_id(dc: int) -> None:
    """Bytes 60-61 of the header hold the DC id as a signed little-endian int16, negative for
    media-only DCs (TDLib ObfuscatedTransport::init, ConnectionCreator::get_transport_type;
    MTProxy reads it as `*(short *)(random_header + 60)`)."""
    header = FIXED_HEADERS[1]
    message = bytes.fromhex(MESSAGE_HEX)
    framing = mtproto.frame_request("obfuscated2", message, obfuscation_header=header, dc=dc)
    expected, _ = reference_obfuscated2(
        header, b"\xee\xee\xee\xee", struct.pack("<I", 40) + message, dc
    )
    assert framing.wire == expected
    decrypted = ReferenceCTR(header[8:40], header[40:56]).apply(framing.wire[:64])
    assert decrypted[56:60] == b"\xee" * 4
    assert struct.unpack("<h", decrypted[60:62])[0] == dc


def test_obfuscated2_without_a_dc_leaves_the_random_bytes() -> None:
    header = FIXED_HEADERS[0]
    framing = mtproto.frame_request("obfuscated2", bytes(40), obfuscation_header=header)
    decrypted = ReferenceCTR(header[8:40], header[40:56]).apply(framing.wire[:64])
    assert decrypted[60:64] == header[60:64]
    for bad in (0, 32768, -32769):
        with pytest.raises(ValueError):
            mtproto.frame_request("obfuscated2", bytes(40), obfuscation_header=header, dc=bad)


@pytest.mark.parametrize(
    "prefix",
    [b"\xef", b"HEAD", b"POST", b"GET ", b"OPTI", b"\xdd" * 4, b"\xee" * 4, b"\x16\x03\x01\x02"],
)
def test_forbidden_obfuscation_headers_are_refused(prefix: bytes) -> None:
    header = prefix + FIXED_HEADERS[0][len(prefix) :]
    assert not mtproto.header_is_allowed(header)
    with pytest.raises(ValueError):
        mtproto.frame_obfuscated2(header, "intermediate", bytes(40))


def test_zero_bytes_4_to_7_are_refused() -> None:
    header = FIXED_HEADERS[0][:4] + bytes(4) + FIXED_HEADERS[0][8:]
    assert not mtproto.header_is_allowed(header)


def test_random_headers_obey_the_rules() -> None:
    headers = [mtproto.random_obfuscation_header() for _ in range(300)]
    assert all(len(h) == 64 and mtproto.header_is_allowed(h) for h in headers)
    assert len(set(headers)) == 300


# --- the reply parser ----------------------------------------------------------------------


def _res_pq(
    nonce: bytes,
    *,
    fingerprints: int = 1,
    message_id_mod: int = 1,
    padding: bytes = b"",
    fingerprint: int | None = None,
) -> bytes:
    """An unencrypted resPQ server message; `padding` goes inside message_data_length."""
    values = [0x1111111111111111 * (i + 1) for i in range(fingerprints)]
    if fingerprint is not None:
        values = [fingerprint]
    body = (
        mtproto.RES_PQ
        + nonce
        + bytes(16)
        + b"\x08"
        + bytes.fromhex("17ed48941a08f981")
        + bytes(3)
        + mtproto.VECTOR
        + struct.pack("<i", len(values))
        + b"".join(struct.pack("<Q", value) for value in values)
        + padding
    )
    return struct.pack("<qQi", 0, (MESSAGE_ID & ~3) | message_id_mod, len(body)) + body


def _examine(transport: str, data: bytes) -> int | mtproto.ReplyOutcome:
    return mtproto.examine_reply(transport, data, data, NONCE)


def test_parser_accepts_res_pq_with_our_nonce() -> None:
    reply = _res_pq(NONCE, fingerprints=2)
    assert len(_res_pq(NONCE)) == 84  # FACTS.md §2
    outcome = _examine("intermediate", struct.pack("<I", len(reply)) + reply)
    assert isinstance(outcome, mtproto.ReplyOutcome)
    assert outcome.failure is None and outcome.reply == "res_pq"
    assert outcome.server_public_key_fingerprints == ["1111111111111111", "2222222222222222"]


def test_parser_asks_for_exactly_the_announced_packet() -> None:
    reply = struct.pack("<I", 84) + _res_pq(NONCE)
    assert _examine("intermediate", reply[:2]) == 4
    assert _examine("intermediate", reply[:10]) == 88
    assert _examine("abridged", bytes([21]) + _res_pq(NONCE)[:30]) == 85


def test_parser_refuses_nonce_mismatch_even_when_well_formed() -> None:
    reply = _res_pq(bytes(16))
    outcome = _examine("abridged", bytes([len(reply) // 4]) + reply)
    assert isinstance(outcome, mtproto.ReplyOutcome)
    assert outcome.failure == failures.MTPROTO_NONCE_MISMATCH
    assert outcome.server_public_key_fingerprints == []


def test_parser_refuses_client_shaped_message_id() -> None:
    reply = _res_pq(NONCE, message_id_mod=0)
    outcome = _examine("intermediate", struct.pack("<I", len(reply)) + reply)
    assert isinstance(outcome, mtproto.ReplyOutcome)
    assert outcome.failure == failures.MTPROTO_FOREIGN_REPLY


def test_parser_accepts_padding_inside_the_message_length() -> None:
    """The declared body is longer than the resPQ object: bytes after the fingerprint vector.
    TDLib parses resPQ without requiring the end (fetch_result(message, false)) and Telegram
    Desktop only checks that the declared length fits the packet."""
    reply = _res_pq(NONCE, padding=bytes(range(16)))
    assert struct.unpack_from("<i", reply, 16)[0] == 64 + 16
    for transport, prefix in (
        ("intermediate", struct.pack("<I", len(reply))),
        ("abridged", bytes([len(reply) // 4])),
        ("padded_intermediate", struct.pack("<I", len(reply))),
    ):
        outcome = _examine(transport, prefix + reply)
        assert isinstance(outcome, mtproto.ReplyOutcome)
        assert outcome.reply == "res_pq" and outcome.failure is None, transport
        assert outcome.server_public_key_fingerprints == ["1111111111111111"]


def test_parser_accepts_bytes_after_the_declared_message() -> None:
    """The packet holds more than 20 + message_data_length bytes (padding outside the declared
    length, on any transport): tolerated like TDLib, which reads the whole packet."""
    reply = _res_pq(NONCE) + bytes(8)
    outcome = _examine("intermediate", struct.pack("<I", len(reply)) + reply)
    assert isinstance(outcome, mtproto.ReplyOutcome) and outcome.reply == "res_pq"


@pytest.mark.parametrize(
    ("case", "mutate"),
    [
        ("declared length beyond the packet", lambda r: r[:16] + struct.pack("<i", 68) + r[20:]),
        ("declared length negative", lambda r: r[:16] + struct.pack("<i", -1) + r[20:]),
        ("wrong constructor", lambda r: r[:20] + b"\x00\x00\x00\x00" + r[24:]),
        ("auth_key_id not zero", lambda r: b"\x01" + r[1:]),
        ("fingerprints beyond the data", lambda r: r[:-12] + struct.pack("<i", 2) + r[-8:]),
        ("negative count", lambda r: r[:-12] + struct.pack("<i", -1) + r[-8:]),
        ("no vector", lambda r: r[:-16] + bytes(4) + r[-12:]),
        ("pq runs past the end", lambda r: r[:56] + b"\xfe\xff\xff\x00" + r[60:]),
    ],
)
def test_parser_still_refuses_what_no_client_accepts(case: str, mutate: Any) -> None:
    reply = mutate(_res_pq(NONCE))
    outcome = _examine("intermediate", struct.pack("<I", len(reply)) + reply)
    assert isinstance(outcome, mtproto.ReplyOutcome), case
    assert outcome.failure == failures.MTPROTO_FOREIGN_REPLY, case


@pytest.mark.parametrize(
    ("transport", "data", "code"),
    [
        ("intermediate", bytes.fromhex("040000006cfeffff"), -404),
        ("intermediate", bytes.fromhex("0400000053feffff"), -429),
        ("padded_intermediate", bytes.fromhex("070000006cfeffff000000"), -404),
        ("padded_intermediate", bytes.fromhex("0400000053feffff"), -429),
        ("abridged", bytes.fromhex("0153feffff"), -429),
        ("abridged", bytes.fromhex("016cfeffff"), -404),
    ],
)
def test_parser_framed_transport_errors(transport: str, data: bytes, code: int) -> None:
    """A transport error is a packet whose payload is the 4-byte code, framed like any packet:
    TDLib's Transport::read and Telegram Desktop's parsePacket see it only after the framing."""
    outcome = _examine(transport, data)
    assert isinstance(outcome, mtproto.ReplyOutcome)
    assert outcome.reply == "transport_error" and outcome.error_code == code
    assert outcome.failure is None


@pytest.mark.parametrize("transport", ["intermediate", "padded_intermediate", "obfuscated2"])
@pytest.mark.parametrize("code", ["6cfeffff", "53feffff"], ids=["-404", "-429"])
def test_parser_unframed_error_codes_are_foreign(transport: str, code: str) -> None:
    """4 bare bytes are no MTProto packet: read as a length they are far beyond the protocol's
    16 MiB limit. A real DC frames its errors, so something else sent these."""
    bare = bytes.fromhex(code)
    raw = bytes(4) if transport == "obfuscated2" else bare  # obfuscated2: ciphertext on the wire
    outcome = mtproto.examine_reply(transport, raw, bare, NONCE)
    assert isinstance(outcome, mtproto.ReplyOutcome)
    assert outcome.failure == failures.MTPROTO_FOREIGN_REPLY
    assert outcome.reply is None and outcome.error_code is None


@pytest.mark.parametrize("code", ["6cfeffff", "53feffff"], ids=["-404", "-429"])
def test_unframed_error_code_then_close_is_foreign_on_abridged(code: str) -> None:
    """On abridged the first bare byte reads as a length (0x6c: 432 bytes); the peer then
    closes. That is a bare code, not a cut-off packet: foreign, with the bytes as evidence."""
    stream = MemoryStream(bytes.fromhex(code), [64])
    observation = asyncio.run(_step(stream, "abridged"))
    assert observation.failure == failures.MTPROTO_FOREIGN_REPLY
    assert observation.first_bytes == code
    assert observation.error_code is None and not observation.success


def test_parser_recognises_telegrams_rsa_keys() -> None:
    known = _res_pq(NONCE, fingerprint=FINGERPRINT)
    outcome = _examine("intermediate", struct.pack("<I", len(known)) + known)
    assert isinstance(outcome, mtproto.ReplyOutcome) and outcome.known_key is True
    unknown = _res_pq(NONCE, fingerprints=2)
    outcome = _examine("intermediate", struct.pack("<I", len(unknown)) + unknown)
    assert isinstance(outcome, mtproto.ReplyOutcome) and outcome.known_key is False
    assert mtproto.known_key([FINGERPRINT_HEX]) is True
    assert mtproto.known_key(["0123456789abcdef", FINGERPRINT_HEX.upper()]) is True
    assert mtproto.known_key(["0123456789abcdef"]) is False
    assert mtproto.known_key([]) is False


def test_known_fingerprints_are_those_of_the_official_clients_keys() -> None:
    """Each fingerprint in probe.steps.mtproto is recomputed from the PEM key it stands for."""
    computed = {reference_fingerprint(pem) for pem in TELEGRAM_PUBLIC_KEYS.values()}
    assert set(mtproto.KNOWN_KEY_FINGERPRINTS) == computed
    assert reference_fingerprint(TELEGRAM_PUBLIC_KEYS["tdlib-production"]) == FINGERPRINT_HEX


@pytest.mark.parametrize("transport", ["abridged", "intermediate", "padded_intermediate"])
@pytest.mark.parametrize(
    "data",
    [b"HTTP/1.1 403 Forbidden\r\n", b"\x15\x03\x03\x00\x02\x02\x28", b"<html>", b"SSH-2.0-x"],
    ids=["http", "tls-alert", "html", "ssh"],
)
def test_parser_foreign_replies_on_plain_transports(transport: str, data: bytes) -> None:
    outcome = _examine(transport, data)
    assert isinstance(outcome, mtproto.ReplyOutcome)
    assert outcome.failure == failures.MTPROTO_FOREIGN_REPLY


@pytest.mark.parametrize(
    ("transport", "prefix"),
    [
        ("intermediate", struct.pack("<I", 0x00FFFFF0)),
        ("padded_intermediate", struct.pack("<I", mtproto.MAX_REPLY_LENGTH + 1)),
        ("abridged", b"\x7f" + (0x3FFFF0).to_bytes(3, "little")),
    ],
)
def test_parser_refuses_absurd_lengths_without_waiting(transport: str, prefix: bytes) -> None:
    outcome = _examine(transport, prefix)
    assert isinstance(outcome, mtproto.ReplyOutcome)
    assert outcome.failure == failures.MTPROTO_ABSURD_LENGTH


def test_parser_tolerates_transport_padding_on_padded_intermediate() -> None:
    reply = _res_pq(NONCE) + b"\x01\x02\x03"
    padded = _examine("padded_intermediate", struct.pack("<I", len(reply)) + reply)
    assert isinstance(padded, mtproto.ReplyOutcome) and padded.reply == "res_pq"
    # intermediate packets are whole words: 87 bytes cannot be one
    plain = _examine("intermediate", struct.pack("<I", len(reply)) + reply)
    assert isinstance(plain, mtproto.ReplyOutcome)
    assert plain.failure == failures.MTPROTO_FOREIGN_REPLY


reply_prefixes = st.one_of(
    st.binary(max_size=600),
    # Valid-looking length prefixes followed by anything: reach the packet parser.
    st.builds(
        lambda n, tail: struct.pack("<I", n) + tail,
        st.integers(0, 2**32 - 1) | st.integers(0, 200),
        st.binary(max_size=300),
    ),
    st.builds(
        lambda tail, mutate: (struct.pack("<I", 84) + _res_pq(NONCE))[:mutate] + tail,
        st.binary(max_size=40),
        st.integers(0, 88),
    ),
)


@settings(max_examples=200, deadline=None)
@given(data=reply_prefixes, transport=st.sampled_from(mtproto.TRANSPORTS))
def test_examine_reply_never_raises_and_asks_within_the_cap(data: bytes, transport: str) -> None:
    result = mtproto.examine_reply(transport, data, data, NONCE)
    if isinstance(result, int):
        assert len(data) < result <= mtproto.MAX_REPLY_LENGTH + 4
    else:
        assert (result.failure is None) != (result.reply is None)


class MemoryStream:
    """An in-memory ByteStream that hands out `data` in the given chunk sizes, then EOF, and
    records the largest buffer the step could have built (bytes it pulled)."""

    def __init__(self, data: bytes, chunks: list[int]) -> None:
        self.data = data
        self.chunks = chunks or [1]
        self.position = 0
        self.bytes_sent = 0
        self.bytes_received = 0
        self.largest_request = 0

    async def send_all(self, data: bytes) -> None:
        self.bytes_sent += len(data)

    async def receive_some(self, max_bytes: int = 65536) -> bytes:
        self.largest_request = max(self.largest_request, max_bytes)
        size = min(max_bytes, self.chunks[self.position % len(self.chunks)] or 1)
        piece = self.data[self.position : self.position + size]
        self.position += len(piece)
        self.bytes_received += len(piece)
        return piece

    async def aclose(self) -> None:
        pass


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=reply_prefixes,
    chunks=st.lists(st.integers(1, 64), max_size=6),
    transport=st.sampled_from(mtproto.TRANSPORTS),
)
def test_step_never_raises_and_never_reads_beyond_the_cap(
    data: bytes, chunks: list[int], transport: str
) -> None:
    stream = MemoryStream(data + bytes(mtproto.MAX_REPLY_LENGTH * 2), chunks)
    # After the data, an endless run of zeros: an announced length is all the peer could fill.
    observation = asyncio.run(_step(stream, transport))
    assert stream.bytes_received <= mtproto.MAX_REPLY_LENGTH + 4
    assert stream.largest_request <= mtproto.MAX_REPLY_LENGTH + 4
    assert observation.bytes_received == stream.bytes_received
    assert observation.success == (observation.failure is None)
    if observation.failure is not None:
        assert observation.failed_operation == failures.MTPROTO_HANDSHAKE


async def _step(stream: MemoryStream, transport: str) -> MTProtoHandshake:
    trace = Trace(time.monotonic(), 1)
    return await mtproto.mtproto_handshake(
        stream, transport, trace=trace, timeout=5.0, address="127.0.0.1:1"
    )


# --- every outcome, every transport, over real connections to the fake DC ------------------

EXPECTED: dict[str, tuple[str | None, str | None]] = {
    # mode: (failure, reply)
    "ok": (None, "res_pq"),
    "padded_res_pq": (None, "res_pq"),
    "error_404": (None, "transport_error"),
    "error_429": (None, "transport_error"),
    "bare_error_429": (failures.MTPROTO_FOREIGN_REPLY, None),
    "reset": (failures.CONNECTION_RESET, None),
    "silent": (failures.GENERIC_TIMEOUT, None),
    "http": (failures.MTPROTO_FOREIGN_REPLY, None),
    "tls_alert": (failures.MTPROTO_FOREIGN_REPLY, None),
    "garbage": (failures.MTPROTO_FOREIGN_REPLY, None),
    "wrong_nonce": (failures.MTPROTO_NONCE_MISMATCH, None),
    "huge_length": (failures.MTPROTO_ABSURD_LENGTH, None),
    "close_mid_reply": (failures.EOF_ERROR, None),
}
# The message is 20 + 20 + 12..252 bytes of TDLib's padding (52..292, steps of 16).
WIRE_LENGTHS = {
    "abridged": {2 + 52 + 16 * k for k in range(16)},
    "intermediate": {8 + 52 + 16 * k for k in range(16)},
    "padded_intermediate": set(range(8 + 52, 8 + 292 + 16)),
    "obfuscated2": {68 + 52 + 16 * k for k in range(16)},
}


def test_expected_table_covers_every_mode() -> None:
    assert set(EXPECTED) == set(MODES)


async def _handshake(
    port: int,
    transport: str,
    *,
    source: str | None = None,
    timeout: float = TIMEOUT,
    dc: int | None = None,
    clock_ns: Any = time.time_ns,
) -> MTProtoHandshake:
    trace = Trace(time.monotonic(), 7)
    async with asyncio.timeout(3 * timeout + 2):
        connected = await tcp_connect(
            "127.0.0.1", port, trace=trace, timeout=timeout, source_address=source
        )
        assert connected.stream is not None, connected.observation.failure
        try:
            return await mtproto.mtproto_handshake(
                connected.stream,
                transport,
                trace=trace,
                timeout=timeout,
                address=f"127.0.0.1:{port}",
                dc=dc,
                clock_ns=clock_ns,
            )
        finally:
            await connected.stream.aclose()


@pytest.mark.parametrize("transport", mtproto.TRANSPORTS)
@pytest.mark.parametrize("mode", MODES)
async def test_every_outcome_on_every_transport(mode: str, transport: str) -> None:
    async with FakeDC(ports=[0], mode=mode) as dc:
        observation = await _handshake(dc.ports[0], transport)
    failure, reply = EXPECTED[mode]
    assert observation.failure == failure, observation
    assert observation.reply == reply
    assert observation.success == (failure is None)
    assert observation.transport == transport
    assert observation.address == f"127.0.0.1:{dc.ports[0]}"
    assert observation.failed_operation == (None if failure is None else "mtproto_handshake")
    assert observation.bytes_sent in WIRE_LENGTHS[transport]
    assert observation.t >= observation.t0 and observation.transaction_id == 7
    # The fake DC recognised our transport and found a well-formed req_pq_multi.
    [log] = dc.connections
    assert log.transport == transport and log.mode == mode
    assert log.nonce is not None and len(log.nonce) == 16
    assert log.rejected is None
    if reply == "res_pq":
        assert observation.server_public_key_fingerprints == [FINGERPRINT_HEX]
        assert observation.bytes_received >= 85  # 84 bytes + framing
    else:
        assert observation.server_public_key_fingerprints == []
    if mode == "error_404":
        assert observation.error_code == -404
    elif mode == "error_429":
        assert observation.error_code == -429
    else:
        assert observation.error_code is None
    if mode == "http":
        assert observation.first_bytes is not None
        assert bytes.fromhex(observation.first_bytes).startswith(b"HTTP/1.1 403")
        assert len(observation.first_bytes) == 64  # 32 bytes kept as evidence
    elif mode == "tls_alert":
        assert observation.first_bytes == "15030300020228"
    elif mode == "bare_error_429" and transport != "obfuscated2":
        assert observation.first_bytes == "53feffff"
    elif failure in (failures.MTPROTO_FOREIGN_REPLY, failures.MTPROTO_ABSURD_LENGTH):
        assert observation.first_bytes
    else:
        assert observation.first_bytes is None
    if mode in ("reset", "silent"):
        assert observation.bytes_received == 0


async def test_handshake_sends_the_dc_id_on_obfuscated2_only() -> None:
    async with FakeDC(ports=[0]) as dc:
        for transport in mtproto.TRANSPORTS:
            observation = await _handshake(dc.ports[0], transport, dc=-2)
            assert observation.reply == "res_pq", observation
    assert [(log.transport, log.dc) for log in dc.connections] == [
        (t, -2 if t == "obfuscated2" else None) for t in mtproto.TRANSPORTS
    ]


@pytest.mark.parametrize("unixtime", [YEAR_2040, YEAR_2106], ids=["2040", "2106"])
async def test_handshake_with_the_clock_at_2040_and_2106(unixtime: int) -> None:
    """Client and fake DC both living in 2040 (msg_id ≥ 2⁶³) and past 2106 (wrapped)."""
    clock_ns = unixtime * 10**9 + 123_456_789

    async with FakeDC(ports=[0], clock=lambda: clock_ns / 1e9) as dc:
        for transport in mtproto.TRANSPORTS:
            observation = await _handshake(dc.ports[0], transport, clock_ns=lambda: clock_ns)
            assert observation.reply == "res_pq", observation
    assert all(log.rejected is None for log in dc.connections)


# What official clients send first (see tests/servers/fake_dc.py for the sources).
def _tdlib_handshake(nonce: bytes) -> bytes:
    return unencrypted_message(0, mtproto.REQ_PQ_MULTI + nonce, bytes(12 + 16 * 5))


def _tdlib_ping(nonce: bytes) -> bytes:
    return unencrypted_message(1, mtproto.REQ_PQ_MULTI + nonce, bytes(12))


def _tdesktop_fake_req_pq(nonce: bytes) -> bytes:
    now = int(time.time())
    message_id = ((now << 32) | 0x5A5A5A5A) & ~3
    return unencrypted_message(message_id, bytes.fromhex("78974660") + nonce, bytes(4 * 37))


def _probe_request(nonce: bytes) -> bytes:
    message_id = mtproto.new_message_id(time.time_ns())
    return mtproto.req_pq_multi(nonce, message_id, mtproto.message_padding())


OFFICIAL_REQUESTS = {
    "tdlib-handshake": (_tdlib_handshake, "intermediate", True, 2),
    "tdlib-ping": (_tdlib_ping, "intermediate", True, -4),
    "tdesktop-fake-req-pq": (_tdesktop_fake_req_pq, "abridged", True, 2),
    "probe-plain": (_probe_request, "intermediate", False, None),
    "probe-padded": (_probe_request, "padded", False, None),
    "probe-abridged": (_probe_request, "abridged", False, None),
}


@pytest.mark.parametrize("name", OFFICIAL_REQUESTS)
async def test_fake_dc_accepts_what_official_clients_send(name: str) -> None:
    build, transport, obfuscated, dc_id = OFFICIAL_REQUESTS[name]
    nonce = bytes(range(100, 116))
    async with FakeDC(ports=[0]) as dc:
        reply = await raw_exchange(
            dc.ports[0],
            transport,
            build(nonce),
            obfuscated=obfuscated,
            header=FIXED_HEADERS[0],
            dc=dc_id,
        )
    [log] = dc.connections
    assert log.rejected is None and log.nonce == nonce and log.dc == dc_id
    prefix = 1 if transport == "abridged" else 4
    assert reply[prefix + 20 : prefix + 24] == mtproto.RES_PQ
    assert reply[prefix + 24 : prefix + 40] == nonce


def _message_id_now(fields: dict[str, Any]) -> int:
    """The request's message id, taken when the test runs (not when it is collected: a suite
    takes minutes, and "a minute ahead" must still be a minute ahead). `msg_offset` is
    (seconds from now, low bits)."""
    if "msg_offset" in fields:
        seconds, low = fields.pop("msg_offset")
        return ((int(time.time()) + seconds) << 32) | low
    return int(fields.pop("message_id", mtproto.new_message_id(time.time_ns())))


def _malformed(nonce: bytes, **fields: Any) -> bytes:
    message_id = _message_id_now(fields)
    body = fields.pop("body", mtproto.REQ_PQ_MULTI + nonce)
    return unencrypted_message(message_id, body, bytes(12), **fields)


MALFORMED_REQUESTS = {
    "auth_key_id not zero": ({"auth_key_id": 1}, "auth_key_id"),
    "msg_id not divisible by 4": ({"msg_offset": (0, 6)}, "msg_id"),
    "msg_id 10 minutes old": ({"msg_offset": (-600, 0)}, "msg_id"),
    "msg_id 1 minute ahead": ({"msg_offset": (60, 0)}, "msg_id"),
    "length beyond the packet": ({"length": 36}, "length"),
    "length short of the body": ({"length": 16}, "length"),
    "length not whole words": ({"length": 31}, "length"),
    "not a req_pq": ({"body": bytes(20)}, "constructor"),
}


@pytest.mark.parametrize("name", MALFORMED_REQUESTS)
@pytest.mark.parametrize("transport", ["intermediate", "abridged"])
async def test_fake_dc_refuses_malformed_requests(name: str, transport: str) -> None:
    fields, reason = MALFORMED_REQUESTS[name]
    async with FakeDC(ports=[0]) as dc:
        reply = await raw_exchange(dc.ports[0], transport, _malformed(NONCE, **dict(fields)))
    assert reply == b""  # closed without a word, like a DC that cannot parse the request
    [log] = dc.connections
    assert log.nonce is None and log.rejected is not None and log.rejected.startswith(reason)


async def test_dpi_on_plain_tags_only_lets_obfuscated2_through() -> None:
    """A DPI box that knows the plain transports' first bytes resets them; obfuscated2 has no
    fixed bytes to match and gets a genuine answer. The control address sees no DPI at all."""
    plain = ("abridged", "intermediate", "padded_intermediate")
    rules = [Rule("reset", peer="127.0.0.2", transport=t) for t in plain]
    async with FakeDC(ports=[0, 0], rules=rules) as dc:
        for port in dc.ports:
            for transport in mtproto.TRANSPORTS:
                probe = await _handshake(port, transport, source="127.0.0.2")
                control = await _handshake(port, transport, source="127.0.0.3")
                assert control.reply == "res_pq", control
                if transport in plain:
                    assert probe.failure == failures.CONNECTION_RESET
                else:
                    assert probe.reply == "res_pq", probe
    assert {log.peer for log in dc.connections} == {"127.0.0.2", "127.0.0.3"}


async def test_rules_can_select_by_port() -> None:
    async with FakeDC(ports=[0, 0]) as dc:
        dc.rules = (Rule("http", port=dc.ports[1]),)
        first = await _handshake(dc.ports[0], "intermediate")
        second = await _handshake(dc.ports[1], "intermediate")
    assert first.reply == "res_pq"
    assert second.failure == failures.MTPROTO_FOREIGN_REPLY


async def test_failed_write_is_attributed_to_write() -> None:
    """The peer resets the connection before we send: the failure belongs to the write."""
    reset_done = asyncio.Event()

    async def reset_on_accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
        reset_done.set()

    server = await asyncio.start_server(reset_on_accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        trace = Trace(time.monotonic(), 1)
        connected = await tcp_connect("127.0.0.1", port, trace=trace, timeout=TIMEOUT)
        assert connected.stream is not None
        await asyncio.wait_for(reset_done.wait(), HANG_BOUND)
        await asyncio.sleep(0.05)  # let the RST reach our socket
        try:
            observation = await mtproto.mtproto_handshake(
                connected.stream, "intermediate", trace=trace, timeout=TIMEOUT, address="x"
            )
        finally:
            await connected.stream.aclose()
    finally:
        server.close()
        await server.wait_closed()
    assert observation.failure == failures.CONNECTION_RESET
    assert observation.failed_operation == failures.WRITE
    assert observation.bytes_sent == 0
    assert [e.operation for e in trace.events][-1] == "write"


async def test_peer_that_is_no_dc_at_all_closes_on_unknown_first_bytes() -> None:
    async with FakeDC(ports=[0]) as dc:
        reader, writer = await asyncio.open_connection("127.0.0.1", dc.ports[0])
        writer.write(bytes(64))  # not a plain marker, and no valid obfuscated2 tag
        await writer.drain()
        assert await asyncio.wait_for(reader.read(100), HANG_BOUND) == b""
        writer.close()
    assert dc.connections[0].transport is None


async def test_observation_round_trips_through_a_record() -> None:
    async with FakeDC(ports=[0]) as dc:
        observation = await _handshake(dc.ports[0], "obfuscated2")
    again = MTProtoHandshake.from_dict(observation.to_dict())
    assert again == observation


def test_blackholed_port_times_out_connects() -> None:
    async def connect(port: int) -> str | None:
        trace = Trace(time.monotonic(), 1)
        result = await tcp_connect("127.0.0.1", port, trace=trace, timeout=0.3)
        return result.observation.failure

    with BlackholedPort() as port:
        assert asyncio.run(connect(port)) == failures.GENERIC_TIMEOUT


def test_rule_parser() -> None:
    assert parse_rule("reset:peer=127.0.0.2,transport=intermediate,port=443") == Rule(
        "reset", peer="127.0.0.2", transport="intermediate", port=443
    )
    assert parse_rule("ok") == Rule("ok")
    with pytest.raises(ValueError):
        parse_rule("reset:colour=red")
    with pytest.raises(ValueError):
        parse_rule("explode")


async def test_standalone_fake_dc_prints_its_ports_and_serves() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.servers.fake_dc",
        "--host",
        "127.0.0.1",
        "--ports",
        "0,0,0",
        "--mode",
        "ok",
        "--rule",
        "error_404:transport=abridged",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 20)
        ready = json.loads(line)
        assert ready["host"] == "127.0.0.1" and len(ready["ports"]) == 3
        for port in ready["ports"]:
            assert (await _handshake(port, "obfuscated2")).reply == "res_pq"
            assert (await _handshake(port, "abridged")).error_code == -404
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 10) == 0


# --- the lab's independent data centre (tests/lab/servers.py): same rules, own code ----------


async def _lab_dc_exchange(packet: bytes, transport: str, **kwargs: object) -> bytes:
    server = await asyncio.start_server(lab_servers.guarded(lab_servers.serve_dc), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        return await raw_exchange(port, transport, packet, timeout=0.5, **kwargs)  # type: ignore[arg-type]
    finally:
        server.close()
        await server.wait_closed()


LAB_NONCE = bytes(range(50, 66))
HEADER = bytes(range(1, 65))


@pytest.mark.parametrize(
    ("name", "message_id", "constructor", "padding", "transport", "dc"),
    [
        ("tdlib handshake", 0, "f18e7ebe", 12 + 16 * 3, "intermediate", 2),
        ("tdlib ping", 1, "f18e7ebe", 12, "intermediate", -4),
        ("tdesktop fake req_pq", None, "78974660", 4 * 63, "abridged", 2),
        ("probe", None, "f18e7ebe", 12 + 16 * 15, "padded", None),
    ],
)
async def test_lab_dc_answers_what_official_clients_send(
    name: str,
    message_id: int | None,
    constructor: str,
    padding: int,
    transport: str,
    dc: int | None,
) -> None:
    if message_id is None:
        message_id = mtproto.new_message_id(time.time_ns())
    packet = unencrypted_message(message_id, bytes.fromhex(constructor) + LAB_NONCE, bytes(padding))
    reply = await _lab_dc_exchange(
        packet, transport, obfuscated=dc is not None, header=HEADER, dc=dc
    )
    start = 1 if transport == "abridged" else 4
    assert reply[start + 20 : start + 24] == mtproto.RES_PQ, name
    assert reply[start + 24 : start + 40] == LAB_NONCE, name


@pytest.mark.parametrize(
    ("name", "fields"),
    [
        ("auth_key_id not zero", {"auth_key_id": 7}),
        ("msg_id not divisible by 4", {"msg_offset": (0, 2)}),
        ("msg_id 10 minutes old", {"msg_offset": (-600, 0)}),
        ("msg_id 1 minute ahead", {"msg_offset": (60, 0)}),
        ("length beyond the packet", {"length": 40}),
        ("length short of the body", {"length": 12}),
    ],
)
async def test_lab_dc_refuses_malformed_requests(name: str, fields: dict[str, Any]) -> None:
    fields = dict(fields)
    message_id = _message_id_now(fields)
    body = mtproto.REQ_PQ_MULTI + LAB_NONCE
    packet = unencrypted_message(message_id, body, bytes(12), **fields)
    assert await _lab_dc_exchange(packet, "intermediate") == b"", name


@pytest.mark.parametrize("transport", mtproto.TRANSPORTS)
async def test_lab_dc_answers_the_probes_own_handshake(transport: str) -> None:
    server = await asyncio.start_server(lab_servers.guarded(lab_servers.serve_dc), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        trace = Trace(time.monotonic(), 1)
        connected = await tcp_connect("127.0.0.1", port, trace=trace, timeout=2.0)
        assert connected.stream is not None
        try:
            observation = await mtproto.mtproto_handshake(
                connected.stream, transport, trace=trace, timeout=2.0, address="lab", dc=-2
            )
        finally:
            await connected.stream.aclose()
    finally:
        server.close()
        await server.wait_closed()
    assert observation.reply == "res_pq", observation
    assert mtproto.known_key(observation.server_public_key_fingerprints)


# --- the per-target flow (probe.round.measure) and `probe run` ------------------------------------


def _mtproto_target(ports: tuple[int, ...], transports: tuple[str, ...]) -> Target:
    return Target(
        id="telegram/fake-dc",
        service="telegram",
        check="mtproto",
        host="127.0.0.1",
        ports=ports,
        transports=transports,
    )


def _run_state(source: str | None, timeout: float = TIMEOUT) -> RunState:
    # The target is an IP literal: the resolver is never asked (and points at nothing anyway).
    resolver = dns.Resolver(("127.0.0.1", 9), pool=None)
    return RunState(config=MeasureConfig(timeout=timeout, source_address=source), resolver=resolver)


async def test_flow_measures_every_transport_on_every_port_and_one_timeout_per_dead_port() -> None:
    async with FakeDC(ports=[0, 0]) as dc:
        with BlackholedPort() as dead:
            target = _mtproto_target((dc.ports[0], dc.ports[1], dead), mtproto.TRANSPORTS)
            async with asyncio.timeout(4 * (3 * TIMEOUT + 2)):
                observations = await measure_target(target, _run_state("127.0.0.2"))
    live = {(port, t) for port in dc.ports for t in mtproto.TRANSPORTS}
    seen = {(int(m.address.rsplit(":", 1)[1]), m.transport) for m in observations.mtproto}
    assert seen == live and len(observations.mtproto) == len(live)
    assert all(m.reply == "res_pq" for m in observations.mtproto)
    # One new connection per transport on the live ports; the dead port is tried once only.
    connects = [(c.port, c.failure) for c in observations.tcp_connect]
    assert sorted(connects, key=str) == sorted(
        [(port, None) for port in dc.ports for _ in mtproto.TRANSPORTS]
        + [(dead, failures.GENERIC_TIMEOUT)],
        key=str,
    )
    assert len(dc.connections) == len(live)
    # The flows' observations share a transaction id per (ip, port).
    by_port: dict[int, set[int]] = {}
    for m in observations.mtproto:
        by_port.setdefault(int(m.address.rsplit(":", 1)[1]), set()).add(m.transaction_id)
    assert all(len(ids) == 1 for ids in by_port.values())


async def test_flow_shows_which_transport_the_dpi_lets_through() -> None:
    plain = ("abridged", "intermediate", "padded_intermediate")
    rules = [Rule("reset", peer="127.0.0.2", transport=t) for t in plain]
    rules.append(Rule("silent", peer="127.0.0.2", transport="obfuscated2", port=None))
    async with FakeDC(ports=[0, 0], rules=rules) as dc:
        dc.rules = (Rule("ok", port=dc.ports[1], transport="obfuscated2"), *rules)
        target = _mtproto_target(tuple(dc.ports), ("obfuscated2", "intermediate"))
        async with asyncio.timeout(4 * (3 * TIMEOUT + 2)):
            probe = await measure_target(target, _run_state("127.0.0.2"))
            control = await measure_target(target, _run_state("127.0.0.3"))
    outcome = {
        (int(m.address.rsplit(":", 1)[1]), m.transport): m.failure or m.reply for m in probe.mtproto
    }
    assert outcome == {
        (dc.ports[0], "obfuscated2"): failures.GENERIC_TIMEOUT,
        (dc.ports[0], "intermediate"): failures.CONNECTION_RESET,
        (dc.ports[1], "obfuscated2"): "res_pq",
        (dc.ports[1], "intermediate"): failures.CONNECTION_RESET,
    }
    assert [m.reply for m in control.mtproto] == ["res_pq"] * 4


async def test_flow_sends_the_targets_dc_id_on_obfuscated2() -> None:
    async with FakeDC(ports=[0]) as dc:
        target = Target(
            id="telegram/fake-media-dc",
            service="telegram",
            check="mtproto",
            host="127.0.0.1",
            ports=(dc.ports[0],),
            transports=("obfuscated2", "intermediate"),
            dc=-2,
        )
        observations = await measure_target(target, _run_state(None))
    assert [m.reply for m in observations.mtproto] == ["res_pq", "res_pq"]
    assert [(log.transport, log.dc) for log in dc.connections] == [
        ("obfuscated2", -2),
        ("intermediate", None),
    ]


async def test_flow_with_a_refused_port_skips_its_transports() -> None:
    async with FakeDC(ports=[0]) as dc:
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        refused_port = closed.getsockname()[1]
        closed.close()  # bound, never listening: connects are refused
        target = _mtproto_target((refused_port, dc.ports[0]), ("obfuscated2", "intermediate"))
        observations = await measure_target(target, _run_state(None))
    assert [c.failure for c in observations.tcp_connect if c.port == refused_port] == [
        failures.CONNECTION_REFUSED
    ]
    assert {m.transport for m in observations.mtproto} == {"obfuscated2", "intermediate"}
    assert all(m.address.endswith(f":{dc.ports[0]}") for m in observations.mtproto)


GUARDED_CLI = """
import sys
from tests import netguard
netguard.install()
from probe.cli import main
try:
    main(sys.argv[1:])
finally:
    for violation in netguard.violations:
        print("NETGUARD", violation, file=sys.stderr)
"""


async def test_probe_run_writes_an_observation_per_transport_and_port(tmp_path: Path) -> None:
    """`probe run` end to end (subprocess, with the network guard installed in it)."""
    async with FakeDC(ports=[0, 0], rules=[Rule("error_404", transport="abridged")]) as dc:
        transports = ", ".join(f'"{t}"' for t in mtproto.TRANSPORTS)
        target_list = tmp_path / "fake.toml"
        target_list.write_text(
            '[list]\nname = "fake"\nupdated = 2026-01-01\n\n'
            '[[targets]]\nid = "telegram/fake-dc"\nservice = "telegram"\ncheck = "mtproto"\n'
            f'host = "127.0.0.1"\nports = [{dc.ports[0]}, {dc.ports[1]}]\n'
            f"transports = [{transports}]\n"
        )
        unused = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        unused.bind(("127.0.0.1", 0))
        resolver_port = unused.getsockname()[1]
        unused.close()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            GUARDED_CLI,
            "run",
            str(target_list),
            "--no-control",
            "--out",
            str(tmp_path / "results"),
            "--timeout",
            "1",
            "--resolver",
            f"127.0.0.1:{resolver_port}",
            "--source-address",
            "127.0.0.2",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=str(REPO_ROOT),
        )
        _, stderr = await asyncio.wait_for(process.communicate(), 90)
    assert b"NETGUARD" not in stderr, stderr.decode()
    assert process.returncode == 0, stderr.decode()
    [result_file] = list((tmp_path / "results").rglob("*.jsonl"))
    records = [json.loads(line) for line in result_file.read_text().splitlines()]
    [record] = [r for r in records if r["input"] == "telegram/fake-dc"]
    handshakes = record["test_keys"]["mtproto"]
    seen = {(h["address"], h["transport"]) for h in handshakes}
    assert seen == {(f"127.0.0.1:{port}", t) for port in dc.ports for t in mtproto.TRANSPORTS}
    for handshake in handshakes:
        if handshake["transport"] == "abridged":
            assert handshake["reply"] == "transport_error" and handshake["error_code"] == -404
        else:
            assert handshake["reply"] == "res_pq"
            assert handshake["server_public_key_fingerprints"] == [FINGERPRINT_HEX]
    assert record["test_keys"]["verdict"]["status"] == "ok", record["test_keys"]["verdict"]
