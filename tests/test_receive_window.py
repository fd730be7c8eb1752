"""The receive-window clamp at the end of an HTTP body (probe/steps/receive_window.py): TLS record
boundaries, the clamp on a real socket, and fetches that stay correct with it, over plain TCP
and TLS, when the guess of a compressed body's rest is right and when it is far too low."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import random
import socket
import ssl
import sys
import time
import zlib

import pytest

from probe.observations import HTTPTransaction, Trace
from probe.steps.http import http_round_trip
from probe.steps.receive_window import MIN_WINDOW, RecordTracker, WindowClamp
from probe.steps.tcp import tcp_connect
from probe.steps.tls import tls_handshake
from probe.steps.tls_context import client_context
from tests.servers.certs import make_pki

CAP = 64 * 1024
TIMEOUT = 10.0  # generous: a clamp that is too small would cost a persist timer, not a failure
linux_only = pytest.mark.skipif(sys.platform != "linux", reason="TCP_WINDOW_CLAMP is Linux's")


def _record(content_type: int, length: int) -> bytes:
    return bytes([content_type, 3, 3]) + length.to_bytes(2, "big") + b"\xaa" * length


def test_records_are_followed_across_any_split() -> None:
    wire = _record(23, 100) + _record(23, 16_400) + _record(21, 2)
    for step in (1, 3, 5, 7, 1000, len(wire)):
        tracker = RecordTracker()
        for start in range(0, len(wire), step):
            tracker.feed(wire[start : start + step])
        assert (tracker.left, tracker.length, tracker.lost) == (0, 7, False)
    tracker = RecordTracker()
    tracker.feed(wire[: 105 + 5 + 400])  # the first record and 400 bytes of the second
    assert (tracker.length, tracker.left) == (16_405, 16_000)


def test_the_wire_needed_is_the_rest_of_a_record_that_holds_the_need() -> None:
    tracker = RecordTracker()
    assert tracker.wire_needed(10) is None  # between records: the next one's size is unknown
    tracker.feed(_record(23, 16_400)[:1_000])
    assert tracker.wire_needed(None) is None
    assert tracker.wire_needed(2_000) == 15_405
    assert tracker.wire_needed(16_400 - 256) == 15_405
    assert tracker.wire_needed(16_400 - 255) is None  # it might need the next record too


@pytest.mark.parametrize("header", [bytes([99, 3, 3, 0, 10]), bytes([23, 3, 3, 0xFF, 0xFF])])
def test_a_header_no_tls_record_has_stops_the_guessing(header: bytes) -> None:
    tracker = RecordTracker()
    tracker.feed(header + b"\0" * 10)
    assert tracker.lost and tracker.wire_needed(1) is None


async def _connected_pair() -> tuple[socket.socket, socket.socket]:
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    listener.close()
    return client, server


@linux_only
async def test_the_clamp_is_set_raised_and_restored_on_a_real_socket() -> None:
    client, server = await _connected_pair()
    try:
        clamp = WindowClamp(client)
        default = client.getsockopt(socket.IPPROTO_TCP, socket.TCP_WINDOW_CLAMP)
        clamp.expect(10)  # nothing queued: room for a few segments
        assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_WINDOW_CLAMP) == MIN_WINDOW
        server.sendall(b"x" * 100)
        for _ in range(100):  # loopback delivers at once, but let the kernel queue it
            clamp.expect(50)  # all of it is already here: the smallest window
            if client.getsockopt(socket.IPPROTO_TCP, socket.TCP_WINDOW_CLAMP) < MIN_WINDOW:
                break
            time.sleep(0.01)
        assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_WINDOW_CLAMP) < MIN_WINDOW
        clamp.expect(10 * default)  # a reader that needs more gets its window back
        assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_WINDOW_CLAMP) == default
        clamp.expect(10)
        clamp.expect(None)
        assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_WINDOW_CLAMP) == default
    finally:
        client.close()
        server.close()


def _words(size: int, seed: int) -> bytes:
    """Text that compresses about as well as HTML (3-4x), not a repeated sentence."""
    rng = random.Random(seed)
    vocabulary = [
        bytes(rng.choices(b"abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9))) for _ in range(300)
    ]
    out = bytearray(b"<html><head><title>t</title></head><body>")
    while len(out) < size:
        out += b" ".join(rng.choices(vocabulary, k=12)) + b".\n"
    return bytes(out[:size])


class PageServer:
    """One response per connection, written in parts (`parts`, with a pause between them), over
    TLS when given a context. The client's socket is what the test inspects."""

    def __init__(self, head: bytes, parts: list[bytes], context: ssl.SSLContext | None) -> None:
        self.head, self.parts, self.context = head, parts, context
        self.port = 0
        self._server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(self.head)
            for number, part in enumerate(self.parts):
                if number:
                    await asyncio.sleep(0.05)
                writer.write(part)
                await writer.drain()
            await reader.read()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def __aenter__(self) -> PageServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 1)


async def _fetch(port: int, ca_file: str | None) -> HTTPTransaction:
    """The round trip the measurement runs: TCP (with its bounded buffer), TLS, HTTP."""
    trace = Trace(zero=time.monotonic(), transaction_id=1)
    connected = await tcp_connect(
        "127.0.0.1", port, trace=trace, timeout=TIMEOUT, receive_buffer=16 * 1024
    )
    assert connected.stream is not None
    stream = connected.stream
    if ca_file is not None:
        handshake = await tls_handshake(
            stream, "test.localhost", trace=trace, timeout=TIMEOUT,
            context=client_context((ca_file,)),
        )  # fmt: skip
        assert handshake.stream is not None, handshake.observation.failure
        stream = handshake.stream  # type: ignore[assignment]
    try:
        tx = await http_round_trip(
            stream, f"http{'s' if ca_file else ''}://test.localhost:{port}/", trace=trace,
            timeout=TIMEOUT, address=f"127.0.0.1:{port}", body_cap=CAP,
        )  # fmt: skip
    finally:
        await stream.aclose()
    return tx


def _spy_on_clamps(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """(the clamp we set, the socket's own) after every `WindowClamp.expect` with a number. The
    socket's own comes from its receive buffer: >= 16 KiB here."""
    seen: list[tuple[int, int]] = []
    original = WindowClamp.expect

    def spy(self: WindowClamp, needed: int | None) -> None:
        original(self, needed)
        if needed is not None:
            seen.append((self._current, self._default or 0))

    monkeypatch.setattr(WindowClamp, "expect", spy)
    return seen


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_pki().write_ca_file(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_context() -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    make_pki().good.configure_cert(context)
    return context


def _gzip_head() -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\n\r\n"


@linux_only
async def test_a_large_gzip_page_over_tls_ends_with_the_window_clamped(
    ca_file: str, tls_context: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    clamps = _spy_on_clamps(monkeypatch)
    page = _words(400_000, seed=1)
    async with PageServer(_gzip_head(), [gzip.compress(page, 6)], tls_context) as server:
        tx = await _fetch(server.port, ca_file)
    assert tx.failure is None and tx.body_is_truncated
    assert tx.body_length == CAP
    assert tx.body_sha256 == hashlib.sha256(page[:CAP]).hexdigest()
    # The cap was reached in a record whose end we knew: the window was closed down to it.
    assert any(ours < own for ours, own in clamps), clamps


@linux_only
@pytest.mark.parametrize("over_tls", [False, True])
async def test_a_far_too_low_guess_still_reads_the_whole_cap(
    over_tls: bool, ca_file: str, tls_context: ssl.SSLContext
) -> None:
    """A body that starts with what compresses 1000:1 and goes on with what does not: the guess
    of its rest is far too low, the clamp too small; the reader lifts it and gets every byte."""
    start, rest = b"\0" * 8192, random.Random(2).randbytes(200_000)
    compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    first = compressor.compress(start) + compressor.flush(zlib.Z_SYNC_FLUSH)
    second = compressor.compress(rest) + compressor.flush()
    context = tls_context if over_tls else None
    async with PageServer(_gzip_head(), [first, second], context) as server:
        tx = await _fetch(server.port, ca_file if over_tls else None)
    assert tx.failure is None and tx.body_is_truncated
    assert tx.body_length == CAP
    assert tx.body_sha256 == hashlib.sha256((start + rest)[:CAP]).hexdigest()


@linux_only
async def test_an_uncompressed_page_ends_with_the_window_clamped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clamps = _spy_on_clamps(monkeypatch)
    """Without a coding the rest is known exactly: the window closes at the cap."""
    page = _words(600_000, seed=3)
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(page)
    async with PageServer(head, [page], None) as server:
        tx = await _fetch(server.port, None)
    assert tx.failure is None and tx.body_length == CAP
    assert any(ours < own for ours, own in clamps), clamps
