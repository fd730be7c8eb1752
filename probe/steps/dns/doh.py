"""DNS over HTTPS (RFC 8484 POST): the encrypted engine, and the DNS-only control when no
control server answers (`PUBLIC_DOH_URLS`). httpx is imported only when DoH is used."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from probe import failures
from probe.observations import DNSQuery, Trace
from probe.steps.dns.wire import (
    MAX_DNS_MESSAGE,
    Reply,
    _check_query_type,
    _make_query,
    _parse_reply,
    _QueryRecorder,
    _WrongQueryId,
)

if TYPE_CHECKING:  # httpx is imported only when DoH is used (start-up time)
    import httpx

#: Public DNS-over-HTTPS resolvers: the DNS-only control when no control server answers.
PUBLIC_DOH_URLS = ("https://dns.google/dns-query", "https://cloudflare-dns.com/dns-query")
DOH_CONTENT_TYPE = "application/dns-message"
#: Connections to one DoH resolver at a time (doh_transport.doh_client) when it speaks only
#: HTTP/1.1. Each costs a TCP and TLS handshake (about 5 kB with a certificate chain) and
#: carries one query at a time, so callers keep about this many queries in flight
#: (doh_fallback does).
DOH_CONNECTIONS = 6
#: Names asked at once over one HTTP/2 connection (each with its A and AAAA queries). One:
#: httpcore reads an HTTP/2 connection under one lock, and a stream waiting for its answer holds
#: that lock while it reads, so answers already received for other streams wait behind it. One
#: unanswered (or slow) query would make every query in flight beside it time out too
#: (tests/test_doh_h2.py); one name at a time costs a round trip per name, not a deadline per
#: name.
DOH_NAMES_AT_ONCE_H2 = 1
_REQUEST_HEADERS = {
    "content-type": DOH_CONTENT_TYPE,
    "accept": DOH_CONTENT_TYPE,
    "accept-encoding": "identity",
}


async def resolve_doh(
    hostname: str,
    query_type: str,
    url: str,
    *,
    trace: Trace,
    timeout: float,
    client: httpx.AsyncClient,
) -> DNSQuery:
    """Ask the DoH server at `url` (RFC 8484 POST), within `timeout` seconds.

    A status other than 200, another content type, or a compressed or oversized body is
    dns_server_misbehaving (as OONI does)."""
    _check_query_type(query_type)
    recorder = _QueryRecorder(hostname, query_type, "doh", url, trace)
    data: bytes | None = None
    message: Reply | None = None
    failure: str | None = None
    try:
        # RFC 8484 §4.1: id 0 keeps the request cacheable
        query = _make_query(hostname, query_type, query_id=0)
        async with asyncio.timeout(timeout):
            data = await _post(client, url, query.to_wire())
            message = _parse_reply(query, data)
    except asyncio.CancelledError:
        raise
    except _WrongQueryId:
        failure = failures.DNS_WRONG_QUERY_ID
    except Exception as exc:
        failure = failures.classify(exc)
    if message is not None and data is not None:
        return recorder.reply(message, data)
    return recorder.no_reply(failure, data)


async def _post(client: httpx.AsyncClient, url: str, wire: bytes) -> bytes:
    """The reply body: at most one DNS message, uncompressed, of the DNS media type."""
    headers = dict(_REQUEST_HEADERS)
    async with client.stream("POST", url, content=wire, headers=headers) as reply:
        content_type = reply.headers.get("content-type", "").split(";")[0].strip()
        encoding = reply.headers.get("content-encoding", "identity").strip().lower()
        if (
            reply.status_code != 200
            or content_type.lower() != DOH_CONTENT_TYPE
            or encoding != "identity"
        ):
            raise failures.ProbeFailure(
                failures.DNS_SERVER_MISBEHAVING,
                f"HTTP {reply.status_code} {content_type!r} {encoding!r}",
            )
        body = bytearray()
        async for chunk in reply.aiter_raw():
            body += chunk
            if len(body) > MAX_DNS_MESSAGE:
                raise failures.ProbeFailure(
                    failures.DNS_SERVER_MISBEHAVING, "DoH reply larger than a DNS message"
                )
    return bytes(body)
