"""The HTTP step over real loopback connections (plain and TLS) to a misbehaving server."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import itertools
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe import failures
from probe.observations import HTTPTransaction, Trace
from probe.steps.http import (
    _BodyReader,
    check_redirect,
    extract_title,
    http_round_trip,
    refuse_private_hop,
    resolve_location,
)
from probe.steps.tcp import tcp_connect
from probe.steps.tls import tls_handshake
from probe.steps.tls_context import client_context
from tests.servers.certs import make_pki
from tests.servers.http_server import (
    BLOCKPAGE_HTML,
    PAGE_HTML,
    PAGE_TITLE,
    PRIVATE_REDIRECT_TARGET,
    HTTPTestServer,
    body_pattern,
    gzip_bomb,
)
from tests.servers.tls_server import TLSServer

TIMEOUT = 1.0
REPO = Path(__file__).resolve().parent.parent


def new_trace() -> Trace:
    return Trace(zero=time.monotonic(), transaction_id=7)


@pytest.fixture
async def server() -> AsyncIterator[HTTPTestServer]:
    async with HTTPTestServer(trickle_interval=0.2) as running:
        yield running


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The test CA (tests/servers/certs.py) as a PEM file for `client_context`."""
    return make_pki().write_ca_file(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def tls_server() -> AsyncIterator[HTTPTestServer]:
    """The same server behind TLS, with a certificate for test.localhost from the test CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    make_pki().good.configure_cert(context)
    async with HTTPTestServer(ssl_context=context, trickle_interval=0.2) as running:
        yield running


async def fetch(
    server: HTTPTestServer,
    path: str,
    *,
    url: str | None = None,
    timeout: float = TIMEOUT,
    body_cap: int = 65536,
    source_address: str | None = None,
    ca_file: str | None = None,
    headers: list[tuple[str, str]] | None = None,
    method: str = "GET",
) -> HTTPTransaction:
    """Connect to the server's address (whatever host the URL names), optionally handshake,
    then run the round trip: the same steps the measurement runs."""
    trace = new_trace()
    connected = await tcp_connect(
        server.host, server.port, trace=trace, timeout=timeout, source_address=source_address
    )
    assert connected.stream is not None, connected.observation.failure
    stream = connected.stream
    if server.ssl_context is not None:
        assert ca_file is not None
        handshake = await tls_handshake(
            connected.stream,
            "test.localhost",
            trace=trace,
            timeout=timeout,
            context=client_context((ca_file,)),
        )
        assert handshake.stream is not None, handshake.observation.failure
        stream = handshake.stream  # type: ignore[assignment]
    try:
        return await http_round_trip(
            stream,
            url or server.url(path, host="test.localhost" if server.ssl_context else None),
            trace=trace,
            timeout=timeout,
            address=f"{server.host}:{server.port}",
            body_cap=body_cap,
            headers=headers,
            method=method,
        )
    finally:
        await stream.aclose()


async def fetch_any(
    scheme: str, plain: HTTPTestServer, tls: HTTPTestServer, ca_file: str, path: str, **kw: object
) -> HTTPTransaction:
    if scheme == "https":
        return await fetch(tls, path, ca_file=ca_file, **kw)  # type: ignore[arg-type]
    return await fetch(plain, path, **kw)  # type: ignore[arg-type]


both_schemes = pytest.mark.parametrize("scheme", ["http", "https"])


# --- normal responses -------------------------------------------------------------------------


@both_schemes
async def test_normal_page(
    scheme: str, server: HTTPTestServer, tls_server: HTTPTestServer, ca_file: str
) -> None:
    tx = await fetch_any(scheme, server, tls_server, ca_file, "/page")
    assert tx.failure is None and tx.failed_operation is None
    assert tx.response_code == 200
    assert tx.title == PAGE_TITLE
    assert tx.body_length == len(PAGE_HTML)
    assert tx.body_sha256 == hashlib.sha256(PAGE_HTML).hexdigest()
    assert tx.body == PAGE_HTML.decode("utf-8")
    assert not tx.body_is_truncated
    # Order and original case survive; repeated headers are all kept.
    names = [name for name, _ in tx.response_headers]
    assert names[:6] == [
        "Content-Type",
        "Server",
        "X-Probe-Test",
        "x-lower-case",
        "Set-Cookie",
        "Set-Cookie",
    ]
    assert ("X-Probe-Test", "Mixed-Case") in tx.response_headers
    assert [v for n, v in tx.response_headers if n == "Set-Cookie"] == ["a=1", "b=2"]
    record = tx.to_dict()
    assert record["response"]["headers_list"][2] == ["X-Probe-Test", "Mixed-Case"]
    port = server.port if scheme == "http" else tls_server.port
    assert record["request"]["x_address"] == f"127.0.0.1:{port}"
    assert tx.t >= tx.t0 >= 0
    assert tx.transaction_id == 7


async def test_request_headers_on_the_wire(server: HTTPTestServer) -> None:
    """Host is the URL's name (not the address we connected to); browser-like defaults."""
    tx = await fetch(server, "", url=f"http://www.example.com:{server.port}/echo")
    assert tx.failure is None
    seen = json.loads(tx.body or "")
    headers = [tuple(h) for h in seen["headers"]]
    assert headers[0] == ("Host", f"www.example.com:{server.port}")
    names = [name for name, _ in headers]
    assert names == [
        "Host",
        "User-Agent",
        "Accept",
        "Accept-Language",
        "Accept-Encoding",
        "Connection",
    ]
    assert dict(headers)["User-Agent"].startswith("Mozilla/5.0 (")
    assert dict(headers)["Accept-Encoding"] == "gzip, deflate"
    assert dict(headers)["Accept-Language"].startswith("en-US")
    assert dict(headers)["Connection"] == "close"
    assert seen["target"] == "/echo"
    assert tx.request_headers == headers


async def test_host_header_omits_default_port_and_extra_headers_replace_defaults(
    server: HTTPTestServer,
) -> None:
    tx = await fetch(
        server,
        "",
        url="http://www.example.com/echo?q=a%20b&x=ü",
        headers=[("user-agent", "custom/1.0"), ("X-Extra", "1")],
        method="POST",
    )
    seen = json.loads(tx.body or "")
    headers = [tuple(h) for h in seen["headers"]]
    assert headers[0] == ("Host", "www.example.com")
    assert ("user-agent", "custom/1.0") in headers
    assert not any(name == "User-Agent" for name, _ in headers)
    assert ("X-Extra", "1") in headers and ("Content-Length", "0") in headers
    assert seen["method"] == "POST"
    assert seen["target"] == "/echo?q=a%20b&x=%C3%BC"


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://[2001:db8::1]:8080/echo", "[2001:db8::1]:8080"),
        ("http://[2001:db8::1]/echo", "[2001:db8::1]"),
        ("https://bücher.example/echo", "xn--bcher-kva.example"),
        ("https://www.example.com:443/echo", "www.example.com"),
        ("https://www.example.com:80/echo", "www.example.com:80"),
    ],
)
async def test_host_header_forms(server: HTTPTestServer, url: str, host: str) -> None:
    """The plain server answers whatever scheme the URL names: only the Host header matters."""
    tx = await fetch(server, "", url=url)
    assert tx.failure is None
    assert json.loads(tx.body or "")["headers"][0] == ["Host", host]


@pytest.mark.parametrize("path", ["/gzip", "/deflate", "/deflate-raw", "/chunked"])
async def test_encodings_are_decoded(server: HTTPTestServer, path: str) -> None:
    tx = await fetch(server, path)
    assert tx.failure is None
    assert tx.body_sha256 == hashlib.sha256(PAGE_HTML).hexdigest()
    assert tx.body_length == len(PAGE_HTML)
    assert tx.title == PAGE_TITLE
    assert not tx.body_is_truncated


@both_schemes
async def test_gzip_bomb_stays_within_the_cap(
    scheme: str, server: HTTPTestServer, tls_server: HTTPTestServer, ca_file: str
) -> None:
    gzip_bomb()  # built before measuring: the server's copy is not the client's memory
    await fetch_any(scheme, server, tls_server, ca_file, "/page")  # warm caches/imports
    tracemalloc.start()
    try:
        tx = await fetch_any(scheme, server, tls_server, ca_file, "/gzip-bomb", body_cap=65536)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert tx.failure is None
    assert tx.body_length == 65536
    assert tx.body_is_truncated
    assert tx.body_sha256 == hashlib.sha256(bytes(65536)).hexdigest()
    # 32 MiB inflated would be visible; allow generous room for the round trip itself.
    assert peak < 4 * 1024 * 1024, peak


@both_schemes
async def test_endless_body_is_truncated_at_the_cap(
    scheme: str, server: HTTPTestServer, tls_server: HTTPTestServer, ca_file: str
) -> None:
    tx = await fetch_any(scheme, server, tls_server, ca_file, "/endless", body_cap=5000)
    assert tx.failure is None
    assert tx.response_code == 200
    assert tx.body_length == 5000 and tx.body_is_truncated
    assert tx.body_sha256 == hashlib.sha256(body_pattern(16384)[:5000]).hexdigest()


async def test_body_of_exactly_the_cap_is_not_truncated(server: HTTPTestServer) -> None:
    exact = await fetch(server, "/sized/1000", body_cap=1000)
    assert exact.body_length == 1000 and not exact.body_is_truncated
    longer = await fetch(server, "/sized/1001", body_cap=1000)
    assert longer.body_length == 1000 and longer.body_is_truncated
    assert longer.body_sha256 == exact.body_sha256


async def test_close_delimited_body(server: HTTPTestServer) -> None:
    tx = await fetch(server, "/close-delimited/3000")
    assert tx.failure is None and tx.body_length == 3000 and not tx.body_is_truncated


# --- failures ---------------------------------------------------------------------------------


@both_schemes
async def test_trickle_ends_at_the_deadline(
    scheme: str, server: HTTPTestServer, tls_server: HTTPTestServer, ca_file: str
) -> None:
    """A byte every 0.2 s never trips a per-read timeout; the whole-exchange deadline ends it
    and keeps what arrived."""
    start = time.monotonic()
    tx = await fetch_any(scheme, server, tls_server, ca_file, "/trickle", timeout=TIMEOUT)
    assert time.monotonic() - start < 3 * TIMEOUT + 2
    assert tx.failure == failures.GENERIC_TIMEOUT
    assert tx.failed_operation == failures.READ
    assert tx.response_code == 200
    assert tx.body_length is not None and 0 < tx.body_length < 100000
    assert not tx.body_is_truncated


async def test_trickled_head_ends_at_the_deadline(server: HTTPTestServer) -> None:
    start = time.monotonic()
    tx = await fetch(server, "/trickle-head")
    assert time.monotonic() - start < 3 * TIMEOUT + 2
    assert tx.failure == failures.GENERIC_TIMEOUT
    assert tx.failed_operation == failures.HTTP_ROUND_TRIP
    assert tx.response_code is None and tx.to_dict()["response"] is None


@both_schemes
async def test_reset_mid_body_keeps_the_partial_response(
    scheme: str, server: HTTPTestServer, tls_server: HTTPTestServer, ca_file: str
) -> None:
    tx = await fetch_any(scheme, server, tls_server, ca_file, "/reset")
    assert tx.failure == failures.CONNECTION_RESET
    assert tx.failed_operation == failures.READ
    assert tx.response_code == 200
    assert tx.title == "Cut short"
    assert tx.body_length is not None and 0 < tx.body_length < 100000


async def test_eof_mid_body(server: HTTPTestServer) -> None:
    tx = await fetch(server, "/eof-mid-body")
    assert (tx.failure, tx.failed_operation) == (failures.EOF_ERROR, failures.READ)
    assert tx.response_code == 200 and tx.body_length == 100


@pytest.mark.parametrize(
    ("path", "failure"),
    [
        ("/never", failures.GENERIC_TIMEOUT),
        ("/garbage", failures.HTTP_INVALID_RESPONSE),
        ("/close", failures.EOF_ERROR),
        ("/close-status", failures.EOF_ERROR),
        ("/reset-before", failures.CONNECTION_RESET),
        ("/huge-headers", failures.HTTP_INVALID_RESPONSE),
        ("/informational-flood", failures.HTTP_INVALID_RESPONSE),
    ],
)
async def test_failures_before_a_response(server: HTTPTestServer, path: str, failure: str) -> None:
    start = time.monotonic()
    tx = await fetch(server, path)
    assert time.monotonic() - start < 3 * TIMEOUT + 2
    assert tx.failure == failure
    assert tx.failed_operation == failures.HTTP_ROUND_TRIP
    assert tx.response_code is None and tx.body is None and tx.response_headers == []


async def test_behind_the_tls_servers_app_hook(ca_file: str) -> None:
    """The HTTP behaviours also run as the TLS test server's app (one SNI recorded there)."""
    http_app = HTTPTestServer(scheme_override="https")
    async with TLSServer(make_pki().good, app=http_app.handle_connection) as tls:
        handle = HTTPTestServer(port=tls.port, ssl_context=ssl.create_default_context())
        tx = await fetch(handle, "/redirect/1", ca_file=ca_file)
        reset = await fetch(handle, "/reset", ca_file=ca_file)
    assert tx.response_code == 302
    assert tx.location == f"https://test.localhost:{tls.port}/redirect/0"
    assert tls.server_names == ["test.localhost", "test.localhost"]
    assert reset.failure == failures.CONNECTION_RESET and reset.title == "Cut short"


async def test_garbage_over_tls(tls_server: HTTPTestServer, ca_file: str) -> None:
    tx = await fetch(tls_server, "/garbage", ca_file=ca_file)
    assert tx.failure == failures.HTTP_INVALID_RESPONSE


async def test_corrupt_gzip_keeps_the_response(server: HTTPTestServer) -> None:
    tx = await fetch(server, "/bad-gzip")
    assert tx.response_code == 200
    assert (tx.failure, tx.failed_operation) == (failures.HTTP_INVALID_RESPONSE, failures.READ)


async def test_bad_url_is_a_failure_not_an_exception(server: HTTPTestServer) -> None:
    tx = await fetch(server, "", url="ftp://example.com/")
    assert tx.failure is not None and tx.failure.startswith(failures.UNKNOWN_PREFIX)
    assert tx.failed_operation == failures.HTTP_ROUND_TRIP


async def test_cancellation_escapes(server: HTTPTestServer) -> None:
    trace = new_trace()
    connected = await tcp_connect(server.host, server.port, trace=trace, timeout=TIMEOUT)
    assert connected.stream is not None
    task = asyncio.create_task(
        http_round_trip(
            connected.stream, server.url("/never"), trace=trace, timeout=30, address="x"
        )
    )
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await connected.stream.aclose()


# --- blockpages, charsets, per-peer behaviour ---------------------------------------------------


async def test_blockpage_is_captured(server: HTTPTestServer) -> None:
    tx = await fetch(server, "/blockpage")
    assert tx.failure is None
    assert tx.response_code == 403
    assert tx.title == "M1-6"
    assert tx.body_sha256 == hashlib.sha256(BLOCKPAGE_HTML).hexdigest()
    assert tx.body is not None and 'src="http://10.10.34.34?type=Invalid Site' in tx.body
    assert not tx.body_is_truncated


async def test_charset_from_content_type(server: HTTPTestServer) -> None:
    arabic = "<title>صفحه مسدود</title>"
    server.raw_responses["cp1256"] = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=windows-1256\r\n"
        b"Content-Length: %d\r\n\r\n" % len(arabic.encode("cp1256")) + arabic.encode("cp1256")
    )
    tx = await fetch(server, "/raw/cp1256")
    assert tx.title == "صفحه مسدود"


async def test_per_peer_behaviour() -> None:
    """One URL, two source addresses: the "probe" sees the blockpage, the "control" the page."""
    by_peer = {"127.0.0.2": "blockpage", "127.0.0.3": "page"}
    async with HTTPTestServer(by_peer=by_peer) as running:
        probe_view = await fetch(running, "/anything", source_address="127.0.0.2")
        control_view = await fetch(running, "/anything", source_address="127.0.0.3")
        default_view = await fetch(running, "/anything")
    assert (probe_view.response_code, probe_view.title) == (403, "M1-6")
    assert (control_view.response_code, control_view.title) == (200, PAGE_TITLE)
    assert default_view.response_code == 404
    assert [r.peer for r in running.requests] == ["127.0.0.2", "127.0.0.3", "127.0.0.1"]


# --- redirects --------------------------------------------------------------------------------


async def test_redirect_locations(server: HTTPTestServer) -> None:
    chain = await fetch(server, "/redirect/2")
    assert chain.response_code == 302 and chain.failure is None
    assert chain.location == server.url("/redirect/1")
    relative = await fetch(server, "/redirect-relative")
    assert relative.location == server.url("/page?from=relative")
    ftp = await fetch(server, "/redirect-ftp")
    assert ftp.failure is None and ftp.location == "ftp://files.example.com/pub/file.txt"
    plain = await fetch(server, "/page")
    assert plain.location is None


@pytest.mark.parametrize("path", ["/redirect-broken", "/redirect-missing"])
async def test_unusable_location_is_refused(server: HTTPTestServer, path: str) -> None:
    tx = await fetch(server, path)
    assert tx.response_code == 302 and tx.location is None
    assert (tx.failure, tx.failed_operation) == (
        failures.HTTP_REDIRECT_REFUSED,
        failures.HTTP_ROUND_TRIP,
    )


async def follow(
    server: HTTPTestServer, url: str, max_redirects: int
) -> tuple[list[HTTPTransaction], str | None]:
    """The caller's loop in miniature: every hop on its own connection, policy checked."""
    hops: list[HTTPTransaction] = []
    while True:
        tx = await fetch(server, "", url=url)
        hops.append(tx)
        if tx.response_code not in (301, 302, 303, 307, 308) or tx.failure is not None:
            return hops, tx.failure
        refusal = check_redirect(url, tx.location, len(hops) - 1, max_redirects)
        if refusal is not None:
            return hops, refusal
        assert tx.location is not None
        url = tx.location


async def test_redirect_chain_is_followed_hop_by_hop(server: HTTPTestServer) -> None:
    hops, failure = await follow(server, server.url("/redirect/3"), max_redirects=10)
    assert failure is None
    assert [h.response_code for h in hops] == [302, 302, 302, 200]
    assert hops[-1].title == PAGE_TITLE
    assert [h.url for h in hops][1:] == [h.location for h in hops][:-1]


async def test_redirect_loop_ends_at_the_bound(server: HTTPTestServer) -> None:
    hops, failure = await follow(server, server.url("/loop"), max_redirects=4)
    assert failure == failures.HTTP_TOO_MANY_REDIRECTS
    assert len(hops) == 5


async def test_redirect_into_a_private_range_is_recorded_not_followed(
    server: HTTPTestServer,
) -> None:
    """The URL names a public host; the Location is 10.1.2.3. The guard would fail the test
    if anything connected there."""
    url = f"http://www.example.com:{server.port}/redirect-private"
    hops, failure = await follow(server, url, max_redirects=10)
    assert failure == failures.HTTP_REDIRECT_REFUSED
    assert len(hops) == 1 and hops[0].location == PRIVATE_REDIRECT_TARGET


@pytest.mark.parametrize(
    ("current", "location", "hops", "expected"),
    [
        ("https://a.example/", "https://b.example/", 0, None),
        ("https://a.example/", "/next", 0, None),
        ("http://93.184.216.34/", "http://1.1.1.1/x", 0, None),
        ("https://a.example/", "https://b.example/", 9, None),
        ("https://a.example/", "https://b.example/", 10, failures.HTTP_TOO_MANY_REDIRECTS),
        ("https://a.example/", "https://a.example/", 10, failures.HTTP_TOO_MANY_REDIRECTS),
        ("https://a.example/", "ftp://a.example/file", 0, failures.HTTP_REDIRECT_REFUSED),
        ("https://a.example/", "javascript:alert(1)", 0, failures.HTTP_REDIRECT_REFUSED),
        ("https://a.example/", "data:text/html,hi", 0, failures.HTTP_REDIRECT_REFUSED),
        ("https://a.example/", "file:///etc/passwd", 0, failures.HTTP_REDIRECT_REFUSED),
        ("https://a.example/", None, 0, failures.HTTP_REDIRECT_REFUSED),
        ("https://a.example/", "", 0, failures.HTTP_REDIRECT_REFUSED),
        ("https://a.example/", "http://[::1/", 0, failures.HTTP_REDIRECT_REFUSED),
        ("https://a.example/", "http://a.example:99999/", 0, failures.HTTP_REDIRECT_REFUSED),
        ("https://a.example/", "http:///nohost", 0, failures.HTTP_REDIRECT_REFUSED),
        ("https://a.example/", "http://10.1.2.3/", 0, failures.HTTP_REDIRECT_REFUSED),
        ("https://a.example/", "http://10.10.34.34/?type=x", 0, failures.HTTP_REDIRECT_REFUSED),
        ("https://a.example/", "http://127.0.0.1:8080/", 0, failures.HTTP_REDIRECT_REFUSED),
        ("https://a.example/", "http://[::1]/", 0, failures.HTTP_REDIRECT_REFUSED),
        ("https://a.example/", "http://[fd00::1]/", 0, failures.HTTP_REDIRECT_REFUSED),
        ("https://a.example/", "http://169.254.169.254/", 0, failures.HTTP_REDIRECT_REFUSED),
        ("https://a.example/", "http://2130706433/", 0, failures.HTTP_REDIRECT_REFUSED),
        ("https://a.example/", "http://0x7f.1/", 0, failures.HTTP_REDIRECT_REFUSED),
        ("https://a.example/", "http://localhost/", 0, failures.HTTP_REDIRECT_REFUSED),
        ("https://a.example/", "http://admin.localhost./", 0, failures.HTTP_REDIRECT_REFUSED),
        ("http://93.184.216.34/", "http://192.168.1.1/", 0, failures.HTTP_REDIRECT_REFUSED),
        # From a non-public hop (an intranet, the lab) private targets are allowed.
        ("http://10.0.0.1/", "http://10.0.0.2/", 0, None),
        ("http://198.18.0.10/", "http://198.18.0.11/", 0, None),
        ("http://127.0.0.1:8080/", "/page", 0, None),
    ],
)
def test_check_redirect_table(
    current: str, location: str | None, hops: int, expected: str | None
) -> None:
    assert check_redirect(current, location, hops) == expected


def test_check_redirect_current_ip_decides_for_names() -> None:
    assert check_redirect("http://lab.test/", "http://10.0.0.2/", 0, current_ip="10.0.0.1") is None
    assert (
        check_redirect("http://lab.test/", "http://10.0.0.2/", 0, current_ip="93.184.216.34")
        == failures.HTTP_REDIRECT_REFUSED
    )
    assert check_redirect("http://a/", "http://b/", 2, max_redirects=2) == (
        failures.HTTP_TOO_MANY_REDIRECTS
    )


@pytest.mark.parametrize(
    ("from_ip", "to_ip", "refused"),
    [
        ("93.184.216.34", "1.1.1.1", False),
        ("93.184.216.34", "10.10.34.34", True),
        ("93.184.216.34", "127.0.0.1", True),
        ("93.184.216.34", "::ffff:10.0.0.1", True),
        ("2606:2800:220:1::1", "fe80::1", True),
        ("2606:2800:220:1::1", "2001:4860:4860::8888", False),
        ("93.184.216.34", "not an address", True),
        ("10.0.0.1", "10.0.0.2", False),
        ("127.0.0.1", "127.0.0.2", False),
        ("198.18.0.1", "93.184.216.34", False),
    ],
)
def test_refuse_private_hop(from_ip: str, to_ip: str, refused: bool) -> None:
    assert refuse_private_hop(from_ip, to_ip) is refused


@pytest.mark.parametrize(
    ("current", "location", "expected"),
    [
        ("http://a.example/x/y", "z", "http://a.example/x/z"),
        ("http://a.example/x/y", "../z?q=1", "http://a.example/z?q=1"),
        ("http://a.example/x", "//b.example/p", "http://b.example/p"),
        ("https://a.example/", "  https://b.example/  ", "https://b.example/"),
        ("https://a.example/", "javascript:void(0)", "javascript:void(0)"),
        ("https://a.example/", "http://b.example:bad/", None),
        ("https://a.example/", "http://b.exa\nmple/", None),
        ("https://a.example/", None, None),
    ],
)
def test_resolve_location(current: str, location: str | None, expected: str | None) -> None:
    assert resolve_location(current, location) == expected


def test_extract_title() -> None:
    assert extract_title("<html><TITLE lang=en>\n A &amp;  B \n</title>") == "A & B"
    assert extract_title("<title>" + "x" * 500) == "x" * 200
    assert extract_title("<p>no title</p>") is None
    assert extract_title("<title" * 20000) is None  # bounded work on hostile input
    assert extract_title("<title>a\x00b\x1bc</title>") == "a b c"


# --- records ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/page", "/reset", "/never", "/redirect/1", "/blockpage"])
async def test_json_round_trip(server: HTTPTestServer, path: str) -> None:
    tx = await fetch(server, path)
    restored = HTTPTransaction.from_dict(json.loads(json.dumps(tx.to_dict())))
    assert restored == tx


# --- hostile bytes ------------------------------------------------------------------------------

KNOWN_FAILURES = {
    None,
    failures.EOF_ERROR,
    failures.HTTP_INVALID_RESPONSE,
    failures.HTTP_REDIRECT_REFUSED,
    failures.CONNECTION_RESET,
    failures.GENERIC_TIMEOUT,
}


def _http_like() -> st.SearchStrategy[bytes]:
    header = st.sampled_from(
        [
            b"Content-Length: 5\r\n",
            b"Content-Length: 100000\r\n",
            b"Content-Length: -1\r\n",
            b"Transfer-Encoding: chunked\r\n",
            b"Content-Encoding: gzip\r\n",
            b"Content-Encoding: deflate\r\n",
            b"Content-Type: text/html; charset=nonsense\r\n",
            b"Location: javascript:x\r\n",
            b"Location: http://[::1\r\n",
            b"X: \x00\r\n",
        ]
    )
    body = st.one_of(
        st.binary(max_size=300),
        st.builds(gzip.compress, st.binary(max_size=300)),
        st.just(gzip.compress(bytes(200000))),
        st.just(b"5\r\nhello\r\nffffff\r\nabc"),
    )
    status = st.sampled_from(
        [b"HTTP/1.1 200 OK\r\n", b"HTTP/1.0 302 Found\r\n", b"HTTP/1.1 100 x\r\n"]
    )
    return st.builds(
        lambda s, hs, b: s + b"".join(hs) + b"\r\n" + b,
        status,
        st.lists(header, max_size=4),
        body,
    )


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(response=st.one_of(st.binary(max_size=400), _http_like()))
def test_arbitrary_server_bytes_never_escape_and_never_exceed_the_cap(response: bytes) -> None:
    async def run() -> HTTPTransaction:
        async with HTTPTestServer() as running:
            running.raw_responses["x"] = response
            return await fetch(running, "/raw/x", timeout=0.5, body_cap=64)

    tx = asyncio.run(run())
    assert tx.failure in KNOWN_FAILURES, tx.failure
    if tx.response_code is None:
        assert tx.body is None and tx.body_length is None
    else:
        assert tx.body_length is not None and tx.body_length <= 64
        assert tx.title is None or len(tx.title) <= 200
    json.dumps(tx.to_dict())


@settings(max_examples=100, deadline=None)
@given(
    content=st.binary(max_size=5000),
    coding=st.sampled_from(["gzip", "deflate", "deflate-raw", ""]),
    cuts=st.lists(st.integers(min_value=0, max_value=6000), max_size=8),
    cap=st.integers(min_value=0, max_value=6000),
)
def test_body_reader_matches_one_shot_decoding(
    content: bytes, coding: str, cuts: list[int], cap: int
) -> None:
    """However the wire splits the body, the reader keeps exactly the first `cap` bytes of the
    decoded content and says truncated exactly when the content was longer."""
    if coding == "gzip":
        wire = gzip.compress(content)
    elif coding == "deflate":
        wire = zlib.compress(content)
    elif coding == "deflate-raw":
        compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        wire = compressor.compress(content) + compressor.flush()
    else:
        wire = content
    reader = _BodyReader(coding.split("-")[0] or None, cap)
    points = sorted({min(c, len(wire)) for c in cuts} | {0, len(wire)})
    for start, end in itertools.pairwise(points):
        reader.feed(wire[start:end])
        if reader.truncated:
            break
    reader.finish()
    assert bytes(reader.kept) == content[:cap]
    assert reader.truncated == (len(content) > cap)


# --- standalone server ------------------------------------------------------------------------


def test_standalone_server_prints_its_port_and_serves() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.servers.http_server",
            "--port",
            "0",
            "--peer",
            "127.0.0.2=blockpage",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())

        async def both() -> tuple[HTTPTransaction, HTTPTransaction]:
            remote = HTTPTestServer(port=port)  # a handle for fetch(): address and URL only
            return (
                await fetch(remote, "/page"),
                await fetch(remote, "/page", source_address="127.0.0.2"),
            )

        page, blocked = asyncio.run(both())
        assert page.title == PAGE_TITLE
        assert blocked.response_code == 403
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
