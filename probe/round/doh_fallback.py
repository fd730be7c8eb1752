"""The DNS-only control: when no control server answered and no `--resolver` was given, the
round asks public DNS-over-HTTPS resolvers (`dns.PUBLIC_DOH_URLS`) for the names it measures,
and the records carry their answers as `x_doh`. It belongs with the DoH step (`probe.steps.dns`);
httpx is imported only when it runs."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from probe.addresses import parse_ip
from probe.observations import DNSQuery, Trace
from probe.round.measure import RunState
from probe.steps import dns
from probe.steps.dns.doh import DOH_CONNECTIONS, DOH_NAMES_AT_ONCE_H2

if TYPE_CHECKING:
    from probe.steps.dns.doh_transport import DohClient


async def doh_control(
    names: Sequence[str], state: RunState, urls: Sequence[str] = dns.PUBLIC_DOH_URLS
) -> dict[str, list[dict[str, Any]]]:
    """DNS over HTTPS for `names` (A and AAAA) through the first public resolver that answers:
    the DNS-only control used when no control server answered and no `--resolver` was given.
    IP literals are not asked; {} when no resolver answered any query."""
    from probe.steps.dns.doh_transport import doh_client

    names = [n for n in names if parse_ip(n) is None]
    if not names:
        return {}
    config = state.config
    client = doh_client(timeout=config.timeout, counter=state.counter, ca_files=config.ca_files)
    async with client:
        for url in urls:
            queries = await _ask(client, url, names, state)
            if any(q.failure is None for qs in queries.values() for q in qs):
                return {name: [q.to_dict() for q in qs] for name, qs in queries.items()}
    return {}


async def _ask(
    client: DohClient, url: str, names: Sequence[str], state: RunState
) -> dict[str, list[DNSQuery]]:
    """Every name's A and AAAA queries to the resolver at `url`. The first name is asked alone:
    its connection tells whether the server multiplexes (HTTP/2), and when it got no DNS reply
    at all the others are not asked (a dead or blocked resolver costs one deadline, not one per
    name). Then as many names at a time
    as the client has connections (HTTP/1.1), so that a query's deadline never runs while it
    waits for one, or DOH_NAMES_AT_ONCE_H2 names at a time over the one HTTP/2 connection
    (why so few: see there)."""
    timeout = state.config.timeout
    queries: dict[str, list[DNSQuery]] = {}

    async def ask(name: str, query_type: str, trace: Trace) -> DNSQuery:
        return await dns.resolve_doh(
            name, query_type, url, trace=trace, timeout=timeout, client=client
        )

    async def lookup(name: str) -> None:
        trace = Trace(0.0, state.next_transaction_id())
        if not client.multiplexed:
            queries[name] = [await ask(name, "A", trace), await ask(name, "AAAA", trace)]
            return
        async with asyncio.TaskGroup() as group:
            both = [group.create_task(ask(name, t, trace)) for t in ("A", "AAAA")]
        queries[name] = [task.result() for task in both]

    await lookup(names[0])
    if all(q.rcode is None for q in queries[names[0]]):
        return queries  # no DNS reply at all: this resolver is unusable here, ask no more
    lanes = asyncio.Semaphore(DOH_NAMES_AT_ONCE_H2 if client.multiplexed else DOH_CONNECTIONS)

    async def in_lane(name: str) -> None:
        async with lanes:
            await lookup(name)

    async with asyncio.TaskGroup() as group:
        for name in names[1:]:
            group.create_task(in_lane(name))
    return queries
