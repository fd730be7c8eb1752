"""`probe.urls.url_parts` is `urlsplit` with `hostname` and `port` read once: the same parts,
the same host and port, and the same ValueErrors, for any text."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.urls import url_parts

_PIECES = st.sampled_from(
    [
        "http",
        "https",
        "HTTPS",
        "ftp",
        ":",
        "//",
        "/",
        "@",
        "[",
        "]",
        "::1",
        "%",
        "?",
        "#",
        "80",
        "443",
        "65535",
        "65536",
        "-1",
        "0",
        "x",
        "é",
        "example.org",
        "user:pw",
        " ",
        "\t",
        ".",
    ]
)


def _reference(url: str) -> object:
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        return ("split fails", str(exc))
    try:
        port: object = parts.port
    except ValueError as exc:
        port = ("port fails", str(exc))
    return (tuple(parts), parts.hostname, port)


def _ours(url: str) -> object:
    try:
        parts = url_parts(url)
    except ValueError as exc:
        return ("split fails", str(exc))
    try:
        port: object = parts.checked_port()
    except ValueError as exc:
        port = ("port fails", str(exc))
        assert parts.port is None
    else:
        assert parts.port == port
    return (tuple(parts.split), parts.hostname, port)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.lists(_PIECES, max_size=12).map("".join), st.text(max_size=40)))
def test_url_parts_are_urlsplits(url: str) -> None:
    for _ in range(2):  # the second time from the cache (failures are not cached)
        assert _ours(url) == _reference(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.org",
        "http://[::1]:8080/p?q#f",
        "https://h:99999/",
        "https://h:x/",
        "https://[::1/",
        "http://user@h:0",
        "//h:80",
        "h",
    ],
)
def test_url_parts_examples(url: str) -> None:
    assert _ours(url) == _reference(url)


def test_one_object_per_url() -> None:
    assert url_parts("https://example.org/a") is url_parts("https://example.org/a")
