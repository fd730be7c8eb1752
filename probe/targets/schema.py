"""The target-list schema (DESIGN.md "Contract: target lists"): checks, keys, defaults, limits.

Only constants: the model, the checks and the loader all read them, and none of them is
rebound at run time.
"""

from __future__ import annotations

import re

CHECKS = ("dns", "tcp", "tls", "http", "https", "mtproto")
TRANSPORTS = ("abridged", "intermediate", "padded_intermediate", "obfuscated2")
DEFAULT_TRANSPORTS = ("obfuscated2", "intermediate")
BASELINE_SERVICE = "baseline"
#: the tag of a domestic baseline (targets/domestic/<cc>.toml): a site inside the country
DOMESTIC_TAG = "domestic"

#: checks that name a `host`; the others (http, https) name a `url`
HOST_CHECKS = ("dns", "tcp", "tls", "mtproto")
URL_CHECKS = ("http", "https")
#: `ports` when the list gives none (tcp has no default: it must say which ports)
DEFAULT_PORTS: dict[str, tuple[int, ...]] = {"tls": (443,), "mtproto": (443,)}
#: `dc` (mtproto only): the DC id an obfuscated2 header carries, a signed 16-bit number, not 0
DC_ID_MIN, DC_ID_MAX = -32768, 32767
#: `expect_asn`: AS numbers are unsigned 32-bit, 0 is reserved
ASN_MIN, ASN_MAX = 1, 4294967295

#: a list file larger than this is refused unread (lists are a few kB)
MAX_LIST_BYTES = 1024 * 1024
#: a CA file larger than this is refused (a bundle of every public root is ~250 kB)
MAX_CA_BYTES = 1024 * 1024

#: the name part of an id (after "service/") and a list's name
NAME_PATTERN = "[a-z0-9][a-z0-9._-]*"
SERVICE_PATTERN = "[a-z0-9][a-z0-9_-]*"
NAME_RE = re.compile(NAME_PATTERN + r"\Z")
SERVICE_RE = re.compile(SERVICE_PATTERN + r"\Z")

LIST_KEYS = ("name", "description", "updated")
TARGET_KEYS = (
    "id",
    "service",
    "check",
    "host",
    "url",
    "ports",
    "sni",
    "expect_asn",
    "transports",
    "dc",
    "quic",
    "stun_port",
    "ca",
    "note",
    "tags",
)
#: the keys of a target whose value is a string, an array of integers, of strings, an integer
STRING_KEYS = ("id", "service", "check", "host", "url", "sni", "ca", "note")
INTEGER_ARRAY_KEYS = ("ports", "expect_asn")
STRING_ARRAY_KEYS = ("transports", "tags")
INTEGER_KEYS = ("dc", "stun_port")
#: `quic = true` (tls, https): also a QUIC handshake (UDP, ALPN h3) to each address and port
BOOLEAN_KEYS = ("quic",)
REQUIRED_KEYS = ("id", "service", "check")

#: which optional keys each check accepts (id, service and check are always required)
ALLOWED_BY_CHECK = {
    "dns": {"host", "expect_asn", "stun_port", "note", "tags"},
    "tcp": {"host", "ports", "expect_asn", "note", "tags"},
    "tls": {"host", "ports", "sni", "expect_asn", "ca", "quic", "note", "tags"},
    "http": {"url", "expect_asn", "note", "tags"},
    "https": {"url", "expect_asn", "ca", "quic", "note", "tags"},
    "mtproto": {"host", "ports", "expect_asn", "transports", "dc", "note", "tags"},
}
WHY_NOT_ALLOWED = {
    "ports": {
        "http": "the port comes from the url",
        "https": "the port comes from the url",
        "dns": "a dns check connects nowhere",
    },
    "host": {"http": 'use "url"', "https": 'use "url"'},
    "url": {c: 'use "host"' for c in HOST_CHECKS},
    "dc": {c: "only mtproto talks to a DC" for c in CHECKS if c != "mtproto"},
    "quic": {
        c: "QUIC is measured for tls and https targets" for c in CHECKS if c not in ("tls", "https")
    },
    "stun_port": {c: "STUN is measured for dns targets" for c in CHECKS if c != "dns"},
}

#: where a problem is: keys and array indices from the top of the document, e.g.
#: ``("targets", 2, "ports", 1)`` for the second port of the third ``[[targets]]``
Position = tuple[str | int, ...]
