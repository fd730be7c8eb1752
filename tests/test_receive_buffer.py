"""The receive-buffer bound of http(s) flows: how much a server can push ahead of what we read."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import sys
import time

import pytest

from probe.observations import Trace
from probe.round.measure import (
    DEFAULT_BODY_CAP,
    MAX_BOUNDED_RECEIVE_BUFFER,
    MIN_RECEIVE_BUFFER,
    MeasureConfig,
    RunState,
    http_receive_buffer,
    measure_target,
)
from probe.steps import dns
from probe.steps.http.body import FRAMING_SLACK
from probe.steps.tcp import tcp_connect
from probe.targets import Target
from tests.servers.tcp_server import TCPBehaviour, TCPServer

TIMEOUT = 2.0
PAGE = 600 * 1024
linux_only = pytest.mark.skipif(sys.platform != "linux", reason="SO_RCVBUF/TCP_INFO semantics")


def test_http_receive_buffer_is_a_share_of_the_body_cap() -> None:
    assert http_receive_buffer(DEFAULT_BODY_CAP) == MIN_RECEIVE_BUFFER == 8 * 1024
    assert http_receive_buffer(0) == MIN_RECEIVE_BUFFER
    assert http_receive_buffer(-5) == MIN_RECEIVE_BUFFER
    assert http_receive_buffer(1 << 20) == 128 * 1024
    assert http_receive_buffer(2 << 20) == 256 * 1024 == MAX_BOUNDED_RECEIVE_BUFFER
    assert http_receive_buffer(4 << 20) is None  # a large cap keeps the kernel's autotuning


@linux_only
async def test_tcp_connect_bounds_the_receive_buffer_only_when_asked() -> None:
    async with TCPServer(TCPBehaviour.ECHO) as server:
        sizes = []
        for receive_buffer in (16 * 1024, None):
            trace = Trace(zero=time.monotonic(), transaction_id=1)
            result = await tcp_connect(
                "127.0.0.1",
                server.port,
                trace=trace,
                timeout=TIMEOUT,
                receive_buffer=receive_buffer,
            )
            assert result.stream is not None and result.observation.success
            try:
                await result.stream.send_all(b"ping")  # the connection works as before
                assert await result.stream.receive_some(100) == b"ping"
                sizes.append(result.stream.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
            finally:
                await result.stream.aclose()
    bounded, default = sizes
    assert 16 * 1024 <= bounded <= 2 * 16 * 1024  # Linux doubles it for its bookkeeping
    assert bounded < default


def _bytes_acked(sock: socket.socket) -> int:
    """tcp_info.tcpi_bytes_acked (Linux >= 4.1): what the peer acknowledged, i.e. received."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    if len(info) < 128:
        pytest.skip("tcp_info without tcpi_bytes_acked")
    return int(struct.unpack_from("Q", info, 120)[0])


class BigPageServer:
    """Serves one large page per connection as fast as the client takes it, and records how many
    bytes each client acknowledged before it hung up (on loopback: what crossed the wire)."""

    def __init__(self) -> None:
        self.acked: list[int] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A duplicate of the descriptor: the transport closes its own when the client resets.
        sock = writer.get_extra_info("socket").dup()
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % PAGE)
            for _ in range(PAGE // 4096):
                writer.write(b"x" * 4096)
                await writer.drain()
            await reader.read()  # until the client closes
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.acked.append(_bytes_acked(sock))
            sock.close()
            with contextlib.suppress(Exception):
                writer.close()

    async def __aenter__(self) -> BigPageServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


@linux_only
async def test_an_http_flow_leaves_little_unread_data_on_the_wire() -> None:
    """The flow stops at the body cap; with the bound, the server got to send at most about one
    small window more than that (with the kernel's autotuning, a window that keeps growing)."""
    async with BigPageServer() as server:
        config = MeasureConfig(timeout=TIMEOUT, resolver=("127.0.0.1", 9))
        state = RunState(config=config, resolver=dns.Resolver(config.resolver, pool=None))
        url = f"http://127.0.0.1:{server.port}/"
        observations = await measure_target(
            Target(id="bench/big", service="bench", check="http", url=url), state
        )
        for _ in range(100):  # the server records after it saw the close
            if server.acked:
                break
            await asyncio.sleep(0.02)
    (request,) = observations.requests
    assert request.failure is None
    assert request.body_length == DEFAULT_BODY_CAP and request.body_is_truncated
    assert server.acked, "the server did not see the connection end"
    # Measured here: 69,675 bytes acknowledged with the bound, 118,827 without it.
    assert server.acked[0] <= DEFAULT_BODY_CAP + 2 * MIN_RECEIVE_BUFFER
    # And with the window clamped at the end of the body (probe.steps.receive_window): 66,604
    # with a 16 KiB buffer (the cap, the response head and the framing slack the reader allows
    # for); 65,579 with 8 KiB (the cap, the head and one byte).
    assert server.acked[0] <= DEFAULT_BODY_CAP + FRAMING_SLACK + 2048
