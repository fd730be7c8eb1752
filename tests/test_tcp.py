"""The TCP step (`probe.steps.tcp.tcp_connect`) and `SocketStream` against real loopback servers."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest

from probe import failures
from probe.observations import TCPConnect, Trace
from probe.steps.tcp import ByteCounter, SocketStream, tcp_connect
from tests.servers.tcp_server import (
    GARBAGE,
    TCPBehaviour,
    TCPServer,
    closed_port,
    unresponsive_port,
)

TIMEOUT = 1.0
PROBE_SOURCE = "127.0.0.2"
CONTROL_SOURCE = "127.0.0.3"


def new_trace() -> Trace:
    return Trace(zero=time.monotonic(), transaction_id=7)


def ipv6_loopback_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def operations(trace: Trace) -> list[str]:
    return [event.operation for event in trace.events]


async def test_connect_success_records_observation_and_events() -> None:
    trace = new_trace()
    counter = ByteCounter()
    async with TCPServer(TCPBehaviour.ECHO) as server:
        result = await tcp_connect(
            "127.0.0.1", server.port, trace=trace, timeout=TIMEOUT, counter=counter
        )
        assert result.stream is not None
        try:
            await result.stream.send_all(b"ping")
            assert await result.stream.receive_some(100) == b"ping"
        finally:
            await result.stream.aclose()

    observation = result.observation
    assert observation.success is True
    assert observation.failure is None
    assert observation.failed_operation is None
    assert (observation.ip, observation.port) == ("127.0.0.1", server.port)
    assert observation.transaction_id == 7
    assert 0 <= observation.t0 <= observation.t
    assert result.stream.address == f"127.0.0.1:{server.port}"
    assert (result.stream.bytes_sent, result.stream.bytes_received) == (4, 4)
    assert (counter.sent, counter.received) == (4, 4)
    assert operations(trace) == ["connect", "write", "read"]
    assert [event.num_bytes for event in trace.events[1:]] == [4, 4]


async def test_closed_port_is_connection_refused() -> None:
    trace = new_trace()
    result = await tcp_connect("127.0.0.1", closed_port(), trace=trace, timeout=TIMEOUT)
    assert result.stream is None
    assert result.observation.success is False
    assert result.observation.failure == failures.CONNECTION_REFUSED
    assert result.observation.failed_operation == failures.CONNECT
    assert trace.events[0].operation == "connect"
    assert trace.events[0].failure == failures.CONNECTION_REFUSED


async def test_dropped_syn_is_generic_timeout_within_the_deadline() -> None:
    timeout = 0.5
    trace = new_trace()
    with unresponsive_port() as port:
        started = time.monotonic()
        result = await tcp_connect("127.0.0.1", port, trace=trace, timeout=timeout)
        elapsed = time.monotonic() - started
    assert result.stream is None
    assert result.observation.failure == failures.GENERIC_TIMEOUT
    assert result.observation.failed_operation == failures.CONNECT
    assert elapsed < 3 * timeout + 2


async def test_reset_on_accept_is_connection_reset_on_first_read() -> None:
    trace = new_trace()
    async with TCPServer(TCPBehaviour.RESET) as server:
        result = await tcp_connect("127.0.0.1", server.port, trace=trace, timeout=TIMEOUT)
        assert result.observation.success is True  # the handshake completed before the RST
        assert result.stream is not None
        try:
            with pytest.raises(OSError) as raised:
                async with asyncio.timeout(TIMEOUT):
                    await result.stream.receive_some()
        finally:
            await result.stream.aclose()
    assert failures.classify(raised.value) == failures.CONNECTION_RESET
    assert trace.events[-1].operation == "read"
    assert trace.events[-1].failure == failures.CONNECTION_RESET


async def test_reset_after_data_is_connection_reset() -> None:
    async with TCPServer(TCPBehaviour.RESET_AFTER_DATA) as server:
        result = await tcp_connect("127.0.0.1", server.port, trace=new_trace(), timeout=TIMEOUT)
        assert result.stream is not None
        try:
            await result.stream.send_all(b"GET / HTTP/1.1\r\n\r\n")
            with pytest.raises(OSError) as raised:
                async with asyncio.timeout(TIMEOUT):
                    await result.stream.receive_some()
        finally:
            await result.stream.aclose()
    assert failures.classify(raised.value) == failures.CONNECTION_RESET


async def test_close_on_accept_reads_end_of_stream() -> None:
    trace = new_trace()
    async with TCPServer(TCPBehaviour.CLOSE) as server:
        result = await tcp_connect("127.0.0.1", server.port, trace=trace, timeout=TIMEOUT)
        assert result.stream is not None
        try:
            async with asyncio.timeout(TIMEOUT):
                assert await result.stream.receive_some() == b""
        finally:
            await result.stream.aclose()
    assert trace.events[-1].operation == "read"
    assert trace.events[-1].failure == failures.EOF_ERROR


async def test_silent_server_times_out_on_read() -> None:
    async with TCPServer(TCPBehaviour.SILENT) as server:
        result = await tcp_connect("127.0.0.1", server.port, trace=new_trace(), timeout=TIMEOUT)
        assert result.stream is not None
        try:
            await result.stream.send_all(b"hello")
            with pytest.raises(TimeoutError) as raised:
                async with asyncio.timeout(0.3):
                    await result.stream.receive_some()
        finally:
            await result.stream.aclose()
    assert failures.classify(raised.value) == failures.GENERIC_TIMEOUT


async def test_garbage_server_answers_garbage() -> None:
    async with TCPServer(TCPBehaviour.GARBAGE) as server:
        result = await tcp_connect("127.0.0.1", server.port, trace=new_trace(), timeout=TIMEOUT)
        assert result.stream is not None
        received = b""
        try:
            await result.stream.send_all(b"\x16\x03\x01")
            async with asyncio.timeout(TIMEOUT):
                while chunk := await result.stream.receive_some():
                    received += chunk
        finally:
            await result.stream.aclose()
    assert received == GARBAGE


async def test_source_address_is_bound_and_selects_the_peer_behaviour() -> None:
    by_peer = {PROBE_SOURCE: TCPBehaviour.RESET, CONTROL_SOURCE: TCPBehaviour.ECHO}
    async with TCPServer(TCPBehaviour.CLOSE, by_peer=by_peer) as server:
        probe = await tcp_connect(
            "127.0.0.1",
            server.port,
            trace=new_trace(),
            timeout=TIMEOUT,
            source_address=PROBE_SOURCE,
        )
        control = await tcp_connect(
            "127.0.0.1",
            server.port,
            trace=new_trace(),
            timeout=TIMEOUT,
            source_address=CONTROL_SOURCE,
        )
        assert probe.stream is not None and control.stream is not None
        try:
            assert probe.stream.sock.getsockname()[0] == PROBE_SOURCE
            with pytest.raises(OSError) as raised:
                async with asyncio.timeout(TIMEOUT):
                    await probe.stream.receive_some()
            await control.stream.send_all(b"still here")
            async with asyncio.timeout(TIMEOUT):
                assert await control.stream.receive_some() == b"still here"
        finally:
            await probe.stream.aclose()
            await control.stream.aclose()
    assert failures.classify(raised.value) == failures.CONNECTION_RESET
    assert sorted(server.peers) == [PROBE_SOURCE, CONTROL_SOURCE]


async def test_unbindable_source_address_is_a_failure_not_an_exception() -> None:
    # 192.0.2.1 (TEST-NET-1) is not configured here: bind() fails before any packet is sent.
    result = await tcp_connect(
        "127.0.0.1", closed_port(), trace=new_trace(), timeout=TIMEOUT, source_address="192.0.2.1"
    )
    assert result.stream is None
    assert result.observation.failure == failures.ADDRESS_NOT_AVAILABLE


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback (::1) here")
async def test_ipv6_loopback_connect_and_address_format() -> None:
    trace = new_trace()
    async with TCPServer(TCPBehaviour.ECHO, host="::1") as server:
        result = await tcp_connect("::1", server.port, trace=trace, timeout=TIMEOUT)
        assert result.stream is not None
        try:
            await result.stream.send_all(b"six")
            assert await result.stream.receive_some() == b"six"
        finally:
            await result.stream.aclose()
    assert result.observation.success is True
    assert result.stream.address == f"[::1]:{server.port}"
    assert trace.events[0].address == f"[::1]:{server.port}"
    refused = await tcp_connect("::1", closed_port("::1"), trace=new_trace(), timeout=TIMEOUT)
    assert refused.observation.failure == failures.CONNECTION_REFUSED


async def test_socket_stream_survives_a_reset_before_it_is_built() -> None:
    """An RST that lands between connect() and SocketStream() must not crash the step."""
    async with TCPServer(TCPBehaviour.RESET) as server:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
            for _ in range(100):  # wait until the RST has arrived
                if not _connected(sock):  # (SO_ERROR is not read: that would consume it)
                    break
                await asyncio.sleep(0.01)
            stream = SocketStream(sock, new_trace(), address=f"127.0.0.1:{server.port}")
            assert stream.address == f"127.0.0.1:{server.port}"
            assert not _connected(sock)
            with pytest.raises(OSError) as raised:
                await stream.receive_some()
        finally:
            sock.close()
    assert failures.classify(raised.value) == failures.CONNECTION_RESET


def _connected(sock: socket.socket) -> bool:
    try:
        sock.getpeername()
    except OSError:
        return False
    return True


async def test_cancellation_escapes_and_nothing_is_recorded_as_failure() -> None:
    trace = new_trace()
    with unresponsive_port() as port:
        task = asyncio.create_task(tcp_connect("127.0.0.1", port, trace=trace, timeout=5.0))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert trace.events == []


async def test_tcp_connect_observation_round_trips_through_json() -> None:
    result = await tcp_connect("127.0.0.1", closed_port(), trace=new_trace(), timeout=TIMEOUT)
    data = json.loads(json.dumps(result.observation.to_dict()))
    assert data["status"] == {
        "success": False,
        "failure": failures.CONNECTION_REFUSED,
        "blocked": None,
    }
    assert data["failed_operation"] == "connect"
    assert TCPConnect.from_dict(data) == result.observation


def test_unresponsive_port_really_drops_syns() -> None:
    """The helper's premise, checked with a plain blocking socket."""
    with unresponsive_port() as port, socket.socket() as sock:
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.connect(("127.0.0.1", port))
