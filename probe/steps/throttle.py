"""Throttling check (issue 19 item 3): paired bulk downloads from one server, with the
target's SNI and with a neutral SNI, timed.

The server is a bulk endpoint (`probe control bulk`, probe/control/bulk.py) that serves a
bounded object over TLS whatever the SNI. Only the SNI differs between the two downloads of a
pair, so a censor that slows flows by the name in the ClientHello slows one and not the other,
while a link that is slow for everything slows both. The samples alternate which SNI goes first.
Each download has its own deadline; one cut by it still counts with the goodput it reached
(a throttled flow is slow, not failed). The judgement is probe/analysis/throttle.py.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

from probe import failures

#: the default number of pairs and object size (8 x 128 KiB x 2 = 2 MiB per target)
PAIRS = 8
SIZE = 128 * 1024
NEUTRAL_SNI = "example.com"
HEAD_CAP = 4096


@dataclass(slots=True)
class BulkSample:
    """One timed download. Times are seconds from the request's write; goodput is body
    bytes per second over the whole download (to its end, or to the deadline)."""

    sni: str
    pair: int
    body_bytes: int = 0
    t_connect: float | None = None
    t_first_byte: float | None = None
    t_done: float | None = None
    goodput: float | None = None
    failure: str | None = None
    failed_operation: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "sni": self.sni,
            "pair": self.pair,
            "body_bytes": self.body_bytes,
            "t_connect": _round(self.t_connect),
            "t_first_byte": _round(self.t_first_byte),
            "t_done": _round(self.t_done),
            "goodput": None if self.goodput is None else round(self.goodput, 1),
            "failure": self.failure,
            "failed_operation": self.failed_operation,
        }


@dataclass(slots=True)
class ThrottleCheck:
    """All samples of one target's check (`test_keys.x_throttle`, with the judgement)."""

    sni: str
    neutral_sni: str
    size: int
    pairs: int
    samples: list[BulkSample] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sni": self.sni,
            "neutral_sni": self.neutral_sni,
            "size": self.size,
            "pairs": self.pairs,
            "samples": [s.to_dict() for s in self.samples],
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _context() -> ssl.SSLContext:
    # The bulk endpoint's certificate is self-signed: this measures speed, not who answers.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def bulk_sample(
    ip: str, port: int, sni: str, size: int, timeout: float, pair: int = 0
) -> BulkSample:
    """Download `size` bytes from the bulk endpoint at ip:port with `sni`, within `timeout`
    seconds for the connection and TLS handshake and `timeout` more for the download."""
    sample = BulkSample(sni=sni, pair=pair)
    operation = failures.CONNECT
    start = time.monotonic()
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                ip, port, ssl=_context(), server_hostname=sni, ssl_handshake_timeout=timeout
            )
        sample.t_connect = time.monotonic() - start
        operation = failures.HTTP_ROUND_TRIP
        sent = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                await _download(reader, writer, size, sample, sent)
        finally:
            sample.t_done = time.monotonic() - sent
            if sample.body_bytes and sample.t_done > 0:
                sample.goodput = sample.body_bytes / sample.t_done
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # failures are data
        sample.failure = failures.GENERIC_TIMEOUT if isinstance(exc, TimeoutError) else None
        sample.failure = sample.failure or failures.classify(exc)
        sample.failed_operation = operation
    finally:
        if writer is not None:
            writer.transport.abort()
    return sample


async def _download(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    size: int,
    sample: BulkSample,
    sent: float,
) -> None:
    writer.write(b"GET /bulk?bytes=%d HTTP/1.1\r\nHost: bulk\r\nConnection: close\r\n\r\n" % size)
    await writer.drain()
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = await reader.read(HEAD_CAP)
        if not chunk:
            raise EOFError("end of stream before the response head")
        if sample.t_first_byte is None:
            sample.t_first_byte = time.monotonic() - sent
        head += chunk
        if len(head) > HEAD_CAP and b"\r\n\r\n" not in head:
            raise ValueError("response head too long")
    head, _, body = head.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise ValueError("the bulk endpoint refused the request")
    sample.body_bytes = len(body)
    while sample.body_bytes < size:
        chunk = await reader.read(64 * 1024)
        if not chunk:
            raise EOFError("end of stream before the whole object")
        sample.body_bytes += len(chunk)


async def throttle_check(
    ip: str,
    port: int,
    sni: str,
    *,
    neutral_sni: str = NEUTRAL_SNI,
    pairs: int = PAIRS,
    size: int = SIZE,
    timeout: float = 10.0,
) -> ThrottleCheck:
    """`pairs` pairs of downloads, one after the other (never two at once: they would share
    the path's capacity), the SNI going first alternating between pairs; stopped at the
    first neutral download that moved no bytes. At most 2 * pairs * 2 * timeout seconds."""
    check = ThrottleCheck(sni=sni, neutral_sni=neutral_sni, size=size, pairs=pairs)
    for pair in range(pairs):
        order = (sni, neutral_sni) if pair % 2 == 0 else (neutral_sni, sni)
        for name in order:
            sample = await bulk_sample(ip, port, name, size, timeout, pair)
            check.samples.append(sample)
            if name == neutral_sni and not sample.body_bytes:
                # the endpoint itself is out of reach with a neutral name: nothing to compare
                # with, and every further sample would cost a whole timeout
                return check
    return check
