"""After a failed TLS handshake: the SNI swap and residual blocking (issue 19, items 1 and 2).

A handshake that fails with the target's server name says little by itself: the censor may
filter the name (SNI filtering), the address (any TLS to it dies), or still be punishing an
earlier trigger. So, once per flow whose handshake failed, and only then (a run where every
handshake works makes no extra connection):

1. **SNI swap** — a handshake to the same address and port with a benign name
   (`--neutral-sni`, default www.example.com). It completing means the address speaks TLS to
   us: the name was the trigger.
2. **Residual blocking** (`--residual-window`, off by default) — when the swap failed too,
   re-test that known-good flow (benign name, same address and port) about once a second, and
   a benign handshake to the neutral server beside it, until the swap's flow works again or
   the window ends: how long the censor keeps punishing the (client, address, port).
3. **Neutral server** (`--neutral-server`, e.g. the control's `--neutral-tls-port`) — a
   handshake there with the benign name (is the neutral server reachable at all?), then one
   with the target's name: a failure of the latter alone means the name is filtered on any
   address.

Each extra handshake is its own connection with its own transaction id; its `TCPConnect` and
`TLSHandshake` carry `x_purpose` (probe.observations.connections.PURPOSES), go into the
target's `tcp_connect` and `tls_handshakes` lists, and are left out of the endpoint's own
judgement (`Observations.without_extras`); probe/analysis/sni_swap.py reads them. Certificates
are not verified on these handshakes (`no_tls_verify`): only whether the handshake completes
matters, and a benign name never matches the target's certificate.
"""

from __future__ import annotations

import asyncio
import functools
import ssl

from probe.addresses import is_ip_literal
from probe.observations import Trace
from probe.observations.connections import (
    NEUTRAL_CONTROL,
    RESIDUAL,
    RESIDUAL_NEUTRAL,
    SNI_NEUTRAL,
    SNI_SWAP,
    TLSHandshake,
)
from probe.round.measure.endpoint import Endpoint, Flow
from probe.steps import tls
from probe.steps.tcp import tcp_connect
from probe.steps.tls_context import ALPN_PROTOCOLS

DEFAULT_NEUTRAL_SNI = "www.example.com"
#: `--residual-window` is at most this many seconds (10 minutes)
MAX_RESIDUAL_WINDOW = 600.0
#: at most this many residual samples per trigger: the interval grows with the window
MAX_RESIDUAL_SAMPLES = 120
#: the shortest time between the starts of two residual samples, s
MIN_RESIDUAL_INTERVAL = 1.0


@functools.cache
def unverified_context() -> ssl.SSLContext:
    """The context of the extra handshakes: TLS 1.2 at least, no certificate check."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(ALPN_PROTOCOLS)
    return context


def residual_interval(window: float) -> float:
    """Seconds between the starts of two residual samples for a window of `window` s."""
    return max(MIN_RESIDUAL_INTERVAL, min(window, MAX_RESIDUAL_WINDOW) / MAX_RESIDUAL_SAMPLES)


async def extra_handshake(ip: str, port: int, server_name: str, purpose: str, flow: Flow) -> bool:
    """Connect to ip:port and handshake with `server_name` (unverified) on a connection of
    its own (a new transaction id), recording both steps with `purpose`; True when the
    handshake completed. Each step has the round's timeout; only cancellation escapes."""
    state = flow.state
    config = state.config
    trace = Trace(flow.trace.zero, state.next_transaction_id())
    connected = await tcp_connect(
        ip,
        port,
        trace=trace,
        timeout=config.timeout,
        source_address=config.source_address,
        counter=state.counter,
    )
    connected.observation.x_purpose = purpose
    flow.add(connected.observation)
    completed = False
    if connected.stream is not None:
        result = await tls.tls_handshake(
            connected.stream,
            server_name,
            trace=trace,
            timeout=config.timeout,
            context=unverified_context(),
        )
        result.observation.x_purpose = purpose
        result.observation.no_tls_verify = True
        flow.add(result.observation)
        if result.stream is not None:
            completed = True
            await result.stream.aclose()
    flow.add_all(trace.events)
    return completed


async def follow_up(endpoint: Endpoint, failed: TLSHandshake, flow: Flow) -> None:
    """The extra handshakes after `failed` (the target's handshake on `endpoint`): the swap,
    the residual samples when the swap failed too, then the neutral server. The caller
    holds the endpoint's lock. Bounded: at most 3 handshakes plus the residual window (its
    last sample may start just before the window ends, and then takes its own timeouts)."""
    config = flow.state.config
    benign = config.neutral_sni
    if benign is None or failed.failure is None or is_ip_literal(endpoint.server_name):
        return  # an address as the name sends no SNI: there is nothing to swap
    swapped = True
    if endpoint.server_name.lower() != benign.lower():
        swapped = await extra_handshake(endpoint.ip, endpoint.port, benign, SNI_SWAP, flow)
    if not swapped and config.residual_window > 0:
        await residual_samples(endpoint, benign, failed.t, flow)
    if config.neutral_server is not None:
        ip, port = config.neutral_server
        await extra_handshake(ip, port, benign, NEUTRAL_CONTROL, flow)
        if endpoint.server_name:
            await extra_handshake(ip, port, endpoint.server_name, SNI_NEUTRAL, flow)


async def residual_samples(endpoint: Endpoint, benign: str, trigger: float, flow: Flow) -> None:
    """Re-test the benign flow to the endpoint (and to the neutral server) until it works or
    `residual_window` seconds after `trigger` (trace time) have passed."""
    config = flow.state.config
    window = min(config.residual_window, MAX_RESIDUAL_WINDOW)
    interval = residual_interval(window)
    for _ in range(MAX_RESIDUAL_SAMPLES):
        start = flow.trace.now()
        if start - trigger >= window:
            return
        ok = await extra_handshake(endpoint.ip, endpoint.port, benign, RESIDUAL, flow)
        if config.neutral_server is not None:
            ip, port = config.neutral_server
            await extra_handshake(ip, port, benign, RESIDUAL_NEUTRAL, flow)
        if ok:
            return
        wait = start + interval - flow.trace.now()
        if wait > 0:
            await asyncio.sleep(min(wait, max(0.0, trigger + window - flow.trace.now())))
