"""The servers a volunteer's default run meets besides the services: how the probe learns its
own address (a STUN server and an HTTPS "what is my IP" echo), and hostile web servers that
reflect the client's address back in many spellings (headers, titles, bodies), as real sites
and middleboxes do.

Run inside the lab's `net` namespace: ``python -m tests.lab.volunteer_servers CONFIG.json``.
The STUN responder is written here from RFC 5389, independently of tests/servers/ and of the
probe, so the probe's STUN client is checked against a second implementation. Prints READY once
every socket is bound.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import signal
import ssl
import struct
import sys
from typing import Any

MAGIC_COOKIE = 0x2112A442
BINDING_REQUEST = 0x0001
BINDING_SUCCESS = 0x0101
XOR_MAPPED_ADDRESS = 0x0020
HEAD_CAP = 16384


def spellings(ip: str, port: int) -> list[str]:
    """Ten and more ways a page or a header writes an IPv4 address."""
    a, b, c, d = (int(x) for x in ip.split("."))
    mapped_hex = f"::ffff:{(a << 8) | b:x}:{(c << 8) | d:x}"
    return [
        ip,
        f"{ip}:{port}",
        f"::ffff:{ip}",
        mapped_hex,
        f"{a:03d}.{b:03d}.{c:03d}.{d:03d}",
        ip.replace(".", "&#46;"),
        "".join(f"&#{ord(ch)};" for ch in ip),
        ip.replace(".", "%2E"),
        f"{d}.{c}.{b}.{a}.in-addr.arpa",
        f"{a}-{b}-{c}-{d}.dyn.example.net",
        f"ip-{a}-{b}-{c}-{d}",
    ]


# --- STUN -----------------------------------------------------------------------------------


class StunResponder(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        if len(data) < 20:
            return
        kind, length, cookie = struct.unpack("!HHI", data[:8])
        if kind != BINDING_REQUEST or cookie != MAGIC_COOKIE or length != len(data) - 20:
            return
        transaction = data[8:20]
        ip = ipaddress.ip_address(addr[0])
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        port = addr[1] ^ (MAGIC_COOKIE >> 16)
        raw = int(ip) ^ MAGIC_COOKIE if ip.version == 4 else None
        if raw is None:
            return  # the lab has no IPv6
        value = struct.pack("!BBHI", 0, 1, port, raw)
        attribute = struct.pack("!HH", XOR_MAPPED_ADDRESS, len(value)) + value
        header = struct.pack("!HHI", BINDING_SUCCESS, len(attribute), MAGIC_COOKIE)
        self.transport.sendto(header + transaction + attribute, addr)  # type: ignore[attr-defined]


# --- HTTP(S) --------------------------------------------------------------------------------


async def read_head(reader: asyncio.StreamReader) -> bytes:
    head = b""
    while b"\r\n\r\n" not in head and len(head) < HEAD_CAP:
        chunk = await reader.read(4096)
        if not chunk:
            break
        head += chunk
    return head


def response(status: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers)]
    lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
    return "\r\n".join(lines).encode() + body


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An HTTPS "what is my IP" service: the body is the caller's address."""
    try:
        await asyncio.wait_for(read_head(reader), 5)
        peer = writer.get_extra_info("peername")[0]
        writer.write(response("200 OK", [("Content-Type", "text/plain")], f"{peer}\n".encode()))
        await writer.drain()
    except (OSError, TimeoutError):
        pass
    finally:
        writer.close()


async def reflector(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A page that writes the caller's address everywhere, in every spelling."""
    try:
        await asyncio.wait_for(read_head(reader), 5)
        peer, port = writer.get_extra_info("peername")[:2]
        forms = spellings(peer, port)
        headers = [("Content-Type", "text/html; charset=utf-8")]
        headers += [(f"X-Client-IP-{i}", form) for i, form in enumerate(forms)]
        headers += [("X-Forwarded-For", f"{peer}, 10.0.0.1"), ("Set-Cookie", f"ip={peer}.")]
        body = (
            f"<html><head><title>Your address is {peer}.</title></head><body>"
            + "".join(f"<p>{form}</p>\n<p>(\n{form}.)</p>\t{form},\n" for form in forms)
            + f'<script>var ip="{peer}";</script></body></html>'
        )
        writer.write(response("200 OK", headers, body.encode()))
        await writer.drain()
    except (OSError, TimeoutError):
        pass
    finally:
        writer.close()


async def main(config: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    stun_ip, stun_port = config["stun"]
    transport, _ = await loop.create_datagram_endpoint(
        StunResponder, local_addr=(stun_ip, stun_port)
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config["cert_file"], config["key_file"])
    echo_ip, echo_port = config["echo"]
    servers = [await asyncio.start_server(echo, echo_ip, echo_port, ssl=context)]
    for ip, port in config["reflectors"]:
        servers.append(await asyncio.start_server(reflector, ip, port))
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print("READY", flush=True)
    await stop.wait()
    transport.close()
    for server in servers:
        server.close()


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as handle:
        asyncio.run(main(json.load(handle)))
