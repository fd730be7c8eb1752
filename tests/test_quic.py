"""The QUIC step against a real aioquic server on loopback with trustme certificates: a
handshake with ALPN h3, every certificate failure, a refused ALPN, silence, bounded time."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from probe import failures
from probe.observations import Trace
from probe.steps.quic import quic_handshake
from tests.servers.certs import TestPKI, pki, pki_ca_file  # noqa: F401
from tests.servers.quic_server import QuicServer, write_leaf

TIMEOUT = 1.0
HANG_BOUND = 3 * TIMEOUT + 2


def _trace() -> Trace:
    return Trace(zero=time.monotonic(), transaction_id=1)


async def _handshake(
    leaf: object, tmp_path: Path, ca_file: str, *, name: str = "test.localhost", mode: str = "ok"
):
    cert, key = write_leaf(leaf, tmp_path)
    async with QuicServer(cert, key, mode=mode) as server:
        started = time.monotonic()
        observation = await quic_handshake(
            "127.0.0.1", server.port, name, trace=_trace(), timeout=TIMEOUT, ca_files=(ca_file,)
        )
        assert time.monotonic() - started < HANG_BOUND
    return observation


async def test_a_quic_handshake_with_h3(pki: TestPKI, pki_ca_file: str, tmp_path: Path) -> None:  # noqa: F811
    observation = await _handshake(pki.good, tmp_path, pki_ca_file)
    assert observation.failure is None, observation
    assert observation.network == "quic" and observation.negotiated_protocol == "h3"
    assert observation.tls_version == "TLSv1.3" and observation.cipher_suite
    assert observation.peer_certificates
    assert observation.to_dict()["network"] == "quic"


@pytest.mark.parametrize(
    ("leaf", "name", "failure"),
    [
        ("wrong_name", "test.localhost", failures.SSL_INVALID_HOSTNAME),
        ("good", "other.example", failures.SSL_INVALID_HOSTNAME),
        ("expired", "test.localhost", failures.SSL_INVALID_CERTIFICATE),
        ("unknown_ca", "test.localhost", failures.SSL_UNKNOWN_AUTHORITY),
    ],
)
async def test_certificate_failures(
    pki: TestPKI,  # noqa: F811
    pki_ca_file: str,  # noqa: F811
    tmp_path: Path,
    leaf: str,
    name: str,
    failure: str,
) -> None:
    observation = await _handshake(getattr(pki, leaf), tmp_path, pki_ca_file, name=name)
    assert (observation.failure, observation.failed_operation) == (failure, "quic_handshake")


async def test_a_refused_alpn_is_a_failed_handshake(
    pki: TestPKI,  # noqa: F811
    pki_ca_file: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    observation = await _handshake(pki.good, tmp_path, pki_ca_file, mode="wrong_alpn")
    assert observation.failure == failures.SSL_FAILED_HANDSHAKE


async def test_silence_is_a_timeout_within_bounds(pki_ca_file: str) -> None:  # noqa: F811
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as quiet:  # bound, never answers
        quiet.bind(("127.0.0.1", 0))
        started = time.monotonic()
        observation = await quic_handshake(
            "127.0.0.1", quiet.getsockname()[1], "test.localhost", trace=_trace(),
            timeout=TIMEOUT, ca_files=(pki_ca_file,),
        )  # fmt: skip
        assert time.monotonic() - started < HANG_BOUND
    assert observation.failure == failures.GENERIC_TIMEOUT
    assert observation.peer_certificates == []
