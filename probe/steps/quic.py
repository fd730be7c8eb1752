"""QUIC: one handshake (TLS 1.3 inside QUIC, ALPN h3) to one address, with its own deadline.

Iran and others have blocked QUIC at times while TCP/TLS to the same hosts worked, and some
networks drop UDP 443 as a whole. This step answers "does a QUIC handshake with this name
complete at this address?" with a `TLSHandshake` observation whose `network` is ``"quic"``
(OONI's `quic_handshakes` entries have the same shape). It uses aioquic on a socket we create
ourselves (the right family for the address, optionally bound to a source address), so no
name is looked up and no other address is contacted.

Failures: our deadline (`generic_timeout_error`: silence, the usual sign of dropped UDP), the
certificate checks (`ssl_invalid_hostname`, `ssl_unknown_authority`, `ssl_invalid_certificate`),
a handshake the peer refused (`ssl_failed_handshake`, e.g. no common ALPN), or a close with
another error (`quic_connection_closed`). ICMP errors are not delivered to an unconnected UDP
socket, so a closed port looks like silence.
"""

from __future__ import annotations

import asyncio
import base64
import re
import socket
import ssl
from pathlib import Path
from typing import Any

from probe import failures
from probe.observations import NetworkEvent, TLSHandshake, Trace, format_address

#: the ALPN a QUIC check offers: HTTP/3, what browsers and apps use on UDP 443
DEFAULT_ALPN = ("h3",)
#: QUIC's CRYPTO_ERROR range: 0x100 + a TLS alert (RFC 9001 §4.8)
_CRYPTO_ERROR = range(0x100, 0x200)
_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


def _trust(ca_files: tuple[str, ...]) -> tuple[str | None, bytes | None]:
    """(cafile, cadata): the system's roots plus any extra PEM files (aioquic drops its own
    defaults as soon as cadata is given, so the system file is named explicitly)."""
    default = ssl.get_default_verify_paths().cafile
    cafile = default if default and Path(default).is_file() else None
    if cafile is None:
        import certifi

        cafile = certifi.where()
    # aioquic splits cadata at each END line and parses every piece: nothing may follow the last
    blocks = [block for path in ca_files for block in _PEM_BLOCK.findall(Path(path).read_bytes())]
    return cafile, b"\n".join(blocks) or None


def _verify_failure(reason: str) -> str:
    text = reason.lower()
    if "doesn't match" in text or "hostname" in text or "subjectaltname" in text:
        return failures.SSL_INVALID_HOSTNAME
    if "valid yet" in text or "no longer valid" in text or "expired" in text:
        return failures.SSL_INVALID_CERTIFICATE
    if "issuer" in text or "self-signed" in text or "self signed" in text:
        return failures.SSL_UNKNOWN_AUTHORITY
    return failures.SSL_FAILED_HANDSHAKE


def _close_failure(quic: Any) -> str:
    """The failure a closed connection stands for, from its close event (aioquic's)."""
    event = getattr(quic, "_close_event", None)
    if event is None:
        return failures.EOF_ERROR
    code = getattr(event, "error_code", 0)
    if code in _CRYPTO_ERROR:
        return _verify_failure(str(getattr(event, "reason_phrase", "")))
    return failures.QUIC_CONNECTION_CLOSED


def _peer_certificates(quic: Any) -> list[str]:
    from cryptography.hazmat.primitives.serialization import Encoding

    tls = getattr(quic, "tls", None)
    leaf = getattr(tls, "_peer_certificate", None)
    chain = getattr(tls, "_peer_certificate_chain", None) or []
    certificates = [leaf, *chain] if leaf is not None else list(chain)
    return [base64.b64encode(c.public_bytes(Encoding.DER)).decode() for c in certificates]


def _socket(ip: str, source_address: str | None) -> socket.socket:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.bind((source_address or ("::" if family == socket.AF_INET6 else "0.0.0.0"), 0))
    except BaseException:
        sock.close()
        raise
    return sock


def _configuration(
    server_name: str, alpn: tuple[str, ...], ca_files: tuple[str, ...], verify: bool
) -> Any:
    from aioquic.quic.configuration import QuicConfiguration

    cafile, cadata = _trust(ca_files)
    return QuicConfiguration(
        is_client=True,
        alpn_protocols=list(alpn),
        server_name=server_name,
        verify_mode=ssl.CERT_REQUIRED if verify else ssl.CERT_NONE,
        cafile=cafile,
        cadata=cadata,
    )


def _negotiated(observation: TLSHandshake, quic: Any) -> None:
    observation.tls_version = "TLSv1.3"
    observation.negotiated_protocol = getattr(quic.tls, "alpn_negotiated", None)
    suite = getattr(getattr(quic.tls, "key_schedule", None), "cipher_suite", None)
    observation.cipher_suite = getattr(suite, "name", None)


def _finish(observation: TLSHandshake, trace: Trace) -> TLSHandshake:
    observation.failed_operation = failures.QUIC_HANDSHAKE if observation.failure else None
    observation.t = trace.now()
    trace.add_event(
        NetworkEvent(
            operation="quic_handshake_done",
            address=observation.address,
            failure=observation.failure,
            t0=observation.t0,
            t=observation.t,
            transaction_id=trace.transaction_id,
        )
    )
    return observation


async def quic_handshake(
    ip: str,
    port: int,
    server_name: str,
    *,
    trace: Trace,
    timeout: float,
    ca_files: tuple[str, ...] = (),
    alpn: tuple[str, ...] = DEFAULT_ALPN,
    source_address: str | None = None,
    verify: bool = True,
) -> TLSHandshake:
    """A QUIC handshake with SNI `server_name` to ip:port within `timeout` seconds; `verify`
    False skips the certificate checks (the neutral endpoint). Failures are data; only
    cancellation escapes."""
    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.quic.connection import QuicConnection

    observation = TLSHandshake(
        address=format_address(ip, port),
        server_name=server_name,
        network="quic",
        no_tls_verify=not verify,
        t0=trace.now(),
        transaction_id=trace.transaction_id,
    )
    protocol: QuicConnectionProtocol | None = None
    transport: asyncio.BaseTransport | None = None
    try:
        quic = QuicConnection(configuration=_configuration(server_name, alpn, ca_files, verify))
        sock = _socket(ip, source_address)
        try:
            transport, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
                lambda: QuicConnectionProtocol(quic), sock=sock
            )
        except BaseException:
            sock.close()
            raise
        async with asyncio.timeout(timeout):
            protocol.connect((ip, port))
            await protocol.wait_connected()
        _negotiated(observation, quic)
    except asyncio.CancelledError:
        raise
    except ConnectionError:
        observation.failure = _close_failure(getattr(protocol, "_quic", None))
    except Exception as exc:
        observation.failure = failures.classify(exc)
    finally:
        if protocol is not None:
            observation.peer_certificates = _peer_certificates(getattr(protocol, "_quic", None))
            protocol.close()
        if transport is not None:
            transport.close()
    return _finish(observation, trace)
