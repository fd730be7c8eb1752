"""The redirect policy (pure): where a Location leads, and whether the chain may follow it.

`http_round_trip` reports the resolved `location`; the caller asks `check_redirect` whether to
follow it, resolves the next host, checks the address with `refuse_private_hop`, connects and
calls `http_round_trip` again, one `HTTPTransaction` per hop."""

from __future__ import annotations

import socket
from urllib.parse import urljoin, urlsplit

from probe import failures
from probe.addresses import is_public, parse_ip

DEFAULT_MAX_REDIRECTS = 10
#: Status codes whose Location we follow (300 and 304 are not redirects to follow).
#: Schemes a redirect may lead to.
FOLLOWABLE_SCHEMES = frozenset({"http", "https"})


def resolve_location(current_url: str, location: str | None) -> str | None:
    """`location` made absolute against `current_url`, or None when it is missing or broken.

    Any scheme is returned as is (javascript:, ftp:): refusing those is `check_redirect`'s job.
    An http(s) location must name a host and a valid port."""
    if location is None:
        return None
    location = location.strip()
    if not location or any(ord(c) < 0x20 or c == "\x7f" for c in location):
        return None
    try:
        absolute = urljoin(current_url, location)
        parts = urlsplit(absolute)
        if parts.scheme.lower() in FOLLOWABLE_SCHEMES:
            if not parts.hostname:
                return None
            _ = parts.port  # raises ValueError for a bad port
    except ValueError:
        return None
    return absolute if parts.scheme else None


def check_redirect(
    current_url: str,
    location: str | None,
    hops_so_far: int,
    max_redirects: int = DEFAULT_MAX_REDIRECTS,
    *,
    current_ip: str | None = None,
) -> str | None:
    """None if the redirect from `current_url` to `location` may be followed, else the failure.

    `hops_so_far` is the number of redirects already followed; following one more than
    `max_redirects` is `http_too_many_redirects` (a loop ends here too). `http_redirect_refused`:
    a missing or unparseable Location, a scheme other than http/https, or a target host that is
    a non-public IP literal (or a localhost name) when the current hop is public. The current
    hop is public when `current_ip` (the address it was fetched from) is public; without
    `current_ip`, an IP-literal host decides, and a host name counts as public (a name on the
    internet redirecting into a private range is exactly what we refuse). A target *name* is
    checked after it is resolved, with `refuse_private_hop`.
    """
    if hops_so_far >= max_redirects:
        return failures.HTTP_TOO_MANY_REDIRECTS
    target = resolve_location(current_url, location)
    if target is None:
        return failures.HTTP_REDIRECT_REFUSED
    parts = urlsplit(target)
    if parts.scheme.lower() not in FOLLOWABLE_SCHEMES or not parts.hostname:
        return failures.HTTP_REDIRECT_REFUSED
    if _hop_is_public(current_url, current_ip) and not _host_may_be_public(parts.hostname):
        return failures.HTTP_REDIRECT_REFUSED
    return None


def refuse_private_hop(from_ip: str, to_ip: str) -> bool:
    """True when a redirect would lead from a public address to a non-public one (private,
    loopback, link-local, reserved, or not an address at all)."""
    from_public = is_public(from_ip) if parse_ip(from_ip) is not None else True
    return from_public and not is_public(to_ip)


def _hop_is_public(current_url: str, current_ip: str | None) -> bool:
    if current_ip is not None:
        return is_public(current_ip) if parse_ip(current_ip) is not None else True
    try:
        host = urlsplit(current_url).hostname or ""
    except ValueError:
        return True
    address = _literal_address(host)
    return is_public(address) if address is not None else True


def _host_may_be_public(host: str) -> bool:
    """False for a non-public IP literal (any spelling) and for localhost names."""
    name = host.rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return False
    address = _literal_address(name)
    return address is None or is_public(address)


def _literal_address(host: str) -> str | None:
    """The address `host` spells, also in the legacy IPv4 forms getaddrinfo accepts
    ("2130706433", "0x7f.1", "127.1"), else None for a name."""
    parsed = parse_ip(host)
    if parsed is not None:
        return str(parsed)
    if host and all(c in "0123456789abcdefx." for c in host) and any(c.isdigit() for c in host):
        try:
            return socket.inet_ntoa(socket.inet_aton(host))
        except OSError:
            return None
    return None
