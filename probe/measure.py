"""The per-target flow: resolve, then measure every address on every port, layer by layer.

One *flow* is one (address, port): TCP connect, then TLS, HTTP or MTProto on that connection.
Flows of a round run concurrently under two bounds held in `RunState`: a global semaphore
(`--concurrency`) and one lock per (ip, port), so that we never hit the same endpoint twice at
once (censors keep residual blocking state per endpoint, and servers rate-limit).

The control server runs this same code for the same targets (with `refuse_address` set), so
probe and control observations are the same types, measured the same way.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from probe import dns, failures, http, tls
from probe.addresses import is_ip_literal, is_ipv6
from probe.observations import (
    HTTPTransaction,
    Observations,
    TCPConnect,
    Trace,
    format_address,
)
from probe.targets import Target
from probe.tcp import ByteCounter, ByteStream, SocketStream, tcp_connect

DEFAULT_TIMEOUT = 10.0
DEFAULT_BODY_CAP = 64 * 1024
#: Enough flows in flight that a round where everything is dropped costs about one timeout,
#: up to 1,000 endpoints (bench/sweep_blackhole.py). Each flow holds one socket and each target
#: in flight two DNS sockets; the runner raises the open-file limit to 4 x this + 256.
DEFAULT_CONCURRENCY = 1024
MAX_ADDRESSES_PER_FAMILY = 4
#: An http(s) flow's socket receive buffer: a quarter of the body cap, at least 16 KiB. A server
#: pushes a page ahead of what we read, up to our receive window, and the flow closes at the
#: cap with that unread: with the kernel's autotuning, one round against loopback stand-ins of
#: 400 KB pages put 2.7-4.4 MB on the wire for 1.12 MB read (bench/data_usage.py). Linux doubles
#: SO_RCVBUF for its bookkeeping and the window is about the value set, so 16 KiB (the default
#: cap's) gave 1.43-1.48 MB; body_cap + 32 KiB gave 2.8-3.3 MB and, for gzip pages, made
#: bigger reads past the cap (0.90 MB read instead of 0.68; 0.50 MB with 16 KiB). Reading the
#: default cap still takes the ~3 round trips of TCP slow start.
RECEIVE_BUFFER_SHARE = 4
MIN_RECEIVE_BUFFER = 16 * 1024
#: Above this the buffer is left to the kernel's autotuning: a fixed buffer caps throughput at
#: about one buffer per round trip, and a large body cap asks for most of the page anyway.
MAX_BOUNDED_RECEIVE_BUFFER = 256 * 1024


@dataclass(frozen=True, slots=True)
class MeasureConfig:
    """Everything a flow needs to know, frozen for the round."""

    timeout: float = DEFAULT_TIMEOUT
    resolver: tuple[str, int] | None = None  # --resolver: the only DNS server used
    ca_files: tuple[str, ...] = ()  # --ca-file, added to the system store
    body_cap: int = DEFAULT_BODY_CAP
    source_address: str | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    max_addresses_per_family: int = MAX_ADDRESSES_PER_FAMILY
    max_redirects: int = 10
    #: the control's guard: True refuses to measure the address (private/reserved ranges)
    refuse_address: Callable[[str], bool] | None = None


@dataclass(slots=True)
class RunState:
    """Shared, mutable state of one round (or of one control request)."""

    config: MeasureConfig
    resolver: dns.Resolver
    counter: ByteCounter = field(default_factory=ByteCounter)
    flows: asyncio.Semaphore = field(init=False)
    _endpoint_locks: dict[tuple[str, int], asyncio.Lock] = field(default_factory=dict)
    _transaction_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.flows = asyncio.Semaphore(max(1, self.config.concurrency))

    def next_transaction_id(self) -> int:
        return next(self._transaction_ids)

    def endpoint_lock(self, ip: str, port: int) -> asyncio.Lock:
        return self._endpoint_locks.setdefault((ip, port), asyncio.Lock())


def select_addresses(addresses: list[str], per_family: int) -> list[str]:
    """At most `per_family` IPv4 and `per_family` IPv6 addresses, in the resolver's order."""
    v4 = [a for a in addresses if not is_ipv6(a)][:per_family]
    v6 = [a for a in addresses if is_ipv6(a)][:per_family]
    return v4 + v6


async def measure_target(target: Target, state: RunState) -> Observations:
    """Measure one target. Never raises except on cancellation; failures are in the result."""
    observations = Observations()
    zero = time.monotonic()
    config = state.config
    host = target.hostname

    if is_ip_literal(host):
        addresses = [host.strip("[]")]
    else:
        trace = Trace(zero, state.next_transaction_id())
        resolution = await state.resolver.resolve(host, trace=trace, timeout=config.timeout)
        observations.queries.extend(resolution.queries)
        observations.network_events.extend(trace.events)
        addresses = select_addresses(resolution.addresses, config.max_addresses_per_family)
    if target.check == "dns":
        return observations

    flows: list[Coroutine[None, None, Observations]] = []
    for index, address in enumerate(addresses):
        for port in target.endpoint_ports():
            flows.append(_flow(target, address, port, zero, state, first=index == 0))
    if len(flows) == 1:  # the common case (one address, one port): no task needed
        observations.extend(await flows[0])
        return observations
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(flow) for flow in flows]
    for task in tasks:
        observations.extend(task.result())
    return observations


async def _flow(
    target: Target, ip: str, port: int, zero: float, state: RunState, *, first: bool
) -> Observations:
    """One (ip, port): bounded by the round's semaphore and the endpoint's lock."""
    observations = Observations()
    trace = Trace(zero, state.next_transaction_id())
    refuse = state.config.refuse_address
    if refuse is not None and refuse(ip):
        now = trace.now()
        observations.tcp_connect.append(
            TCPConnect(
                ip=ip,
                port=port,
                success=False,
                failure=failures.CONTROL_REFUSED_DESTINATION,
                t0=now,
                t=now,
                transaction_id=trace.transaction_id,
            )
        )
        return observations
    async with state.flows:
        if target.check in ("http", "https"):
            # A fetch takes each hop's endpoint lock itself: redirects lead to other endpoints.
            assert target.url is not None
            ca_files = _ca_files(target, state.config)
            await _fetch(target.url, ip, port, trace, state, observations, ca_files, follow=first)
        else:
            async with state.endpoint_lock(ip, port):
                if target.check == "mtproto":
                    await _mtproto_flow(target, ip, port, trace, state, observations)
                else:
                    await _connection_flow(target, ip, port, trace, state, observations)
    observations.network_events.extend(trace.events)
    return observations


def http_receive_buffer(body_cap: int) -> int | None:
    """The receive buffer of an http(s) flow's socket (see RECEIVE_BUFFER_SHARE); None: the
    kernel's own."""
    size = max(body_cap // RECEIVE_BUFFER_SHARE, MIN_RECEIVE_BUFFER)
    return size if size <= MAX_BOUNDED_RECEIVE_BUFFER else None


async def _connect(
    ip: str,
    port: int,
    trace: Trace,
    state: RunState,
    observations: Observations,
    receive_buffer: int | None = None,
) -> SocketStream | None:
    result = await tcp_connect(
        ip,
        port,
        trace=trace,
        timeout=state.config.timeout,
        source_address=state.config.source_address,
        counter=state.counter,
        receive_buffer=receive_buffer,
    )
    observations.tcp_connect.append(result.observation)
    return result.stream


async def _open(
    scheme_tls: bool,
    server_name: str,
    ip: str,
    port: int,
    trace: Trace,
    state: RunState,
    observations: Observations,
    ca_files: tuple[str, ...],
    receive_buffer: int | None = None,
) -> ByteStream | None:
    """TCP connect, then a TLS handshake when asked for; None when either failed."""
    stream = await _connect(ip, port, trace, state, observations, receive_buffer)
    if stream is None or not scheme_tls:
        return stream
    result = await tls.tls_handshake(
        stream,
        server_name,
        trace=trace,
        timeout=state.config.timeout,
        context=tls.client_context(ca_files),
    )
    observations.tls_handshakes.append(result.observation)
    if result.stream is None:
        await stream.aclose()
        return None
    return result.stream


def _ca_files(target: Target, config: MeasureConfig) -> tuple[str, ...]:
    return config.ca_files + ((target.ca,) if target.ca else ())


async def _connection_flow(
    target: Target,
    ip: str,
    port: int,
    trace: Trace,
    state: RunState,
    observations: Observations,
) -> None:
    """tcp: connect only; tls: connect and handshake with SNI = `sni` or the host."""
    server_name = target.sni or target.hostname
    tls_wanted = target.check == "tls"
    ca_files = _ca_files(target, state.config)
    stream = await _open(tls_wanted, server_name, ip, port, trace, state, observations, ca_files)
    if stream is not None:
        await stream.aclose()


#: A whole fetch, redirects included, ends within this many step timeouts: the first hop's
#: connect, handshake and round trip (three steps) leave two for the redirects that follow, so
#: a chain of slow hops cannot hold a flow for (max_redirects + 1) x 4 timeouts.
FETCH_BUDGET_STEPS = 5


async def _fetch(
    url: str,
    ip: str,
    port: int,
    trace: Trace,
    state: RunState,
    observations: Observations,
    ca_files: tuple[str, ...],
    *,
    follow: bool,
) -> None:
    """GET `url` on ip:port, then follow redirects under our own policy, recording every hop.
    Each hop holds its own endpoint's lock while it talks to it."""
    config = state.config
    hop_url = url
    try:
        async with asyncio.timeout(FETCH_BUDGET_STEPS * config.timeout):
            hops = 0
            while True:
                async with state.endpoint_lock(ip, port):
                    transaction = await _fetch_hop(
                        hop_url, ip, port, trace, state, observations, ca_files
                    )
                if transaction is None:
                    return
                observations.requests.append(transaction)
                if not follow or transaction.failure is not None:
                    return
                if transaction.location is None:
                    return
                if transaction.response_code not in http.REDIRECT_CODES:
                    return
                refusal = http.check_redirect(
                    hop_url, transaction.location, hops, config.max_redirects
                )
                if refusal is not None:
                    transaction.failure = refusal
                    transaction.failed_operation = failures.HTTP_ROUND_TRIP
                    return
                hops += 1
                next_ip = await _next_hop_address(transaction, trace, state, observations, ip)
                if next_ip is None:
                    return
                hop_url = transaction.location
                next_parts = urlsplit(hop_url)
                ip = next_ip
                port = next_parts.port or (443 if next_parts.scheme == "https" else 80)
    except TimeoutError:
        # The budget ran out inside a hop: record that hop as timed out.
        now = trace.now()
        observations.requests.append(
            HTTPTransaction(
                url=hop_url,
                address=format_address(ip, port),
                failure=failures.GENERIC_TIMEOUT,
                failed_operation=failures.HTTP_ROUND_TRIP,
                t0=now,
                t=now,
                transaction_id=trace.transaction_id,
            )
        )


async def _fetch_hop(
    url: str,
    ip: str,
    port: int,
    trace: Trace,
    state: RunState,
    observations: Observations,
    ca_files: tuple[str, ...],
) -> HTTPTransaction | None:
    """Connect (and handshake) to ip:port and GET `url` there; None when the connection
    failed (its failure is in `observations`)."""
    parts = urlsplit(url)
    stream = await _open(
        parts.scheme == "https",
        parts.hostname or "",
        ip,
        port,
        trace,
        state,
        observations,
        ca_files,
        http_receive_buffer(state.config.body_cap),
    )
    if stream is None:
        return None
    try:
        return await http.http_round_trip(
            stream,
            url,
            trace=trace,
            timeout=state.config.timeout,
            address=format_address(ip, port),
            body_cap=state.config.body_cap,
        )
    finally:
        await stream.aclose()


async def _next_hop_address(
    transaction: HTTPTransaction,
    trace: Trace,
    state: RunState,
    observations: Observations,
    current_ip: str,
) -> str | None:
    """Resolve the redirect's host; refuse a hop from a public address into a private one."""
    assert transaction.location is not None
    host = urlsplit(transaction.location).hostname or ""
    if is_ip_literal(host):
        candidates = [host.strip("[]")]
    else:
        resolution = await state.resolver.resolve(host, trace=trace, timeout=state.config.timeout)
        observations.queries.extend(resolution.queries)
        candidates = resolution.addresses
    if not candidates:
        return None
    # Stay in the current address family when we can: the vantage may lack the other one.
    same_family = [c for c in candidates if is_ipv6(c) == is_ipv6(current_ip)]
    next_ip = (same_family or candidates)[0]
    refuse = state.config.refuse_address
    if http.refuse_private_hop(current_ip, next_ip) or (refuse is not None and refuse(next_ip)):
        transaction.failure = failures.HTTP_REDIRECT_REFUSED
        transaction.failed_operation = failures.HTTP_ROUND_TRIP
        return None
    return next_ip


async def _mtproto_flow(
    target: Target,
    ip: str,
    port: int,
    trace: Trace,
    state: RunState,
    observations: Observations,
) -> None:
    """Each transport on its own connection, in order; when TCP connect fails, skip the rest:
    a blackholed data centre then costs one timeout per port, not one per transport."""
    # Imported here: with `cryptography` it costs ~18 ms of start-up, which rounds without
    # MTProto targets (and the control's other checks) need not pay.
    from probe import mtproto

    for transport in target.transports:
        stream = await _connect(ip, port, trace, state, observations)
        if stream is None:
            return
        try:
            observation = await mtproto.mtproto_handshake(
                stream,
                transport,
                trace=trace,
                timeout=state.config.timeout,
                address=format_address(ip, port),
                dc=target.dc,
            )
        finally:
            await stream.aclose()
        observations.mtproto.append(observation)
