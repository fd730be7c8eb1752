"""The DoH client's connections, made by the probe's own TCP and TLS steps.

httpx's default transport opens its own sockets, so the bytes of the DNS-over-HTTPS comparison
(about a quarter of a default round's traffic, bench/data_usage.py) went uncounted in the
round's `bytes_sent`/`bytes_received`, and 43 names asked at once opened up to 86 TLS
connections. Here httpcore's pool keeps its HTTP logic (keep-alive, HTTP/1.1) but gets its
streams from `tcp_connect` and `tls_handshake`: every byte on the wire (TLS records included) goes
through the round's `ByteCounter`, and the pool holds at most DOH_CONNECTIONS connections.
"""

from __future__ import annotations

import asyncio
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
from probe.steps.tls_context import client_context

#: How long an idle connection is kept for the next query.
KEEPALIVE_SECONDS = 30.0
#: A connect or handshake deadline when httpcore gives none (httpx always gives one here).
DEFAULT_DEADLINE = 10.0


class _CountedStream(httpcore.AsyncNetworkStream):
    """httpcore's view of one of our streams (TCP, then TLS over it)."""

    def __init__(self, stream: SocketStream | TLSStream, sock: socket.socket) -> None:
        self._stream = stream
        self._sock = sock

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        async with asyncio.timeout(timeout):
            return await self._stream.receive_some(max_bytes)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if buffer:
            async with asyncio.timeout(timeout):
                await self._stream.send_all(buffer)

    async def aclose(self) -> None:
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
        return _CountedStream(handshake.stream, self._sock)

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


def doh_client(
    *, timeout: float, counter: ByteCounter | None, ca_files: tuple[str, ...] = ()
) -> httpx.AsyncClient:
    """An httpx client for `resolve_doh` whose connections are counted and bounded. It trusts
    what the probe trusts for its targets: the system store and `--ca-file`."""
    transport = httpx.AsyncHTTPTransport(http2=False)
    # httpx has no public option for a network backend; its transport is a thin adapter over
    # this pool (the same construction as httpx's own, with our backend).
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=client_context(ca_files),
        max_connections=DOH_CONNECTIONS,
        max_keepalive_connections=DOH_CONNECTIONS,
        keepalive_expiry=KEEPALIVE_SECONDS,
        http1=True,
        http2=False,
        network_backend=CountingBackend(counter),
    )
    return httpx.AsyncClient(transport=transport, timeout=timeout, trust_env=False)
