"""The bulk endpoint (`probe control bulk`): a bounded object over TLS for any SNI, the
server side of the throttling check (probe/steps/throttle.py).

A client connects with whatever SNI it likes (the target's, or a neutral one), sends
``GET /bulk?bytes=N`` and receives N bytes (at most MAX_OBJECT) of zeros. The certificate is
self-signed and made at start: the check measures speed, not authenticity, so the client does
not verify it. Connections are bounded in number and in time; nothing is logged per client.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl

from probe.control.self_signed import self_signed_context

#: the largest object served, bytes
MAX_OBJECT = 4 * 1024 * 1024
#: connections served at once; more wait in the kernel's backlog
MAX_CONNECTIONS = 64
#: a connection's whole life, seconds (a throttled download of MAX_OBJECT may take long)
CONNECTION_DEADLINE = 120.0
HEAD_CAP = 4096
CHUNK = 16 * 1024
_REQUEST = re.compile(rb"^GET /bulk\?bytes=(\d{1,9}) HTTP/1\.[01]\r\n")


def bulk_context() -> ssl.SSLContext:
    """A server context with a fresh self-signed certificate (any name is accepted: TLS
    servers send their certificate whatever the SNI)."""
    return self_signed_context("probe bulk")


async def _serve_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    head = b""
    while b"\r\n\r\n" not in head and len(head) < HEAD_CAP:
        chunk = await reader.read(HEAD_CAP - len(head))
        if not chunk:
            return
        head += chunk
    match = _REQUEST.match(head)
    if match is None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        return
    size = min(int(match.group(1)), MAX_OBJECT)
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % size
    )
    zeros = bytes(CHUNK)
    while size > 0:
        writer.write(zeros[: min(size, CHUNK)])
        size -= CHUNK
        await writer.drain()


class BulkServer:
    """The bulk endpoint on one socket; `start()` then `close()` (or `serve_forever`)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.slots = asyncio.Semaphore(MAX_CONNECTIONS)
        self.server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with self.slots:
                async with asyncio.timeout(CONNECTION_DEADLINE):
                    await _serve_one(reader, writer)
        except (OSError, TimeoutError, ssl.SSLError, ValueError):
            pass  # a client gone, too slow, or not speaking TLS: its business
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def start(self) -> int:
        """Listen; the port bound (useful with port 0)."""
        self.server = await asyncio.start_server(
            self._handle, self.host, self.port, ssl=bulk_context(), ssl_handshake_timeout=10
        )
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


def serve(host: str, port: int, on_ready: object = None) -> None:
    """Run the bulk endpoint until interrupted (`probe control bulk`)."""

    async def main() -> None:
        server = BulkServer(host, port)
        bound = await server.start()
        if callable(on_ready):
            on_ready(bound)
        assert server.server is not None
        await server.server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(main())
