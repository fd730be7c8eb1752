"""The control's neutral TLS server (`probe control serve --neutral-tls-port`): completes a TLS
handshake for any server name with a throwaway self-signed certificate, then closes. A probe
tries a name that failed where it is censored here too (`probe run --neutral-server`,
probe/round/measure/sni_swap.py): a handshake that fails only with that name shows the name is
filtered on any address. It reads nothing and serves nothing, so it cannot be used as a relay."""

from __future__ import annotations

import asyncio
import datetime
import ssl
import tempfile
from pathlib import Path

#: a client that does not finish its handshake within this many seconds is dropped
HANDSHAKE_TIMEOUT = 10.0
#: connections at once; more are closed at once (the server must not become a resource sink)
MAX_CONNECTIONS = 256


def self_signed_context() -> ssl.SSLContext:
    """A server context with a fresh self-signed P-256 certificate (CN probe-neutral), kept
    only in memory (its files live in a temporary directory for the time of loading)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "probe-neutral")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    with tempfile.TemporaryDirectory() as directory:
        cert_path, key_path = Path(directory, "cert.pem"), Path(directory, "key.pem")
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context.load_cert_chain(cert_path, key_path)
    return context


async def start_neutral_tls(host: str, port: int) -> asyncio.Server:
    """Listen on host:port; every connection gets the handshake, then is closed."""
    active = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal active
        active += 1
        try:
            if active <= MAX_CONNECTIONS:
                # The handshake is done when the handler runs; the client closes next.
                async with asyncio.timeout(1.0):
                    await reader.read(1)
        except (TimeoutError, OSError, ssl.SSLError):
            pass
        finally:
            active -= 1
            writer.close()

    return await asyncio.start_server(
        handle,
        host,
        port,
        ssl=self_signed_context(),
        ssl_handshake_timeout=HANDSHAKE_TIMEOUT,
    )
