"""HTTP observations: `HTTPTransaction` (df-001, one request and its response) and
`bound_http`, the cap on what one target's record keeps of response heads and bodies."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import chain
from typing import TYPE_CHECKING, Any

from probe.observations._read import (
    read_dict,
    read_float,
    read_int,
    read_int_or_none,
    read_list,
    read_str,
    read_str_or_none,
)

if TYPE_CHECKING:
    from probe.observations.container import Observations

#: What one target's record keeps of HTTP response heads and bodies, in characters: a chain of
#: 10 redirects with 64 KiB heads and 64 KiB bodies on each of 8 addresses would otherwise be
#: ~20 MB of record for one target (and twice that in JSON, where headers appear as a list and
#: as a map). Past the budget, later responses keep their status, length, hash and title but
#: not their body, and at most TRIMMED_HEADERS headers.
MAX_KEPT_HTTP_CHARS = 1024 * 1024

#: The status codes of a redirect: the HTTP step follows them, the analysis reads chains of them.
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
MAX_TITLE_CHARS = 200
_TITLE_RE = re.compile(r"<title\b[^>]{0,200}>(.*?)(?:</title\s*>|$)", re.IGNORECASE | re.DOTALL)
_CONTROL_CHARS_RE = re.compile(r"[\x00-\x1f\x7f]")


def extract_title(text: str | None) -> str | None:
    """The HTML <title> text: entities decoded, control characters and runs of whitespace
    made one space, at most 200 characters. A title cut off by the cap is kept. The HTTP step
    records it; the analysis reads it from bodies of records that have no `title`."""
    if not text:
        return None
    match = _TITLE_RE.search(text)
    if match is None:
        return None
    text = match.group(1)[: MAX_TITLE_CHARS * 8]
    if "&" in text:  # what html.unescape looks for; most titles have no entity to decode
        import html  # imported here: it and its table of entities cost start-up otherwise

        text = html.unescape(text)
    title = " ".join(_CONTROL_CHARS_RE.sub(" ", text).split())
    return title[:MAX_TITLE_CHARS]


TRIMMED_HEADERS = 16


def _headers_map(headers_list: list[tuple[str, str]]) -> dict[str, str]:
    """OONI's `headers`: one value per name (the first one wins)."""
    out: dict[str, str] = dict(headers_list)  # in C: right when no name comes twice
    if len(out) == len(headers_list):
        return out
    out = {}
    for name, value in headers_list:
        out.setdefault(name, value)
    return out


def _pairs(value: Any) -> list[tuple[str, str]]:
    """Header pairs from a `headers_list`: [name, value] lists of text (as `to_dict` writes
    them) as they are, other lists and tuples of two or more items as text, the rest dropped."""
    out: list[tuple[str, str]] = []
    for h in read_list(value):
        if type(h) is list and len(h) == 2:
            name, text = h
            if type(name) is str and type(text) is str:
                out.append((name, text))
                continue
        if isinstance(h, (list, tuple)) and len(h) >= 2:
            out.append((str(h[0]), str(h[1])))
    return out


@dataclass(slots=True)
class HTTPTransaction:
    """df-001: one HTTP request and its response (one hop of a redirect chain).

    `body` is a snapshot of the decoded body, at most the body cap; the control never sends
    bodies, only `x_body_length`, `x_body_sha256`, `x_title` and the headers."""

    url: str
    method: str = "GET"
    request_headers: list[tuple[str, str]] = field(default_factory=list)
    address: str | None = None  # "ip:port" the request went to
    response_code: int | None = None
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    body: str | None = None
    body_is_truncated: bool = False
    body_length: int | None = None  # decoded bytes read (up to the cap)
    body_sha256: str | None = None
    title: str | None = None
    location: str | None = None  # a redirect's target, resolved against `url`
    failure: str | None = None
    failed_operation: str | None = None
    t0: float = 0.0
    t: float = 0.0
    transaction_id: int = 0

    def to_dict(self) -> dict[str, Any]:
        response: dict[str, Any] | None = None
        if self.response_code is not None:
            response = {
                "code": self.response_code,
                "headers_list": list(map(list, self.response_headers)),
                "headers": _headers_map(self.response_headers),
                "body": self.body,
                "body_is_truncated": self.body_is_truncated,
                "x_body_length": self.body_length,
                "x_body_sha256": self.body_sha256,
                "x_title": self.title,
            }
        return {
            "request": {
                "url": self.url,
                "method": self.method,
                "headers_list": list(map(list, self.request_headers)),
                "headers": _headers_map(self.request_headers),
                "x_address": self.address,
            },
            "response": response,
            "failure": self.failure,
            "failed_operation": self.failed_operation,
            "x_location": self.location,
            "t0": self.t0,
            "t": self.t,
            "transaction_id": self.transaction_id,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HTTPTransaction:
        request = read_dict(d.get("request"))
        response = read_dict(d.get("response"))
        # OONI encodes non-UTF-8 bodies as {"format": "base64", ...}: not text, not kept here.
        body = read_str_or_none(response.get("body"))
        return cls(
            url=read_str(request.get("url")),
            method=read_str(request.get("method"), "GET"),
            request_headers=_pairs(request.get("headers_list")),
            address=read_str_or_none(request.get("x_address")),
            response_code=read_int_or_none(response.get("code")),
            response_headers=_pairs(response.get("headers_list"))
            or [(str(k), str(v)) for k, v in read_dict(response.get("headers")).items()],
            body=body,
            body_is_truncated=response.get("body_is_truncated") is True,
            body_length=read_int_or_none(response.get("x_body_length")),
            body_sha256=read_str_or_none(response.get("x_body_sha256")),
            title=read_str_or_none(response.get("x_title")),
            location=read_str_or_none(d.get("x_location")),
            failure=read_str_or_none(d.get("failure")),
            failed_operation=read_str_or_none(d.get("failed_operation")),
            t0=read_float(d.get("t0")),
            t=read_float(d.get("t")),
            transaction_id=read_int(d.get("transaction_id")),
        )


def bound_http(observations: Observations, budget: int = MAX_KEPT_HTTP_CHARS) -> int:
    """Trim `observations.requests` in place to `budget` characters of heads and bodies,
    first responses first (where blocking shows); returns how many responses were trimmed."""
    used = 0
    trimmed = 0
    for transaction in observations.requests:
        # heads count twice: a record holds them as a list and as a map
        # names and values summed in C (map, chain): no generator step per header
        head = 2 * sum(map(len, chain.from_iterable(transaction.response_headers)))
        body = len(transaction.body or "")
        if used + head + body <= budget:
            used += head + body
            continue
        trimmed += 1
        transaction.body = None
        if head > budget - used or len(transaction.response_headers) > TRIMMED_HEADERS:
            transaction.response_headers = transaction.response_headers[:TRIMMED_HEADERS]
        used += 2 * sum(map(len, chain.from_iterable(transaction.response_headers)))
    return trimmed
