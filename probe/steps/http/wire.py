"""HTTP/1.1 on the wire for one client request: the grammar and the response parser.

Purpose-built for `exchange.py` (one request with `Connection: close`, one response), in place
of h11, whose generality cost ~390 Python calls per fetch. It accepts and refuses what h11 0.16
accepts and refuses on the client side: the same grammar (h11's spelling of RFC 9112's ABNF),
the same framing rules (HEAD/204/304 without a body, Transfer-Encoding before Content-Length,
close-delimited otherwise), the same bound on an incomplete event, and the same events at the
same moments for the same bytes, so that records do not change (tests/test_http_wire.py checks
this against h11 itself); the request side is request_wire.py. Every refusal is a `WireError`;
whether it means "the peer hung up" or "the peer speaks nonsense" is the caller's call (it
knows whether EOF was seen)."""

from __future__ import annotations

import re

# h11's grammar (h11/_abnf.py). In the str patterns re.ASCII keeps \s to ASCII whitespace, so
# that matching the head decoded as UTF-8 accepts exactly the bytes h11 accepts: no ASCII byte
# ever decodes differently, and every non-ASCII byte (or U+FFFD) is "obs-text" in both.
_OWS = r"[ \t]*"
TOKEN = r"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
_VCHAR_OR_OBS = r"[^\x00\s]"
FIELD_VALUE = rf"(?:{_VCHAR_OR_OBS}+(?:[ \t]+{_VCHAR_OR_OBS}+)*)?"
_FIELD = rf"({TOKEN}):{_OWS}({FIELD_VALUE}){_OWS}"
_STATUS_LINE = rf"HTTP/[0-9]\.[0-9] ([0-9]{{3}})(?: (?:[ \t]|{_VCHAR_OR_OBS})*)?"

#: The fast path for a head without folded lines, decoded: the status line, then all fields at
#: once (one match of the whole head would be shorter, but sre keeps ~900 bytes of backtracking
#: state per repetition: 9 MB for a head of 10k fields).
_STATUS_RE = re.compile(rf"{_STATUS_LINE}\r?\n", re.ASCII)
#: Each line of the fields: a field (name, value), or else whole in the third group.
_FIELDS_RE = re.compile(rf"{_FIELD}\r?\n|([^\n]*\n)", re.ASCII)
_NAMES = frozenset(("content-length", "transfer-encoding", "content-type", "content-encoding"))
_DIGITS_RE = re.compile(r"[0-9]+", re.ASCII)
# Line by line, in bytes, as h11 does it: for heads with folded lines, trailers, errors.
_STATUS_LINE_B = re.compile(_STATUS_LINE.encode())
_FIELD_B = re.compile(_FIELD.encode())
_OBS_FOLD_B = re.compile(rb"[ \t]+")
_BLANK_LINE_B = re.compile(rb"\n\r?\n")
_CHUNK_HEADER_B = re.compile(rb"([0-9A-Fa-f]{1,20})(?:;.*)?[ \t]*\r\n")
#: h11's CONTENT_LENGTH_MAX_DIGITS.
_MAX_LENGTH_DIGITS = 20

# What `ResponseParser.next_event` returns.
NEED_DATA = 0
INFORMATIONAL = 1  # a 1xx response; `status` and `headers` describe it
RESPONSE = 2  # the final response head; `status`, `headers`, `content_type`, ...
DATA = 3  # body bytes, in `data`
END = 4  # the end of the body
PAUSED = 5  # no more HTTP on this connection (101 to our Upgrade, or after END)

# Parser states: the head, a body framed one of three ways, done, switched, broken.
_HEAD, _LENGTH, _CHUNKED, _CLOSE, _DONE, _SWITCHED, _ERROR = range(7)


class WireError(Exception):
    """The bytes break HTTP/1.1 (or the request we were asked to write would)."""


def content_length(value: str, seen: str | None) -> str:
    """h11's check of one Content-Length field: "5, 5" is 5, "5, 6" or "x" is refused."""
    lengths = {part.strip(" \t") for part in value.split(",")}
    if len(lengths) != 1:
        raise WireError("conflicting Content-Length headers")
    length = lengths.pop()
    if _DIGITS_RE.fullmatch(length) is None or len(length) > _MAX_LENGTH_DIGITS:
        raise WireError("bad Content-Length")
    if seen is not None and seen != length:
        raise WireError("conflicting Content-Length headers")
    return length


def check_chunked(value: str, seen: bool) -> bool:
    if seen:
        raise WireError("multiple Transfer-Encoding headers")
    # bytes.lower() in h11: ASCII only (str.lower() would turn a Kelvin sign into "k")
    if not value.isascii() or value.lower() != "chunked":
        raise WireError("Only Transfer-Encoding: chunked is supported")
    return True


class ResponseParser:
    """The response to one request, from bytes as they arrive (`receive`, b"" for EOF) to
    events (`next_event`). The head's fields are kept decoded (UTF-8, errors replaced), with
    Content-Length and Transfer-Encoding normalized as h11 does."""

    __slots__ = (
        "_buf",
        "_closed",
        "_footer",
        "_left",
        "_max_head",
        "_method",
        "_search",
        "_state",
        "_trailer",
        "_upgrade",
        "content_encoding",
        "content_type",
        "data",
        "headers",
        "status",
    )

    def __init__(self, method: bytes, upgrade: bool, max_head: int) -> None:
        self._buf = bytearray()
        self._closed = False
        self._state = _HEAD
        self._search = 0  # where to go on looking for the end of a head or a line
        self._left = 0  # body bytes still due (Content-Length), or in the current chunk
        self._footer = b""  # the CRLF still due after a chunk's data
        self._trailer = False
        self._method = method
        self._upgrade = upgrade  # the request offered Upgrade: a 101 is allowed
        self._max_head = max_head
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self.content_type: str | None = None
        self.content_encoding: str | None = None
        self.data = b""

    def receive(self, data: bytes) -> None:
        if data:
            self._buf += data
        else:
            self._closed = True

    def next_event(self) -> int:
        if self._state == _ERROR:
            raise WireError("Can't receive data when peer state is ERROR")
        try:
            event = self._next()
            if event == NEED_DATA:
                if len(self._buf) > self._max_head:
                    raise WireError("Receive buffer too long")
                if self._closed:
                    raise WireError("peer unexpectedly closed connection")
        except WireError:
            self._state = _ERROR
            raise
        return event

    def _next(self) -> int:
        state, buf = self._state, self._buf
        if state == _LENGTH:
            if not self._left:
                self._state = _DONE
                return END
            if buf:
                self.data = data = bytes(buf[: self._left])
                del buf[: len(data)]
                self._left -= len(data)
                return DATA
            if self._closed:
                raise WireError("peer closed connection without sending complete message body")
            return NEED_DATA
        if state == _CLOSE:
            if buf:
                self.data = bytes(buf)
                buf.clear()
                return DATA
            if self._closed:
                self._state = _DONE
                return END
            return NEED_DATA
        if state == _CHUNKED:
            event = self._chunk()
            if event == NEED_DATA and self._closed and not buf:
                raise WireError("peer closed connection without sending complete message body")
            return event
        if state == _HEAD:
            return self._head()
        return PAUSED

    def _lines(self) -> bytes | None:
        """The next head (or trailer) up to its blank line; b"" when the buffer starts with
        the blank line; None while it is incomplete (h11's maybe_extract_lines)."""
        buf = self._buf
        if buf.startswith((b"\n", b"\r\n")):
            del buf[: 1 if buf[0] == 10 else 2]
            self._search = 0
            return b""
        match = _BLANK_LINE_B.search(buf, self._search)
        if match is None:
            self._search = max(0, len(buf) - 2)
            return None
        head = bytes(buf[: match.end()])
        del buf[: match.end()]
        self._search = 0
        return head

    def _head(self) -> int:
        head = self._lines()
        if head is None:
            if self._buf and self._buf[0] < 0x21:
                raise WireError("illegal status line")
            if self._closed and not self._buf:
                raise WireError("closed before a response")
            return NEED_DATA
        if not head:
            raise WireError("no response line received")
        text = head.decode("utf-8", "replace")
        match = _STATUS_RE.match(text)
        # the fields, without the blank line (the head ends "\n\r\n" or "\n\n")
        block = text[match.end() : -2 if text.endswith("\r\n") else -1] if match else ""
        found = _FIELDS_RE.findall(block)
        fields = [(name, value) for name, value, bad in found if not bad]
        if match is not None and len(fields) == len(found):
            status = int(match[1])
        else:
            status, fields = _head_line_by_line(head)
        names = _names(fields)
        self.status = status
        self.headers, length = _normalized(fields, names)
        if status < 200:
            if status < 100:
                raise WireError(f"status code {status} out of range")
            if status == 101:
                if not self._upgrade:
                    raise WireError("Received server _SWITCH_UPGRADE without a pending proposal")
                self._state = _SWITCHED
            return INFORMATIONAL
        self.content_type = _first(fields, names, "content-type")
        self.content_encoding = _first(fields, names, "content-encoding")
        self._frame(names, length)
        return RESPONSE

    def _frame(self, names: dict[int, str], length: str | None) -> None:
        """h11's _body_framing (a 2xx to CONNECT, which h11 would hand over as a tunnel we
        never read, is taken as a response without a body)."""
        status, method = self.status, self._method
        if status in (204, 304) or method == b"HEAD" or (method == b"CONNECT" and status < 300):
            self._state, self._left = _LENGTH, 0
        elif "transfer-encoding" in names.values():  # checked to be "chunked" by `_normalized`
            self._state = _CHUNKED
        elif length is not None:
            self._state, self._left = _LENGTH, int(length)
        else:
            self._state = _CLOSE

    def _chunk(self) -> int:
        """h11's ChunkedReader: DATA, END or NEED_DATA."""
        buf = self._buf
        if self._trailer:
            lines = self._lines()
            if lines is None:
                return NEED_DATA
            fields = _fields_line_by_line(_split_lines(lines)) if lines else []
            _normalized(fields, _names(fields))
            self._state = _DONE
            return END
        if self._footer:
            data = bytes(buf[: len(self._footer)])
            if not data:
                return NEED_DATA
            if data != self._footer[: len(data)]:
                raise WireError(f"malformed chunk footer: {data!r}")
            del buf[: len(data)]
            self._footer = self._footer[len(data) :]
            if self._footer:
                return NEED_DATA
        if not self._left:
            end = buf.find(b"\r\n", max(0, self._search - 1))
            if end < 0:
                self._search = len(buf)
                return NEED_DATA
            line = bytes(buf[: end + 2])
            del buf[: end + 2]
            self._search = 0
            match = _CHUNK_HEADER_B.fullmatch(line)
            if match is None:
                raise WireError(f"illegal chunk header: {line!r}")
            self._left = int(match[1], 16)
            if not self._left:
                self._trailer = True
                return self._chunk()
        if not buf:
            return NEED_DATA
        self.data = data = bytes(buf[: self._left])
        del buf[: len(data)]
        self._left -= len(data)
        if not self._left:
            self._footer = b"\r\n"
        return DATA


def _normalized(
    fields: list[tuple[str, str]], names: dict[int, str]
) -> tuple[list[tuple[str, str]], str | None]:
    """h11's normalize_and_validate for received fields: each Content-Length is one number
    (a repeat of the same number is dropped), Transfer-Encoding is "chunked" (lower-cased), at
    most once. Returns the fields and the Content-Length."""
    lowers = names.values()
    if "content-length" not in lowers and "transfer-encoding" not in lowers:
        return fields, None
    out = list(fields)
    length: str | None = None
    chunked = False
    repeats = []
    for index, lower in names.items():
        name, value = fields[index]
        if lower == "content-length":
            if length is not None:
                repeats.append(index)
            length = content_length(value, length)
            out[index] = (name, length)
        elif lower == "transfer-encoding":
            chunked = check_chunked(value, chunked)
            out[index] = (name, "chunked")
    for index in reversed(repeats):  # h11 drops the repeats of the same Content-Length
        del out[index]
    return out, length


def _first(fields: list[tuple[str, str]], names: dict[int, str], name: str) -> str | None:
    return next((fields[i][1] for i, lower in names.items() if lower == name), None)


def _names(fields: list[tuple[str, str]]) -> dict[int, str]:
    """The fields `ResponseParser` looks at, by position: {index: lower-case name}."""
    lowers = ((i, name.lower()) for i, (name, _) in enumerate(fields))
    return {i: lower for i, lower in lowers if lower in _NAMES}


def _split_lines(head: bytes) -> list[bytes]:
    """The lines of a head ending in its blank line, one trailing CR each removed."""
    lines = [line[:-1] if line.endswith(b"\r") else line for line in head.split(b"\n")]
    del lines[-2:]  # the blank line's two empty pieces
    return lines


def _head_line_by_line(head: bytes) -> tuple[int, list[tuple[str, str]]]:
    """The slow path, as h11 parses: folded lines joined, each line checked on its own."""
    lines = _split_lines(head)
    match = _STATUS_LINE_B.fullmatch(lines[0])
    if match is None:
        raise WireError(f"illegal status line: {lines[0]!r}")
    return int(match[1]), _fields_line_by_line(lines[1:])


def _fields_line_by_line(lines: list[bytes]) -> list[tuple[str, str]]:
    folded: list[bytes] = []
    for line in lines:
        fold = _OBS_FOLD_B.match(line)
        if fold is None:
            folded.append(line)
        elif not folded:
            raise WireError("continuation line at start of headers")
        else:
            folded[-1] += b" " + line[fold.end() :]
    fields = []
    for line in folded:
        match = _FIELD_B.fullmatch(line)
        if match is None:
            raise WireError(f"illegal header line: {line!r}")
        fields.append((match[1].decode("ascii"), match[2].decode("utf-8", "replace")))
    return fields
