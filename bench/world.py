"""The benchmarks' servers, in one process of their own (so their CPU is not the client's).

    python bench/world.py SPEC.json

SPEC (every part optional)::

    {"dns": {"host": "127.0.0.1", "port": 53, "zone": {"name.example": ["127.1.0.1"]}},
     "pages": [{"host": "0.0.0.0", "port": 443, "tls": true, "page_bytes": 2048,
                "gzip": false}],
     "tls_pem": "server key + chain (PEM)",
     "tcp": [{"host": "127.3.0.1", "port": 443}],
     "mtproto": [{"host": "127.4.0.1", "ports": [443, 80, 5222]}]}

Prints one JSON line once everything listens, then serves until SIGTERM/SIGINT.

The DNS responder is a deliberately small one (A records from a dict, empty NOERROR for other
types, NXDOMAIN for unknown names): the benchmarks send tens of thousands of queries, and the
test suite's dnspython-based server would make the server, not the client, the bottleneck.
Pages are served by a minimal HTTP/1.1 responder (one request per connection, `Connection:
close`), with TLS when asked. MTProto uses the test suite's fake data centre.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import signal
import socket
import ssl
import struct
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.servers.fake_dc import FakeDC

MAX_HEAD = 65536
TYPE_A = 1
DNS_RECEIVE_BUFFER = 16 * 1024 * 1024
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)  # Linux; needs CAP_NET_ADMIN (root)
#: How long a page connection may wait for its request (bounded, like everything else).
REQUEST_TIMEOUT = 30.0


class ZoneDNS(asyncio.DatagramProtocol):
    def __init__(self, zone: dict[str, list[str]]) -> None:
        self.zone = {
            name.lower().rstrip("."): [socket.inet_aton(a) for a in ips]
            for name, ips in zone.items()
        }
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        reply = self.answer(data)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)

    def answer(self, data: bytes) -> bytes | None:
        if len(data) < 12:
            return None
        query_id, flags, qdcount = struct.unpack("!HHH", data[:6])
        if qdcount != 1 or flags & 0x8000:
            return None
        offset, labels = 12, []
        while offset < len(data):
            length = data[offset]
            offset += 1
            if length == 0:
                break
            labels.append(data[offset : offset + length].decode("ascii", "replace").lower())
            offset += length
        if offset + 4 > len(data):
            return None
        qtype = struct.unpack("!H", data[offset : offset + 2])[0]
        question = data[12 : offset + 4]
        addresses = self.zone.get(".".join(labels))
        rcode = 3 if addresses is None else 0
        answers = addresses if (addresses and qtype == TYPE_A) else []
        header = struct.pack(
            "!HHHHHH", query_id, 0x8180 | (flags & 0x0100) | rcode, 1, len(answers), 0, 0
        )
        records = b"".join(
            struct.pack("!HHHIH", 0xC00C, TYPE_A, 1, 60, 4) + packed for packed in answers
        )
        return header + question + records


async def serve_page(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    response: bytes,
    gzipped: bytes | None = None,
    timeout: float = REQUEST_TIMEOUT,
) -> None:
    """One request, one response; the gzip form when there is one and the client takes it."""
    try:
        async with asyncio.timeout(timeout):
            head = await reader.readuntil(b"\r\n\r\n")
            takes_gzip = b"gzip" in head.lower().partition(b"accept-encoding:")[2][:200]
            writer.write(gzipped if gzipped is not None and takes_gzip else response)
            await writer.drain()
    except (
        asyncio.IncompleteReadError,
        asyncio.LimitOverrunError,
        OSError,
        TimeoutError,
        ssl.SSLError,
    ):
        pass  # the client closed early (body cap) or went away
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def hold_until_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(REQUEST_TIMEOUT):
            while await reader.read(65536):
                pass
    with contextlib.suppress(Exception):
        writer.close()


#: Words for the filler text: a page of random words compresses about as well as real HTML
#: (3-4x with gzip), unlike a repeated sentence.
WORDS = (
    "the of and to in is for on that with as by this are be from at or an it not you your all "
    "have more new can about will has our one page site news home search contact data service "
    "privacy terms help account login message channel group secure download app web desktop "
    "mobile android ios update version release community support blog press jobs business api "
    "developer documentation language english settings video photo file share link free open"
).split()


def page_body(size: int) -> bytes:
    """An HTML page of `size` bytes: a title, then paragraphs of pseudo-random words."""
    import random

    rng = random.Random(size)
    head = b"<!DOCTYPE html><html><head><title>bench page</title></head><body>\n"
    tail = b"</body></html>\n"
    parts: list[bytes] = []
    length = len(head) + len(tail)
    while length < size:
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 40)))
        tag = rng.choice(("p", "li", "span", "div"))
        piece = f'<{tag} class="c{rng.randint(0, 99)}">{words}</{tag}>\n'.encode()
        parts.append(piece)
        length += len(piece)
    return (head + b"".join(parts))[: size - len(tail)] + tail


def page_response(size: int, *, gzipped: bool = False) -> bytes:
    body = page_body(size)
    encoding = b""
    if gzipped:
        body = gzip.compress(body, compresslevel=6)
        encoding = b"Content-Encoding: gzip\r\n"
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
        + f"Content-Length: {len(body)}\r\n".encode()
        + encoding
        + b"Connection: close\r\nServer: bench\r\n\r\n"
        + body
    )


async def main(spec: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    ready: dict[str, Any] = {}
    servers: list[asyncio.Server] = []
    async with contextlib.AsyncExitStack() as stack:
        dns_spec = spec.get("dns")
        if dns_spec:
            # A large receive buffer: `probe run` sends two queries per target in flight at
            # once (2,048 by default), and the default buffer drops part of such a burst.
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            with contextlib.suppress(OSError):
                udp.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, DNS_RECEIVE_BUFFER)
            udp.bind((dns_spec.get("host", "127.0.0.1"), dns_spec.get("port", 0)))
            transport, _ = await loop.create_datagram_endpoint(
                lambda: ZoneDNS(dns_spec["zone"]), sock=udp
            )
            stack.callback(transport.close)
            ready["dns"] = list(transport.get_extra_info("sockname")[:2])
        tls_context: ssl.SSLContext | None = None
        if spec.get("tls_pem"):
            tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls_context.load_cert_chain(spec["tls_pem"])
            tls_context.set_alpn_protocols(["http/1.1"])
        for page in spec.get("pages", []):
            size = int(page.get("page_bytes", 2048))
            response = page_response(size)
            gzipped = page_response(size, gzipped=True) if page.get("gzip") else None
            # "timeout": seconds for a client's handshake and request (a client under valgrind,
            # bench/instructions_success.py, is ~50x slower than the defaults allow for)
            timeout = float(page.get("timeout", REQUEST_TIMEOUT))

            async def handle(
                r: asyncio.StreamReader,
                w: asyncio.StreamWriter,
                response: bytes = response,
                gzipped: bytes | None = gzipped,
                timeout: float = timeout,
            ) -> None:
                await serve_page(r, w, response, gzipped, timeout)

            tls = page.get("tls")
            server = await asyncio.start_server(
                handle,
                page["host"],
                page["port"],
                backlog=4096,
                ssl=tls_context if tls else None,
                ssl_handshake_timeout=max(timeout, 60.0) if tls else None,
            )
            servers.append(server)
        for tcp in spec.get("tcp", []):
            servers.append(
                await asyncio.start_server(hold_until_eof, tcp["host"], tcp["port"], backlog=4096)
            )
        for dc_spec in spec.get("mtproto", []):
            dc = FakeDC(dc_spec["host"], dc_spec["ports"], mode=dc_spec.get("mode", "ok"))
            await stack.enter_async_context(dc)
            ready.setdefault("mtproto", []).append({"host": dc.host, "ports": dc.ports})
        ready["listeners"] = len(servers)
        print(json.dumps(ready), flush=True)
        await stop.wait()
        for server in servers:
            server.close()


if __name__ == "__main__":
    asyncio.run(main(json.loads(Path(sys.argv[1]).read_text())))
