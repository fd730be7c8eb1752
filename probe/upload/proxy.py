"""The proxy an upload goes through (`--proxy`, the config's `[upload] proxy`, or
`$PROBE_UPLOAD_PROXY`): `http://` (an HTTP proxy: HTTPS is tunnelled with CONNECT, and the
proxy resolves the collector's name), `socks5://` (SOCKS5; the collector's name is resolved
here, by this machine's resolver, and the proxy is sent its address) or `socks5h://` (SOCKS5;
the proxy resolves the name: use it where DNS is poisoned, and with a circumvention tool's
local SOCKS port). `user:password@` is allowed in all three."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

#: Points uploads at a proxy when no `--proxy` is given.
PROXY_ENV = "PROBE_UPLOAD_PROXY"
SCHEMES = ("http", "socks5", "socks5h")


@dataclass(frozen=True, slots=True)
class Proxy:
    url: str
    #: whether the proxy resolves the collector's name (http and socks5h) or we do (socks5)
    remote_dns: bool

    @property
    def shown(self) -> str:
        """The URL without its password (for messages)."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}"


def parse_proxy(text: str) -> Proxy:
    """The proxy named by `text`; ValueError with a one-line reason."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        raise ValueError("not a proxy URL") from None
    if parts.scheme not in SCHEMES:
        raise ValueError("use http://, socks5:// or socks5h://HOST:PORT")
    if not parts.hostname or port is None:
        raise ValueError(f"name the proxy's host and port: {parts.scheme}://HOST:PORT")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"a proxy URL is {parts.scheme}://HOST:PORT, nothing after it")
    return Proxy(text.strip(), remote_dns=parts.scheme != "socks5")


def parse_collector_url(text: str) -> str:
    """The collector's base URL (http or https, host, optional port and path), without a
    trailing slash; ValueError with a one-line reason."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        raise ValueError("not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("use an http:// or https:// URL")
    if port == 0 or parts.query or parts.fragment or " " in text.strip():
        raise ValueError("use an http:// or https:// URL")
    return text.strip().rstrip("/")


def records_url(base: str) -> str:
    """Where records are posted: `<base>/v1/records` (a base already ending so is kept)."""
    return base if base.endswith("/v1/records") else f"{base}/v1/records"
