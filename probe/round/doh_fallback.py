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

if TYPE_CHECKING:
    import httpx


async def doh_control(
    names: Sequence[str], state: RunState, urls: Sequence[str] = dns.PUBLIC_DOH_URLS
) -> dict[str, list[dict[str, Any]]]:
    """DNS over HTTPS for `names` (A and AAAA) through the first public resolver that answers:
    the DNS-only control used when no control server answered and no `--resolver` was given.
    IP literals are not asked; {} when no resolver answered any query."""
    import httpx

    names = [n for n in names if parse_ip(n) is None]
    if not names:
        return {}
    async with httpx.AsyncClient(timeout=state.config.timeout, http2=False) as client:
        for url in urls:
            queries = await _ask(client, url, names, state)
            if any(q.failure is None for qs in queries.values() for q in qs):
                return {name: [q.to_dict() for q in qs] for name, qs in queries.items()}
    return {}


async def _ask(
    client: httpx.AsyncClient, url: str, names: Sequence[str], state: RunState
) -> dict[str, list[DNSQuery]]:
    """Every name's A and AAAA queries to the resolver at `url`, the names in parallel."""
    timeout = state.config.timeout
    queries: dict[str, list[DNSQuery]] = {}

    async def lookup(name: str) -> None:
        trace = Trace(0.0, state.next_transaction_id())
        found = []
        for query_type in ("A", "AAAA"):
            found.append(
                await dns.resolve_doh(
                    name, query_type, url, trace=trace, timeout=timeout, client=client
                )
            )
        queries[name] = found

    async with asyncio.TaskGroup() as group:
        for name in names:
            group.create_task(lookup(name))
    return queries
