"""The TLS step (`probe.steps.tls.tls_handshake`), `TLSStream` and `client_context`, against real
loopback TLS servers serving trustme certificates, well-behaved and misbehaving."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import sys
import time
from pathlib import Path

import pytest
import trustme
from cryptography import x509

from probe import failures
from probe.observations import TLSHandshake, Trace
from probe.steps.tcp import ByteCounter, tcp_connect
from probe.steps.tls import TLSHandshakeResult, TLSStream, tls_handshake
from probe.steps.tls_context import client_context
from tests.servers.certs import TestPKI, pki, pki_ca_file  # noqa: F401 (fixtures)
from tests.servers.tls_server import TLSBehaviour, TLSServer, echo_app, send_then_close
from tests.test_tcp import CONTROL_SOURCE, PROBE_SOURCE, ipv6_loopback_available

TIMEOUT = 1.0
NAME = "test.localhost"
REPO_ROOT = str(Path(__file__).resolve().parent.parent)


def new_trace() -> Trace:
    return Trace(zero=time.monotonic(), transaction_id=3)


async def handshake(
    server: TLSServer,
    server_name: str | None,
    context: ssl.SSLContext,
    *,
    trace: Trace | None = None,
    ip: str = "127.0.0.1",
    source_address: str | None = None,
    timeout: float = TIMEOUT,
    counter: ByteCounter | None = None,
) -> TLSHandshakeResult:
    trace = trace or new_trace()
    connected = await tcp_connect(
        ip,
        server.port,
        trace=trace,
        timeout=TIMEOUT,
        source_address=source_address,
        counter=counter,
    )
    assert connected.stream is not None, connected.observation.failure
    return await tls_handshake(
        connected.stream, server_name, trace=trace, timeout=timeout, context=context
    )


def recorded_chain(observation: TLSHandshake) -> list[x509.Certificate]:
    return [
        x509.load_der_x509_certificate(base64.b64decode(c)) for c in observation.peer_certificates
    ]


def served_chain(cert: trustme.LeafCert) -> list[x509.Certificate]:
    return [x509.load_pem_x509_certificate(blob.bytes()) for blob in cert.cert_chain_pems]


@pytest.fixture
def context(pki_ca_file: str) -> ssl.SSLContext:  # noqa: F811
    return client_context((pki_ca_file,))


# --- success ---------------------------------------------------------------------------------


async def test_handshake_success_records_version_cipher_alpn_and_chain(
    pki: TestPKI,  # noqa: F811
    context: ssl.SSLContext,
) -> None:
    trace = new_trace()
    async with TLSServer(pki.good, app=echo_app) as server:
        result = await handshake(server, NAME, context, trace=trace)
        assert result.stream is not None
        await result.stream.aclose()
    observation = result.observation
    assert observation.failure is None
    assert observation.failed_operation is None
    assert observation.tls_version == "TLSv1.3"
    assert observation.cipher_suite and observation.cipher_suite.startswith("TLS_")
    assert observation.negotiated_protocol == "http/1.1"
    assert observation.server_name == NAME
    assert observation.address == f"127.0.0.1:{server.port}"
    assert observation.no_tls_verify is False
    assert observation.transaction_id == 3
    assert 0 <= observation.t0 <= observation.t
    assert recorded_chain(observation) == served_chain(pki.good)
    assert server.server_names == [NAME]  # SNI was sent
    ops = [event.operation for event in trace.events]
    assert ops[0] == "connect"
    assert ops[1] == "tls_handshake_start"
    assert "tls_handshake_done" in ops
    assert {"write", "read"} <= set(ops[1 : ops.index("tls_handshake_done")])
    done = trace.events[ops.index("tls_handshake_done")]
    assert done.failure is None


async def test_handshake_records_the_intermediate_too(
    pki: TestPKI,  # noqa: F811
    context: ssl.SSLContext,
) -> None:
    async with TLSServer(pki.chained) as server:
        result = await handshake(server, NAME, context)
        assert result.stream is not None
        await result.stream.aclose()
    chain = recorded_chain(result.observation)
    assert len(chain) == 2
    assert chain == served_chain(pki.chained)


async def test_tls12_only_server_negotiates_tls12(
    pki: TestPKI,  # noqa: F811
    context: ssl.SSLContext,
) -> None:
    async with TLSServer(pki.good) as server:
        server.context.maximum_version = ssl.TLSVersion.TLSv1_2
        result = await handshake(server, NAME, context)
        assert result.stream is not None
        await result.stream.aclose()
    assert result.observation.tls_version == "TLSv1.2"
    # IANA's name, as OONI records it, not OpenSSL's "ECDHE-ECDSA-AES256-GCM-SHA384"
    assert result.observation.cipher_suite in (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    )
    assert result.observation.negotiated_protocol == "http/1.1"


async def test_ip_literal_server_name_sends_no_sni_and_verifies_the_ip(
    pki: TestPKI,  # noqa: F811
    context: ssl.SSLContext,
) -> None:
    async with TLSServer(pki.good) as server:
        result = await handshake(server, "127.0.0.1", context)
        assert result.stream is not None
        await result.stream.aclose()
        wrong_ip = await handshake(server, "127.0.0.9", context)
    assert result.observation.failure is None
    assert result.observation.server_name == "127.0.0.1"
    assert server.server_names[0] is None  # no SNI for an IP literal
    assert wrong_ip.observation.failure == failures.SSL_INVALID_HOSTNAME


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback (::1) here")
async def test_ipv6_handshake_with_ip_literal(
    pki: TestPKI,  # noqa: F811
    context: ssl.SSLContext,
) -> None:
    async with TLSServer(pki.good, host="::1") as server:
        result = await handshake(server, "::1", context, ip="::1")
        assert result.stream is not None
        await result.stream.aclose()
    assert result.observation.failure is None
    assert result.observation.address == f"[::1]:{server.port}"


async def test_no_server_name_verifies_the_chain_but_no_name(
    pki: TestPKI,  # noqa: F811
    context: ssl.SSLContext,
) -> None:
    async with TLSServer(pki.wrong_name) as server:
        result = await handshake(server, None, context)
        assert result.stream is not None
        await result.stream.aclose()
    async with TLSServer(pki.unknown_ca) as other_server:
        untrusted = await handshake(other_server, None, context)
    assert result.observation.failure is None
    assert result.observation.server_name == ""
    assert server.server_names == [None]  # no SNI sent
    assert untrusted.observation.failure == failures.SSL_UNKNOWN_AUTHORITY


# --- certificate failures: classified, and the chain is still recorded -----------------------


@pytest.mark.parametrize(
    ("which", "expected"),
    [
        ("wrong_name", failures.SSL_INVALID_HOSTNAME),
        ("unknown_ca", failures.SSL_UNKNOWN_AUTHORITY),
        ("expired", failures.SSL_INVALID_CERTIFICATE),
    ],
)
async def test_certificate_failures_keep_the_chain(
    pki: TestPKI,  # noqa: F811
    context: ssl.SSLContext,
    which: str,
    expected: str,
) -> None:
    cert = getattr(pki, which)
    trace = new_trace()
    async with TLSServer(cert) as server:
        result = await handshake(server, NAME, context, trace=trace)
    assert result.stream is None
    observation = result.observation
    assert observation.failure == expected
    assert observation.failed_operation == failures.TLS_HANDSHAKE
    assert observation.tls_version is None
    assert recorded_chain(observation) == served_chain(cert)
    done = [e for e in trace.events if e.operation == "tls_handshake_done"]
    assert [e.failure for e in done] == [expected]


async def test_without_extra_roots_the_test_ca_is_unknown(pki: TestPKI) -> None:  # noqa: F811
    async with TLSServer(pki.good) as server:
        result = await handshake(server, NAME, client_context())
    assert result.observation.failure == failures.SSL_UNKNOWN_AUTHORITY
    assert len(result.observation.peer_certificates) == 1


# --- misbehaving servers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("behaviour", "expected"),
    [
        (TLSBehaviour.RESET, failures.CONNECTION_RESET),
        (TLSBehaviour.CLOSE, failures.EOF_ERROR),
        (TLSBehaviour.GARBAGE, failures.SSL_FAILED_HANDSHAKE),
        (TLSBehaviour.ALERT, failures.SSL_FAILED_HANDSHAKE),
        (TLSBehaviour.NO_SHARED_CIPHER, failures.SSL_FAILED_HANDSHAKE),
    ],
)
async def test_misbehaving_servers(
    pki: TestPKI,  # noqa: F811
    context: ssl.SSLContext,
    behaviour: TLSBehaviour,
    expected: str,
) -> None:
    async with TLSServer(pki.good, behaviour) as server:
        result = await handshake(server, NAME, context)
    assert result.stream is None
    assert result.observation.failure == expected
    assert result.observation.failed_operation == failures.TLS_HANDSHAKE
    assert result.observation.peer_certificates == []


async def test_silent_server_is_a_generic_timeout_within_the_deadline(
    pki: TestPKI,  # noqa: F811
    context: ssl.SSLContext,
) -> None:
    timeout = 0.5
    async with TLSServer(pki.good, TLSBehaviour.SILENT) as server:
        started = time.monotonic()
        result = await handshake(server, NAME, context, timeout=timeout)
        elapsed = time.monotonic() - started
    assert result.observation.failure == failures.GENERIC_TIMEOUT
    assert result.observation.failed_operation == failures.TLS_HANDSHAKE
    assert elapsed < 3 * timeout + 2


async def test_behaviour_by_source_address(
    pki: TestPKI,  # noqa: F811
    context: ssl.SSLContext,
) -> None:
    """SNI filtering "here" (the probe's address) while the control's address gets through."""
    by_peer = {PROBE_SOURCE: TLSBehaviour.RESET}
    async with TLSServer(pki.good, by_peer=by_peer) as server:
        probe = await handshake(server, NAME, context, source_address=PROBE_SOURCE)
        control = await handshake(server, NAME, context, source_address=CONTROL_SOURCE)
        assert control.stream is not None
        await control.stream.aclose()
    assert probe.observation.failure == failures.CONNECTION_RESET
    assert control.observation.failure is None
    assert server.peers == [PROBE_SOURCE, CONTROL_SOURCE]


async def test_cancellation_escapes_and_closes_the_socket(
    pki: TestPKI,  # noqa: F811
    context: ssl.SSLContext,
) -> None:
    async with TLSServer(pki.good, TLSBehaviour.SILENT) as server:
        trace = new_trace()
        connected = await tcp_connect("127.0.0.1", server.port, trace=trace, timeout=TIMEOUT)
        assert connected.stream is not None
        task = asyncio.create_task(
            tls_handshake(connected.stream, NAME, trace=trace, timeout=5.0, context=context)
        )
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert connected.stream.sock.fileno() == -1


# --- the stream after the handshake -------------------------------------------------------------


async def test_tls_stream_echo_counts_plaintext_and_wire_bytes(
    pki: TestPKI,  # noqa: F811
    context: ssl.SSLContext,
) -> None:
    counter = ByteCounter()
    payload = bytes(range(256)) * 800  # 200 KiB: many TLS records each way
    async with TLSServer(pki.good, app=echo_app) as server:
        result = await handshake(server, NAME, context, counter=counter)
        stream = result.stream
        assert isinstance(stream, TLSStream)
        wire_sent_after_handshake = stream.transport.bytes_sent
        received = bytearray()

        async def read_all() -> None:
            while len(received) < len(payload):
                chunk = await stream.receive_some(16384)
                assert chunk, "early end of stream"
                received.extend(chunk)

        try:
            async with asyncio.timeout(5), asyncio.TaskGroup() as group:
                group.create_task(read_all())
                await stream.send_all(payload)
        finally:
            await stream.aclose()
    assert bytes(received) == payload
    assert stream.bytes_sent == len(payload)
    assert stream.bytes_received == len(payload)
    # The wire carries the payload plus record overhead, and the handshake before it.
    assert stream.transport.bytes_sent - wire_sent_after_handshake > len(payload)
    assert counter.sent == stream.transport.bytes_sent
    assert counter.received == stream.transport.bytes_received > len(payload)


async def test_close_notify_ends_the_stream_cleanly(
    pki: TestPKI,  # noqa: F811
    context: ssl.SSLContext,
) -> None:
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    async with TLSServer(pki.good, app=send_then_close(response)) as server:
        result = await handshake(server, NAME, context)
        stream = result.stream
        assert stream is not None
        try:
            await stream.send_all(b"GET / HTTP/1.1\r\nHost: test.localhost\r\n\r\n")
            received = await _read_to_end(stream)
        finally:
            await stream.aclose()
    assert received == response
    assert stream.ragged_eof is False


async def test_eof_without_close_notify_after_the_response_is_end_of_stream(
    pki: TestPKI,  # noqa: F811
    context: ssl.SSLContext,
) -> None:
    response = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody"
    async with TLSServer(pki.good, app=send_then_close(response, close_notify=False)) as server:
        result = await handshake(server, NAME, context)
        stream = result.stream
        assert stream is not None
        try:
            await stream.send_all(b"GET / HTTP/1.1\r\nHost: test.localhost\r\n\r\n")
            received = await _read_to_end(stream)
        finally:
            await stream.aclose()
    assert received == response
    assert stream.ragged_eof is True


async def test_reset_after_the_handshake_propagates_as_connection_reset(
    pki: TestPKI,  # noqa: F811
    context: ssl.SSLContext,
) -> None:
    from tests.servers.tcp_server import reset_connection

    async def reset_app(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        reset_connection(writer)

    async with TLSServer(pki.good, app=reset_app) as server:
        result = await handshake(server, NAME, context)
        stream = result.stream
        assert stream is not None
        try:
            await stream.send_all(b"hello")
            with pytest.raises(OSError) as raised:
                async with asyncio.timeout(TIMEOUT):
                    await _read_to_end(stream)
        finally:
            await stream.aclose()
    assert failures.classify(raised.value) == failures.CONNECTION_RESET


async def test_aclose_is_idempotent_and_closes_the_socket(
    pki: TestPKI,  # noqa: F811
    context: ssl.SSLContext,
) -> None:
    async with TLSServer(pki.good) as server:
        result = await handshake(server, NAME, context)
        stream = result.stream
        assert stream is not None
        await stream.aclose()
        await stream.aclose()
        assert await stream.receive_some() == b""
        with pytest.raises(ssl.SSLError):
            await stream.send_all(b"late")
    assert stream.transport.sock.fileno() == -1


async def test_wire_writes_in_flight_are_serialised_in_order(context: ssl.SSLContext) -> None:
    """A flush while another waits for room goes after it, a cancelled waiter takes no turn,
    and a writer cancelled mid-send hands the turn on."""

    class SlowTransport:
        def __init__(self) -> None:
            self.sent: list[bytes] = []
            self.room = asyncio.Event()

        async def send_all(self, data: bytes, *, timeout: float | None = None) -> None:
            await self.room.wait()
            self.sent.append(data)

    transport = SlowTransport()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    ssl_object = context.wrap_bio(incoming, outgoing, server_hostname=NAME)
    stream = TLSStream(transport, ssl_object, incoming, outgoing)  # type: ignore[arg-type]
    outgoing.write(b"first")
    first = asyncio.create_task(stream._flush())
    await asyncio.sleep(0)
    outgoing.write(b"second")
    second = asyncio.create_task(stream._flush())
    cancelled = asyncio.create_task(stream._flush())
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    assert transport.sent == [] and not second.done()
    transport.room.set()
    await asyncio.wait_for(asyncio.gather(first, second), TIMEOUT)
    assert transport.sent == [b"first", b"second"]
    assert cancelled.cancelled()

    transport.room.clear()
    outgoing.write(b"third")
    stuck = asyncio.create_task(stream._flush())
    await asyncio.sleep(0)
    outgoing.write(b"fourth")
    after = asyncio.create_task(stream._flush())
    await asyncio.sleep(0)
    stuck.cancel()
    await asyncio.sleep(0)
    transport.room.set()
    await asyncio.wait_for(after, TIMEOUT)
    assert transport.sent == [b"first", b"second", b"fourth"]


async def _read_to_end(stream: TLSStream) -> bytes:
    received = b""
    async with asyncio.timeout(TIMEOUT):
        for _ in range(1000):
            chunk = await stream.receive_some()
            if not chunk:
                return received
            received += chunk
    raise AssertionError("stream did not end")


# --- the context and the record ----------------------------------------------------------------


def test_client_context_settings_and_cache(pki_ca_file: str) -> None:  # noqa: F811
    context = client_context((pki_ca_file,))
    assert context is client_context((pki_ca_file,))
    assert context is not client_context()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    # The extra root is added to, not instead of, the system store.
    assert len(context.get_ca_certs()) == len(client_context().get_ca_certs()) + 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "CA file not found"),
        (b"not a certificate\n", "not a PEM certificate file"),
        (b"", "not a PEM certificate file"),
    ],
)
def test_client_context_rejects_bad_ca_files(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "roots.pem"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ValueError) as raised:
        client_context((str(path),))
    text = str(raised.value)
    assert text.startswith(f"{path}: ")
    assert message in text
    assert "\n" not in text


def test_client_context_rejects_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read CA file"):
        client_context((str(tmp_path),))


@pytest.mark.parametrize("which", ["good", "expired"])
async def test_tls_observation_round_trips_through_json(
    pki: TestPKI,  # noqa: F811
    context: ssl.SSLContext,
    which: str,
) -> None:
    async with TLSServer(getattr(pki, which)) as server:
        result = await handshake(server, NAME, context)
        if result.stream is not None:
            await result.stream.aclose()
    data = json.loads(json.dumps(result.observation.to_dict()))
    assert data["peer_certificates"][0]["format"] == "base64"
    assert TLSHandshake.from_dict(data) == result.observation


async def test_standalone_server_process(tmp_path: Path) -> None:
    """`python -m tests.servers.tls_server` serves on loopback and writes its CA for clients."""
    ca_path = tmp_path / "ca.pem"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.servers.tls_server",
        "--ca-out",
        str(ca_path),
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(20):
            line = await process.stdout.readline()
        announced = json.loads(line)
        trace = new_trace()
        connected = await tcp_connect("127.0.0.1", announced["port"], trace=trace, timeout=TIMEOUT)
        assert connected.stream is not None
        result = await tls_handshake(
            connected.stream,
            NAME,
            trace=trace,
            timeout=TIMEOUT,
            context=client_context((str(ca_path),)),
        )
        assert result.observation.failure is None
        assert result.stream is not None
        try:
            await result.stream.send_all(b"echo?")
            assert await _read_some(result.stream) == b"echo?"
        finally:
            await result.stream.aclose()
    finally:
        process.terminate()
        await process.wait()


async def _read_some(stream: TLSStream) -> bytes:
    async with asyncio.timeout(TIMEOUT):
        return await stream.receive_some()
