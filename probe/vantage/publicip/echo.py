"""The HTTPS echo step: a "what is my IP" page read over verified TLS.

`https_echo` GETs an echo page pinned to one resolved address, TLS verified (system roots plus
`ca_files`), at most `ECHO_BODY_CAP` bytes, holding a bare address or an ``ip=`` line
(Cloudflare's trace format). Its answer cannot be forged without a trusted certificate.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from probe import failures
from probe.observations import HTTPTransaction, Trace, format_address
from probe.steps import http, tcp, tls, tls_context
from probe.vantage.publicip.observations import (
    HTTPS_ECHO,
    Network,
    PublicIPObservation,
    PublicIPResult,
    check_source,
    family_of,
    finish,
    networks,
    new_trace,
    normalize,
)

#: Bytes of the echo page kept: an address needs 45 at most, and Cloudflare's trace has its
#: ``ip=`` line in the first hundred bytes.
ECHO_BODY_CAP = 256
#: The echo socket's receive buffer (as small as page fetches use): the page is tiny.
ECHO_RECEIVE_BUFFER = 16 * 1024
#: How long after its deadline the echo step's backstop fires: the layers' own deadlines
#: (connect, handshake, round trip) expire first and name the layer that ran out of time.
ECHO_BACKSTOP = 0.1


def _strict_ip(text: str) -> str | None:
    """`text` if it is exactly one IP literal (no brackets, zone or port), normalised."""
    if not text or len(text) > 45 or "%" in text:
        return None
    try:
        return normalize(str(ipaddress.ip_address(text)))
    except ValueError:
        return None


def parse_echo_body(body: str, *, truncated: bool = False) -> str | None:
    """The address in an echo page, or None.

    Either ``ip=<address>`` lines (Cloudflare's trace: ``key=value`` lines), which must all
    name the same address, or a body that is one address and surrounding whitespace (ipify,
    checkip.amazonaws.com). When the body was cut at the cap, its last line may be incomplete
    and is ignored, and a bare body is refused."""
    lines = body.splitlines()
    if truncated and lines and not body.endswith(("\n", "\r")):
        lines = lines[:-1]
    found = {line.strip()[3:].strip() for line in lines if line.strip().startswith("ip=")}
    if found:
        addresses = {_strict_ip(candidate) for candidate in found}
        if len(addresses) != 1:
            return None
        return addresses.pop()
    if truncated:
        return None
    return _strict_ip(body.strip())


def check_echo_url(url: str) -> str:
    """The URL's host name; ValueError for anything but an https URL (the caller's bug)."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "https" or not parts.hostname:
        raise ValueError(f"not an https URL: {url[:200]!r}")
    _ = parts.port  # raises ValueError for a bad port
    return parts.hostname


async def https_echo(
    url: str,
    ip: str,
    *,
    timeout: float,
    trace: Trace | None = None,
    ca_files: tuple[str, ...] = (),
    source_address: str | None = None,
    counter: tcp.ByteCounter | None = None,
    allow_nets: Iterable[str | Network] = (),
    body_cap: int = ECHO_BODY_CAP,
) -> PublicIPResult:
    """GET `url` from `ip` (TCP, TLS verified for the URL's host with the system roots plus
    `ca_files`, HTTP/1.1), all within `timeout` seconds, and read our address from the page.

    A status other than 200, or a body that is not an address (see `parse_echo_body`), is
    `ip_echo_invalid_reply`; redirects are not followed. `failed_operation` names the layer that
    failed: connect, tls_handshake, http_round_trip or read. A URL that is not https, or an
    unreadable CA file, raises ValueError (the caller's bug); otherwise only cancellation
    escapes."""
    hostname = check_echo_url(url)
    context = tls_context.client_context(ca_files)
    nets = networks(allow_nets)
    trace = new_trace(trace)
    loop = asyncio.get_running_loop()
    port = urlsplit(url).port or 443
    contacted = format_address(ip, port)
    # (method, server, server_address, server_family)
    observation = PublicIPObservation(HTTPS_ECHO, url, contacted, family_of(ip), t0=trace.now())
    address: str | None = None
    attempt = _Attempt()
    deadline = loop.time() + timeout
    try:
        # Each layer owns the deadline and records which one ran out; this is the backstop.
        async with asyncio.timeout_at(deadline + ECHO_BACKSTOP):
            check_source(ip, source_address)
            stream = await _open(
                ip, port, hostname, context, trace, deadline, source_address, counter, attempt
            )
            attempt.operation = failures.HTTP_ROUND_TRIP
            transaction = await http.http_round_trip(
                stream,
                url,
                trace=trace,
                timeout=max(deadline - loop.time(), 0.0),
                address=contacted,
                body_cap=body_cap,
            )
            address = _address_in(transaction, observation, attempt)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        observation.failure = failures.classify(exc)
        observation.failed_operation = attempt.operation
    finally:
        if attempt.stream is not None:
            await attempt.stream.aclose()  # bounded: close_notify gets tls.CLOSE_NOTIFY_TIMEOUT
    return finish(observation, address, trace, nets)


@dataclass(slots=True)
class _Attempt:
    """One echo attempt so far: the layer under way (for `failed_operation`) and the open
    stream (closed at the end)."""

    operation: str = failures.CONNECT
    stream: tcp.ByteStream | None = None


async def _open(
    ip: str,
    port: int,
    hostname: str,
    context: ssl.SSLContext,
    trace: Trace,
    deadline: float,
    source_address: str | None,
    counter: tcp.ByteCounter | None,
    attempt: _Attempt,
) -> tcp.ByteStream:
    """TCP to `ip`:`port`, then TLS for `hostname`, by `deadline` (the loop's clock)."""
    loop = asyncio.get_running_loop()
    connected = await tcp.tcp_connect(
        ip,
        port,
        trace=trace,
        timeout=max(deadline - loop.time(), 0.0),
        source_address=source_address,
        counter=counter,
        receive_buffer=ECHO_RECEIVE_BUFFER,
    )
    if connected.stream is None:
        raise failures.ProbeFailure(connected.observation.failure or failures.GENERIC_TIMEOUT)
    attempt.operation = failures.TLS_HANDSHAKE
    handshake = await tls.tls_handshake(
        connected.stream,
        hostname,
        trace=trace,
        timeout=max(deadline - loop.time(), 0.0),
        context=context,
    )
    if handshake.stream is None:  # the TCP stream is closed by then
        raise failures.ProbeFailure(handshake.observation.failure or failures.GENERIC_TIMEOUT)
    attempt.stream = handshake.stream
    return handshake.stream


def _address_in(
    transaction: HTTPTransaction, observation: PublicIPObservation, attempt: _Attempt
) -> str:
    """Our address from the echo page, or the failure (`ip_echo_invalid_reply` for a status
    other than 200 or a page that is not an address)."""
    observation.response_code = transaction.response_code
    if transaction.failure is not None:
        attempt.operation = transaction.failed_operation or failures.HTTP_ROUND_TRIP
        raise failures.ProbeFailure(transaction.failure)
    if transaction.response_code != 200:
        raise failures.ProbeFailure(failures.IP_ECHO_INVALID_REPLY)
    address = parse_echo_body(transaction.body or "", truncated=bool(transaction.body_is_truncated))
    if address is None:
        raise failures.ProbeFailure(failures.IP_ECHO_INVALID_REPLY)
    return address
