"""The control's neutral QUIC endpoint (`probe control serve --neutral-quic-port P`).

A QUIC server (aioquic, ALPN h3) on the control's host that completes handshakes and serves
nothing else, with a self-signed certificate made at start. It is *neutral*: no censor has a
reason to block it by name, so when a probe's QUIC handshake to it fails while the control
itself answers over TCP, UDP 443 / QUIC is blocked on the probe's network as a whole, not just to
some host (docs/verdicts.md, "QUIC"). The probe learns the port from the control's reply
(`x_neutral_quic_port`) and checks it without verifying the certificate: only whether a QUIC
handshake completes is in question.
"""

from __future__ import annotations

import datetime
from typing import Any


def _self_signed() -> tuple[Any, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "probe neutral QUIC endpoint")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    return certificate, key


async def start_neutral_quic(host: str, port: int) -> Any:
    """Serve QUIC handshakes on host:port (UDP); returns the server (``.close()`` it)."""
    from aioquic.asyncio.server import serve
    from aioquic.quic.configuration import QuicConfiguration

    configuration = QuicConfiguration(is_client=False, alpn_protocols=["h3"])
    configuration.certificate, configuration.private_key = _self_signed()
    return await serve(host, port, configuration=configuration)
