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

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe import dns, failures, mtproto
from probe.measure import MeasureConfig, RunState, measure_target
from probe.observations import MTProtoHandshake, Trace
from probe.targets import Target
from probe.tcp import tcp_connect
from tests.mtproto_reference import ReferenceCTR, reference_obfuscated2, reference_server_reply
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
    now = time.time()
    message_id = mtproto.new_message_id(now)
    assert message_id % 4 == 0
    assert abs(message_id / 2**32 - now) < 1


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


def _res_pq(nonce: bytes, *, fingerprints: int = 1, message_id_mod: int = 1) -> bytes:
    body = (
        mtproto.RES_PQ
        + nonce
        + bytes(16)
        + b"\x08"
        + bytes.fromhex("17ed48941a08f981")
        + bytes(3)
        + mtproto.VECTOR
        + struct.pack("<i", fingerprints)
        + b"".join(struct.pack("<Q", 0x1111111111111111 * (i + 1)) for i in range(fingerprints))
    )
    return struct.pack("<qqi", 0, (MESSAGE_ID & ~3) | message_id_mod, len(body)) + body


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


@pytest.mark.parametrize(
    ("transport", "data", "code"),
    [
        ("intermediate", bytes.fromhex("040000006cfeffff"), -404),
        ("padded_intermediate", bytes.fromhex("070000006cfeffff000000"), -404),
        ("abridged", bytes.fromhex("0153feffff"), -429),
        ("abridged", bytes.fromhex("6cfeffff"), -404),  # bare, unframed
        ("intermediate", bytes.fromhex("53feffff"), -429),
    ],
)
def test_parser_transport_errors(transport: str, data: bytes, code: int) -> None:
    outcome = _examine(transport, data)
    assert isinstance(outcome, mtproto.ReplyOutcome)
    assert outcome.reply == "transport_error" and outcome.error_code == code
    assert outcome.failure is None


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


def test_parser_tolerates_padding_only_on_padded_intermediate() -> None:
    reply = _res_pq(NONCE) + b"\x01\x02\x03"
    padded = _examine("padded_intermediate", struct.pack("<I", len(reply)) + reply)
    assert isinstance(padded, mtproto.ReplyOutcome) and padded.reply == "res_pq"
    plain = _examine("intermediate", struct.pack("<I", 88) + reply + b"\x00")
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
    "error_404": (None, "transport_error"),
    "bare_error_429": (None, "transport_error"),
    "reset": (failures.CONNECTION_RESET, None),
    "silent": (failures.GENERIC_TIMEOUT, None),
    "http": (failures.MTPROTO_FOREIGN_REPLY, None),
    "tls_alert": (failures.MTPROTO_FOREIGN_REPLY, None),
    "garbage": (failures.MTPROTO_FOREIGN_REPLY, None),
    "wrong_nonce": (failures.MTPROTO_NONCE_MISMATCH, None),
    "huge_length": (failures.MTPROTO_ABSURD_LENGTH, None),
    "close_mid_reply": (failures.EOF_ERROR, None),
}
WIRE_LENGTHS = {
    "abridged": {42},
    "intermediate": {48},
    "padded_intermediate": set(range(48, 64)),
    "obfuscated2": {108},
}


def test_expected_table_covers_every_mode() -> None:
    assert set(EXPECTED) == set(MODES)


async def _handshake(
    port: int, transport: str, *, source: str | None = None, timeout: float = TIMEOUT
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
    if mode == "ok":
        assert observation.server_public_key_fingerprints == [FINGERPRINT_HEX]
        assert observation.bytes_received >= 85  # 84 bytes + framing
    else:
        assert observation.server_public_key_fingerprints == []
    if mode == "error_404":
        assert observation.error_code == -404
    elif mode == "bare_error_429":
        assert observation.error_code == -429
    else:
        assert observation.error_code is None
    if mode == "http":
        assert observation.first_bytes is not None
        assert bytes.fromhex(observation.first_bytes).startswith(b"HTTP/1.1 403")
        assert len(observation.first_bytes) == 64  # 32 bytes kept as evidence
    elif mode == "tls_alert":
        assert observation.first_bytes == "15030300020228"
    elif failure in (failures.MTPROTO_FOREIGN_REPLY, failures.MTPROTO_ABSURD_LENGTH):
        assert observation.first_bytes
    else:
        assert observation.first_bytes is None
    if mode in ("reset", "silent"):
        assert observation.bytes_received == 0


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


# --- the per-target flow (probe.measure) and `probe run` ------------------------------------


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
