"""MTProxy: check a user-supplied proxy link with a real handshake through the proxy.

`link` parses ``tg://proxy?…`` / ``https://t.me/proxy?…`` links and their three secret kinds
(plain, ``dd`` padded, ``ee`` fake-TLS); `obfuscation` is obfuscated2 keyed with the secret;
`faketls` the TLS disguise of ``ee`` secrets; `check` the step (`mtproxy_check`). The secret is
sent only to that proxy and never recorded or logged (docs/mtproxy.md).
"""

from __future__ import annotations

from probe.steps.mtproxy.check import DEFAULT_DC, MAX_ADDRESSES, mtproxy_attempt, mtproxy_check
from probe.steps.mtproxy.link import (
    FAKE_TLS,
    KINDS,
    PADDED,
    PLAIN,
    LinkError,
    ProxyLink,
    parse_link,
)

__all__ = [
    "DEFAULT_DC",
    "FAKE_TLS",
    "KINDS",
    "MAX_ADDRESSES",
    "PADDED",
    "PLAIN",
    "LinkError",
    "ProxyLink",
    "mtproxy_attempt",
    "mtproxy_check",
    "parse_link",
]
