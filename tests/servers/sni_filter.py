"""An SNI-filtering middlebox on loopback, in front of a real TLS server (the SNI swap tests).

It reads the client's ClientHello and, for a client in `censored` (the probe's source address;
other clients, e.g. the control at 127.0.0.3, pass untouched):

- `names`: a ClientHello naming one of them gets `action` ("reset": RST; "drop": silence);
- `every_hello=True`: every ClientHello gets `action`, whatever its name (address filtering);
- `residual`: after a trigger, every connection of that client is reset for this many
  seconds (residual blocking), whatever it sends;

and splices anything else through to `upstream` (host, port)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable

from tests.lab.middleboxes import client_hello_sni, tls_record_complete
from tests.servers.tcp_server import LoopbackServer, close_writer, reset_connection


class SNIFilter(LoopbackServer):
    def __init__(
        self,
        upstream: tuple[str, int],
        *,
        names: Iterable[str] = (),
        action: str = "reset",
        every_hello: bool = False,
        residual: float = 0.0,
        censored: Iterable[str] = ("127.0.0.2",),
    ) -> None:
        super().__init__("filter")
        self.upstream = upstream
        self.names = {n.lower() for n in names}
        self.action = action
        self.every_hello = every_hello
        self.residual = residual
        self.censored = set(censored)
        #: client address -> monotonic time its penalty ends
        self.penalty: dict[str, float] = {}
        self.triggers = 0
        self.seen_names: list[str] = []

    async def handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, behaviour: str
    ) -> None:
        peer = str(writer.get_extra_info("peername")[0])
        censored = peer in self.censored
        if censored and self.penalty.get(peer, 0.0) > time.monotonic():
            reset_connection(writer)
            return
        first = b""
        while not tls_record_complete(first) and len(first) < 16384:
            chunk = await reader.read(4096)
            if not chunk:
                break
            first += chunk
        name = client_hello_sni(first) or ""
        self.seen_names.append(name)
        if censored and (self.every_hello or name in self.names):
            self.triggers += 1
            if self.residual > 0:
                self.penalty[peer] = time.monotonic() + self.residual
            if self.action == "reset":
                reset_connection(writer)
            else:
                await reader.read()  # silence until the client gives up
            return
        await self._splice(first, reader, writer)

    async def _splice(
        self, first: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        up_writer.write(first)

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            with contextlib.suppress(ConnectionError, OSError):
                sink.write_eof()

        try:
            await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        finally:
            await close_writer(up_writer)
