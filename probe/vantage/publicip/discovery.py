"""Discovery: every STUN server and echo page asked at once, and the majority per family.

`discover` resolves every server with the run's `dns.Resolver`, tries the first IPv4 and the
first IPv6 address of each, all concurrently, within one short deadline, and `decide`s: per
address family, the strict majority of the answers. A liar outvoted loses; a tie or no answer
at all gives None, and the caller then redacts more broadly.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from probe import failures
from probe.observations import Trace, format_address
from probe.steps import dns, tcp, tls_context
from probe.vantage.publicip.echo import check_echo_url, https_echo
from probe.vantage.publicip.observations import (
    HTTPS_ECHO,
    STUN,
    Discovery,
    Network,
    PublicIPObservation,
    PublicIPResult,
    counts_as_public,
    family_of,
    networks,
    normalize,
)
from probe.vantage.publicip.stun import stun_binding

#: The whole discovery ends within about this many seconds: it runs before the measurements,
#: and a volunteer on a blocked network should not wait for it.
DEFAULT_TIMEOUT = 3.0

#: Public STUN servers, one per operator (two servers of one operator would give it two votes):
#: - stun.l.google.com:19302: Google's, the most used public STUN server (many WebRTC apps),
#:   IPv4 and IPv6; OONI Probe's `stun_google` method.
#: - stun.cloudflare.com:3478: Cloudflare's anycast STUN service, IPv4 and IPv6; OONI Probe's
#:   `stun_cloudflare` method.
#: stun1..4.l.google.com are the same operator and infrastructure as stun.l.google.com, so
#: they are left out.
DEFAULT_STUN_SERVERS: tuple[tuple[str, int], ...] = (
    ("stun.l.google.com", 19302),
    ("stun.cloudflare.com", 3478),
)

#: "What is my IP" pages over HTTPS (answers a censor cannot forge without a trusted
#: certificate), chosen so that each family has at least three operators voting:
#: - https://www.cloudflare.com/cdn-cgi/trace: Cloudflare, IPv4 and IPv6, an ``ip=`` line
#:   among others; OONI Probe's `cloudflare` method.
#: - https://api.ipify.org/: ipify, IPv4 only (no AAAA), the bare address.
#: - https://api6.ipify.org/: ipify, IPv6 only, the bare address.
#: - https://checkip.amazonaws.com/: Amazon Web Services, IPv4 only, the bare address and a
#:   newline: a third operator for IPv4.
#: With the STUN servers above, IPv4 has five voters from four operators and IPv6 four voters
#: from three, so no single operator reaches a strict majority of all answers alone.
DEFAULT_ECHO_URLS: tuple[str, ...] = (
    "https://www.cloudflare.com/cdn-cgi/trace",
    "https://api.ipify.org/",
    "https://api6.ipify.org/",
    "https://checkip.amazonaws.com/",
)

#: Share of the discovery deadline that resolving a server's name may use.
RESOLVE_SHARE = 0.5


async def _resolve(
    resolver: dns.Resolver, hostname: str, trace: Trace, timeout: float
) -> tuple[list[str], str | None]:
    """The first IPv4 and the first IPv6 address of `hostname` (those that exist), or the
    failure."""
    try:
        resolution = await resolver.resolve(hostname, trace=trace, timeout=timeout)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        return [], failures.classify(exc)
    picked: list[str] = []
    for family in (4, 6):
        first = next((a for a in resolution.addresses if family_of(a) == family), None)
        if first is not None:
            picked.append(first)
    if picked:
        return picked, None
    failure = next((q.failure for q in resolution.queries if q.failure), None)
    return [], failure or failures.DNS_NO_ANSWER


@dataclass(frozen=True, slots=True)
class _Settings:
    resolver: dns.Resolver
    deadline: float
    timeout: float
    allow_nets: tuple[Network, ...]
    ca_files: tuple[str, ...]
    source_address: str | None
    counter: tcp.ByteCounter | None
    zero: float


async def _attempts(
    method: str, name: str, hostname: str, port: int, settings: _Settings, transaction_id: int
) -> list[PublicIPResult]:
    """Resolve `hostname`, then one attempt per family (concurrently) with what is left of the
    deadline. A name that does not resolve is one observation with failed_operation resolve."""
    loop = asyncio.get_running_loop()
    trace = Trace(zero=settings.zero, transaction_id=transaction_id)
    t0 = trace.now()
    budget = max(min(settings.timeout * RESOLVE_SHARE, settings.deadline - loop.time()), 0.0)
    addresses, failure = await _resolve(settings.resolver, hostname, trace, budget)
    if not addresses:
        observation = PublicIPObservation(
            method=method,
            server=name,
            failure=failure,
            failed_operation=failures.RESOLVE,
            t0=t0,
            t=trace.now(),
        )
        return [PublicIPResult(observation)]

    async def attempt(ip: str) -> PublicIPResult:
        remaining = max(settings.deadline - loop.time(), 0.0)
        if method == STUN:
            return await stun_binding(
                ip,
                port,
                timeout=remaining,
                trace=trace,
                source_address=settings.source_address,
                counter=settings.counter,
                allow_nets=settings.allow_nets,
                server=name,
            )
        return await https_echo(
            name,
            ip,
            timeout=remaining,
            trace=trace,
            ca_files=settings.ca_files,
            source_address=settings.source_address,
            counter=settings.counter,
            allow_nets=settings.allow_nets,
        )

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(attempt(ip)) for ip in addresses]
    return [task.result() for task in tasks]


def decide(
    results: Sequence[PublicIPResult], allow_nets: Iterable[str | Network] = ()
) -> Discovery:
    """Per family, the strict majority of the answers of that family (every answer counts,
    public or not), if it is a public (or allowed) address; sets each observation's `agreed`.
    Pure: no I/O, no clock."""
    nets = networks(allow_nets)
    normalized = [normalize(r.address) if r.address is not None else None for r in results]
    winners: dict[int, str | None] = {}
    for family in (4, 6):
        votes = Counter(a for a in normalized if a is not None and family_of(a) == family)
        winner: str | None = None
        if votes:
            best, count = votes.most_common(1)[0]
            if 2 * count > sum(votes.values()) and counts_as_public(best, nets):
                winner = best
        winners[family] = winner
    answers: list[str] = [w for w in (winners[4], winners[6]) if w is not None]
    for result, address in zip(results, normalized, strict=True):
        if address is None:
            continue
        result.observation.agreed = address == winners[family_of(address)]
        if address not in answers and counts_as_public(address, nets):
            answers.append(address)
    return Discovery(
        ipv4=winners[4],
        ipv6=winners[6],
        answers=tuple(answers),
        observations=[r.observation for r in results],
    )


async def discover(
    resolver: dns.Resolver,
    *,
    stun_servers: Sequence[tuple[str, int]] = DEFAULT_STUN_SERVERS,
    echo_urls: Sequence[str] = DEFAULT_ECHO_URLS,
    timeout: float = DEFAULT_TIMEOUT,
    allow_nets: Iterable[str | Network] = (),
    ca_files: tuple[str, ...] = (),
    source_address: str | None = None,
    counter: tcp.ByteCounter | None = None,
) -> Discovery:
    """Ask every STUN server and echo page, concurrently, for our address; decide per family.

    Each name is resolved with `resolver` (so `--resolver` applies), using at most half of
    `timeout`; then its first IPv4 and first IPv6 address are tried, each attempt with what is
    left of the one deadline, so the whole discovery ends within about `timeout` seconds.
    Observations come in the order of `stun_servers`, then `echo_urls`, IPv4 before IPv6. A
    malformed URL, network or CA file raises ValueError; nothing else but cancellation does."""
    nets = networks(allow_nets)
    for url in echo_urls:
        check_echo_url(url)
    if echo_urls:
        tls_context.client_context(ca_files)  # an unreadable CA file is the caller's bug: raise now
    loop = asyncio.get_running_loop()
    settings = _Settings(
        resolver=resolver,
        deadline=loop.time() + timeout,
        timeout=timeout,
        allow_nets=nets,
        ca_files=tuple(ca_files),
        source_address=source_address,
        counter=counter,
        zero=time.monotonic(),
    )
    jobs: list[tuple[str, str, str, int]] = [
        (STUN, format_address(host, port), host, port) for host, port in stun_servers
    ]
    for url in echo_urls:
        jobs.append((HTTPS_ECHO, url, check_echo_url(url), 0))
    async with asyncio.TaskGroup() as group:
        tasks = [
            group.create_task(_attempts(method, name, host, port, settings, number))
            for number, (method, name, host, port) in enumerate(jobs, start=1)
        ]
    return decide([result for task in tasks for result in task.result()], nets)
