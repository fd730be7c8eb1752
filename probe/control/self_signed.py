"""Throwaway self-signed certificates for the control's auxiliary servers (the neutral TLS and
QUIC endpoints, the bulk endpoint): made at start, kept only in memory. These servers answer
any name and clients never verify them — only whether a handshake completes, or how fast bytes
arrive, is in question — so a fresh P-256 key and a one-name certificate are all they need."""

from __future__ import annotations

import datetime
import ssl
import tempfile
from pathlib import Path
from typing import Any


def self_signed_certificate(common_name: str, days: int = 365) -> tuple[Any, Any]:
    """(certificate, private key) as cryptography objects (aioquic takes these directly)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return certificate, key


def self_signed_context(common_name: str) -> ssl.SSLContext:
    """A TLS server context with a fresh self-signed certificate (its files exist only in a
    temporary directory while the context loads them)."""
    from cryptography.hazmat.primitives import serialization

    certificate, key = self_signed_certificate(common_name)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with tempfile.TemporaryDirectory() as directory:
        cert_path, key_path = Path(directory, "cert.pem"), Path(directory, "key.pem")
        cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context.load_cert_chain(cert_path, key_path)
    return context
