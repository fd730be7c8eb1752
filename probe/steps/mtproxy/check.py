"""The step: check one MTProxy link with a real handshake through the proxy.

For each address of the proxy's server (resolved like every name of a run; at most
`MAX_ADDRESSES`, stopping at the first that works): TCP connect; for fake-TLS the disguised
hello, whose answer must carry the secret's HMAC (`faketls`); then obfuscated2 keyed with the
secret (`obfuscation`) carrying an MTProto ``req_pq_multi`` for DC `dc`, which the proxy relays
to that data centre. A ``resPQ`` echoing our nonce (or a framed transport error) means the whole
path works: this network, the proxy, and the proxy's link to Telegram. Each phase owns its
timeout; failures are data (probe/failures.py), only cancellation escapes.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable

from probe import failures
from probe.observations import TCPConnect, Trace, format_address
from probe.observations.mtproxy import MTProxyAttempt, MTProxyCheck
from probe.steps.dns import Resolver
from probe.steps.mtproto import (
    INTERMEDIATE,
    PADDED_INTERMEDIATE,
    looks_foreign,
    mtproto_handshake,
)
from probe.steps.mtproxy.faketls import (
    BufferedStream,
    TLSRecordStream,
    client_hello,
    read_server_hello,
    server_hello_matches,
)
from probe.steps.mtproxy.link import FAKE_TLS, PLAIN, ProxyLink
from probe.steps.mtproxy.obfuscation import ObfuscatedProxyStream
from probe.steps.tcp import ByteStream, SocketStream, tcp_connect

#: addresses of one proxy name tried at most (a name with many is usually a pool of equals)
MAX_ADDRESSES = 2
#: the DC the proxy is asked to relay to when none is given (DC 2 serves most new accounts)
DEFAULT_DC = 2
#: what the MTProto step says about bytes that decrypt to nothing sensible
_UNREADABLE = frozenset({failures.MTPROTO_FOREIGN_REPLY, failures.MTPROTO_ABSURD_LENGTH})


async def _fake_tls_hello(
    stream: SocketStream, link: ProxyLink, attempt: MTProxyAttempt, timeout: float, now: float
) -> ByteStream | None:
    """The disguised hello; the record stream on success, None (attempt updated) on failure."""
    assert link.domain is not None
    hello, client_random = client_hello(link.domain, link.key, int(now))
    reader = BufferedStream(stream)
    operation = failures.WRITE
    try:
        async with asyncio.timeout(timeout):
            await stream.send_all(hello)
            operation = failures.MTPROXY_FAKE_TLS
            answer = await read_server_hello(reader)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        attempt.failure, attempt.failed_operation = failures.classify(exc), operation
        if attempt.failure in (failures.MTPROTO_FOREIGN_REPLY, failures.SSL_FAILED_HANDSHAKE):
            attempt.first_bytes = reader.head.hex() or None
        return None
    attempt.fake_tls_verified = server_hello_matches(answer, client_random, link.key)
    if not attempt.fake_tls_verified:
        attempt.failure = failures.MTPROXY_FAKE_TLS_MISMATCH
        attempt.failed_operation = failures.MTPROXY_FAKE_TLS
        return None
    return TLSRecordStream(reader)


async def _through_proxy(
    stream: SocketStream,
    link: ProxyLink,
    attempt: MTProxyAttempt,
    *,
    trace: Trace,
    timeout: float,
    dc: int,
    now: float,
) -> None:
    carrier: ByteStream | None = stream
    if link.kind == FAKE_TLS:
        carrier = await _fake_tls_hello(stream, link, attempt, timeout, now)
        if carrier is None:
            return
    assert carrier is not None
    obfuscated = ObfuscatedProxyStream(carrier, link.key, dc)
    transport = INTERMEDIATE if link.kind == PLAIN else PADDED_INTERMEDIATE
    handshake = await mtproto_handshake(
        obfuscated, transport, trace=trace, timeout=timeout, address=attempt.address
    )
    attempt.mtproto = handshake
    attempt.success = handshake.success
    attempt.failure, attempt.failed_operation = handshake.failure, handshake.failed_operation
    # The MTProto step saw decrypted bytes; clear text from a middlebox shows in the raw ones.
    raw = obfuscated.raw_head
    if raw and not handshake.success and (handshake.failure in _UNREADABLE or looks_foreign(raw)):
        attempt.failure = handshake.failure = failures.MTPROTO_FOREIGN_REPLY
        attempt.first_bytes = handshake.first_bytes = raw.hex()


async def mtproxy_attempt(
    link: ProxyLink,
    ip: str,
    *,
    trace: Trace,
    timeout: float,
    dc: int = DEFAULT_DC,
    source_address: str | None = None,
    clock: Callable[[], float] = time.time,
) -> tuple[MTProxyAttempt, TCPConnect]:
    """One address: connect, then the proxy's handshake. Returns the attempt and its connect."""
    connect = await tcp_connect(
        ip, link.port, trace=trace, timeout=timeout, source_address=source_address
    )
    attempt = MTProxyAttempt(address=format_address(ip, link.port), t0=connect.observation.t0)
    if connect.stream is None:
        attempt.failure = connect.observation.failure
        attempt.failed_operation = failures.CONNECT
    else:
        try:
            await _through_proxy(
                connect.stream, link, attempt, trace=trace, timeout=timeout, dc=dc, now=clock()
            )
        finally:
            await connect.stream.aclose()
    attempt.t = trace.now()
    return attempt, connect.observation


async def mtproxy_check(
    link: ProxyLink,
    *,
    resolver: Resolver,
    timeout: float,
    dc: int = DEFAULT_DC,
    source_address: str | None = None,
    clock: Callable[[], float] = time.time,
) -> MTProxyCheck:
    """Check `link`: resolve its server, then try its addresses until one works."""
    check = MTProxyCheck(proxy=link.described(), kind=link.kind, sni=link.domain, dc=dc)
    zero = time.monotonic()
    trace = Trace(zero=zero, transaction_id=secrets.randbelow(1 << 31))
    resolution = await resolver.resolve(link.server, trace=trace, timeout=timeout)
    check.queries = list(resolution.queries)
    check.network_events.extend(trace.events)
    for index, ip in enumerate(resolution.addresses[:MAX_ADDRESSES]):
        flow = Trace(zero=zero, transaction_id=index + 1)
        attempt, connect = await mtproxy_attempt(
            link, ip, trace=flow, timeout=timeout, dc=dc, source_address=source_address, clock=clock
        )
        check.attempts.append(attempt)
        check.tcp_connect.append(connect)
        check.network_events.extend(flow.events)
        if attempt.success:
            break
    return check
