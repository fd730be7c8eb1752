"""A URL's parts, split once per URL string and shared by every layer that asks.

A target's URL is asked for its host and port several times per measurement (list check,
target, endpoint, HTTP request, analysis); `urlsplit` caches the split, but `hostname` and
`port` are properties computed again at every access (~3 Python calls each). `url_parts`
computes them once. Results and failures are exactly `urlsplit`'s: `url_parts` raises the
ValueError `urlsplit` raises (not cached: it raises each time), and `checked_port` the one
`SplitResult.port` raises.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import SplitResult, urlsplit


class URLParts:
    """`split` as `urlsplit` gives it, with its `hostname` and `port` read once. `port` is
    None when the URL has none or an invalid one (`port_error` then holds the message)."""

    __slots__ = ("hostname", "port", "port_error", "split")

    def __init__(self, split: SplitResult) -> None:
        self.split = split
        self.hostname: str | None = split.hostname
        self.port: int | None = None
        self.port_error: str | None = None
        try:
            self.port = split.port
        except ValueError as exc:
            self.port_error = str(exc)

    def checked_port(self) -> int | None:
        """`SplitResult.port`: the port, None without one; ValueError for an invalid one."""
        if self.port_error is not None:
            raise ValueError(self.port_error)
        return self.port


@lru_cache(maxsize=4096)
def url_parts(url: str) -> URLParts:
    """`url` split (`urlsplit(url)`): raises ValueError as `urlsplit` does."""
    return URLParts(urlsplit(url))
