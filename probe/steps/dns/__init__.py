"""DNS: the resolve steps (system resolver, UDP, TCP, DNS over HTTPS) and the run's `Resolver`.

Every step returns `observations.DNSQuery` records in OONI's df-002 shape. The UDP step is the
one that sees censorship best: an on-path injector answers before the real server does, so we
keep listening for a short window after the first reply and record every further valid reply
as a duplicate (`x_duplicate = True`), in arrival order.

We speak DNS ourselves at wire level (dnspython only builds and parses messages, `wire.py`) so
that the destination is exactly the server we chose, the source address can be bound, and every
byte is counted. One module per engine: `system.py` (getaddrinfo, in a bounded thread pool of
its own, because a lookup cannot be cancelled; the time a lookup waited for a worker is
recorded), `udp.py`, `tcp.py`, `doh.py` (its connections made by our own TCP and TLS steps,
`doh_transport.py`, so their bytes are counted too); `resolver.py` picks the engines for a run.
"""

from __future__ import annotations

from probe.steps.dns.doh import DOH_CONTENT_TYPE, PUBLIC_DOH_URLS, resolve_doh
from probe.steps.dns.resolver import (
    Resolution,
    Resolver,
    parse_resolver,
    read_system_nameserver,
)
from probe.steps.dns.system import DEFAULT_GETADDRINFO_WORKERS, GetaddrinfoPool, resolve_getaddrinfo
from probe.steps.dns.tcp import resolve_tcp
from probe.steps.dns.udp import MAX_DATAGRAMS_PER_QUERY, resolve_udp
from probe.steps.dns.wire import (
    DNS_PORT,
    EDNS_PAYLOAD,
    MAX_ANSWERS_PER_REPLY,
    MAX_DNS_MESSAGE,
    QUERY_TYPES,
)
from probe.steps.dns.wire import (
    _make_query as _make_query,  # tests compare our queries with dnspython's
)

__all__ = [
    "DEFAULT_GETADDRINFO_WORKERS",
    "DNS_PORT",
    "DOH_CONTENT_TYPE",
    "EDNS_PAYLOAD",
    "MAX_ANSWERS_PER_REPLY",
    "MAX_DATAGRAMS_PER_QUERY",
    "MAX_DNS_MESSAGE",
    "PUBLIC_DOH_URLS",
    "QUERY_TYPES",
    "GetaddrinfoPool",
    "Resolution",
    "Resolver",
    "parse_resolver",
    "read_system_nameserver",
    "resolve_doh",
    "resolve_getaddrinfo",
    "resolve_tcp",
    "resolve_udp",
]
