"""A hand-written asyncio HTTP/1.1 test server that can misbehave in every way we measure.

Hand-written (not aiohttp) so that every byte on the wire is under the test's control: garbage
instead of a status line, a reset in the middle of a body, a body that trickles or never ends.
One request per connection; the first path segment names the behaviour (`/gzip`, `/redirect/3`,
...), see `BEHAVIOURS`. `by_peer` overrides the path for chosen client addresses, so one server
can show the probe (127.0.0.2) a blockpage and the control (127.0.0.3) the real page.

In-process::

    async with HTTPTestServer(by_peer={"127.0.0.2": "blockpage"}) as server:
        server.url("/page")            # http://127.0.0.1:<port>/page

HTTPS: pass `ssl_context` (a server context holding a certificate, e.g. from
`tests.servers.certs`). Standalone, for subprocess and lab tests (prints the port, then serves
until SIGTERM/SIGINT)::

    python -m tests.servers.http_server --host 127.0.0.1 --port 0 [--tls --ca-out ca.pem]
        [--peer 127.0.0.2=blockpage] [--trickle-interval 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gzip
import json
import signal
import socket
import ssl
import struct
import sys
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

MAX_REQUEST_HEAD = 65536
#: Requests remembered for assertions (bounded: the endless tests make many).
MAX_RECORDED_REQUESTS = 1000
#: The gzip bomb inflates to this many zero bytes (about 32 KiB on the wire).
GZIP_BOMB_SIZE = 32 * 1024 * 1024

PAGE_TITLE = "Probe test page"
PAGE_HTML = (
    '<!DOCTYPE html>\n<html><head><meta charset="utf-8">\n'
    f"<title>\n  {PAGE_TITLE}\n</title></head>\n"
    "<body><h1>It works</h1><p>Ünïcödé text so that decoding is exercised.</p></body></html>\n"
).encode()
#: Headers with deliberately mixed case and a repeated name, to check order and case survive.
PAGE_HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Type", "text/html; charset=utf-8"),
    ("Server", "probe-test"),
    ("X-Probe-Test", "Mixed-Case"),
    ("x-lower-case", "yes"),
    ("Set-Cookie", "a=1"),
    ("Set-Cookie", "b=2"),
)
#: The Iranian national blockpage as served by the filter (FACTS.md: a 403 with an iframe to
#: 10.10.34.34); the body is copied byte for byte.
BLOCKPAGE_HTML = (
    b'<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1256">'
    b"<title>M1-6</title></head><body><iframe "
    b'src="http://10.10.34.34?type=Invalid Site&policy=MainPolicy" style="width: 100%; '
    b'height: 100%" scrolling="no" marginwidth="0" marginheight="0" frameborder="0" '
    b'vspace="0" hspace="0"></iframe></body></html>'
)
PRIVATE_REDIRECT_TARGET = "http://10.1.2.3/"
#: What /garbage sends instead of a status line (a TLS alert, then binary noise).
GARBAGE = b"\x15\x03\x01\x00\x02\x02\x28" + bytes(range(256)) * 4


@functools.cache
def gzip_bomb() -> bytes:
    """GZIP_BOMB_SIZE zero bytes, gzip-compressed (built once per process)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(1024 * 1024)
    parts = [compressor.compress(chunk) for _ in range(GZIP_BOMB_SIZE // len(chunk))]
    parts.append(compressor.flush())
    return b"".join(parts)


def body_pattern(size: int) -> bytes:
    """`size` bytes of a repeating printable pattern (bodies of a known length and hash)."""
    unit = b"0123456789abcdefghijklmnopqrstuvwxyz\n"
    return (unit * (size // len(unit) + 1))[:size]


@dataclass(slots=True)
class ReceivedRequest:
    peer: str
    method: str
    target: str
    headers: list[tuple[str, str]]  # as received: order and case kept


@dataclass(slots=True)
class _Exchange:
    request: ReceivedRequest
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    behaviour: str  # a key of BEHAVIOURS
    argument: str  # the path after the behaviour's name, e.g. "3" in /redirect/3
    host: str  # the Host header (for absolute redirects)
    scheme: str


Behaviour = Callable[["HTTPTestServer", _Exchange], Awaitable[None]]
BEHAVIOURS: dict[str, Behaviour] = {}


def behaviour(name: str) -> Callable[[Behaviour], Behaviour]:
    def register(function: Behaviour) -> Behaviour:
        BEHAVIOURS[name] = function
        return function

    return register


def _head(status: str, headers: list[tuple[str, str]] | tuple[tuple[str, str], ...]) -> bytes:
    lines = [f"HTTP/1.1 {status}"] + [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _send(exchange: _Exchange, data: bytes) -> None:
    exchange.writer.write(data)
    await exchange.writer.drain()


async def _respond(
    exchange: _Exchange,
    status: str,
    body: bytes,
    headers: list[tuple[str, str]] | tuple[tuple[str, str], ...] = (
        ("Content-Type", "text/html; charset=utf-8"),
    ),
) -> None:
    all_headers = [*headers, ("Content-Length", str(len(body))), ("Connection", "close")]
    await _send(exchange, _head(status, all_headers) + body)


async def _redirect(exchange: _Exchange, location: str | None, status: str = "302 Found") -> None:
    headers = [("Location", location)] if location is not None else []
    await _respond(exchange, status, b"<html><title>Moved</title></html>", headers)


async def _wait_for_client_to_leave(exchange: _Exchange) -> None:
    """Hold the connection open (never answering) until the client closes it."""
    with contextlib.suppress(ConnectionError):
        while await exchange.reader.read(65536):
            pass


def _reset(exchange: _Exchange) -> None:
    """Close with an RST (SO_LINGER 0) instead of a FIN."""
    sock = exchange.writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    exchange.writer.transport.abort()


async def _flushed(exchange: _Exchange) -> None:
    """Wait until everything written has left our buffers, and give loopback time to deliver
    it (an RST discards data still queued in the kernel)."""
    await exchange.writer.drain()
    for _ in range(100):
        if exchange.writer.transport.get_write_buffer_size() == 0:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)


# --- the behaviours ---------------------------------------------------------------------------


@behaviour("page")
async def _page(server: HTTPTestServer, exchange: _Exchange) -> None:
    await _respond(exchange, "200 OK", PAGE_HTML, PAGE_HEADERS)


@behaviour("not-found")
async def _not_found(server: HTTPTestServer, exchange: _Exchange) -> None:
    await _respond(exchange, "404 Not Found", b"<html><title>Not Found</title></html>")


@behaviour("echo")
async def _echo(server: HTTPTestServer, exchange: _Exchange) -> None:
    request = exchange.request
    body = json.dumps(
        {
            "peer": request.peer,
            "method": request.method,
            "target": request.target,
            "headers": request.headers,
        }
    ).encode()
    await _respond(exchange, "200 OK", body, (("Content-Type", "application/json"),))


@behaviour("gzip")
async def _gzip(server: HTTPTestServer, exchange: _Exchange) -> None:
    headers = [*PAGE_HEADERS, ("Content-Encoding", "gzip")]
    await _respond(exchange, "200 OK", gzip.compress(PAGE_HTML), headers)


@behaviour("deflate")
async def _deflate(server: HTTPTestServer, exchange: _Exchange) -> None:
    """RFC 9110's deflate (a zlib stream)."""
    headers = [*PAGE_HEADERS, ("Content-Encoding", "deflate")]
    await _respond(exchange, "200 OK", zlib.compress(PAGE_HTML), headers)


@behaviour("deflate-raw")
async def _deflate_raw(server: HTTPTestServer, exchange: _Exchange) -> None:
    """What many servers really send as deflate: a raw deflate stream without zlib header."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = compressor.compress(PAGE_HTML) + compressor.flush()
    await _respond(exchange, "200 OK", body, [*PAGE_HEADERS, ("Content-Encoding", "deflate")])


@behaviour("bad-gzip")
async def _bad_gzip(server: HTTPTestServer, exchange: _Exchange) -> None:
    headers = [*PAGE_HEADERS, ("Content-Encoding", "gzip")]
    await _respond(exchange, "200 OK", b"this is not gzip at all", headers)


@behaviour("chunked")
async def _chunked(server: HTTPTestServer, exchange: _Exchange) -> None:
    headers = [*PAGE_HEADERS, ("Transfer-Encoding", "chunked"), ("Connection", "close")]
    out = bytearray(_head("200 OK", headers))
    for start in range(0, len(PAGE_HTML), 50):
        piece = PAGE_HTML[start : start + 50]
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    out += b"0\r\n\r\n"
    await _send(exchange, bytes(out))


@behaviour("sized")
async def _sized(server: HTTPTestServer, exchange: _Exchange) -> None:
    """/sized/N: exactly N pattern bytes with a Content-Length."""
    size = int(exchange.argument or "0")
    await _respond(exchange, "200 OK", body_pattern(size), (("Content-Type", "text/plain"),))


@behaviour("close-delimited")
async def _close_delimited(server: HTTPTestServer, exchange: _Exchange) -> None:
    """/close-delimited/N: N pattern bytes, no Content-Length, the end marked by closing."""
    size = int(exchange.argument or "1000")
    headers = (("Content-Type", "text/plain"), ("Connection", "close"))
    await _send(exchange, _head("200 OK", headers) + body_pattern(size))


@behaviour("redirect")
async def _redirect_chain(server: HTTPTestServer, exchange: _Exchange) -> None:
    """/redirect/N: an absolute redirect to /redirect/N-1; /redirect/0 is the page."""
    hops = int(exchange.argument or "0")
    if hops <= 0:
        await _page(server, exchange)
        return
    await _redirect(exchange, f"{exchange.scheme}://{exchange.host}/redirect/{hops - 1}")


@behaviour("redirect-relative")
async def _redirect_relative(server: HTTPTestServer, exchange: _Exchange) -> None:
    await _redirect(exchange, "page?from=relative", "301 Moved Permanently")


@behaviour("loop")
async def _loop(server: HTTPTestServer, exchange: _Exchange) -> None:
    await _redirect(exchange, "/loop")


@behaviour("redirect-ftp")
async def _redirect_ftp(server: HTTPTestServer, exchange: _Exchange) -> None:
    await _redirect(exchange, "ftp://files.example.com/pub/file.txt")


@behaviour("redirect-javascript")
async def _redirect_javascript(server: HTTPTestServer, exchange: _Exchange) -> None:
    await _redirect(exchange, "javascript:alert(1)")


@behaviour("redirect-private")
async def _redirect_private(server: HTTPTestServer, exchange: _Exchange) -> None:
    """A redirect into a private range; the client must record it and never connect there."""
    await _redirect(exchange, PRIVATE_REDIRECT_TARGET)


@behaviour("redirect-broken")
async def _redirect_broken(server: HTTPTestServer, exchange: _Exchange) -> None:
    await _redirect(exchange, "http://[::1/")


@behaviour("redirect-missing")
async def _redirect_missing(server: HTTPTestServer, exchange: _Exchange) -> None:
    await _redirect(exchange, None)


@behaviour("blockpage")
async def _blockpage(server: HTTPTestServer, exchange: _Exchange) -> None:
    """The filter's reply: no Content-Length, the body ends when the connection closes."""
    headers = (("Content-Type", "text/html"), ("Connection", "close"))
    await _send(exchange, _head("403 Forbidden", headers) + BLOCKPAGE_HTML)


@behaviour("endless")
async def _endless(server: HTTPTestServer, exchange: _Exchange) -> None:
    """A body that never ends (no Content-Length); stops when the client goes away."""
    headers = (("Content-Type", "text/plain"), ("Connection", "close"))
    await _send(exchange, _head("200 OK", headers))
    chunk = body_pattern(16384)
    with contextlib.suppress(ConnectionError):
        while True:
            await _send(exchange, chunk)


@behaviour("trickle")
async def _trickle(server: HTTPTestServer, exchange: _Exchange) -> None:
    """The head at once, then one body byte every `trickle_interval` seconds."""
    headers = (("Content-Type", "text/plain"), ("Content-Length", "100000"))
    await _send(exchange, _head("200 OK", headers))
    with contextlib.suppress(ConnectionError):
        for byte in body_pattern(100000):
            await asyncio.sleep(server.trickle_interval)
            await _send(exchange, bytes([byte]))


@behaviour("trickle-head")
async def _trickle_head(server: HTTPTestServer, exchange: _Exchange) -> None:
    """The status line itself, one byte every `trickle_interval` seconds."""
    with contextlib.suppress(ConnectionError):
        for byte in _head("200 OK", (("X-Padding", "p" * 1000),)):
            await _send(exchange, bytes([byte]))
            await asyncio.sleep(server.trickle_interval)


@behaviour("gzip-bomb")
async def _gzip_bomb(server: HTTPTestServer, exchange: _Exchange) -> None:
    headers = (("Content-Type", "text/html"), ("Content-Encoding", "gzip"))
    await _respond(exchange, "200 OK", gzip_bomb(), headers)


@behaviour("reset")
async def _reset_mid_body(server: HTTPTestServer, exchange: _Exchange) -> None:
    """Announce 100000 bytes, send a page's beginning, then reset the connection."""
    part = b"<html><head><title>Cut short</title></head><body>" + body_pattern(1000)
    headers = (("Content-Type", "text/html"), ("Content-Length", "100000"))
    await _send(exchange, _head("200 OK", headers) + part)
    await _flushed(exchange)
    _reset(exchange)


@behaviour("reset-before")
async def _reset_before_response(server: HTTPTestServer, exchange: _Exchange) -> None:
    _reset(exchange)


@behaviour("eof-mid-body")
async def _eof_mid_body(server: HTTPTestServer, exchange: _Exchange) -> None:
    """Announce 1000 bytes, send 100, close normally (FIN)."""
    headers = (("Content-Type", "text/plain"), ("Content-Length", "1000"))
    await _send(exchange, _head("200 OK", headers) + body_pattern(100))


@behaviour("never")
async def _never(server: HTTPTestServer, exchange: _Exchange) -> None:
    await _wait_for_client_to_leave(exchange)


@behaviour("garbage")
async def _garbage(server: HTTPTestServer, exchange: _Exchange) -> None:
    """Bytes that are not HTTP, then silence: the client should not wait for its deadline."""
    await _send(exchange, GARBAGE)
    await _wait_for_client_to_leave(exchange)


@behaviour("close")
async def _close(server: HTTPTestServer, exchange: _Exchange) -> None:
    """Close without sending a byte."""


@behaviour("close-status")
async def _close_status(server: HTTPTestServer, exchange: _Exchange) -> None:
    """Close half way through the status line."""
    await _send(exchange, b"HTTP/1.1 20")


@behaviour("huge-headers")
async def _huge_headers(server: HTTPTestServer, exchange: _Exchange) -> None:
    """A status line, then header lines without end."""
    await _send(exchange, b"HTTP/1.1 200 OK\r\n")
    line = b"X-Filler: " + b"f" * 1000 + b"\r\n"
    with contextlib.suppress(ConnectionError):
        while True:
            await _send(exchange, line * 16)


@behaviour("informational-flood")
async def _informational_flood(server: HTTPTestServer, exchange: _Exchange) -> None:
    with contextlib.suppress(ConnectionError):
        while True:
            await _send(exchange, b"HTTP/1.1 100 Continue\r\n\r\n" * 16)


@behaviour("raw")
async def _raw(server: HTTPTestServer, exchange: _Exchange) -> None:
    """/raw/<token>: the bytes registered in `server.raw_responses[token]`, then close."""
    await _send(exchange, server.raw_responses.get(exchange.argument, b""))


# --- the server --------------------------------------------------------------------------------


@dataclass
class HTTPTestServer:
    host: str = "127.0.0.1"
    port: int = 0
    ssl_context: ssl.SSLContext | None = None
    #: peer address -> behaviour path (e.g. "blockpage", "redirect/2"), overriding the URL path
    by_peer: dict[str, str] = field(default_factory=dict)
    trickle_interval: float = 2.0
    #: bytes served by /raw/<token>
    raw_responses: dict[str, bytes] = field(default_factory=dict)
    requests: list[ReceivedRequest] = field(default_factory=list)
    #: the scheme of absolute redirects and `url()`, when TLS is done elsewhere (see below)
    scheme_override: str | None = None
    _server: asyncio.Server | None = None
    _handlers: set[asyncio.Task[Any]] = field(default_factory=set)

    @property
    def scheme(self) -> str:
        if self.scheme_override is not None:
            return self.scheme_override
        return "https" if self.ssl_context is not None else "http"

    async def handle_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Serve one connection: usable as `TLSServer(cert, app=server.handle_connection)`
        to serve these behaviours behind the TLS server (then set `scheme_override="https"`)."""
        await self._handle(reader, writer)

    def url(self, path: str = "/", host: str | None = None) -> str:
        """The URL of `path` here; `host` replaces the address in the URL (Host and SNI),
        while the client still connects to this server's address."""
        name = host or (f"[{self.host}]" if ":" in self.host else self.host)
        return f"{self.scheme}://{name}:{self.port}{path}"

    async def start(self) -> HTTPTestServer:
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, ssl=self.ssl_context, limit=MAX_REQUEST_HEAD
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> HTTPTestServer:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            exchange = await self._read_request(reader, writer)
            if exchange is not None:
                await BEHAVIOURS[exchange.behaviour](self, exchange)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except ssl.SSLError:
            pass
        finally:
            self._handlers.discard(task)
            if not writer.transport.is_closing():
                writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> _Exchange | None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        request_line = lines[0].split(" ")
        if len(request_line) != 3:
            return None
        method, target, _version = request_line
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers.append((name, value.strip()))
        length = next((v for n, v in headers if n.lower() == "content-length"), "0")
        if length.isdigit() and 0 < int(length) <= MAX_REQUEST_HEAD:
            await reader.readexactly(int(length))
        peer = writer.get_extra_info("peername")[0]
        request = ReceivedRequest(peer=peer, method=method, target=target, headers=headers)
        if len(self.requests) < MAX_RECORDED_REQUESTS:
            self.requests.append(request)
        path = self.by_peer.get(peer, target.split("?", 1)[0])
        name, _, argument = path.strip("/").partition("/")
        if not name:
            name = "page"
        elif name not in BEHAVIOURS:
            name = "not-found"
        host = next((v for n, v in headers if n.lower() == "host"), self.url("").split("/")[2])
        return _Exchange(request, reader, writer, name, argument, host, self.scheme)


# --- standalone -------------------------------------------------------------------------------


def _parse_peer(text: str) -> tuple[str, str]:
    address, sep, path = text.partition("=")
    if not sep or not address or not path:
        raise argparse.ArgumentTypeError(f"expected ADDRESS=BEHAVIOUR, got {text!r}")
    return address, path


async def _serve(args: argparse.Namespace) -> None:
    context: ssl.SSLContext | None = None
    if args.tls:
        from tests.servers.certs import make_pki

        pki = make_pki()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        pki.good.configure_cert(context)
        if args.ca_out:
            pki.ca.cert_pem.write_to_path(args.ca_out)
    server = HTTPTestServer(
        host=args.host,
        port=args.port,
        ssl_context=context,
        by_peer=dict(args.peer),
        trickle_interval=args.trickle_interval,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        print(server.port, flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="probe's misbehaving HTTP test server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tls", action="store_true", help="serve HTTPS with the test PKI")
    parser.add_argument("--ca-out", help="with --tls: write the test CA certificate here")
    parser.add_argument("--peer", type=_parse_peer, action="append", default=[])
    parser.add_argument("--trickle-interval", type=float, default=2.0)
    args = parser.parse_args(argv)
    try:
        asyncio.run(_serve(args))
    except OSError as exc:
        print(f"http_server: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
