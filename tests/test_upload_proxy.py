"""Uploads through real proxies on loopback (an HTTP proxy: CONNECT and absolute-form; a
SOCKS5 proxy), to an http:// and an https:// collector (a test CA given with --ca-file):
the proxy saw the connection, socks5h leaves the collector's name to the proxy (the system
resolver is never asked: the network guard fails a test that resolves a name other than
localhost), socks5:// resolves it here and sends the address."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from probe.collector import CollectorConfig, start_server
from probe.upload import ClientSettings, parse_proxy, upload_spool
from tests.servers.certs import make_pki
from tests.servers.proxies import HTTPProxy, SOCKS5Proxy
from tests.upload_helpers import (
    collector,
    file_hashes,
    queued_spool,
    stored_hashes,
    volunteer_files,
)


@pytest.fixture(scope="module")
def records_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return volunteer_files(tmp_path_factory.mktemp("volunteer"), seed=5)


async def _tls_collector(directory: Path):  # type: ignore[no-untyped-def]
    """A collector serving HTTPS with the test CA's certificate for localhost names."""
    runner, site = await start_server(CollectorConfig(directory, reserve_bytes=0), "127.0.0.1", 0)
    await site.stop()
    from aiohttp import web

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    make_pki().good.configure_cert(context)
    tls = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await tls.start()
    return runner, runner.addresses[-1][1]


@pytest.mark.parametrize("scheme", ["http", "socks5", "socks5h"])
async def test_upload_through_a_proxy_to_an_http_collector(tmp_path, records_dir, scheme):
    spool = queued_spool(tmp_path / "data", records_dir)
    async with collector(tmp_path / "collector") as url:
        port = int(url.rsplit(":", 1)[1])
        if scheme == "http":
            proxy: HTTPProxy | SOCKS5Proxy = await HTTPProxy().start()
            target = f"http://localhost:{port}"
        else:
            proxy = await SOCKS5Proxy(names={"collector.example.test": "127.0.0.1"}).start()
            # socks5h: a name only the proxy knows; socks5: localhost, resolved here
            host = "collector.example.test" if scheme == "socks5h" else "localhost"
            target = f"http://{host}:{port}"
        try:
            settings = ClientSettings(
                target, proxy=parse_proxy(f"{scheme}://127.0.0.1:{proxy.port}")
            )
            done = await upload_spool(spool, settings)
        finally:
            await proxy.close()
        assert (done.delivered, done.error) == (72, None)
    assert stored_hashes(tmp_path / "collector") == file_hashes(records_dir)
    if scheme == "http":
        assert proxy.seen == [f"localhost:{port}"]
    elif scheme == "socks5h":
        assert proxy.seen == [("domain", "collector.example.test", port)]
    else:
        assert len(proxy.seen) == 1 and proxy.seen[0][0] in ("ipv4", "ipv6")
        assert proxy.seen[0][1] in ("127.0.0.1", "::1")


@pytest.mark.parametrize("scheme", ["direct", "http", "socks5h"])
async def test_upload_to_an_https_collector_with_a_custom_ca(tmp_path, records_dir, scheme):
    ca_file = make_pki().write_ca_file(tmp_path)
    spool = queued_spool(tmp_path / "data", records_dir)
    runner, port = await _tls_collector(tmp_path / "collector")
    proxy: HTTPProxy | SOCKS5Proxy | None = None
    try:
        if scheme == "http":
            proxy = await HTTPProxy(names={"test.localhost": "127.0.0.1"}).start()
        elif scheme == "socks5h":
            proxy = await SOCKS5Proxy(names={"test.localhost": "127.0.0.1"}).start()
        settings = ClientSettings(
            f"https://test.localhost:{port}",
            proxy=parse_proxy(f"{scheme}://127.0.0.1:{proxy.port}") if proxy else None,
            ca_files=(ca_file,),
        )
        if scheme == "direct":
            settings = ClientSettings(f"https://localhost:{port}", ca_files=(ca_file,))
            # without the CA the certificate is not trusted: nothing delivered, all kept
            untrusted = await upload_spool(spool, ClientSettings(settings.url))
            assert untrusted.delivered == 0 and untrusted.kept == 72
        done = await upload_spool(spool, settings, due_only=False)
        assert (done.delivered, done.error) == (72, None)
    finally:
        if proxy is not None:
            await proxy.close()
        await runner.cleanup()
    if isinstance(proxy, HTTPProxy):
        assert proxy.seen == [f"test.localhost:{port}"]  # a CONNECT tunnel: TLS end to end
    elif isinstance(proxy, SOCKS5Proxy):
        assert proxy.seen == [("domain", "test.localhost", port)]
    assert stored_hashes(tmp_path / "collector") == file_hashes(records_dir)


async def test_a_proxy_that_is_down_keeps_everything(tmp_path, records_dir):
    from tests.upload_helpers import free_port

    spool = queued_spool(tmp_path / "data", records_dir)
    async with collector(tmp_path / "collector") as url:
        proxy = parse_proxy(f"socks5h://127.0.0.1:{free_port()}")
        done = await upload_spool(spool, ClientSettings(url, proxy=proxy, timeout=10))
    assert done.delivered == 0 and done.kept == 72
    assert "proxy" in (done.error or "")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("ftp://127.0.0.1:21", "use http://"),
        ("socks5h://127.0.0.1", "port"),
        ("socks4://127.0.0.1:1080", "use http://"),
        ("http://127.0.0.1:8080/path", "nothing after it"),
    ],
)
def test_bad_proxy_urls_are_refused_with_a_reason(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_proxy(text)


def test_a_proxy_url_is_shown_without_its_password() -> None:
    proxy = parse_proxy("socks5h://me:secret@127.0.0.1:1080")
    assert proxy.remote_dns and "secret" not in proxy.shown
    assert not parse_proxy("socks5://127.0.0.1:1080").remote_dns
