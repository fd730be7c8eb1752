"""OONI's observation lists in our types.

OONI's lists (df-002 queries, df-005 tcp_connect, df-006 tls_handshakes, df-001 requests)
already have our field names; this module normalises their older spellings (legacy failure
names, ``status.failure: false``, ``engine: system``, final-response-first request order). It
also holds the small URL and address helpers the rest of the package shares.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin, urlsplit

from probe import failures
from probe.addresses import parse_ip
from probe.observations import (
    DNSQuery,
    HTTPTransaction,
    Observations,
    TCPConnect,
    TLSHandshake,
    format_address,
)

WEB_SCHEMES = frozenset({"http", "https"})
#: Older OONI failure names, and the name we use for the same event.
LEGACY_FAILURES = {
    "connection_refused_error": failures.CONNECTION_REFUSED,
    "connection_reset_error": failures.CONNECTION_RESET,
    "connection_lost_error": failures.EOF_ERROR,
    "connection_already_closed": failures.EOF_ERROR,
    "connection_done": failures.EOF_ERROR,
    "response_never_received": failures.GENERIC_TIMEOUT,
    "deferred_timeout_error": failures.GENERIC_TIMEOUT,
    "dns_name_error": failures.DNS_NXDOMAIN,
    "android_dns_cache_no_data": failures.DNS_NO_ANSWER,
    "ssl_error": failures.SSL_FAILED_HANDSHAKE,
    "unknown_error": failures.UNKNOWN_PREFIX + "unknown_error",
}
#: Bounds: a hostile or huge measurement must not make one record unbounded.
MAX_OBSERVATIONS_PER_LIST = 5000


def _failure(value: Any) -> str | None:
    if not value:  # None, False, "" all mean "no failure" in some OONI versions
        return None
    text = str(value)
    return LEGACY_FAILURES.get(text, text)


def _items(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        return []
    return [x for x in value[:MAX_OBSERVATIONS_PER_LIST] if isinstance(x, dict)]


def _norm_ip(text: str) -> str:
    address = parse_ip(text)
    return str(address) if address is not None else text


def _host_of(url: str) -> str:
    """The host of a URL, or of a bare `host[:port][/path]` input (no scheme)."""
    try:
        return (urlsplit(url if "://" in url else "//" + url).hostname or "").rstrip(".").lower()
    except ValueError:
        return ""


def _scheme_of(text: str) -> str:
    if "://" not in text:
        return ""
    try:
        return urlsplit(text).scheme.lower()
    except ValueError:
        return ""


def _url_port(url: str) -> int:
    try:
        parts = urlsplit(url if "://" in url else "//" + url)
        return parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return 0


def _query(d: dict[str, Any]) -> DNSQuery:
    q = DNSQuery.from_dict({**d, "answers": _items(d.get("answers"))})
    q.failure = _failure(d.get("failure"))
    q.hostname = q.hostname.rstrip(".").lower()
    if q.engine in ("system", ""):
        q.engine = "getaddrinfo"
    return q


def _tcp(d: dict[str, Any]) -> TCPConnect:
    c = TCPConnect.from_dict(d)
    c.ip = _norm_ip(c.ip)
    status = d.get("status") if isinstance(d.get("status"), dict) else {}
    assert isinstance(status, dict)
    c.failure = _failure(status.get("failure"))
    c.success = bool(status.get("success", c.failure is None)) and c.failure is None
    return c


def _tls(d: dict[str, Any]) -> TLSHandshake:
    h = TLSHandshake.from_dict(d)
    h.failure = _failure(d.get("failure"))
    if h.failure and not h.failed_operation:
        h.failed_operation = failures.TLS_HANDSHAKE
    return h


def _request(d: dict[str, Any]) -> HTTPTransaction:
    request = d.get("request") if isinstance(d.get("request"), dict) else {}
    assert isinstance(request, dict)
    r = HTTPTransaction.from_dict(d)
    r.failure = _failure(d.get("failure"))
    if r.failure and not r.failed_operation:
        r.failed_operation = failures.HTTP_ROUND_TRIP
    if r.location is None and r.response_code in (301, 302, 303, 307, 308):
        location = next((v for k, v in r.response_headers if k.lower() == "location"), None)
        if location:
            try:
                r.location = urljoin(r.url, location)
            except ValueError:
                r.location = None
    address = d.get("address") or request.get("x_address")
    if isinstance(address, str) and address:
        r.address = address
    else:
        host = _host_of(r.url)
        if parse_ip(host) is not None:  # a request straight to an IP (Telegram's DCs)
            r.address = format_address(_norm_ip(host), _url_port(r.url))
    return r


def observations_from_test_keys(test_keys: dict[str, Any]) -> Observations:
    """OONI's lists in our types, requests in the order they happened (OONI: final first)."""
    return Observations(
        queries=[_query(q) for q in _items(test_keys.get("queries"))],
        tcp_connect=[_tcp(c) for c in _items(test_keys.get("tcp_connect"))],
        tls_handshakes=[_tls(h) for h in _items(test_keys.get("tls_handshakes"))],
        requests=[_request(r) for r in reversed(_items(test_keys.get("requests")))],
    )


def _split(address: str) -> tuple[str, int] | None:
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = address.rpartition(":")
    if parse_ip(host) is None or not port.isdigit():
        return None
    return _norm_ip(host), int(port)
