"""The run's `Resolver`: which engines a run uses, and the addresses a name resolves to.
Also the `--resolver` option's parser and the system's first nameserver."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from probe.addresses import parse_ip
from probe.observations import DNSQuery, Trace
from probe.steps.dns.system import GetaddrinfoPool, resolve_getaddrinfo
from probe.steps.dns.udp import resolve_udp_types
from probe.steps.dns.wire import DNS_PORT
from probe.steps.tcp import ByteCounter


def parse_resolver(text: str) -> tuple[str, int]:
    """`IP`, `IP:PORT`, `IPv6` or `[IPv6]:PORT` → (ip, port); port 53 when absent.

    Raises ValueError with a one-line message for anything else (host names included: the
    resolver's own name would need resolving first)."""
    candidate = text.strip()
    expected = f"expected IP[:PORT] or [IPv6]:PORT, got {text!r}"
    if not candidate:
        raise ValueError(f"empty resolver address: {expected}")
    host, port_text = candidate, ""
    if candidate.startswith("["):
        end = candidate.find("]")
        if end < 0:
            raise ValueError(f"missing ']' in resolver address: {expected}")
        host, rest = candidate[1:end], candidate[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"unexpected text after ']': {expected}")
            port_text = rest[1:]
            if not port_text:
                raise ValueError(f"missing port after ':': {expected}")
        if not isinstance(parse_ip(host), ipaddress.IPv6Address):
            raise ValueError(f"not an IPv6 address inside brackets: {expected}")
    elif candidate.count(":") == 1:
        host, port_text = candidate.split(":")
        if not port_text:
            raise ValueError(f"missing port after ':': {expected}")
    # Two or more colons without brackets: a bare IPv6 address (a port would be ambiguous).
    address = parse_ip(host)
    if address is None or host.startswith("["):
        raise ValueError(f"not an IP address: {expected}")
    port = DNS_PORT
    if port_text:
        if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"port must be a number from 1 to 65535: {expected}")
        port = int(port_text)
    scope = host.partition("%")[2]  # parse_ip drops an IPv6 zone; a link-local server needs it
    return (str(address) + (f"%{scope}" if scope else ""), port)


def read_system_nameserver(path: str = "/etc/resolv.conf") -> tuple[str, int] | None:
    """The first valid `nameserver` of resolv.conf as (ip, 53), or None if there is none."""
    try:
        with open(path, encoding="utf-8", errors="replace") as conf:
            lines = conf.read(1 << 20).splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(fields) >= 2 and fields[0] == "nameserver" and parse_ip(fields[1]) is not None:
            return (fields[1], DNS_PORT)
    return None


@dataclass(slots=True)
class Resolution:
    """What one name resolved to: every query made, and the addresses to measure."""

    queries: list[DNSQuery] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)


class _FromResolvConf:
    """Default marker: read the system's first nameserver when the Resolver is made."""


_FROM_RESOLV_CONF = _FromResolvConf()


def _ordered_addresses(groups: Iterable[list[DNSQuery]]) -> list[str]:
    """Answer IPs of the non-duplicate successful queries: group by group, IPv4 first in each."""
    addresses: list[str] = []
    seen: set[str] = set()
    for group in groups:
        ips: list[str] = []
        for query in group:
            if query.failure is not None or query.x_duplicate:
                continue
            for answer in query.answers:
                wanted = query.query_type in ("ANY", answer.answer_type)
                if answer.ip and wanted and answer.answer_type in ("A", "AAAA"):
                    ips.append(answer.ip)
        ips.sort(key=lambda ip: ":" in ip)  # stable: IPv4 before IPv6, order kept otherwise
        for ip in ips:
            if ip not in seen:
                seen.add(ip)
                addresses.append(ip)
    return addresses


class Resolver:
    """Chooses the DNS engines for a run (DESIGN.md, "DNS engines").

    With `server` (the `--resolver` option) every name goes to that server only: A and AAAA over
    UDP, TCP when truncated, nothing else. Without it: getaddrinfo in `pool`, plus A and AAAA
    over UDP to the system's first nameserver for the raw answers and injected duplicates."""

    def __init__(
        self,
        server: tuple[str, int] | None,
        *,
        pool: GetaddrinfoPool | None,
        counter: ByteCounter | None = None,
        source_address: str | None = None,
        system_nameserver: tuple[str, int] | _FromResolvConf | None = _FROM_RESOLV_CONF,
        duplicate_window: float = 0.3,
    ) -> None:
        if server is None and pool is None:
            raise ValueError("a Resolver without a server needs a GetaddrinfoPool")
        self.server = server
        self.pool = pool
        self.counter = counter
        self.source_address = source_address
        self.duplicate_window = duplicate_window
        if isinstance(system_nameserver, _FromResolvConf):
            system_nameserver = read_system_nameserver()
        self.system_nameserver: tuple[str, int] | None = system_nameserver

    async def _udp(
        self, hostname: str, server: tuple[str, int], trace: Trace, timeout: float
    ) -> list[DNSQuery]:
        """A and AAAA over UDP, together (one coroutine, two sockets), A's replies first."""
        replies = await resolve_udp_types(
            hostname,
            ("A", "AAAA"),
            server,
            trace=trace,
            timeout=timeout,
            duplicate_window=self.duplicate_window,
            source_address=self.source_address,
            counter=self.counter,
        )
        return [query for queries in replies for query in queries]

    async def resolve(self, hostname: str, *, trace: Trace, timeout: float) -> Resolution:
        """Resolve `hostname` with every engine of this run, concurrently, within `timeout`
        (plus the duplicate window, which is itself bounded by the timeout)."""
        literal = parse_ip(hostname)
        if literal is not None:
            return Resolution(queries=[], addresses=[str(literal)])
        udp_server = self.server or self.system_nameserver
        system: asyncio.Task[DNSQuery] | None = None
        udp_queries: list[DNSQuery] = []
        if self.server is None and self.pool is not None:
            async with asyncio.TaskGroup() as group:
                system = group.create_task(
                    resolve_getaddrinfo(hostname, trace=trace, timeout=timeout, pool=self.pool)
                )
                if udp_server is not None:
                    udp_queries = await self._udp(hostname, udp_server, trace, timeout)
        elif udp_server is not None:  # --resolver: UDP only, no task needed
            udp_queries = await self._udp(hostname, udp_server, trace, timeout)
        system_queries = [system.result()] if system is not None else []
        return Resolution(
            queries=system_queries + udp_queries,
            addresses=_ordered_addresses([system_queries, udp_queries]),
        )
