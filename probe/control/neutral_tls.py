"""The control's neutral TLS server (`probe control serve --neutral-tls-port`): completes a TLS
handshake for any server name with a throwaway self-signed certificate, then closes. A probe
tries a name that failed where it is censored here too (`probe run --neutral-server`,
probe/round/measure/sni_swap.py): a handshake that fails only with that name shows the name is
filtered on any address. It reads nothing and serves nothing, so it cannot be used as a relay."""

from __future__ import annotations

import asyncio
import ssl

from probe.control.self_signed import self_signed_context

#: a client that does not finish its handshake within this many seconds is dropped
HANDSHAKE_TIMEOUT = 10.0
#: connections at once; more are closed at once (the server must not become a resource sink)
MAX_CONNECTIONS = 256


def neutral_context() -> ssl.SSLContext:
    """The server context: a fresh self-signed certificate (CN probe-neutral), TLS 1.2 or
    newer, ALPN http/1.1 (what a browser-like client offers)."""
    context = self_signed_context("probe-neutral")
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
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
        ssl=neutral_context(),
        ssl_handshake_timeout=HANDSHAKE_TIMEOUT,
    )
