"""The step: one ``req_pq_multi`` over one transport on an open stream, and what came back."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable

from probe import failures
from probe.observations import MTProtoHandshake, Trace
from probe.steps.mtproto.messages import (
    NONCE_LENGTH,
    ReplyOutcome,
    _foreign,
    message_padding,
    new_message_id,
    req_pq_multi,
)
from probe.steps.mtproto.reply import (
    FIRST_BYTES_KEPT,
    MAX_REPLY_LENGTH,
    examine_reply,
    unframed_error,
)
from probe.steps.mtproto.transports import OBFUSCATED2, TRANSPORTS, ClientFraming, frame_request
from probe.steps.tcp import ByteStream


class _ReplyReader:
    """Accumulates the reply, decrypting as it arrives; reads only what `examine_reply` needs."""

    def __init__(self, stream: ByteStream, framing: ClientFraming, nonce: bytes) -> None:
        self.stream = stream
        self.framing = framing
        self.nonce = nonce
        self.raw = bytearray()
        self.decoded = bytearray()

    async def read_outcome(self) -> ReplyOutcome:
        # Each round reads at least one byte and the parser never asks for more than
        # MAX_REPLY_LENGTH + 4, so this bound is never the one that stops the loop.
        for _ in range(MAX_REPLY_LENGTH + 8):
            needed = examine_reply(
                self.framing.transport, bytes(self.raw), bytes(self.decoded), self.nonce
            )
            if isinstance(needed, ReplyOutcome):
                return needed
            # Ask for a few bytes beyond the minimum on the first read: evidence for first_bytes.
            want = max(needed, min(FIRST_BYTES_KEPT, MAX_REPLY_LENGTH)) - len(self.raw)
            chunk = await self.stream.receive_some(max(1, want))
            if not chunk:
                if unframed_error(bytes(self.decoded)):
                    return _foreign()
                raise failures.ProbeFailure(failures.EOF_ERROR)
            self.raw += chunk
            self.decoded += self.framing.decryptor.update(chunk)
        raise failures.ProbeFailure(failures.MTPROTO_ABSURD_LENGTH)  # pragma: no cover

    def first_bytes(self) -> str | None:
        return bytes(self.raw[:FIRST_BYTES_KEPT]).hex() if self.raw else None


async def mtproto_handshake(
    stream: ByteStream,
    transport: str,
    *,
    trace: Trace,
    timeout: float,
    address: str,
    dc: int | None = None,
    clock_ns: Callable[[], int] = time.time_ns,
) -> MTProtoHandshake:
    """Send ``req_pq_multi`` over `transport` on the open `stream` and classify the reply.

    Success means the peer speaks MTProto: a resPQ echoing our nonce, or a framed transport
    error code. Failures are data (only cancellation escapes); the caller owns and closes
    `stream`. `dc` (the target's DC id, obfuscated2 only) goes into the obfuscation header;
    `clock_ns` gives the time for the message id (tests inject other years)."""
    if transport not in TRANSPORTS:
        raise ValueError(f"unknown MTProto transport {transport!r}")
    observation = MTProtoHandshake(
        address=address,
        transport=transport,
        t0=trace.now(),
        transaction_id=trace.transaction_id,
    )
    nonce = secrets.token_bytes(NONCE_LENGTH)
    message = req_pq_multi(nonce, new_message_id(clock_ns()), message_padding())
    framing = frame_request(transport, message, dc=dc if transport == OBFUSCATED2 else None)
    reader = _ReplyReader(stream, framing, nonce)
    operation = failures.WRITE
    outcome: ReplyOutcome
    try:
        async with asyncio.timeout(timeout):
            await stream.send_all(framing.wire)
            operation = failures.MTPROTO_HANDSHAKE
            outcome = await reader.read_outcome()
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        outcome = ReplyOutcome(failure=failures.classify(exc))
    observation.failure = outcome.failure
    observation.failed_operation = operation if outcome.failure is not None else None
    observation.success = outcome.failure is None
    observation.reply = outcome.reply
    observation.error_code = outcome.error_code
    observation.server_public_key_fingerprints = outcome.server_public_key_fingerprints
    observation.known_key = outcome.known_key
    if outcome.failure in (failures.MTPROTO_FOREIGN_REPLY, failures.MTPROTO_ABSURD_LENGTH):
        observation.first_bytes = reader.first_bytes()
    observation.bytes_sent = stream.bytes_sent
    observation.bytes_received = stream.bytes_received
    observation.t = trace.now()
    return observation
