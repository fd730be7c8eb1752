"""The http(s) flow: GET a URL on one endpoint, then follow redirects under our own policy, one
`HTTPTransaction` per hop, each hop holding its own endpoint's lock while it talks to it."""

from __future__ import annotations

import itertools
from dataclasses import replace
from urllib.parse import urlsplit

from probe import failures
from probe.addresses import is_ip_literal, is_ipv6
from probe.observations import HTTPTransaction
from probe.round.measure.endpoint import Endpoint, Flow, open_stream
from probe.steps import http
from probe.steps.deadline import deadline

#: A whole fetch, redirects included, ends within this many step timeouts: the first hop's
#: connect, handshake and round trip (three steps) leave two for the redirects that follow, so
#: a chain of slow hops cannot hold a flow for (max_redirects + 1) x 4 timeouts.
FETCH_BUDGET_STEPS = 5


async def fetch(first: Endpoint, flow: Flow, *, follow: bool) -> None:
    """GET the endpoint's URL and, with `follow`, the redirects it leads to."""
    hop = first
    # A hop's transaction between its round trip and the redirect decision (which may wait for
    # DNS): when the budget runs out meanwhile it is recorded before the timeout.
    pending: HTTPTransaction | None = None
    try:
        with deadline(FETCH_BUDGET_STEPS * flow.timeout):
            for hops in itertools.count():  # ends: check_redirect refuses past max_redirects
                async with flow.state.endpoint_lock(hop.ip, hop.port):
                    pending = await fetch_hop(hop, flow)
                if pending is None:
                    return
                transaction, next_hop = pending, None
                if follow:
                    transaction, next_hop = await redirect(hop, pending, hops, flow)
                flow.observations.requests.append(transaction)
                pending = None
                if next_hop is None:
                    return
                hop = next_hop
    except TimeoutError:
        # The budget ran out inside a hop: record that hop as timed out.
        if pending is not None:
            flow.add(pending)
        flow.add(_timed_out(hop, flow))


def _timed_out(hop: Endpoint, flow: Flow) -> HTTPTransaction:
    now = flow.trace.now()
    return HTTPTransaction(
        url=hop.url or "",
        address=hop.address,
        failure=failures.GENERIC_TIMEOUT,
        failed_operation=failures.HTTP_ROUND_TRIP,
        t0=now,
        t=now,
        transaction_id=flow.trace.transaction_id,
    )


async def fetch_hop(endpoint: Endpoint, flow: Flow) -> HTTPTransaction | None:
    """Connect (and handshake) to the endpoint and GET its URL there; None when the
    connection failed (its failure is in the flow)."""
    assert endpoint.url is not None
    stream = await open_stream(endpoint, flow)
    if stream is None:
        return None
    try:
        return await http.http_round_trip(
            stream,
            endpoint.url,
            trace=flow.trace,
            timeout=flow.timeout,
            address=endpoint.address,
            body_cap=flow.state.config.body_cap,
        )
    finally:
        await stream.aclose()


async def redirect(
    hop: Endpoint, transaction: HTTPTransaction, hops: int, flow: Flow
) -> tuple[HTTPTransaction, Endpoint | None]:
    """The redirect policy as a step: the hop's transaction as it is recorded (with the reason
    when its redirect is refused) and the next hop's endpoint, or None to stop there."""
    location = transaction.location
    if (
        transaction.failure is not None
        or location is None
        or transaction.response_code not in http.REDIRECT_CODES
    ):
        return transaction, None
    config = flow.state.config
    refusal = http.check_redirect(hop.url or "", location, hops, config.max_redirects)
    if refusal is None:
        next_ip = await next_hop_address(location, hop.ip, flow)
        if next_ip is None:
            return transaction, None
        refuse = config.refuse_address
        if http.refuse_private_hop(hop.ip, next_ip) or (refuse is not None and refuse(next_ip)):
            refusal = failures.HTTP_REDIRECT_REFUSED
        else:
            parts = urlsplit(location)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            return transaction, Endpoint.for_url(hop.target, location, next_ip, port, config)
    refused = replace(transaction, failure=refusal, failed_operation=failures.HTTP_ROUND_TRIP)
    return refused, None


async def next_hop_address(location: str, current_ip: str, flow: Flow) -> str | None:
    """The address a redirect leads to: its host resolved (the queries go to the flow), in the
    current address family when it has one there; None when the host has no address."""
    host = urlsplit(location).hostname or ""
    if is_ip_literal(host):
        candidates = [host.strip("[]")]
    else:
        resolver = flow.state.resolver
        resolution = await resolver.resolve(host, trace=flow.trace, timeout=flow.timeout)
        flow.add_all(resolution.queries)
        candidates = resolution.addresses
    if not candidates:
        return None
    # Stay in the current address family when we can: the vantage may lack the other one.
    same_family = [c for c in candidates if is_ipv6(c) == is_ipv6(current_ip)]
    return (same_family or candidates)[0]
