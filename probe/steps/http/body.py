"""The response body: Content-Encoding inflated with a bound, the charset, the <title>.

At most `cap` *decoded* bytes are kept: gzip/deflate is inflated with a bounded
`zlib.decompressobj().decompress(data, max_length)`, so a gzip bomb costs at most the cap."""

from __future__ import annotations

import codecs
import re
import zlib

from probe import failures

#: The title is a fingerprint and a human hint, not content: keep it short.

#: Chunk-size lines and the like beyond the body bytes themselves, in what `to_read` says.
FRAMING_SLACK = 1024
#: A compressed body's remaining size is guessed from how well its start compressed, with this
#: margin; from at least MIN_DECODED_FOR_GUESS decoded bytes (less tells too little).
GUESS_MARGIN = 1.25
MIN_DECODED_FOR_GUESS = 4096

_CHARSET_RE = re.compile(r"""charset\s*=\s*["']?([A-Za-z0-9._:-]{1,40})""", re.IGNORECASE)
#: A browser looks for <meta charset> in the first 1024 bytes.
_META_SNIFF_BYTES = 1024


class _BodyReader:
    """Decodes Content-Encoding with a bound and keeps at most `cap` decoded bytes.

    gzip and deflate (zlib-wrapped or raw, as servers send both) are inflated; an absent,
    identity or unknown coding, or several codings stacked, keep the bytes as they came (we
    only advertise gzip and deflate, and a bounded chain of inflaters is not worth it)."""

    def __init__(self, content_encoding: str | None, cap: int) -> None:
        self.cap = cap
        self.kept = bytearray()
        self.truncated = False
        coding = (content_encoding or "").strip().lower()
        self.coding = coding if coding in ("gzip", "x-gzip", "deflate") else ""
        self._inflater: zlib._Decompress | None = None
        self._pending = b""  # deflate: the first bytes, until we can tell zlib from raw
        self.fed = 0  # body bytes as sent (still encoded) given to `feed`

    @property
    def full(self) -> bool:
        return len(self.kept) >= self.cap

    def to_read(self) -> int | None:
        """About how many more bytes of the body as sent fill the cap (+1, to see that the
        body is longer): exact without a coding, guessed from the ratio so far with one (None
        until enough was decoded). Only a hint for the receive window (`ByteStream.expect`)."""
        room = self.cap - len(self.kept) + 1
        if not self.coding:
            return room + FRAMING_SLACK
        if len(self.kept) < MIN_DECODED_FOR_GUESS:
            return None
        return int(room * GUESS_MARGIN * self.fed / len(self.kept)) + FRAMING_SLACK

    def feed(self, data: bytes) -> None:
        if not data or self.truncated:
            return
        self.fed += len(data)
        if not self.coding:
            self._keep(data)
            return
        try:
            self._inflate(data)
        except zlib.error as exc:
            raise failures.ProbeFailure(
                failures.HTTP_INVALID_RESPONSE, f"bad {self.coding} body: {exc}"
            ) from exc

    def finish(self) -> None:
        """End of the body: inflate the first bytes of a tiny deflate body if still held."""
        if self._pending:
            pending, self._pending = self._pending, b""
            self._start_inflater(pending)
            self.feed(pending)

    def _keep(self, data: bytes) -> None:
        room = self.cap - len(self.kept)
        if len(data) > room:
            self.truncated = True
        self.kept += data[:room]

    def _start_inflater(self, head: bytes) -> None:
        if self.coding in ("gzip", "x-gzip"):
            wbits = 16 + zlib.MAX_WBITS
        elif len(head) >= 2 and head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0:
            wbits = zlib.MAX_WBITS  # RFC 9110's deflate: a zlib stream
        else:
            wbits = -zlib.MAX_WBITS  # what many servers really send: raw deflate
        self._inflater = zlib.decompressobj(wbits)

    def _inflate(self, data: bytes) -> None:
        if self._inflater is None:
            if self.coding == "deflate" and len(self._pending) + len(data) < 2:
                self._pending += data
                return
            data, self._pending = self._pending + data, b""
            self._start_inflater(data)
        inflater = self._inflater
        assert inflater is not None
        if inflater.eof:
            return  # bytes after the end of the compressed stream are not content
        room = self.cap - len(self.kept)
        if room <= 0:
            # At the cap: one more output byte proves the body is longer. (max_length=0 would
            # mean "no limit" to zlib.)
            if inflater.decompress(data, 1):
                self.truncated = True
            return
        self.kept += inflater.decompress(data, room)
        # Full: is there more? zlib may hold input in `unconsumed_tail` or output internally.
        if len(self.kept) >= self.cap and not inflater.eof:
            if inflater.decompress(inflater.unconsumed_tail, 1):
                self.truncated = True


def _charset(content_type: str | None, body: bytes) -> str:
    """Content-Type's charset, else a <meta> charset near the top (as browsers do), else
    UTF-8; a name Python does not know falls back to UTF-8."""
    for source in (content_type or "", body[:_META_SNIFF_BYTES].decode("ascii", "replace")):
        match = _CHARSET_RE.search(source)
        if match is None:
            continue
        try:
            return codecs.lookup(match.group(1)).name
        except LookupError:
            continue
    return "utf-8"
