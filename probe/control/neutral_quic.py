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

from typing import Any

from probe.control.self_signed import self_signed_certificate


async def start_neutral_quic(host: str, port: int) -> Any:
    """Serve QUIC handshakes on host:port (UDP); returns the server (``.close()`` it)."""
    from aioquic.asyncio.server import serve
    from aioquic.quic.configuration import QuicConfiguration

    configuration = QuicConfiguration(is_client=False, alpn_protocols=["h3"])
    configuration.certificate, configuration.private_key = self_signed_certificate(
        "probe neutral QUIC endpoint", days=3650
    )
    return await serve(host, port, configuration=configuration)
