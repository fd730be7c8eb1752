"""The DoH client's connections, made by the probe's own TCP and TLS steps, over HTTP/2.

httpx's default transport opens its own sockets, so the bytes of the DNS-over-HTTPS comparison
(about a quarter of a default round's traffic, bench/data_usage.py) went uncounted in the
round's `bytes_sent`/`bytes_received`, and 43 names asked at once opened up to 86 TLS
connections. Here httpcore's pool keeps its HTTP logic but gets its streams from `tcp_connect`
and `tls_handshake`: every byte on the wire (TLS records included) goes through the round's
`ByteCounter`.

HTTP/2 (RFC 8484 recommends it; dns.google and cloudflare-dns.com speak it) carries every query
over one connection, multiplexed, with compressed headers: one TCP and TLS handshake instead of
six, and ~40 bytes of request headers instead of ~150. A server that does not agree to h2 in
ALPN is spoken to over HTTP/1.1, on at most DOH_CONNECTIONS connections. httpcore writes each
HTTP/2 frame on its own (HEADERS, DATA, END_STREAM, SETTINGS ACK...); `_CountedStream` corks
them for CORK_SECONDS so that the frames of every query asked at once leave in one TLS record
and, mostly, one TCP segment (each record costs 22 bytes, each segment and its ACK ~100).
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from probe import failures
from probe.observations import Trace
from probe.steps.dns.doh import DOH_CONNECTIONS
from probe.steps.tcp import ByteCounter, SocketStream, tcp_connect
from probe.steps.tls import TLSStream, tls_handshake
from probe.steps.tls_context import CAText, client_context, load_ca_text

#: How long an idle connection is kept for the next query.
KEEPALIVE_SECONDS = 30.0
#: A connect or handshake deadline when httpcore gives none (httpx always gives one here).
DEFAULT_DEADLINE = 10.0
#: How long written bytes wait for more before they are sent (see the module's docstring):
#: short against any real round trip, long enough for the queries asked at once.
CORK_SECONDS = 0.005
#: Corked bytes beyond this are sent at once (a write never holds more memory than this).
MAX_CORKED = 65536
#: More than this from one DoH connection is not a resolver's answers (a whole round's are
#: ~30 kB): h2 would buffer a frame of up to 16 MiB before judging it, and the volunteer pays.
MAX_RECEIVED = 1 << 20
#: RFC 9113 3.4: a server's first frame is SETTINGS (type 4): the 4th byte of its preface.
_SETTINGS_FRAME_TYPE = 4


class _CountedStream(httpcore.AsyncNetworkStream):
    """httpcore's view of one of our streams (TCP, then TLS over it)."""

    def __init__(self, stream: SocketStream | TLSStream, sock: socket.socket) -> None:
        self._stream = stream
        self._sock = sock
        self._corked = bytearray()  # written, not sent yet
        self._sender: asyncio.Task[None] | None = None  # sends `_corked` after CORK_SECONDS
        self._failed: BaseException | None = None  # why a corked send failed
        self._received = 0
        #: HTTP/2 agreed: the server's first bytes so far, until its preface is judged
        self._preface: bytes | None = None

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        async with asyncio.timeout(timeout):
            data = await self._stream.receive_some(max_bytes)
        self._received += len(data)
        if self._received > MAX_RECEIVED:
            raise failures.ProbeFailure(
                failures.HTTP_INVALID_RESPONSE, f"more than {MAX_RECEIVED} bytes from a resolver"
            )
        if self._preface is not None:
            self._check_preface(data)
        return data

    def _check_preface(self, data: bytes) -> None:
        """A middlebox's HTTP/1.1 blockpage, or any bytes that are not a SETTINGS frame, fail
        at once (h2 would wait for the rest of a "frame" as long as their first bytes say)."""
        assert self._preface is not None
        self._preface += data[:4]
        if len(self._preface) < 4:
            return
        first, self._preface = self._preface, None
        if first[3] != _SETTINGS_FRAME_TYPE:
            raise failures.ProbeFailure(
                failures.HTTP_INVALID_RESPONSE, f"not an HTTP/2 server preface: {first!r}"
            )

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Cork `buffer` (sent within CORK_SECONDS, with whatever else is written by then); a
        send that failed is raised by the next write."""
        if self._failed is not None:
            raise self._failed
        if not buffer:
            return
        self._corked += buffer
        if len(self._corked) > MAX_CORKED:
            async with asyncio.timeout(timeout):
                await self._send_corked()
        elif self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send_later(timeout))

    async def _send_later(self, timeout: float | None) -> None:
        try:
            await asyncio.sleep(CORK_SECONDS)
            async with asyncio.timeout(timeout):
                await self._send_corked()
        except Exception as exc:  # the socket is unusable: later writes say why
            self._failed = exc
            with contextlib.suppress(OSError):  # and a pending read ends now, not at its deadline
                self._sock.shutdown(socket.SHUT_RDWR)
        finally:
            self._sender = None

    async def _send_corked(self) -> None:
        while self._corked:
            data = bytes(self._corked)
            self._corked.clear()
            await self._stream.send_all(data)

    async def aclose(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            sender.cancel()
        if self._corked and self._failed is None:  # e.g. a GOAWAY: best effort, briefly
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CORK_SECONDS * 10):
                    await self._send_corked()
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        assert isinstance(self._stream, SocketStream), "TLS over TLS is not used here"
        handshake = await tls_handshake(
            self._stream,
            server_hostname,
            trace=Trace(0.0, 0),  # the DoH queries are the observations, not their connections
            timeout=timeout if timeout is not None else DEFAULT_DEADLINE,
            context=ssl_context,
        )
        if handshake.stream is None:  # the socket is closed already
            failure = handshake.observation.failure or failures.UNKNOWN_PREFIX + "TLS handshake"
            raise failures.ProbeFailure(failure, f"TLS handshake with {server_hostname}")
        stream = _CountedStream(handshake.stream, self._sock)
        if handshake.stream.ssl_object.selected_alpn_protocol() == "h2":
            stream._preface = b""
        return stream

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":  # httpcore asks which ALPN protocol was agreed
            return self._stream.ssl_object if isinstance(self._stream, TLSStream) else None
        if info == "is_readable":  # an idle keep-alive connection the server closed
            return _readable(self._sock)
        if info == "socket":
            return self._sock
        return None


def _readable(sock: socket.socket) -> bool:
    if sock.fileno() < 0:
        return True
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


class CountingBackend(httpcore.AsyncNetworkBackend):
    """Connections for httpcore through `tcp_connect`, their bytes counted in `counter`. The
    resolver's name is looked up with the system's getaddrinfo (as any client would); its
    addresses are tried in order."""

    def __init__(self, counter: ByteCounter | None) -> None:
        self._counter = counter

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        deadline = timeout if timeout is not None else DEFAULT_DEADLINE
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(deadline):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        failure = failures.UNKNOWN_PREFIX + "no address"
        for _, _, _, _, sockaddr in infos:
            connected = await tcp_connect(
                str(sockaddr[0]),
                port,
                trace=Trace(0.0, 0),
                timeout=deadline,
                source_address=local_address,
                counter=self._counter,
            )
            if connected.stream is not None:
                return _CountedStream(connected.stream, connected.stream.sock)
            failure = connected.observation.failure or failure
        raise failures.ProbeFailure(failure, f"connect to {host}:{port}")

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise NotImplementedError("DoH resolvers are reached over TCP")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class DohClient(httpx.AsyncClient):
    """The DoH client: `multiplexed` once a reply came over HTTP/2 (then the queries need not
    wait for one of few connections: they share one)."""

    multiplexed = False

    async def _seen(self, response: httpx.Response) -> None:
        if response.http_version == "HTTP/2":
            self.multiplexed = True


def doh_client(
    *, timeout: float, counter: ByteCounter | None, ca_files: tuple[str, ...] = ()
) -> DohClient:
    """An httpx client for `resolve_doh` whose connections are counted and bounded. It trusts
    what the probe trusts for its targets: the system store and `--ca-file`."""
    transport = httpx.AsyncHTTPTransport(http2=True)
    # httpx has no public option for a network backend; its transport is a thin adapter over
    # this pool (the same construction as httpx's own, with our backend).
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=doh_context(ca_files),
        max_connections=DOH_CONNECTIONS,
        max_keepalive_connections=DOH_CONNECTIONS,
        keepalive_expiry=KEEPALIVE_SECONDS,
        http1=True,
        http2=True,
        network_backend=CountingBackend(counter),
    )
    client = DohClient(transport=transport, timeout=timeout, trust_env=False)
    client.event_hooks["response"].append(client._seen)
    return client


def doh_context(ca_files: tuple[str, ...] = ()) -> ssl.SSLContext:
    """A client context like `client_context(ca_files)` but of its own: httpcore sets ALPN
    (h2, http/1.1) on the context it is given, and the targets' cached context must keep
    offering http/1.1 alone (our HTTP step speaks nothing else). Raises ValueError as
    `client_context` does."""
    client_context(ca_files)  # the same checks, and errors naming the file
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    for path in ca_files:
        if isinstance(path, CAText):
            load_ca_text(context, path)
        else:
            context.load_verify_locations(cafile=path)
    context.set_alpn_protocols(["h2", "http/1.1"])
    return context
