"""A request body → its lines, read as it arrives and bounded at every step: the bytes sent
(`max_body_bytes`, a larger Content-Length refused unread), the bytes once gunzipped
(`max_decoded_bytes`: zlib is asked for at most what is left of it, so a gzip bomb stops
there and is never inflated further), the lines (`max_records`) and one line's bytes
(`max_record_bytes`: a longer line is dropped as it streams and reported, never held)."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from multidict import CIMultiDictProxy

#: Media types an upload of JSON Lines may be sent as (and none: curl's default).
MEDIA_TYPES = frozenset(
    {
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/x-jsonlines",
        "application/json-lines",
        "application/json",
        "text/plain",
        "application/octet-stream",
    }
)
ENCODINGS = frozenset({"", "identity", "gzip", "x-gzip"})


class BodyError(Exception):
    """The request as a whole is refused: HTTP status and a one-line reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class Line:
    """One non-blank line: its number (1-based, blank lines counted) and its bytes, or None
    when it was longer than `max_record_bytes`."""

    number: int
    raw: bytes | None


@dataclass(slots=True)
class _Splitter:
    max_records: int
    max_record_bytes: int
    lines: list[Line] = field(default_factory=list)
    number: int = 0
    current: bytearray = field(default_factory=bytearray)
    too_long: bool = False

    def feed(self, data: bytes) -> None:
        start = 0
        while True:
            end = data.find(b"\n", start)
            piece = data[start:] if end < 0 else data[start:end]
            if not self.too_long:
                if len(self.current) + len(piece) > self.max_record_bytes:
                    self.too_long = True
                    self.current.clear()
                else:
                    self.current += piece
            if end < 0:
                return
            self.end_line()
            start = end + 1

    def end_line(self) -> None:
        self.number += 1
        if self.too_long:
            self._add(Line(self.number, None))
        elif self.current.strip():
            self._add(Line(self.number, bytes(self.current).rstrip(b"\r")))
        self.current.clear()
        self.too_long = False

    def _add(self, line: Line) -> None:
        if len(self.lines) >= self.max_records:
            raise BodyError(413, f"more than {self.max_records} records in one request")
        self.lines.append(line)

    def finish(self) -> list[Line]:
        if self.current or self.too_long:
            self.end_line()
        return self.lines


class _Gunzip:
    """Streaming gzip (several members allowed) with a bound on what comes out."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total = 0
        self.inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        try:
            while data:
                piece = self.inflater.decompress(data, self.limit - self.total + 1)
                self.total += len(piece)
                if self.total > self.limit:
                    raise BodyError(413, f"body larger than {self.limit} bytes decompressed")
                out.append(piece)
                if self.inflater.eof:
                    data = self.inflater.unused_data
                    if data:  # another gzip member follows
                        self.inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                else:
                    data = self.inflater.unconsumed_tail
        except zlib.error:
            raise BodyError(400, "the body is not valid gzip") from None
        return out

    def finish(self) -> None:
        if not self.inflater.eof:
            raise BodyError(400, "the gzip stream is cut short")


def check_headers(headers: CIMultiDictProxy[str], max_body_bytes: int) -> bool:
    """Refuse a body we will not read (wrong type or encoding, too large); whether it is
    gzip."""
    media = headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if media and media not in MEDIA_TYPES:
        raise BodyError(415, "send JSON Lines (Content-Type: application/x-ndjson)")
    encoding = headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ENCODINGS:
        raise BodyError(415, "Content-Encoding must be gzip or identity")
    length = headers.get("Content-Length")
    if length is not None and length.isdigit() and int(length) > max_body_bytes:
        raise BodyError(413, f"body larger than {max_body_bytes} bytes")
    return encoding in ("gzip", "x-gzip")


async def read_lines(
    chunks: AsyncIterator[bytes],
    *,
    gzip: bool,
    max_body_bytes: int,
    max_decoded_bytes: int,
    max_records: int,
    max_record_bytes: int,
) -> list[Line]:
    """The body's non-blank lines, or BodyError (400 empty or bad gzip, 413 too large)."""
    splitter = _Splitter(max_records, max_record_bytes)
    gunzip = _Gunzip(max_decoded_bytes) if gzip else None
    received = 0
    async for chunk in chunks:
        received += len(chunk)
        if received > max_body_bytes:
            raise BodyError(413, f"body larger than {max_body_bytes} bytes")
        if gunzip is None:
            if received > max_decoded_bytes:
                raise BodyError(413, f"body larger than {max_decoded_bytes} bytes")
            splitter.feed(chunk)
            continue
        for piece in gunzip.feed(chunk):
            splitter.feed(piece)
    if received == 0:
        raise BodyError(400, "no records: the body is empty")
    if gunzip is not None:
        gunzip.finish()
    lines = splitter.finish()
    if not lines:
        raise BodyError(400, "no records: the body holds only blank lines")
    return lines
