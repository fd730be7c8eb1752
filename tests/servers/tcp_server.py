"""Raw TCP test servers on loopback, well-behaved and misbehaving, plus two port helpers.

`TCPServer(behaviour)` serves one of `TCPBehaviour` to every client, or a different one per
client source address (`by_peer={"127.0.0.2": TCPBehaviour.RESET}`): the probe and the control
connect from 127.0.0.2 and 127.0.0.3, so "fails here, works at the control" is testable on one
machine. The server remembers every peer address it accepted (`peers`).

`closed_port()` gives a port nobody listens on (connect → connection refused).
`unresponsive_port()` gives a port where connect times out, without firewall rules: a listener
with `listen(0)` whose accept queue is filled and never drained. Linux then drops further SYNs
(it does not answer with RST unless net.ipv4.tcp_abort_on_overflow=1), so the client keeps
retransmitting its SYN and its own deadline expires. This holds with SYN cookies on, because the
full accept queue is checked first.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import select
import socket
import struct
from collections.abc import Awaitable, Callable, Iterator, Mapping

#: What `GARBAGE` sends: neither TLS, HTTP nor MTProto.
GARBAGE = bytes(range(256)) * 4
#: Cap on what a server reads from one client (bounded memory, as everywhere).
MAX_READ = 1 << 20


class TCPBehaviour(enum.StrEnum):
    ECHO = "echo"  # send back every byte until the client closes
    RESET = "reset"  # RST right after accept
    RESET_AFTER_DATA = "reset_after_data"  # RST once the first bytes arrived
    SILENT = "silent"  # accept, read and discard, never answer
    CLOSE = "close"  # FIN right after accept
    CLOSE_AFTER_DATA = "close_after_data"  # FIN once the first bytes arrived
    GARBAGE = "garbage"  # once the first bytes arrived, answer with garbage and close


def reset_connection(writer: asyncio.StreamWriter) -> None:
    """Close with an RST: SO_LINGER on with a zero timeout, then close."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def read_first(reader: asyncio.StreamReader) -> bytes:
    """The first bytes the client sends (b"" if it closed first)."""
    return await reader.read(65536)


async def drain_until_eof(reader: asyncio.StreamReader) -> None:
    """Read and discard until the client closes (or MAX_READ bytes)."""
    total = 0
    while total < MAX_READ:
        chunk = await reader.read(65536)
        if not chunk:
            return
        total += len(chunk)


async def close_writer(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()


class LoopbackServer:
    """An asyncio stream server whose connection handlers are tracked and torn down on exit."""

    def __init__(
        self,
        behaviour: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        by_peer: Mapping[str, str] | None = None,
    ) -> None:
        self.behaviour = behaviour
        self.by_peer = dict(by_peer or {})
        self.host = host
        self.requested_port = port
        self.peers: list[str] = []
        self._server: asyncio.Server | None = None
        self._port: int | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        assert self._port is not None, "server not started"
        return self._port

    def behaviour_for(self, peer_ip: str) -> str:
        return self.by_peer.get(peer_ip, self.behaviour)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._on_client, self.host, self.requested_port)
        self._port = int(self._server.sockets[0].getsockname()[1])  # still known after close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> LoopbackServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        peer_ip = str(writer.get_extra_info("peername")[0])
        self.peers.append(peer_ip)
        try:
            await self.handle(reader, writer, self.behaviour_for(peer_ip))
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass  # the client went away; that is the client's business
        except asyncio.CancelledError:
            # Only `close()` cancels handlers. Ending quietly matters: on 3.11 asyncio's own
            # done-callback for handler tasks logs a traceback for a cancelled task.
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()
            self._handlers.discard(task)

    async def handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, behaviour: str
    ) -> None:
        raise NotImplementedError


class TCPServer(LoopbackServer):
    """A raw TCP server with one of `TCPBehaviour` (per client address if `by_peer` says so)."""

    def __init__(
        self,
        behaviour: str = TCPBehaviour.ECHO,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        by_peer: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(TCPBehaviour(behaviour), host=host, port=port, by_peer=by_peer)

    async def __aenter__(self) -> TCPServer:
        await self.start()
        return self

    async def handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, behaviour: str
    ) -> None:
        actions: dict[str, Callable[[], Awaitable[None]]] = {
            TCPBehaviour.ECHO: lambda: _echo(reader, writer),
            TCPBehaviour.RESET: lambda: _now(reset_connection, writer),
            TCPBehaviour.RESET_AFTER_DATA: lambda: _after_data(reader, reset_connection, writer),
            TCPBehaviour.SILENT: lambda: drain_until_eof(reader),
            TCPBehaviour.CLOSE: lambda: close_writer(writer),
            TCPBehaviour.CLOSE_AFTER_DATA: lambda: _close_after_data(reader, writer),
            TCPBehaviour.GARBAGE: lambda: _garbage(reader, writer),
        }
        await actions[behaviour]()


async def _now(
    action: Callable[[asyncio.StreamWriter], None], writer: asyncio.StreamWriter
) -> None:
    action(writer)


async def _after_data(
    reader: asyncio.StreamReader,
    action: Callable[[asyncio.StreamWriter], None],
    writer: asyncio.StreamWriter,
) -> None:
    await read_first(reader)
    action(writer)


async def _close_after_data(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_first(reader)
    await close_writer(writer)


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    total = 0
    while total < MAX_READ:
        chunk = await reader.read(65536)
        if not chunk:
            break
        total += len(chunk)
        writer.write(chunk)
        await writer.drain()
    await close_writer(writer)


async def _garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_first(reader)
    writer.write(GARBAGE)
    await writer.drain()
    await close_writer(writer)


def closed_port(host: str = "127.0.0.1") -> int:
    """A port on `host` with no listener right now (bind an ephemeral port, then close it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def unresponsive_port(host: str = "127.0.0.1", max_fillers: int = 8) -> Iterator[int]:
    """A port on `host` whose SYNs are dropped while the context is open (connect times out).

    Fills the accept queue of a `listen(0)` socket with connections nobody accepts, until a
    filler's own connect stays pending: from then on the kernel drops every new SYN.
    Raises RuntimeError if the kernel never stops answering (e.g. tcp_abort_on_overflow=1).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    fillers: list[socket.socket] = []
    try:
        listener.bind((host, 0))
        listener.listen(0)
        port = int(listener.getsockname()[1])
        for _ in range(max_fillers):
            filler = socket.socket(family, socket.SOCK_STREAM)
            fillers.append(filler)
            filler.setblocking(False)
            filler.connect_ex((host, port))
            # Loopback answers a SYN within microseconds; 0.2 s without an answer = dropped.
            _, writable, _ = select.select([], [filler], [], 0.2)
            if not writable:
                break
        else:
            raise RuntimeError(f"the accept queue of {host}:{port} never filled up")
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
