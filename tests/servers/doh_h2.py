"""A DNS-over-HTTPS server over HTTP/2 (RFC 8484 POST, ALPN h2), in front of a DNSServer.

A real h2 server (the `h2` package's state machine over asyncio's TLS streams), as dns.google
and cloudflare-dns.com are, with the ways one can misbehave (`mode`):

- "ok": answers each stream from the DNS server's zone and rules (a "silence" rule: that stream
  never gets an answer);
- "reset": resets every stream (RST_STREAM, REFUSED_STREAM) instead of answering;
- "garbage": after the TLS handshake, sends bytes that are no HTTP/2 frame;
- "silent": completes the TLS handshake, then never sends anything (not even its SETTINGS);
- "close": closes the connection as soon as the first request has arrived.

It counts connections, streams and the ALPN protocol each connection agreed on.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

from tests.servers.dns_server import DNSServer

MODES = ("ok", "reset", "garbage", "silent", "close")
GARBAGE = b"\x17\x03\x03 this is not an HTTP/2 frame \xff\xff\xff\xff" * 4


class DoHH2Server:
    def __init__(
        self,
        dns_server: DNSServer,
        ssl_context: ssl.SSLContext,
        *,
        mode: str = "ok",
        host: str = "127.0.0.1",
    ) -> None:
        assert mode in MODES, mode
        self.dns_server = dns_server
        self.ssl_context = ssl_context
        ssl_context.set_alpn_protocols(["h2"])
        self.mode = mode
        self.host = host
        self.port = 0
        self.connections = 0
        self.streams = 0
        self.alpn: list[str | None] = []
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}/dns-query"

    async def __aenter__(self) -> DoHH2Server:
        self._server = await asyncio.start_server(self._serve, self.host, 0, ssl=self.ssl_context)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.connections += 1
        ssl_object = writer.get_extra_info("ssl_object")
        self.alpn.append(ssl_object.selected_alpn_protocol() if ssl_object else None)
        try:
            if self.mode == "garbage":
                writer.write(GARBAGE)
                await writer.drain()
            if self.mode in ("garbage", "silent"):
                while await reader.read(65536):
                    pass
                return
            await self._speak_h2(reader, writer, str(writer.get_extra_info("peername")[0]))
        except (OSError, ssl.SSLError, h2.exceptions.ProtocolError, asyncio.CancelledError):
            pass
        finally:
            self._handlers.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _speak_h2(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> None:
        config = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        connection = h2.connection.H2Connection(config=config)
        connection.initiate_connection()
        writer.write(connection.data_to_send())
        bodies: dict[int, bytearray] = {}
        while data := await reader.read(65536):
            for event in connection.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    self.streams += 1
                    bodies[event.stream_id] = bytearray()
                    if self.mode == "close":
                        return
                elif isinstance(event, h2.events.DataReceived):
                    bodies.setdefault(event.stream_id, bytearray()).extend(event.data)
                    connection.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                elif isinstance(event, h2.events.StreamEnded):
                    body = bytes(bodies.pop(event.stream_id, b""))
                    self._answer(connection, event.stream_id, body, peer)
            writer.write(connection.data_to_send())
            await writer.drain()

    def _answer(
        self, connection: h2.connection.H2Connection, stream_id: int, body: bytes, peer: str
    ) -> None:
        if self.mode == "reset":
            connection.reset_stream(stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
            return
        replies = self.dns_server.replies(body, peer, "doh")
        if not replies:
            return  # silence for this stream
        reply = replies[0][1]
        headers = [
            (":status", "200"),
            ("content-type", "application/dns-message"),
            ("content-length", str(len(reply))),
            ("cache-control", "private, max-age=300"),
        ]
        connection.send_headers(stream_id, headers)
        connection.send_data(stream_id, reply, end_stream=True)
