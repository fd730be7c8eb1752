"""A real MTProxy on loopback (or in the lab) relaying to the fake data centre.

It speaks the three kinds a link can name, with one secret: plain obfuscated2 keyed with the
secret (any of the tags ``ef``/``ee``/``dd``), ``dd`` (the padded tag) and ``ee`` fake-TLS (when a
`domain` is set: the ClientHello's random must be the secret's HMAC, the SNI the domain; the
answer is ServerHello + ChangeCipherSpec + application data, its random the HMAC over the client
random and the answer; then obfuscated2 inside application-data records). It relays like
MTProxy's "direct" mode: a fresh obfuscated2 connection (no secret) to the fake DC, bytes
re-encrypted both ways, so the fake DC checks the client's real req_pq_multi and answers it.

Modes (the proxy misbehaving, or something in front of it): ``ok``; ``wrong_hmac`` (fake-TLS
answer with a random, unsigned server random: a real TLS server or a middlebox); ``silent``
(read, say nothing); ``reset`` (RST after the first bytes); ``garbage`` (random bytes);
``http`` (a clear-text 403 page). `tls_only` refuses everything that is not fake-TLS, like a
proxy that only serves ``ee`` secrets.

Written from the protocol descriptions, separately from probe.steps.mtproxy.

In-process: ``async with MTProxyServer(secret, upstream=(host, port), domain=...) as proxy:
proxy.port``. Standalone (lab): ``python -m tests.servers.mtproxy_server --host H --port P
--secret HEX --upstream H:P [--domain D] [--mode M]`` prints ``{"host", "port"}`` when ready.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import secrets
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

MODES = ("ok", "wrong_hmac", "silent", "reset", "garbage", "http")
TAGS = (b"\xef\xef\xef\xef", b"\xee\xee\xee\xee", b"\xdd\xdd\xdd\xdd")
HTTP_PAGE = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\nConnection: close\r\n\r\nForbidden"
READ_TIMEOUT = 20.0
MAX_SKEW = 600  # seconds of clock difference accepted in the fake-TLS timestamp


def _ctr(key: bytes, iv: bytes) -> Any:
    return Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()


@dataclass(slots=True)
class ProxyLog:
    """What the proxy saw on one connection (tests assert on these)."""

    peer: str
    kind: str | None = None  # "fake_tls" | "obfuscated2"
    tag: bytes | None = None
    dc: int | None = None
    rejected: str | None = None
    relayed: bool = False


def _server_hello(client_hello: bytes, secret: bytes, *, sign: bool) -> bytes:
    session_id = client_hello[44:76]
    extensions = (
        b"\x00\x33\x00\x24\x00\x1d\x00\x20" + secrets.token_bytes(32) + b"\x00\x2b\x00\x02\x03\x04"
    )
    body = b"\x03\x03" + bytes(32) + b"\x20" + session_id + b"\x13\x01\x00"
    body += struct.pack(">H", len(extensions)) + extensions
    handshake = b"\x02" + len(body).to_bytes(3, "big") + body
    answer = bytearray(b"\x16\x03\x03" + struct.pack(">H", len(handshake)) + handshake)
    noise = secrets.token_bytes(1024 + secrets.randbelow(2048))
    answer += b"\x14\x03\x03\x00\x01\x01" + b"\x17\x03\x03" + struct.pack(">H", len(noise)) + noise
    if sign:
        digest = hmac.new(secret, client_hello[11:43] + bytes(answer), hashlib.sha256).digest()
    else:
        digest = secrets.token_bytes(32)
    answer[11:43] = digest
    return bytes(answer)


def _sni(hello: bytes) -> str | None:
    """The server_name in a ClientHello record (None if absent or malformed)."""
    try:
        offset = 5 + 4 + 2 + 32
        offset += 1 + hello[offset]
        offset += 2 + struct.unpack_from(">H", hello, offset)[0]
        offset += 1 + hello[offset]
        end = offset + 2 + struct.unpack_from(">H", hello, offset)[0]
        offset += 2
        while offset + 4 <= end:
            kind, size = struct.unpack_from(">HH", hello, offset)
            if kind == 0:
                name_length = struct.unpack_from(">H", hello, offset + 7)[0]
                return hello[offset + 9 : offset + 9 + name_length].decode("ascii")
            offset += 4 + size
    except (IndexError, struct.error, UnicodeDecodeError):
        return None
    return None


def check_client_hello(hello: bytes, secret: bytes, domain: str, now: float) -> str | None:
    """None if `hello` is a fake-TLS hello signed with `secret` for `domain`, else why not."""
    if len(hello) < 76 or hello[5] != 1 or hello[43] != 32:
        return "not a ClientHello with a 32-byte session id"
    zeroed = hello[:11] + bytes(32) + hello[43:]
    digest = hmac.new(secret, zeroed, hashlib.sha256).digest()
    random = hello[11:43]
    if not hmac.compare_digest(digest[:28], random[:28]):
        return "random is not the secret's HMAC"
    stamp = int.from_bytes(digest[28:32], "little") ^ int.from_bytes(random[28:32], "little")
    if abs(stamp - int(now)) > MAX_SKEW:
        return "timestamp too far from the server's clock"
    if _sni(hello) != domain:
        return "server_name is not the secret's domain"
    return None


class _ClientSide:
    """Reads and writes the client's bytes: raw, or inside TLS application-data records."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.tls = False
        self.pending = b""

    async def read(self) -> bytes:
        if self.pending:
            data, self.pending = self.pending, b""
            return data
        if not self.tls:
            return await self.reader.read(4096)
        while True:
            header = await self.reader.readexactly(5)
            payload = await self.reader.readexactly(struct.unpack(">H", header[3:5])[0])
            if header[:3] == b"\x17\x03\x03":
                return payload
            if header[:3] != b"\x14\x03\x03":
                raise ValueError("not an application-data record")

    async def read_exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = await self.read()
            if not chunk:
                raise asyncio.IncompleteReadError(data, size)
            data += chunk
        self.pending = data[size:]
        return data[:size]

    def write(self, data: bytes) -> None:
        if self.tls:
            data = b"\x17\x03\x03" + struct.pack(">H", len(data)) + data
        self.writer.write(data)


class MTProxyServer:
    """The proxy. ``async with MTProxyServer(secret, upstream=(h, p)) as proxy: proxy.port``."""

    def __init__(
        self,
        secret: bytes,
        *,
        upstream: tuple[str, int],
        domain: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        mode: str = "ok",
        tls_only: bool = False,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown proxy mode {mode!r}")
        self.secret, self.upstream, self.domain = secret, upstream, domain
        self.host, self.port, self.mode, self.tls_only = host, port, mode, tls_only
        self.connections: list[ProxyLog] = []
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> MTProxyServer:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        log = ProxyLog(peer=writer.get_extra_info("peername")[0])
        self.connections.append(log)
        try:
            await self._serve(_ClientSide(reader, writer), log)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, ValueError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    async def _misbehave(self, client: _ClientSide) -> bool:
        """Act out a hostile mode after the client's first bytes; True if one was acted."""
        if self.mode == "reset":
            sock = client.writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.writer.transport.abort()
        elif self.mode == "silent":
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(READ_TIMEOUT * 3):
                    while await client.reader.read(4096):
                        pass
        elif self.mode == "garbage":
            client.writer.write(secrets.token_bytes(200))
        elif self.mode == "http":
            client.writer.write(HTTP_PAGE)
        else:
            return False
        with contextlib.suppress(OSError, RuntimeError):
            await client.writer.drain()
        return True

    async def _serve(self, client: _ClientSide, log: ProxyLog) -> None:
        async with asyncio.timeout(READ_TIMEOUT):
            first = await client.reader.readexactly(5)
        if self.mode != "wrong_hmac" and await self._misbehave(client):
            return
        if first[:3] == b"\x16\x03\x01" and self.domain is not None:
            log.kind = "fake_tls"
            async with asyncio.timeout(READ_TIMEOUT):
                hello = first + await client.reader.readexactly(struct.unpack(">H", first[3:5])[0])
            log.rejected = check_client_hello(hello, self.secret, self.domain, time.time())
            if log.rejected is not None:
                return  # MTProxy would hand the connection to the real domain; we just close
            client.writer.write(_server_hello(hello, self.secret, sign=self.mode != "wrong_hmac"))
            client.tls = True
            header = await client.read_exactly(64)
        elif self.tls_only:
            log.rejected = "not fake-TLS"
            return
        else:
            log.kind = "obfuscated2"
            header = first + await client.reader.readexactly(59)
        await self._relay(client, header, log)

    async def _relay(self, client: _ClientSide, header: bytes, log: ProxyLog) -> None:
        run = header[8:56][::-1]
        decrypt = _ctr(hashlib.sha256(header[8:40] + self.secret).digest(), header[40:56])
        encrypt = _ctr(hashlib.sha256(run[:32] + self.secret).digest(), run[32:48])
        plain = decrypt.update(header)
        log.tag = plain[56:60]
        if log.tag not in TAGS:
            log.rejected = "unknown tag (wrong secret?)"
            return
        log.dc = struct.unpack("<h", plain[60:62])[0]
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self._writers.add(up_writer)
        try:
            up_header = bytearray(secrets.token_bytes(64))
            while (
                up_header[0] == 0xEF or bytes(up_header[:4]) in TAGS or up_header[4:8] == bytes(4)
            ):
                up_header = bytearray(secrets.token_bytes(64))
            up_header[56:60] = log.tag
            up_header[60:62] = plain[60:62]
            up_run = bytes(up_header[8:56])[::-1]
            up_encrypt = _ctr(bytes(up_header[8:40]), bytes(up_header[40:56]))
            up_decrypt = _ctr(up_run[:32], up_run[32:48])
            up_writer.write(bytes(up_header[:56]) + up_encrypt.update(bytes(up_header))[56:])
            log.relayed = True

            async def upward() -> None:
                while data := await client.read():
                    up_writer.write(up_encrypt.update(decrypt.update(data)))
                    await up_writer.drain()

            async def downward() -> None:
                while data := await up_reader.read(4096):
                    client.write(encrypt.update(up_decrypt.update(data)))
                    await client.writer.drain()

            async with asyncio.timeout(READ_TIMEOUT * 3):
                done, pending = await asyncio.wait(
                    [asyncio.ensure_future(upward()), asyncio.ensure_future(downward())],
                    return_when=asyncio.FIRST_COMPLETED,
                )
            for task in pending:
                task.cancel()
            for task in done:
                task.exception()  # the other side went away: nothing to report
        finally:
            self._writers.discard(up_writer)
            up_writer.transport.abort()


def _fresh_header() -> bytearray:
    """64 random bytes a DC reads as an obfuscated2 header (not a plain transport's marker)."""
    while True:
        header = bytearray(secrets.token_bytes(64))
        if header[0] != 0xEF and bytes(header[:4]) not in TAGS and header[4:8] != bytes(4):
            return header


def link(host: str, port: int, secret_hex: str, *, web: bool = False) -> str:
    """A proxy link to a loopback/lab proxy, for tests."""
    if web:
        return f"https://t.me/proxy?server={host}&port={port}&secret={secret_hex}"
    return f"tg://proxy?server={host}&port={port}&secret={secret_hex}"


async def _serve_forever(proxy: MTProxyServer) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with proxy:
        print(json.dumps({"host": proxy.host, "port": proxy.port}), flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.servers.mtproxy_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--secret", required=True, help="the 16-byte key, 32 hex digits")
    parser.add_argument("--upstream", required=True, help="HOST:PORT of the (fake) DC")
    parser.add_argument("--domain")
    parser.add_argument("--mode", default="ok", choices=MODES)
    parser.add_argument("--tls-only", action="store_true")
    args = parser.parse_args(argv)
    host, _, port = args.upstream.rpartition(":")
    proxy = MTProxyServer(
        bytes.fromhex(args.secret),
        upstream=(host, int(port)),
        domain=args.domain,
        host=args.host,
        port=args.port,
        mode=args.mode,
        tls_only=args.tls_only,
    )
    asyncio.run(_serve_forever(proxy))
    return 0


if __name__ == "__main__":
    sys.exit(main())
