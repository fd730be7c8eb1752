"""MTProxy links as users share them, parsed into what a check needs, the secret kept out of sight.

Forms (Telegram's own): ``tg://proxy?server=H&port=P&secret=S`` and
``https://t.me/proxy?server=H&port=P&secret=S`` (also ``http://``, ``telegram.me`` and the
bare ``t.me/proxy?...``). The secret is hex or, in newer links, URL-safe base64 of the same bytes:

- 16 bytes: a *plain* secret (obfuscated2 keyed with the secret; clients pick the transport);
- ``dd`` + 16 bytes: *padded* (obfuscated2, padded intermediate framing inside: random packet
  lengths, no length pattern for DPI);
- ``ee`` + 16 bytes + a domain name: *fake-TLS* (a TLS-looking ClientHello for that domain,
  then obfuscated2 inside TLS application-data records).

The secret is what lets anyone use the proxy, so it leaves this module only as the 16-byte key
inside `ProxyLink` (never in its repr, `described()` or any error message) and is sent only to
that proxy (as HMACs and obfuscation keys, never in clear).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from probe.addresses import parse_ip
from probe.i18n import N_

PLAIN = "plain"
PADDED = "padded"
FAKE_TLS = "fake_tls"
KINDS = (PLAIN, PADDED, FAKE_TLS)
KEY_LENGTH = 16
_PADDED_PREFIX = 0xDD
_FAKE_TLS_PREFIX = 0xEE
_HEX = re.compile(r"[0-9a-fA-F]+")
_BASE64URL = re.compile(r"[A-Za-z0-9_\-+/]+=*")
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
#: the paths and hosts of Telegram's proxy links
_WEB_HOSTS = ("t.me", "telegram.me", "www.t.me", "www.telegram.me")


class LinkError(ValueError):
    """A link we cannot check. The message never contains the secret. `template` (marked for
    the catalog) and `args` let the command line show it in the volunteer's language."""

    def __init__(self, template: str, **args: object) -> None:
        super().__init__(template.format(**args))
        self.template = template
        self.args_ = args


@dataclass(frozen=True, slots=True)
class ProxyLink:
    """One proxy: where it is, which kind, the key (16 bytes) and, for fake-TLS, the domain."""

    server: str
    port: int
    kind: str
    key: bytes = field(repr=False)
    domain: str | None = None

    def described(self) -> str:
        """``server:port`` with the kind, for messages and records: no secret in it."""
        host = f"[{self.server}]" if ":" in self.server else self.server
        return f"{host}:{self.port}"


def is_hostname(text: str) -> bool:
    """A DNS name of letters, digits and hyphens (an optional final dot), at most 253 bytes."""
    name = text[:-1] if text.endswith(".") else text
    return 0 < len(name) <= 253 and all(_LABEL.fullmatch(label) for label in name.split("."))


def decode_secret(text: str) -> tuple[str, bytes, str | None]:
    """(kind, key, domain) from a secret in hex or URL-safe base64; LinkError otherwise."""
    raw: bytes | None = None
    if _HEX.fullmatch(text) and len(text) % 2 == 0:
        raw = bytes.fromhex(text)
    elif _BASE64URL.fullmatch(text):
        padded = text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4)
        try:
            raw = base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_"))
        except (binascii.Error, ValueError):
            raw = None
    if raw is None:
        raise LinkError(N_("the secret is neither hex nor base64"))
    if len(raw) == KEY_LENGTH:
        return PLAIN, raw, None
    if len(raw) == KEY_LENGTH + 1 and raw[0] == _PADDED_PREFIX:
        return PADDED, raw[1:], None
    if len(raw) > KEY_LENGTH + 1 and raw[0] == _FAKE_TLS_PREFIX:
        try:
            domain = raw[KEY_LENGTH + 1 :].decode("ascii")
        except UnicodeDecodeError:
            raise LinkError(N_("the fake-TLS secret's domain is not a host name")) from None
        if not is_hostname(domain) or parse_ip(domain) is not None:
            raise LinkError(N_("the fake-TLS secret's domain is not a host name"))
        return FAKE_TLS, raw[1 : KEY_LENGTH + 1], domain.rstrip(".").lower()
    if len(raw) == KEY_LENGTH + 1 and raw[0] == _FAKE_TLS_PREFIX:
        raise LinkError(N_("the fake-TLS secret (ee…) has no domain after its 16-byte key"))
    raise LinkError(
        N_(
            "the secret is {count} bytes: expected 16 (plain), dd + 16 (padded) "
            "or ee + 16 + a domain (fake-TLS)"
        ),
        count=len(raw),
    )


def _query(text: str) -> dict[str, list[str]]:
    parts = urlsplit(text if "://" in text else "https://" + text)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme == "tg":
        if host == "socks" or parts.path.lstrip("/").startswith("socks"):
            raise LinkError(N_("a SOCKS5 proxy link, not an MTProxy link"))
        if host != "proxy":
            raise LinkError(N_("not a proxy link: expected tg://proxy?server=…&port=…&secret=…"))
    elif scheme in ("https", "http") and host in _WEB_HOSTS:
        path = parts.path.rstrip("/")
        if path == "/socks":
            raise LinkError(N_("a SOCKS5 proxy link, not an MTProxy link"))
        if path != "/proxy":
            raise LinkError(N_("not a proxy link: expected https://t.me/proxy?server=…"))
    else:
        raise LinkError(N_("not an MTProxy link: expected tg://proxy?… or https://t.me/proxy?…"))
    return parse_qs(parts.query, keep_blank_values=True)


def _single(query: dict[str, list[str]], name: str) -> str:
    values = query.get(name, [])
    if not values or not values[0].strip():
        raise LinkError(N_("the link has no {name}="), name=name)
    if len(values) > 1:
        raise LinkError(N_("the link has {name}= more than once"), name=name)
    return values[0].strip()


def parse_link(text: str) -> ProxyLink:
    """The proxy a link names; LinkError (without the secret in its message) if it is not one."""
    query = _query(text.strip())
    server = _single(query, "server").strip("[]")
    if parse_ip(server) is None and not is_hostname(server):
        raise LinkError(N_("the link's server is neither an IP address nor a host name"))
    port_text = _single(query, "port")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise LinkError(N_("the link's port is not a number from 1 to 65535"))
    kind, key, domain = decode_secret(_single(query, "secret"))
    return ProxyLink(server.rstrip(".").lower(), int(port_text), kind, key, domain)
