"""Checks of single values of a target: a host, a URL, a CA file. Each returns why the value is
wrong (a message fragment) or None; the list loader and the wire format share them."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from probe.targets.schema import MAX_CA_BYTES
from probe.targets.text import os_message, quote
from probe.urls import url_parts

#: whitespace (as str.isspace: Unicode's too) or a control character, one regex search rather
#: than a Python test per character (most of the time of checking a URL)
_CONTROL_RE = re.compile(r"[\s\x00-\x1f\x7f]")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_LABEL_RE = re.compile(_LABEL + r"\Z")
#: every label good, in one match; only a bad name is split to say which label is bad
_HOSTNAME_RE = re.compile(rf"(?:{_LABEL}\.)*{_LABEL}\Z")
_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n.*?-----END CERTIFICATE-----", re.DOTALL
)


def is_ip(text: str) -> bool:
    """True for a bare IPv4 or IPv6 literal (no zone id)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return "%" not in text


def host_problem(host: str) -> str | None:
    """Why `host` is not a hostname (IDNA allowed) or a bare IPv4/IPv6 literal; None if it is."""
    if not host:
        return "is empty"
    if _CONTROL_RE.search(host) is not None:
        return "contains whitespace or control characters"
    if host.startswith("[") or host.endswith("]"):
        return "is not a valid address (write IPv6 addresses without brackets)"
    if ":" in host:
        if "%" in host:
            return "is not a valid IPv6 address (zone ids are not allowed)"
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return "is not a valid IPv6 address"
        return None
    labels = host.split(".")
    # the last label first: a hostname's is not all digits, and the generator is not started
    if labels[-1].isdigit() and all(label.isdigit() for label in labels if label):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return "is not a valid IPv4 address"
        return None
    return _hostname_problem(host)


def _hostname_problem(host: str) -> str | None:
    if host.endswith("."):
        return 'is not a valid hostname (no trailing ".")'
    try:
        ascii_host = host.encode("ascii").decode("ascii")
    except UnicodeEncodeError:
        try:
            import idna

            ascii_host = idna.encode(host, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError, ValueError):
            return "is not a valid hostname (IDNA encoding fails)"
    ascii_host = ascii_host.lower()
    if len(ascii_host) > 253:
        return "is not a valid hostname (longer than 253 characters)"
    if _HOSTNAME_RE.match(ascii_host) is None:
        for label in ascii_host.split("."):
            if not _LABEL_RE.match(label):
                return f"is not a valid hostname (bad label {quote(label)})"
    if ascii_host.rsplit(".", 1)[-1].isdigit():
        return "is not a valid hostname (the last label is all digits)"
    return None


def url_problem(url: str, check: str) -> str | None:
    """Why `url` cannot be fetched by `check` (http or https); None if it can."""
    if _CONTROL_RE.search(url) is not None:
        return f"url {quote(url)} contains whitespace or control characters"
    try:
        url_split = url_parts(url)
    except ValueError:
        return f"url {quote(url)} is not a valid URL (bad host)"
    parts = url_split.split
    if parts.scheme.lower() != check:
        return f"url scheme {quote(parts.scheme)} does not match check {quote(check)}"
    if not url.lower().startswith(f"{check}://"):
        return f'url {quote(url)} must start with "{check}://"'
    if "@" in parts.netloc:
        return f"url {quote(url)} must not contain user info"
    try:
        port = url_split.checked_port()
    except ValueError:
        return f"url {quote(url)} has an invalid port"
    host = url_split.hostname
    if not host:
        return f"url {quote(url)} has no host"
    if port == 0:
        return f"url {quote(url)} has an invalid port"
    if parts.netloc.rsplit("]", 1)[-1].endswith(":"):
        return f"url {quote(url)} has an empty port"
    bracketed = parts.netloc.startswith("[")
    if bracketed != (":" in host):
        return f"url {quote(url)} has an invalid host"
    problem = host_problem(host)
    if problem:
        return f"url host {quote(host)} {problem}"
    return None


def ca_file(ca: str, ca_dir: Path) -> Path:
    """The CA file a target's `ca` names: relative to `ca_dir` (the list's directory)."""
    return (ca_dir / ca).resolve()


def ca_problem(ca: str, ca_dir: Path) -> str | None:
    """Why `ca` (relative to `ca_dir`) is not a readable file of PEM certificates; None if it is."""
    if not ca or "\x00" in ca:
        return f"ca {quote(ca)} is not a file name"
    try:
        path = ca_file(ca, ca_dir)
        with open(path, "rb") as handle:
            data = handle.read(MAX_CA_BYTES + 1)
    except FileNotFoundError:
        return f"ca file {quote(ca)} not found ({ca_file(ca, ca_dir)})"
    except (OSError, ValueError, RuntimeError) as exc:
        return f"ca file {quote(ca)} cannot be read: {os_message(exc)}"
    if len(data) > MAX_CA_BYTES:
        return f"ca file {quote(ca)} is too large (over {MAX_CA_BYTES} bytes)"
    blocks = _PEM_CERTIFICATE.findall(data)
    if not blocks:
        return f"ca file {quote(ca)} contains no PEM certificate"
    from cryptography import x509

    for number, block in enumerate(blocks, start=1):
        try:
            x509.load_pem_x509_certificate(block)
        except ValueError as exc:
            return f"ca file {quote(ca)}: certificate {number} does not parse ({exc})"
    return None
