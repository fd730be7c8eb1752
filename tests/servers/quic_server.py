"""A real QUIC server (aioquic) on loopback or in the lab: completes handshakes with ALPN h3.

Modes: ``ok``; ``wrong_alpn`` (offers only ``hq-interop``: the handshake fails with an alert);
``silent`` is simply not starting a server (nothing answers UDP). Certificates come from the
test PKI (tests/servers/certs.py) or PEM files (standalone, for the lab).

In-process: ``async with QuicServer(cert_pem, key_pem) as server: server.port``. Standalone:
``python -m tests.servers.quic_server --host H --port P --cert C --key K`` prints ``READY``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
from pathlib import Path

from aioquic.asyncio import serve
from aioquic.asyncio.server import QuicServer as _AioServer
from aioquic.quic.configuration import QuicConfiguration


class QuicServer:
    def __init__(
        self, cert_file: str, key_file: str, *, host: str = "127.0.0.1", port: int = 0,
        mode: str = "ok",
    ) -> None:  # fmt: skip
        self.cert_file, self.key_file = cert_file, key_file
        self.host, self.port, self.mode = host, port, mode
        self._server: _AioServer | None = None

    async def __aenter__(self) -> QuicServer:
        alpn = ["hq-interop"] if self.mode == "wrong_alpn" else ["h3"]
        configuration = QuicConfiguration(is_client=False, alpn_protocols=alpn)
        configuration.load_cert_chain(self.cert_file, self.key_file)
        self._server = await serve(self.host, self.port, configuration=configuration)
        transport = self._server._transport
        assert transport is not None
        self.port = transport.get_extra_info("sockname")[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.close()


def write_leaf(leaf: object, directory: Path) -> tuple[str, str]:
    """A trustme leaf certificate as (cert chain file, key file) in `directory`."""
    cert, key = directory / "quic-cert.pem", directory / "quic-key.pem"
    pems = leaf.cert_chain_pems  # type: ignore[attr-defined]
    pems[0].write_to_path(str(cert))
    for extra in pems[1:]:
        extra.write_to_path(str(cert), append=True)
    leaf.private_key_pem.write_to_path(str(key))  # type: ignore[attr-defined]
    return str(cert), str(key)


async def _serve_forever(server: QuicServer) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        print("READY", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.servers.quic_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=443)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--mode", default="ok", choices=("ok", "wrong_alpn"))
    args = parser.parse_args(argv)
    asyncio.run(_serve_forever(QuicServer(args.cert, args.key, host=args.host, port=args.port,
                                          mode=args.mode)))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["QuicServer", "tempfile", "write_leaf"]
