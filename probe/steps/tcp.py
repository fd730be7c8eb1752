"""TCP: the connect step and the byte stream every later layer (TLS, HTTP, MTProto) runs on.

We create and connect the socket ourselves so that the address is exactly the one we chose
(never a library's pick), an optional source address can be bound, and every byte sent and
received is counted for the round's data-usage figure.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from typing import Protocol

from probe import failures
from probe.observations import NetworkEvent, TCPConnect, Trace, format_address
from probe.steps.deadline import deadline
from probe.steps.receive_window import WindowClamp


class ByteCounter:
    """Bytes sent and received, summed over every stream that shares this counter."""

    __slots__ = ("received", "sent")

    def __init__(self) -> None:
        self.sent = 0
        self.received = 0


class ByteStream(Protocol):
    """What TLS, HTTP and MTProto need from a connection (trio-style names)."""

    bytes_sent: int
    bytes_received: int

    async def send_all(self, data: bytes) -> None: ...

    async def receive_some(self, max_bytes: int = 65536) -> bytes:
        """Up to `max_bytes`; b"" at end of stream. Errors propagate (the caller classifies)."""
        ...

    async def aclose(self) -> None: ...

    def expect(self, needed: int | None) -> None:
        """At most `needed` more bytes will be read (None: unknown). A hint that keeps the peer
        from sending far past them (probe.steps.receive_window); what is read never changes."""
        ...


class SocketStream:
    """A connected non-blocking socket. Records read/write network events on `trace`."""

    def __init__(
        self,
        sock: socket.socket,
        trace: Trace | None = None,
        counter: ByteCounter | None = None,
        address: str | None = None,
    ) -> None:
        self.sock = sock
        self.trace = trace
        self.counter = counter
        self.bytes_sent = 0
        self.bytes_received = 0
        if address is None:
            # getpeername() fails (ENOTCONN) once an RST has arrived, so callers that know the
            # address pass it: a reset right after connect must be a read failure, not a crash.
            peer = sock.getpeername()
            address = format_address(peer[0], peer[1])
        self.address = address
        self._loop = asyncio.get_running_loop()
        self._window: WindowClamp | None = None  # made when a reader first says what it needs
        #: the read waiting for bytes and how many it takes (see `receive_some`)
        self._waiter: asyncio.Future[bytes] | None = None
        self._wanted = 0
        self._watched = -1  # the descriptor our reader callback is registered for (-1: none)

    def _event(self, operation: str, t0: float, num_bytes: int | None, failure: str | None) -> None:
        if self.trace is not None:
            self.trace.add_event(
                NetworkEvent(
                    operation=operation,
                    address=self.address,
                    num_bytes=num_bytes,
                    failure=failure,
                    t0=t0,
                    t=self.trace.now(),
                    transaction_id=self.trace.transaction_id,
                )
            )

    async def send_all(self, data: bytes, *, timeout: float | None = None) -> None:
        """All of `data`; what the socket does not take at once waits for room, at most
        `timeout` seconds when one is given (a timer only when there is a wait)."""
        trace = self.trace
        t0 = trace.now() if trace is not None else 0.0
        size = len(data)
        limit: deadline | None = None
        try:
            # The socket nearly always takes the bytes at once: send them here, and go through
            # the event loop (a writer registration, a future) only for what is left.
            try:
                sent = self.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            if sent < size:
                limit = deadline(timeout)
                with limit:
                    await self._loop.sock_sendall(self.sock, memoryview(data)[sent:])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if limit is not None and limit.expired:
                raise  # the caller's bound, like a deadline around the call: not a write failure
            self._event("write", t0, None, failures.classify(exc))
            raise
        self.bytes_sent += size
        if self.counter is not None:
            self.counter.sent += size
        if trace is not None:
            self._event("write", t0, size, None)

    async def receive_some(self, max_bytes: int = 65536) -> bytes:
        trace = self.trace
        t0 = trace.now() if trace is not None else 0.0
        try:
            # Bytes already waiting are read here; only an empty socket waits, as loop.sock_recv
            # does (the read happens in the reader callback, `_on_readable`, with the same
            # size), but the reader stays registered from one wait to the next instead of being
            # added and removed each time (a selector change each way).
            try:
                data = self.sock.recv(max_bytes)
            except (BlockingIOError, InterruptedError):
                waiter: asyncio.Future[bytes] = self._loop.create_future()
                self._waiter, self._wanted = waiter, max_bytes
                if self._watched < 0:
                    self._watch()
                try:
                    data = await waiter
                finally:
                    self._waiter = None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._event("read", t0, None, failures.classify(exc))
            raise
        size = len(data)
        self.bytes_received += size
        if self.counter is not None:
            self.counter.received += size
        if trace is not None:
            self._event("read", t0, size, None if size else failures.EOF_ERROR)
        return data

    def _watch(self) -> None:
        fd = self.sock.fileno()
        self._loop.add_reader(fd, self._on_readable)
        self._watched = fd

    def _on_readable(self) -> None:
        waiter = self._waiter
        if waiter is None:
            # No read waits: readiness is level-triggered and would call us on every pass of
            # the loop, so stop watching until the next wait.
            self._unwatch()
            return
        if waiter.done():
            return  # its reader has not resumed yet (it clears `_waiter` when it does)
        try:
            data = self.sock.recv(self._wanted)
        except (BlockingIOError, InterruptedError):
            return  # woken for nothing; keep waiting
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:  # the reader's to classify, as with sock_recv
            waiter.set_exception(exc)
        else:
            waiter.set_result(data)

    def _unwatch(self) -> None:
        if self._watched >= 0:
            self._loop.remove_reader(self._watched)
            self._watched = -1

    def expect(self, needed: int | None) -> None:
        if self._window is None:
            if needed is None:
                return
            self._window = WindowClamp(self.sock)
        self._window.expect(needed)

    async def aclose(self) -> None:
        # Never leave a closed descriptor in the selector: its number is reused at once.
        self._unwatch()
        self.sock.close()


@dataclass(slots=True)
class TCPConnectResult:
    observation: TCPConnect
    stream: SocketStream | None  # None when the connect failed


async def tcp_connect(
    ip: str,
    port: int,
    *,
    trace: Trace,
    timeout: float,
    source_address: str | None = None,
    counter: ByteCounter | None = None,
    receive_buffer: int | None = None,
) -> TCPConnectResult:
    """Connect to ip:port within `timeout` seconds. Failures are data; only cancellation escapes.

    `receive_buffer` (bytes) bounds the socket's receive buffer, and with it the window we
    advertise: how much a server can push ahead of what we read. It is set before the connect,
    because the window scale is agreed in the handshake; the kernel may double the value for its
    bookkeeping and caps it at net.core.rmem_max. None leaves the kernel's autotuning alone.

    The caller owns the returned stream and must `aclose()` it."""
    t0 = trace.now()
    sock: socket.socket | None = None
    failure: str | None = None
    try:
        sock = _stream_socket(ip, source_address, receive_buffer)
        with deadline(timeout):
            await _connect(sock, ip, port)
    except asyncio.CancelledError:
        if sock is not None:
            sock.close()
        raise
    except Exception as exc:
        failure = failures.classify(exc)
    address = format_address(ip, port)
    observation = _record_connect(trace, ip, port, address, failure, t0)
    if failure is not None:
        if sock is not None:
            sock.close()
        return TCPConnectResult(observation, None)
    assert sock is not None
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass  # already reset by the peer: the first read will say so
    return TCPConnectResult(observation, SocketStream(sock, trace, counter, address=address))


async def _connect(sock: socket.socket, ip: str, port: int) -> None:
    """loop.sock_connect for an address we hold as an IP literal already: the same connect
    call and the same error (errno and message), without asyncio's resolution of the literal
    and its writer bookkeeping."""
    loop = asyncio.get_running_loop()
    if "%" in ip:  # a scoped IPv6 address: asyncio resolves the scope
        await loop.sock_connect(sock, (ip, port))
        return
    # the socket's family is IPv6 for an address with a colon (`_stream_socket`); asking the
    # socket (`sock.family`) would cost an enum conversion
    address = (ip, port, 0, 0) if ":" in ip else (ip, port)
    try:
        sock.connect(address)
        return
    except (BlockingIOError, InterruptedError):
        pass  # in progress: done when the socket is writable
    connected = loop.create_future()
    fd = sock.fileno()
    loop.add_writer(fd, _connect_done, connected, sock, address)
    try:
        await connected
    finally:
        loop.remove_writer(fd)  # also when cancelled: before the caller closes the socket


def _connect_done(
    connected: asyncio.Future[None], sock: socket.socket, address: tuple[str | int, ...]
) -> None:
    if connected.done():
        return
    try:
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err != 0:
            raise OSError(err, f"Connect call failed {address}")
    except (BlockingIOError, InterruptedError):
        pass  # not yet: called again
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        connected.set_exception(exc)
    else:
        connected.set_result(None)


def _stream_socket(
    ip: str, source_address: str | None, receive_buffer: int | None
) -> socket.socket:
    """A non-blocking TCP socket of `ip`'s family, its receive buffer set and bound if asked;
    closed again if any of that fails."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        if receive_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, max(receive_buffer, 1))
        if source_address:
            sock.bind((source_address, 0))
    except BaseException:
        sock.close()
        raise
    return sock


def _record_connect(
    trace: Trace, ip: str, port: int, address: str, failure: str | None, t0: float
) -> TCPConnect:
    """The connect's observation, and its network event on `trace`."""
    observation = TCPConnect(
        ip=ip,
        port=port,
        success=failure is None,
        failure=failure,
        t0=t0,
        t=trace.now(),
        transaction_id=trace.transaction_id,
    )
    trace.add_event(
        NetworkEvent(
            operation="connect",
            address=address,
            failure=failure,
            t0=t0,
            t=observation.t,
            transaction_id=trace.transaction_id,
        )
    )
    return observation
