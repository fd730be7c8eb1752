"""TLS test servers on loopback: a real trustme certificate, or a scripted misbehaviour.

    async with TLSServer(pki.good, app=echo_app) as server:
        ... connect to 127.0.0.1:server.port, handshake for "test.localhost" ...

Every misbehaviour except `OK` acts on the raw TCP connection once the client's first bytes
(its ClientHello) have arrived, the way an SNI-filtering middlebox would: reset, stay silent,
close, answer with garbage, answer with a fatal handshake_failure alert, or run a real OpenSSL
server that shares no cipher with the client (a genuine alert). With `OK`, the server completes
the handshake and hands the connection to `app(reader, writer)` (HTTP tests serve HTTP there);
without an app it reads until the client closes. `by_peer` picks another behaviour per client
source address (the probe connects from 127.0.0.2, the control from 127.0.0.3).

Standalone, for subprocess and lab tests (prints one JSON line with the port, then serves):

    python -m tests.servers.tls_server --behaviour ok --app echo --ca-out /tmp/ca.pem
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import enum
import json
import logging
import socket
import ssl
import sys
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import trustme

from tests.servers.tcp_server import (
    GARBAGE,
    MAX_READ,
    LoopbackServer,
    close_writer,
    drain_until_eof,
    read_first,
    reset_connection,
)

#: A TLS 1.2 record: type alert (21), version 3.3, length 2, fatal (2) handshake_failure (40)
HANDSHAKE_FAILURE_ALERT = b"\x15\x03\x03\x00\x02\x02\x28"

App = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class _QuietSSLHalfClose(logging.Filter):
    """asyncio warns on every close_notify a stream server receives under start_tls: the
    StreamReaderProtocol asks for a half-close that SSL cannot do. Harmless and noisy."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "eof_received() has no effect when using ssl" not in record.getMessage()


logging.getLogger("asyncio").addFilter(_QuietSSLHalfClose())


class TLSBehaviour(enum.StrEnum):
    OK = "ok"  # real handshake, then the app
    RESET = "reset"  # RST after the ClientHello
    SILENT = "silent"  # read the ClientHello, never answer
    CLOSE = "close"  # FIN after the ClientHello
    GARBAGE = "garbage"  # non-TLS bytes after the ClientHello, then FIN
    ALERT = "alert"  # a scripted fatal handshake_failure alert, then FIN
    NO_SHARED_CIPHER = "no_shared_cipher"  # OpenSSL itself refuses: TLS 1.2, one odd cipher


def server_context(cert: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    context.set_alpn_protocols(["http/1.1"])
    return context


def _no_shared_cipher_context(cert: trustme.LeafCert) -> ssl.SSLContext:
    """TLS 1.2 only, with a single RSA-key-exchange SHA-1 suite no default client offers.

    (The certificate's ECDSA key cannot even serve that suite; OpenSSL answers with a
    handshake_failure alert either way.)"""
    context = server_context(cert)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("AES128-SHA")
    return context


class TLSServer(LoopbackServer):
    def __init__(
        self,
        cert: trustme.LeafCert,
        behaviour: str = TLSBehaviour.OK,
        *,
        app: App | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        by_peer: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(TLSBehaviour(behaviour), host=host, port=port, by_peer=by_peer)
        self.cert = cert
        self.app = app
        self.context = server_context(cert)
        self.refusing_context = _no_shared_cipher_context(cert)
        #: Server-side handshake errors (e.g. the client rejected our certificate).
        self.handshake_errors: list[str] = []
        #: The SNI of each ClientHello the real handshake saw (None when the client sent none),
        #: recorded while the ClientHello is processed, so before the client's handshake ends.
        self.server_names: list[str | None] = []
        self.context.sni_callback = self._record_server_name

    async def __aenter__(self) -> TLSServer:
        await self.start()
        return self

    async def handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, behaviour: str
    ) -> None:
        if behaviour == TLSBehaviour.OK:
            await self._serve_tls(reader, writer)
            return
        if behaviour == TLSBehaviour.NO_SHARED_CIPHER:
            await _refuse_with_openssl(reader, writer, self.refusing_context)
            return
        if not await read_first(reader):
            return
        if behaviour == TLSBehaviour.RESET:
            reset_connection(writer)
        elif behaviour == TLSBehaviour.SILENT:
            await drain_until_eof(reader)
        elif behaviour == TLSBehaviour.CLOSE:
            await close_writer(writer)
        elif behaviour == TLSBehaviour.GARBAGE:
            writer.write(GARBAGE)
            await writer.drain()
            await close_writer(writer)
        elif behaviour == TLSBehaviour.ALERT:
            writer.write(HANDSHAKE_FAILURE_ALERT)
            await writer.drain()
            await close_writer(writer)

    def _record_server_name(
        self, ssl_object: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext
    ) -> None:
        self.server_names.append(server_name)

    async def _serve_tls(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await writer.start_tls(self.context)
        except (ssl.SSLError, ConnectionError, OSError) as exc:
            self.handshake_errors.append(str(exc))
            return
        app = self.app or _hold
        await app(reader, writer)
        await close_writer(writer)  # sends close_notify if the app did not close


async def _refuse_with_openssl(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, context: ssl.SSLContext
) -> None:
    """Run OpenSSL's server handshake by hand until it fails, and send its alert."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    ssl_object = context.wrap_bio(incoming, outgoing, server_side=True)
    for _ in range(8):  # a ClientHello fits in a few reads
        data = await reader.read(65536)
        if not data:
            return
        incoming.write(data)
        try:
            ssl_object.do_handshake()
        except ssl.SSLWantReadError:
            writer.write(outgoing.read())
            continue
        except ssl.SSLError:
            writer.write(outgoing.read())  # the alert
            await writer.drain()
            break
        break  # an unexpected success: just close
    await close_writer(writer)


async def _hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await drain_until_eof(reader)


async def echo_app(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Send back every byte until the client closes (or MAX_READ bytes)."""
    total = 0
    while total < MAX_READ:
        chunk = await reader.read(65536)
        if not chunk:
            return
        total += len(chunk)
        writer.write(chunk)
        await writer.drain()


def send_then_close(data: bytes, *, close_notify: bool = True) -> App:
    """An app that reads the client's first bytes, sends `data`, and closes.

    With `close_notify=False` it shuts TCP down without TLS's close_notify (a "ragged" EOF, as
    many HTTP servers do after a response)."""

    async def app(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(data)
        await writer.drain()
        if close_notify:
            await close_writer(writer)
            return
        sock = writer.get_extra_info("socket")
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)  # FIN under TLS's feet
        await drain_until_eof(reader)

    return app


async def _serve_forever(args: argparse.Namespace) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert(*args.name)
    ca.cert_pem.write_to_path(args.ca_out)
    apps: dict[str, App | None] = {"echo": echo_app, "hold": None}
    async with TLSServer(
        cert, args.behaviour, app=apps[args.app], host=args.host, port=args.port
    ) as server:
        print(json.dumps({"host": args.host, "port": server.port, "ca": args.ca_out}), flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A loopback TLS test server.")
    parser.add_argument("--behaviour", choices=[b.value for b in TLSBehaviour], default="ok")
    parser.add_argument("--app", choices=["echo", "hold"], default="echo")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--name",
        action="append",
        help="a name or IP for the certificate (repeatable)",
    )
    parser.add_argument("--ca-out", default=str(Path(tempfile.gettempdir()) / "probe-test-ca.pem"))
    args = parser.parse_args(argv)
    args.name = args.name or ["test.localhost", "localhost", "127.0.0.1", "::1"]
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(args))
    sys.exit(0)


if __name__ == "__main__":
    main()
