"""Proxies and middlemen on loopback for the upload tests: an HTTP proxy (CONNECT, and
absolute-form requests for http:// URLs), a SOCKS5 proxy (no authentication; it resolves
names from its own table, never through the system resolver), and a forwarder that passes a
request to the collector but can hold or drop the reply. Each records what it saw."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import struct
from dataclasses import dataclass, field


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _splice(
    a: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    b: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    await asyncio.gather(_pipe(a[0], b[1]), _pipe(b[0], a[1]))


@dataclass
class _Server:
    server: asyncio.Server | None = None
    port: int = 0

    async def _listen(self, handler) -> None:  # type: ignore[no-untyped-def]
        self.server = await asyncio.start_server(handler, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)


@dataclass
class HTTPProxy(_Server):
    """CONNECT host:port tunnels, and absolute-form requests (`POST http://h:p/path`)
    forwarded as origin-form. `seen` holds each target as `host:port`; names resolve through
    `names` (else they are used as they are)."""

    names: dict[str, str] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)

    async def start(self) -> HTTPProxy:
        await self._listen(self._handle)
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        first, _, rest = head.partition(b"\r\n")
        method, target, version = first.decode("latin-1").split(" ", 2)
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            self.seen.append(target)
            host = self.names.get(host, host.strip("[]"))
            upstream = await asyncio.open_connection(host, int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await _splice((reader, writer), upstream)
            return
        assert target.startswith("http://"), target
        hostport, _, path = target[len("http://") :].partition("/")
        host, _, port = hostport.rpartition(":")
        self.seen.append(hostport)
        host = self.names.get(host, host.strip("[]"))
        upstream = await asyncio.open_connection(host, int(port or 80))
        upstream[1].write(f"{method} /{path} {version}\r\n".encode("latin-1") + rest)
        await _splice((reader, writer), upstream)


@dataclass
class SOCKS5Proxy(_Server):
    """SOCKS5 CONNECT without authentication. `seen` holds (address type, host, port): "ipv4",
    "ipv6" or "domain" (the client left the name to us: socks5h). Names resolve through
    `names` only."""

    names: dict[str, str] = field(default_factory=dict)
    seen: list[tuple[str, str, int]] = field(default_factory=list)

    async def start(self) -> SOCKS5Proxy:
        await self._listen(self._handle)
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            _version, count = await reader.readexactly(2)
            await reader.readexactly(count)
            writer.write(b"\x05\x00")
            _, _command, _, kind = await reader.readexactly(4)
            if kind == 1:
                host = str(ipaddress.IPv4Address(await reader.readexactly(4)))
                seen_kind = "ipv4"
            elif kind == 4:
                host = str(ipaddress.IPv6Address(await reader.readexactly(16)))
                seen_kind = "ipv6"
            else:
                (length,) = await reader.readexactly(1)
                host = (await reader.readexactly(length)).decode("ascii")
                seen_kind = "domain"
            (port,) = struct.unpack("!H", await reader.readexactly(2))
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        self.seen.append((seen_kind, host, port))
        address = self.names.get(host, host) if seen_kind == "domain" else host
        try:
            ipaddress.ip_address(address)
            upstream = await asyncio.open_connection(address, port)
        except (ValueError, OSError):
            writer.write(b"\x05\x04\x00\x01" + bytes(6))  # host unreachable
            writer.close()
            return
        writer.write(b"\x05\x00\x00\x01" + bytes(4) + b"\x00\x00")
        await writer.drain()
        await _splice((reader, writer), upstream)


@dataclass
class ReplyDropper(_Server):
    """Passes each connection to the collector (at `upstream_port`); with `drop`, it reads
    the collector's whole reply and closes the client's connection without sending it (the
    collector stored the batch, the client never heard). With `hold_from` = n, the n-th
    connection's reply is read and held until the test ends (`holding` is set then)."""

    upstream_port: int = 0
    drop: bool = False
    hold_from: int | None = None
    #: from this connection on, only the first 1,000 bytes of the request reach the collector
    #: (`holding` is set), and the client's connection is cut when the collector's closes
    cut_request_from: int | None = None
    connections: int = 0
    replies_dropped: int = 0
    holding: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> ReplyDropper:
        await self._listen(self._handle)
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        if self.cut_request_from is not None and number >= self.cut_request_from:
            await self._cut_request(reader, writer, up_reader, up_writer)
            return
        hold = self.hold_from is not None and number >= self.hold_from
        if not (self.drop or hold):
            await _splice((reader, writer), (up_reader, up_writer))
            return
        forward = asyncio.ensure_future(_pipe(reader, up_writer))
        reply = await up_reader.read()  # the collector closes every connection after its reply
        forward.cancel()
        if hold:
            self.holding.set()
            await asyncio.sleep(3600)
        self.replies_dropped += bool(reply)
        writer.transport.abort()

    async def _cut_request(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        first = await reader.read(1000)
        up_writer.write(first)
        await up_writer.drain()
        self.holding.set()
        with contextlib.suppress(ConnectionError):
            await up_reader.read()  # until the collector closes (or is killed)
        writer.transport.abort()
