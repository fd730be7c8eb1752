"""The lab's "internet": every service the probe and the control reach, in one asyncio process.

Run inside the `net` namespace: ``python -m tests.lab.servers CONFIG.json``. It serves

- a DNS resolver for the lab zone (UDP and TCP, dnspython): A records from the config (and
  AAAA for a name given a list of addresses, IPv6 ones from 2001:2::/48), NOERROR
  with no answer for other types of a known name, NXDOMAIN for anything else;
- HTTPS (certificate from the lab CA naming every web host) and HTTP on each web address;
- the national blockpage host (HTTP on 10.10.34.36), whose page names peyvandha.ir/1-2;
- fake Telegram data centres speaking MTProto (abridged, intermediate, padded intermediate and
  obfuscated2) on ports 443, 80 and 5222: a well-formed `req_pq_multi` (or Telegram Desktop's
  `req_pq`) gets a `resPQ` echoing the nonce and naming Telegram's production key; a malformed
  one gets the connection closed (`request_nonce` says what is well-formed); a plain HTTP
  request gets an HTTP reply (the DCs answer both, as the real ones do).

It prints READY on stdout once every socket is bound.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import struct
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

HEAD_CAP = 16384
MTPROTO_PACKET_CAP = 4096
IDLE_TIMEOUT = 10.0
REQ_PQ_MULTI = bytes.fromhex("f18e7ebe")
REQ_PQ = bytes.fromhex("78974660")
RES_PQ = bytes.fromhex("63241605")
VECTOR = bytes.fromhex("15c4b51c")
#: the fingerprint of Telegram's production RSA key (TDLib PublicRsaKeySharedMain.cpp)
PRODUCTION_KEY_FINGERPRINT = 0xD09D1D85DE64FD85
#: message ids TDLib sends before it knows the server's time (handshake 0, ping 1)
UNTIMED_MESSAGE_IDS = (0, 1)
#: a client msg_id may be this many seconds behind / ahead of the server's clock (MTProto)
MESSAGE_ID_PAST, MESSAGE_ID_FUTURE = 300.0, 30.0
BLOCKPAGE_BODY = (
    "<html><head><title>peyvandha</title></head><body>"
    '<p>Access to this site is not possible.</p><a href="https://peyvandha.ir/1-2">'
    "peyvandha.ir/1-2</a></body></html>"
)
TITLES = {
    "web.telegram.org": "Telegram Web",
    "telegram.org": "Telegram Messenger",
    "t.me": "Telegram Messenger",
    "www.example.org": "Example Domain",
}


# --- DNS ------------------------------------------------------------------------------------
def dns_answer(wire: bytes, zone: dict[str, Any]) -> bytes | None:
    try:
        query = dns.message.from_wire(wire)
    except Exception:
        return None
    if query.flags & dns.flags.QR or not query.question:
        return None
    reply = dns.message.make_response(query)
    reply.flags |= dns.flags.RA
    question = query.question[0]
    name = question.name.to_text(omit_final_dot=True).lower()
    if name not in zone:
        reply.set_rcode(dns.rcode.NXDOMAIN)
        return reply.to_wire()
    # a name with a list of addresses has AAAA records too (IPv6 lab: 2001:2::/48)
    found = zone[name]
    addresses = found if isinstance(found, list) else [found]
    wanted = {dns.rdatatype.A: "A", dns.rdatatype.AAAA: "AAAA"}.get(question.rdtype)
    matching = [a for a in addresses if ("AAAA" if ":" in a else "A") == wanted]
    if wanted and matching:
        reply.answer.append(dns.rrset.from_text(question.name, 60, "IN", wanted, *matching))
    return reply.to_wire()


class DNSUDP(asyncio.DatagramProtocol):
    def __init__(self, zone: dict[str, Any]) -> None:
        self.zone = zone
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        answer = dns_answer(data, self.zone)
        if answer is not None and self.transport is not None:
            self.transport.sendto(answer, addr)


async def dns_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, zone: Any) -> None:
    for _ in range(16):
        size = struct.unpack("!H", await reader.readexactly(2))[0]
        answer = dns_answer(await reader.readexactly(size), zone)
        if answer is None:
            return
        writer.write(struct.pack("!H", len(answer)) + answer)
        await writer.drain()


# --- HTTP -----------------------------------------------------------------------------------
async def read_head(reader: asyncio.StreamReader, first: bytes = b"") -> bytes:
    head = first
    while b"\r\n\r\n" not in head and len(head) < HEAD_CAP:
        chunk = await reader.read(HEAD_CAP - len(head))
        if not chunk:
            break
        head += chunk
    return head


def http_response(status: str, body: str, extra: str = "") -> bytes:
    data = body.encode()
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\nServer: plab\r\n{extra}\r\n"
    ).encode() + data


def host_of(head: bytes) -> str:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"host":
            return value.strip().decode("latin-1").split(":")[0].lower()
    return ""


async def serve_web(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    head = await read_head(reader)
    host = host_of(head)
    if not head.startswith((b"GET ", b"HEAD ", b"POST ")):
        writer.write(http_response("400 Bad Request", "bad request"))
        return
    title = TITLES.get(host, "Lab host")
    body = (
        f"<html><head><title>{title}</title></head><body><h1>{title}</h1>"
        f"<p>Served by the censorship lab for {host}.</p>{'x' * 600}</body></html>"
    )
    writer.write(http_response("200 OK", body, "X-Lab-Origin: genuine\r\n"))


async def serve_blockpage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    writer.write(http_response("200 OK", BLOCKPAGE_BODY))


# --- MTProto --------------------------------------------------------------------------------
class MTProtoConnection:
    """One client connection: an optional obfuscated2 cipher under a framing."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buffer = b""
        self.decryptor: Any = None
        self.encryptor: Any = None
        self.framing = ""

    async def read(self, size: int) -> bytes:
        while len(self.buffer) < size:
            chunk = await self.reader.read(65536)
            if not chunk:
                raise EOFError
            self.buffer += self.decryptor.update(chunk) if self.decryptor else chunk
        out, self.buffer = self.buffer[:size], self.buffer[size:]
        return out

    def write(self, data: bytes) -> None:
        self.writer.write(self.encryptor.update(data) if self.encryptor else data)

    async def start(self, first: bytes) -> bool:
        """Identify the transport from the first 4 bytes; False when this is not MTProto."""
        if first[0] == 0xEF:
            self.framing, self.buffer = "abridged", first[1:]
        elif first == b"\xee" * 4:
            self.framing = "intermediate"
        elif first == b"\xdd" * 4:
            self.framing = "padded_intermediate"
        else:
            init = first + await self.reader.readexactly(60)
            key, iv = init[8:40], init[40:56]
            reverse = init[8:56][::-1]
            self.decryptor = Cipher(algorithms.AES(key), modes.CTR(iv)).decryptor()
            self.encryptor = Cipher(
                algorithms.AES(reverse[:32]), modes.CTR(reverse[32:48])
            ).encryptor()
            tag = self.decryptor.update(init)[56:60]
            framings = {
                b"\xef" * 4: "abridged",
                b"\xee" * 4: "intermediate",
                b"\xdd" * 4: "padded_intermediate",
            }
            if tag not in framings:
                return False
            self.framing = framings[tag]
        return True

    async def read_packet(self) -> bytes:
        if self.framing == "abridged":
            size = (await self.read(1))[0]
            if size == 0x7F:
                size = int.from_bytes(await self.read(3), "little")
            size *= 4
        else:
            size = struct.unpack("<I", await self.read(4))[0]
        if size > MTPROTO_PACKET_CAP:
            raise EOFError
        return await self.read(size)

    def write_packet(self, payload: bytes) -> None:
        if self.framing == "abridged":
            words = len(payload) // 4
            prefix = bytes([words]) if words < 0x7F else b"\x7f" + words.to_bytes(3, "little")
            self.write(prefix + payload)
        elif self.framing == "intermediate":
            self.write(struct.pack("<I", len(payload)) + payload)
        else:
            padding = os.urandom(os.urandom(1)[0] % 16)
            self.write(struct.pack("<I", len(payload) + len(padding)) + payload + padding)


def request_nonce(packet: bytes, framing: str, now: float) -> bytes | None:
    """The nonce of a request an official client could have sent, None for anything else:
    auth_key_id 0; a length that is whole words, covers the 20-byte req_pq(_multi) body and
    matches the packet (padded intermediate may add up to 15 bytes after it); a msg_id that is
    divisible by 4 and within MESSAGE_ID_PAST/FUTURE of `now`, compared modulo 2**64 (ids pass
    2**63 in 2038 and wrap in 2106), or one of TDLib's untimed ids."""
    if len(packet) < 40:
        return None
    key_id = int.from_bytes(packet[:8], "little")
    msg_id = int.from_bytes(packet[8:16], "little")
    length = int.from_bytes(packet[16:20], "little")
    spare = len(packet) - 20 - length
    if key_id != 0 or length % 4 != 0 or length < 20:
        return None
    if spare < 0 or spare > (15 if framing == "padded_intermediate" else 0):
        return None
    if packet[20:24] not in (REQ_PQ_MULTI, REQ_PQ):
        return None
    if msg_id not in UNTIMED_MESSAGE_IDS:
        behind = ((int(now * 2**32) - msg_id + 2**63) % 2**64 - 2**63) / 2**32
        if msg_id % 4 != 0 or not -MESSAGE_ID_FUTURE <= behind <= MESSAGE_ID_PAST:
            return None
    return packet[24:40]


def res_pq(nonce: bytes) -> bytes:
    pq = (0x17ED48941A08F981).to_bytes(8, "big")
    body = (
        RES_PQ
        + nonce
        + os.urandom(16)
        + bytes([len(pq)])
        + pq
        + b"\x00" * 3
        + VECTOR
        + struct.pack("<i", 1)
        + struct.pack("<Q", PRODUCTION_KEY_FINGERPRINT)
    )
    message_id = (int(time.time() * 2**32) % 2**64) // 4 * 4 + 1
    return struct.pack("<qQi", 0, message_id, len(body)) + body


async def serve_dc(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    first = await reader.readexactly(4)
    if first in (b"POST", b"GET ", b"HEAD", b"OPTI"):
        await read_head(reader, first)
        writer.write(http_response("501 Not Implemented", ""))
        return
    connection = MTProtoConnection(reader, writer)
    if not await connection.start(first):
        return
    for _ in range(8):
        packet = await connection.read_packet()
        nonce = request_nonce(packet, connection.framing, time.time())
        if nonce is None:
            return  # like a real DC: no answer to what it cannot parse
        connection.write_packet(res_pq(nonce))
        await writer.drain()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def guarded(handler: Handler) -> Handler:
    """Bound every connection's life and swallow client misbehaviour (a lab server never dies)."""

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(IDLE_TIMEOUT):
                await handler(reader, writer)
                await writer.drain()
        except (OSError, EOFError, asyncio.IncompleteReadError, TimeoutError, ssl.SSLError):
            pass
        finally:
            writer.close()

    return run


async def main(config: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    zone: dict[str, Any] = config["zone"]
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(config["cert_file"], config["key_file"])
    servers: list[Any] = []
    resolver = config["resolver"]
    transport, _ = await loop.create_datagram_endpoint(
        lambda: DNSUDP(zone), local_addr=(resolver, 53)
    )
    servers.append(
        await asyncio.start_server(
            guarded(lambda r, w: dns_tcp(r, w, zone)), resolver, 53, reuse_address=True
        )
    )
    for ip in config["web"]:
        servers.append(await asyncio.start_server(guarded(serve_web), ip, 80, reuse_address=True))
        servers.append(
            await asyncio.start_server(guarded(serve_web), ip, 443, ssl=tls, reuse_address=True)
        )
    servers.append(
        await asyncio.start_server(
            guarded(serve_blockpage), config["blockpage"], 80, reuse_address=True
        )
    )
    for ip in config["dcs"]:
        for port in config["dc_ports"]:
            servers.append(
                await asyncio.start_server(guarded(serve_dc), ip, port, reuse_address=True)
            )
    print("READY", flush=True)
    await stop.wait()
    transport.close()
    for server in servers:
        server.close()


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as config_file:
        asyncio.run(main(json.load(config_file)))
