"""Keeping a server from sending far past what we will read (the data a volunteer pays for).

A server pushes a page as fast as our TCP receive window lets it; an HTTP flow stops at its
body cap and closes with whatever the kernel accepted beyond that point unread (it is still
paid for). The socket's receive buffer bounds that overshoot to about one window
(`probe/round/measure/config.py`, RECEIVE_BUFFER_SHARE); this module trims the last window:
once the reader knows it needs at most N more bytes, the window is clamped (Linux
TCP_WINDOW_CLAMP) so that the kernel stops offering room beyond them. Nothing read changes: a
clamp only delays bytes, and a reader that needs more than it said lifts the clamp first.

Over TLS a record must be read whole to be decrypted, so the bytes still needed are those up to
the end of the record that completes the reader's need: `RecordTracker` follows the record
boundaries in the wire bytes.

Measured with bench/data_usage.py (docs/benchmarks.md, "Data usage").
"""

from __future__ import annotations

import array
import contextlib
import socket

try:  # POSIX; the clamp itself is Linux's (without either, `expect` does nothing)
    import fcntl
    import termios
except ImportError:  # pragma: no cover - Windows
    fcntl = termios = None  # type: ignore[assignment]

#: Linux only; elsewhere the clamp is a no-op.
_WINDOW_CLAMP: int | None = getattr(socket, "TCP_WINDOW_CLAMP", None) if fcntl is not None else None
#: The smallest clamp we set: a window below one segment makes a sender wait for a window update
#: (sender-side silly-window avoidance), up to its persist timer; three Ethernet segments do not.
MIN_WINDOW = 3 * 1460
#: The longest TLS record (RFC 8446 5.2: 2^14 + 256 of ciphertext, + the 5-byte header); a
#: longer length means we lost the record boundaries, and tracking stops.
MAX_TLS_RECORD = 5 + 2**14 + 256
#: Ciphertext of one record beyond its plaintext, at most (header, tag/MAC, padding).
MAX_RECORD_EXPANSION = 256


class WindowClamp:
    """The clamp of one TCP socket: `expect(n)` allows about n more bytes than the kernel already
    holds for us, `expect(None)` restores the window the socket had."""

    __slots__ = ("_current", "_default", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._default: int | None = None  # the socket's own clamp while ours is set
        self._current = 0  # the clamp we set last

    def expect(self, needed: int | None) -> None:
        if _WINDOW_CLAMP is None:
            return
        with contextlib.suppress(OSError):
            if needed is None:
                if self._default is not None:
                    self.sock.setsockopt(socket.IPPROTO_TCP, _WINDOW_CLAMP, self._default)
                    self._default = None
                return
            if self._default is None:
                self._default = self._current = self.sock.getsockopt(
                    socket.IPPROTO_TCP, _WINDOW_CLAMP
                )
            missing = needed - _queued(self.sock)
            # Everything needed is in already: no more room at all (the kernel's smallest
            # clamp). Otherwise room for what is missing, but never less than a few segments;
            # a reader that needs more than it said gets its window back.
            room = 1 if missing <= 0 else min(max(missing, MIN_WINDOW), self._default)
            if room != self._current:
                self.sock.setsockopt(socket.IPPROTO_TCP, _WINDOW_CLAMP, room)
                self._current = room


def _queued(sock: socket.socket) -> int:
    """Bytes the kernel received for `sock` that were not read yet (0 when it cannot tell)."""
    count = array.array("i", [0])
    try:
        fcntl.ioctl(sock.fileno(), termios.FIONREAD, count, True)
    except OSError:
        return 0
    return max(count[0], 0)


class RecordTracker:
    """Where the TLS records begin and end in the wire bytes received after the handshake."""

    __slots__ = ("_header", "left", "length", "lost")

    def __init__(self) -> None:
        self._header = b""  # the first bytes of a record header seen so far (< 5)
        self.length = 0  # the current record's length, header included (0: between records)
        self.left = 0  # its bytes not received yet
        self.lost = False  # a length no TLS record has: stop guessing

    def feed(self, data: bytes) -> None:
        position, size = 0, len(data)
        while position < size and not self.lost:
            if self.left:
                taken = min(self.left, size - position)
                self.left -= taken
                position += taken
                continue
            needed = 5 - len(self._header)
            self._header += data[position : position + needed]
            position += needed
            if len(self._header) == 5:
                header, self._header = self._header, b""
                self.length = 5 + int.from_bytes(header[3:5], "big")
                self.left = self.length - 5
                # content types 20-24 (RFC 8446 B.1); anything else: we are not at a boundary
                if not 20 <= header[0] <= 24 or self.length > MAX_TLS_RECORD:
                    self.lost = True

    def wire_needed(self, plaintext: int | None) -> int | None:
        """The wire bytes still to receive for `plaintext` more bytes of plaintext, when the
        record being received holds them all (it yields nothing until it is complete); None
        when more records are needed or the boundaries are unknown."""
        if plaintext is None or self.lost or not self.left:
            return None
        if plaintext > self.length - 5 - MAX_RECORD_EXPANSION:
            return None
        return self.left
