"""DNS over TCP (RFC 1035 two-byte length framing): the retry after a truncated UDP reply, or an
engine of its own. The connection is ours (`probe.steps.tcp.tcp_connect`), so the destination
and the
source address are exactly the ones chosen and every byte is counted."""

from __future__ import annotations

import asyncio

from probe import failures
from probe.observations import DNSQuery, Trace, format_address
from probe.steps.dns.wire import (
    Reply,
    _check_query_type,
    _make_query,
    _parse_reply,
    _QueryRecorder,
    _WrongQueryId,
)
from probe.steps.tcp import ByteCounter, SocketStream, tcp_connect


async def _receive_exactly(stream: SocketStream, size: int) -> bytes:
    buffer = bytearray()
    while len(buffer) < size:  # each round reads at least one byte or raises: bounded by size
        chunk = await stream.receive_some(size - len(buffer))
        if not chunk:
            raise EOFError("the DNS server closed the connection mid-message")
        buffer += chunk
    return bytes(buffer)


async def resolve_tcp(
    hostname: str,
    query_type: str,
    server: tuple[str, int],
    *,
    trace: Trace,
    timeout: float,
    source_address: str | None = None,
    counter: ByteCounter | None = None,
) -> DNSQuery:
    """Ask `server` over TCP (RFC 1035 two-byte length framing), within `timeout` seconds."""
    _check_query_type(query_type)
    recorder = _QueryRecorder(
        hostname, query_type, "tcp", format_address(server[0], server[1]), trace
    )
    stream: SocketStream | None = None
    data: bytes | None = None
    message: Reply | None = None
    failure: str | None = None
    try:
        query = _make_query(hostname, query_type)
        async with asyncio.timeout(timeout):
            connected = await tcp_connect(
                server[0],
                server[1],
                trace=trace,
                timeout=timeout,
                source_address=source_address,
                counter=counter,
            )
            if connected.stream is None:
                raise failures.ProbeFailure(
                    connected.observation.failure or failures.UNKNOWN_PREFIX + "connect failed"
                )
            stream = connected.stream
            wire = query.to_wire()
            await stream.send_all(len(wire).to_bytes(2, "big") + wire)
            length = int.from_bytes(await _receive_exactly(stream, 2), "big")
            data = await _receive_exactly(stream, length)  # at most 65535 by construction
            message = _parse_reply(query, data)
    except asyncio.CancelledError:
        raise
    except _WrongQueryId:
        failure = failures.DNS_WRONG_QUERY_ID
    except Exception as exc:
        failure = failures.classify(exc)
    finally:
        if stream is not None:
            await stream.aclose()
    if message is not None and data is not None:
        return recorder.reply(message, data)
    return recorder.no_reply(failure, data)
