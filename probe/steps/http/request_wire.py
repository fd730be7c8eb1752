"""The request's bytes, as h11 0.16 would write them (and refuse them) for one request.

Our own headers are fixed: `RequestWriter` checks them once; only Host (and any extra header
a caller passes) is checked per request. See wire.py for why this is not h11 any more."""

from __future__ import annotations

import re
from collections.abc import Sequence

from probe.steps.http.wire import (
    FIELD_VALUE,
    TOKEN,
    ResponseParser,
    WireError,
    check_chunked,
    content_length,
)

TOKEN_B = re.compile(TOKEN.encode())
FIELD_VALUE_B = re.compile(FIELD_VALUE.encode())
TARGET_B = re.compile(rb"[\x21-\x7e]+")
_NOT_FIXED = {b"host", b"content-length", b"transfer-encoding", b"upgrade"}


class RequestWriter:
    """Writes requests: a fixed header block is validated once, other headers per request."""

    def __init__(self, fixed: Sequence[tuple[str, str]]) -> None:
        self._fixed = list(fixed)
        checked = [_checked_field(field) for field in self._fixed]
        # the fast path in `start` assumes the fixed block frames no body and offers no switch
        if {name for _, name, _ in checked} & _NOT_FIXED:
            raise ValueError("fixed headers must not be Host or change the framing")
        self._fixed_block = b"".join(line for line, _, _ in checked)

    def start(
        self, method: str, target: bytes, headers: Sequence[tuple[str, str]], max_head: int
    ) -> tuple[bytes, ResponseParser]:
        """The request's bytes (with its end of message) and the parser for its response.

        `headers` are sent in order except that Host goes first, as h11 does."""
        if len(headers) > 1 and headers[0][0] == "Host" and headers[1:] == self._fixed:
            host = headers[0][1].encode("ascii")
            if FIELD_VALUE_B.fullmatch(host) is None:
                raise WireError(f"Illegal header value {host!r}")
            method_b = _check_request_line(method, target)
            wire = b"%s %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (
                method_b,
                target,
                host,
                self._fixed_block,
            )
            return wire, ResponseParser(method_b, False, max_head)
        return _start_any(method, target, headers, max_head)


def _checked_field(field: tuple[str, str]) -> tuple[bytes, bytes, bytes]:
    """One request header as h11 validates and writes it: (line, lower-case name, value)."""
    name, value = field[0].encode("ascii"), field[1].encode("ascii")
    if TOKEN_B.fullmatch(name) is None:
        raise WireError(f"Illegal header name {name!r}")
    if FIELD_VALUE_B.fullmatch(value) is None:
        raise WireError(f"Illegal header value {value!r}")
    return b"%s: %s\r\n" % (name, value), name.lower(), value


def _check_request_line(method: str, target: bytes) -> bytes:
    method_b = method.encode("ascii")
    if TOKEN_B.fullmatch(method_b) is None:
        raise WireError("Illegal method characters")
    if TARGET_B.fullmatch(target) is None:
        raise WireError("Illegal target characters")
    return method_b


def _start_any(
    method: str, target: bytes, headers: Sequence[tuple[str, str]], max_head: int
) -> tuple[bytes, ResponseParser]:
    """Any headers, with h11's checks: Content-Length and Transfer-Encoding normalized, one
    Host, and the end of message their framing asks for."""
    lines: list[tuple[bytes, bytes]] = []
    length: bytes | None = None
    chunked = upgrade = False
    for field in headers:
        line, name, value = _checked_field(field)
        if name == b"content-length":
            value = content_length(
                value.decode("ascii"), None if length is None else length.decode()
            ).encode()
            if length is not None:
                continue
            length, line = value, b"%s: %s\r\n" % (field[0].encode("ascii"), value)
        elif name == b"transfer-encoding":
            chunked = check_chunked(value.decode("ascii"), chunked)
            line = b"%s: chunked\r\n" % field[0].encode("ascii")
        elif name == b"upgrade":
            upgrade = upgrade or any(part.strip() for part in value.split(b","))
        lines.append((name, line))
    hosts = [line for name, line in lines if name == b"host"]
    if len(hosts) != 1:
        raise WireError("Missing mandatory Host: header" if not hosts else "Found multiple Host")
    method_b = _check_request_line(method, target)
    if chunked:
        end = b"0\r\n\r\n"
    elif length is not None and int(length) != 0:
        raise WireError("Too little data for declared Content-Length")
    else:
        end = b""
    others = b"".join(line for name, line in lines if name != b"host")
    wire = b"%s %s HTTP/1.1\r\n%s%s\r\n%s" % (method_b, target, hosts[0], others, end)
    return wire, ResponseParser(method_b, upgrade, max_head)
