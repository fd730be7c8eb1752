"""TLS: the handshake step and the encrypted byte stream HTTP runs on.

We drive OpenSSL ourselves through memory BIOs over a `tcp.SocketStream` instead of letting
asyncio's SSL transport do it, for two reasons:

- the peer's certificate chain is recorded also when verification fails (a censor's forged
  certificate is the evidence we want), which Python's ssl module only exposes through
  `get_unverified_chain()` on the SSL object itself;
- every byte still goes through the `SocketStream`, which records read/write network events
  and counts wire bytes for the round's data-usage figure.
"""

from __future__ import annotations

import _ssl  # ENCODING_DER for the certificate objects of 3.11/3.12
import asyncio
import base64
import ssl
from dataclasses import dataclass
from typing import Any

from probe import failures
from probe.observations import NetworkEvent, TLSHandshake, Trace
from probe.steps.deadline import deadline
from probe.steps.receive_window import RecordTracker
from probe.steps.tcp import SocketStream
from probe.steps.tls_context import without_hostname_check

#: Bytes asked of the socket per read. A TLS record is at most ~16 KiB, so this holds a few.
WIRE_READ_SIZE = 65536
#: Header, MAC/tag and padding of one TLS record, at most (RFC 8446 5.2, RFC 5246 6.2.3).
TLS_RECORD_OVERHEAD = 256
#: A chain longer than this is not a real server's; keep the record small.
MAX_PEER_CERTIFICATES = 10
#: How long `aclose()` may spend sending close_notify before it just closes the socket.
CLOSE_NOTIFY_TIMEOUT = 0.25
#: How long a failed handshake may spend sending OpenSSL's alert to the peer.
ALERT_SEND_TIMEOUT = 0.25

#: OpenSSL's names of the TLS 1.2 suites our client offers → the IANA names OONI records
#: (TLS 1.3 names are the same in both). A suite not listed is recorded under OpenSSL's name.
IANA_CIPHER_NAMES = {
    "ECDHE-ECDSA-AES256-GCM-SHA384": "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "ECDHE-ECDSA-AES128-GCM-SHA256": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "ECDHE-ECDSA-CHACHA20-POLY1305": "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "ECDHE-RSA-CHACHA20-POLY1305": "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "ECDHE-ECDSA-AES256-SHA384": "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
    "ECDHE-RSA-AES256-SHA384": "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
    "ECDHE-ECDSA-AES128-SHA256": "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "ECDHE-RSA-AES128-SHA256": "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    "DHE-RSA-AES256-GCM-SHA384": "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
    "DHE-RSA-AES128-GCM-SHA256": "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
    "DHE-RSA-AES256-SHA256": "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256",
    "DHE-RSA-AES128-SHA256": "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256",
}


@dataclass(slots=True)
class TLSHandshakeResult:
    observation: TLSHandshake
    stream: TLSStream | None  # None when the handshake failed (the TCP stream is then closed)


class TLSStream:
    """A TLS connection over a `SocketStream`, with the same `ByteStream` interface.

    `bytes_sent`/`bytes_received` count plaintext; the wire bytes are counted by the socket
    stream underneath. One reader and one writer may use it at the same time (the wire writes
    are serialised, see `_flush`); two concurrent readers are not supported.
    """

    def __init__(
        self,
        transport: SocketStream,
        ssl_object: ssl.SSLObject,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
    ) -> None:
        self.transport = transport
        self.ssl_object = ssl_object
        self._incoming = incoming
        self._outgoing = outgoing
        #: a write of ours is sending (waiting for room), and what the next one waits on
        self._writing = False
        self._written: asyncio.Future[None] | None = None
        self._closed = False
        self.bytes_sent = 0
        self.bytes_received = 0
        #: True when the peer closed TCP without close_notify (common after an HTTP response).
        self.ragged_eof = False
        #: plaintext bytes the reader still needs (`expect`), and the records that carry them
        self._need: int | None = None
        self._records = RecordTracker()
        leftover = incoming.read()  # what the handshake left unread begins the next record
        if leftover:
            self._records.feed(leftover)
            incoming.write(leftover)

    @property
    def address(self) -> str:
        return self.transport.address

    async def _flush(self, timeout: float | None = None) -> None:
        """Send whatever OpenSSL has queued for the wire (records, alerts, close_notify) after
        any write of ours still in flight; a wait for room in the socket lasts at most
        `timeout` seconds when one is given.

        Writes are serialised by `_writing` rather than an asyncio.Lock: nearly every write
        goes out at once with no other in flight, and then costs no lock calls (a lock is five
        Python calls a write; docs/benchmarks.md, the CPU goal of issue 15)."""
        while self._writing:  # its bytes were taken from OpenSSL before ours: they go first
            if self._written is None:
                self._written = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._written)  # a waiter cancelled leaves it to the others
        pending = self._outgoing.read()
        if not pending:
            return
        self._writing = True
        try:
            await self.transport.send_all(pending, timeout=timeout)
        finally:
            self._writing = False
            written, self._written = self._written, None
            if written is not None and not written.done():
                written.set_result(None)

    async def _fill(self, wire_size: int = WIRE_READ_SIZE) -> None:
        """Wait for wire bytes and hand them to OpenSSL; EOF becomes the BIO's EOF."""
        data = await self.transport.receive_some(wire_size)
        if data:
            self._records.feed(data)
            self._incoming.write(data)
        else:
            self._incoming.write_eof()

    async def send_all(self, data: bytes) -> None:
        if self._closed:
            raise ssl.SSLError("send on a closed TLS stream")
        view = memoryview(data)
        while view:
            try:
                written = self.ssl_object.write(view)
            except ssl.SSLWantReadError:
                # Only possible mid-renegotiation/key update: the peer must speak first.
                await self._flush()
                await self._fill()
                continue
            view = view[written:]
            self.bytes_sent += written
        await self._flush()

    async def receive_some(self, max_bytes: int = 65536) -> bytes:
        """Up to `max_bytes` of plaintext; b"" after close_notify or when the peer closed TCP.

        A TCP close without close_notify (a "ragged" EOF) is not an error here: many servers end
        an HTTP response that way, and the HTTP layer knows whether the response was complete.
        Each pass of the loop waits for wire bytes, so it never spins; the caller's deadline
        bounds a peer that sends only non-application records.
        """
        if self._closed:
            return b""
        while True:
            try:
                data = self.ssl_object.read(max_bytes)
            except ssl.SSLWantReadError:
                if self._outgoing.pending or self._writing:
                    await self._flush()  # e.g. a key-update reply OpenSSL queued while reading
                # OpenSSL waits for the rest of a record: when that record completes what the
                # reader needs, the window need not offer more than its end.
                self.transport.expect(self._records.wire_needed(self._need))
                # No more wire bytes than the caller asked for (plus record overhead): a reader
                # near its body cap must not pull in 64 KiB it will throw away. (`_fill`, inline:
                # a coroutine less per read.)
                wire = await self.transport.receive_some(
                    min(WIRE_READ_SIZE, max_bytes + TLS_RECORD_OVERHEAD)
                )
                if wire:
                    self._records.feed(wire)
                    self._incoming.write(wire)
                else:
                    self._incoming.write_eof()
                continue
            except ssl.SSLZeroReturnError:
                return b""
            except ssl.SSLEOFError:
                self.ragged_eof = True
                return b""
            if self._outgoing.pending:
                await self._flush()
            self.bytes_received += len(data)
            if self._need is not None:
                self._need = max(self._need - len(data), 0)
            return data

    def expect(self, needed: int | None) -> None:
        """At most `needed` more bytes of plaintext will be read (None: unknown)."""
        self._need = needed
        if needed is None:
            self.transport.expect(None)

    async def aclose(self) -> None:
        """Send close_notify (best effort, briefly) and close the socket. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            try:
                self.ssl_object.unwrap()
            except ssl.SSLWantReadError:
                pass  # close_notify is queued; we do not wait for the peer's
            if self._writing:  # another write first: all of it within the bound
                with deadline(CLOSE_NOTIFY_TIMEOUT):
                    await self._flush()
            else:  # the socket takes close_notify at once, or it waits at most the bound
                await self._flush(CLOSE_NOTIFY_TIMEOUT)
        except asyncio.CancelledError:
            raise
        except Exception:  # the peer may be gone; closing is all that is left
            pass
        finally:
            await self.transport.aclose()


def _peer_certificates(ssl_object: ssl.SSLObject) -> list[str]:
    """The chain as the peer sent it (DER, base64), available also after a failed verify."""
    chain: Any
    public_getter = getattr(ssl_object, "get_unverified_chain", None)
    try:
        if public_getter is not None:  # Python 3.13+: a list of DER bytes
            chain = public_getter()
        else:  # 3.11/3.12: the C object's method, a list of _ssl.Certificate
            chain = ssl_object._sslobj.get_unverified_chain()  # type: ignore[attr-defined]
    except (AttributeError, ValueError, ssl.SSLError):
        return []
    out: list[str] = []
    for cert in list(chain or [])[:MAX_PEER_CERTIFICATES]:
        der = cert if isinstance(cert, bytes) else cert.public_bytes(_ssl.ENCODING_DER)
        out.append(base64.b64encode(der).decode("ascii"))
    return out


async def _send_alert(stream: SocketStream, outgoing: ssl.MemoryBIO) -> None:
    """After a failed handshake, tell the peer why (as any browser would), briefly."""
    pending = outgoing.read()
    if not pending:
        return
    try:
        await stream.send_all(pending, timeout=ALERT_SEND_TIMEOUT)
    except asyncio.CancelledError:
        raise
    except Exception:  # the handshake already failed; this is a courtesy
        pass


async def tls_handshake(
    stream: SocketStream,
    server_name: str | None,
    *,
    trace: Trace,
    timeout: float,
    context: ssl.SSLContext,
) -> TLSHandshakeResult:
    """Handshake over `stream` with SNI and verification for `server_name`, within `timeout`.

    An IP literal as `server_name` sends no SNI and is verified against the certificate's IP
    addresses. `None` sends no SNI and skips the name check (the chain is still verified).
    On success the caller owns the returned `TLSStream` (its `aclose()` closes the socket);
    on failure, or cancellation, `stream` is closed here. Only cancellation escapes.
    """
    t0 = trace.now()
    _tls_event(trace, "tls_handshake_start", stream.address, None, t0, t0)
    incoming = ssl.MemoryBIO()
    outgoing = ssl.MemoryBIO()
    ssl_object: ssl.SSLObject | None = None
    failure: str | None = None
    try:
        if server_name is None:
            context = without_hostname_check(context)
        ssl_object = context.wrap_bio(incoming, outgoing, server_hostname=server_name)
        with deadline(timeout):
            await _drive_handshake(ssl_object, stream, incoming, outgoing)
    except asyncio.CancelledError:
        await stream.aclose()
        raise
    except Exception as exc:
        failure = failures.classify(exc)
        if isinstance(exc, ssl.SSLError):  # (bounded on its own: at most ALERT_SEND_TIMEOUT more)
            await _send_alert(stream, outgoing)
    observation = _observation(stream, server_name, ssl_object, failure, t0, trace)
    _tls_event(trace, "tls_handshake_done", stream.address, failure, t0, observation.t)
    if failure is not None or ssl_object is None:
        await stream.aclose()
        return TLSHandshakeResult(observation, None)
    return TLSHandshakeResult(observation, TLSStream(stream, ssl_object, incoming, outgoing))


async def _drive_handshake(
    ssl_object: ssl.SSLObject,
    stream: SocketStream,
    incoming: ssl.MemoryBIO,
    outgoing: ssl.MemoryBIO,
) -> None:
    """OpenSSL's handshake over memory BIOs: what it wants sent is sent, what it waits for
    is read, until it completes (or raises); then our TLS 1.3 Finished goes out."""
    while True:
        try:
            ssl_object.do_handshake()
            break
        except ssl.SSLWantReadError:
            pending = outgoing.read()
            if pending:
                await stream.send_all(pending)
            data = await stream.receive_some(WIRE_READ_SIZE)
            if data:
                incoming.write(data)
            else:
                incoming.write_eof()  # the next do_handshake raises SSLEOFError
    pending = outgoing.read()  # TLS 1.3: our Finished
    if pending:
        await stream.send_all(pending)


def _observation(
    stream: SocketStream,
    server_name: str | None,
    ssl_object: ssl.SSLObject | None,
    failure: str | None,
    t0: float,
    trace: Trace,
) -> TLSHandshake:
    observation = TLSHandshake(
        address=stream.address,
        server_name=server_name or "",
        peer_certificates=_peer_certificates(ssl_object) if ssl_object is not None else [],
        failure=failure,
        failed_operation=failures.TLS_HANDSHAKE if failure else None,
        t0=t0,
        transaction_id=trace.transaction_id,
    )
    if failure is None and ssl_object is not None:
        cipher = ssl_object.cipher()
        observation.tls_version = ssl_object.version()
        observation.cipher_suite = IANA_CIPHER_NAMES.get(cipher[0], cipher[0]) if cipher else None
        observation.negotiated_protocol = ssl_object.selected_alpn_protocol()
    observation.t = trace.now()
    return observation


def _tls_event(
    trace: Trace, operation: str, address: str, failure: str | None, t0: float, t: float
) -> None:
    trace.add_event(
        NetworkEvent(
            operation=operation,
            address=address,
            failure=failure,
            t0=t0,
            t=t,
            transaction_id=trace.transaction_id,
        )
    )
