"""One target: resolve its host, then one flow per (address, port), each bounded by the round's
flow semaphore and its endpoint's lock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine

from probe import failures
from probe.addresses import is_ip_literal, is_ipv6
from probe.observations import Observations, TCPConnect, Trace
from probe.round.measure import sni_swap
from probe.round.measure.config import RunState
from probe.round.measure.endpoint import Endpoint, Flow, connect, open_stream
from probe.round.measure.fetch import fetch
from probe.round.measure.stun import measure_stun
from probe.targets import Target


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
        if target.stun_port is not None:  # a messenger's STUN server: one Binding per address
            observations.extend(await measure_stun(target, addresses, state, zero))
        return observations

    flows: list[Coroutine[None, None, Observations]] = []
    for index, address in enumerate(addresses):
        for port in target.endpoint_ports():
            endpoint = Endpoint.of(target, address, port, config)
            flows.append(measure_endpoint(endpoint, Flow(state, zero), first=index == 0))
    if len(flows) == 1:  # the common case (one address, one port): no task needed
        observations.extend(await flows[0])
        return observations
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(flow) for flow in flows]
    for task in tasks:
        observations.extend(task.result())
    return observations


async def measure_endpoint(endpoint: Endpoint, flow: Flow, *, first: bool) -> Observations:
    """One flow: bounded by the round's semaphore and the endpoint's lock. Only the first
    address of a target follows redirects."""
    state = flow.state
    refuse = state.config.refuse_address
    if refuse is not None and refuse(endpoint.ip):
        flow.add(_refused_connect(endpoint, flow.trace))
        return flow.observations
    async with state.flows:
        if endpoint.url is not None:
            # A fetch takes each hop's endpoint lock itself: redirects lead to other endpoints.
            await fetch(endpoint, flow, follow=first)
        else:
            async with state.endpoint_lock(endpoint.ip, endpoint.port):
                if endpoint.target.check == "mtproto":
                    await mtproto_flow(endpoint, flow)
                else:
                    await connection_flow(endpoint, flow)
        if flow.tls_failure is not None:
            failed_on, failed = flow.tls_failure
            async with state.endpoint_lock(failed_on.ip, failed_on.port):
                await sni_swap.follow_up(failed_on, failed, flow)
        if endpoint.target.quic:
            observed = flow.observed()
            observed.extend(await quic_flow(endpoint, Flow(state, flow.zero)))
            return observed
    return flow.observed()


async def quic_flow(endpoint: Endpoint, flow: Flow) -> Observations:
    """A QUIC handshake to the endpoint's address and port (UDP), with its own transaction id:
    the TCP flow's verdict never depends on it (docs/verdicts.md, "QUIC")."""
    from probe.steps.quic import quic_handshake

    config = flow.state.config
    observation = await quic_handshake(
        endpoint.ip,
        endpoint.port,
        endpoint.server_name or endpoint.target.hostname,
        trace=flow.trace,
        timeout=flow.timeout,
        ca_files=endpoint.ca_files,
        source_address=config.source_address,
    )
    flow.observations.quic_handshakes.append(observation)
    return flow.observed()


def _refused_connect(endpoint: Endpoint, trace: Trace) -> TCPConnect:
    """The control's guard refused the address: a connect that never happened."""
    now = trace.now()
    return TCPConnect(
        ip=endpoint.ip,
        port=endpoint.port,
        success=False,
        failure=failures.CONTROL_REFUSED_DESTINATION,
        t0=now,
        t=now,
        transaction_id=trace.transaction_id,
    )


async def connection_flow(endpoint: Endpoint, flow: Flow) -> None:
    """tcp: connect only; tls: connect and handshake with SNI = `sni` or the host."""
    stream = await open_stream(endpoint, flow)
    if stream is not None:
        await stream.aclose()


async def mtproto_flow(endpoint: Endpoint, flow: Flow) -> None:
    """Each transport on its own connection, in order; when TCP connect fails, skip the rest:
    a blackholed data centre then costs one timeout per port, not one per transport."""
    # Imported here: with `cryptography` it costs ~18 ms of start-up, which rounds without
    # MTProto targets (and the control's other checks) need not pay.
    from probe.steps import mtproto

    target = endpoint.target
    for transport in target.transports:
        stream = await connect(endpoint, flow)
        if stream is None:
            return
        try:
            observation = await mtproto.mtproto_handshake(
                stream,
                transport,
                trace=flow.trace,
                timeout=flow.timeout,
                address=endpoint.address,
                dc=target.dc,
            )
        finally:
            await stream.aclose()
        flow.add(observation)
