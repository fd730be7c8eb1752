"""Self-checks run inside a lab namespace: did the censor really do what the scenario says?

``python -m tests.lab.checks`` reads a JSON list of checks on stdin and prints a JSON list of
outcomes. These are deliberately independent of the probe (plain sockets, ssl, dnspython), so a
broken lab is caught before the probe is judged. Outcomes are short strings:

- ``resolv_conf``: ``nameserver:A`` (the first nameserver in /etc/resolv.conf)
- ``resolve_system`` (getaddrinfo through the namespace's resolv.conf): ``ip:A`` | ``nxdomain`` |
  ``fail:<error>``
- ``dns_udp``: the first reply ``ip:A`` | ``nxdomain`` | ``empty`` | ``timeout``; `replies` lists
  every reply seen within the window (injection races show up as two replies)
- ``tcp``: ``ok`` | ``refused`` | ``reset`` | ``timeout`` | ``unreachable`` | ``fail:<error>``
- ``tls``: ``ok`` | ``reset`` | ``timeout`` | ``eof`` | ``tls_error`` | a tcp failure
- ``http``: ``<status>`` or ``<status>-blockpage`` (an iframe to 10.10.34.x) | a tcp failure
- ``mtproto``: ``ok`` (a resPQ echoing our nonce) | ``foreign`` | ``reset`` | ``timeout`` | ``eof``
- ``quic``: ``ok`` (a QUIC handshake with ALPN h3 completed; aioquic directly, certificate not
  checked) | ``timeout`` | ``closed``
- ``stun``: ``ok`` (a datagram answering our Binding request's transaction id came) |
  ``timeout`` | ``refused``
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import socket
import ssl
import struct
import sys
import time
from typing import Any

import dns.message
import dns.rcode
import dns.rdatatype
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

READ_CAP = 65536


def failure_of(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionResetError):
        return "reset"
    if isinstance(exc, (EOFError, asyncio.IncompleteReadError)):
        return "eof"
    if isinstance(exc, ssl.SSLError):
        return "tls_error"
    if isinstance(exc, OSError) and exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return "unreachable"
    return f"fail:{type(exc).__name__}:{exc}"


async def resolve_system(check: dict[str, Any], timeout: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            infos = await loop.getaddrinfo(check["name"], 443, family=socket.AF_INET)
        return {"outcome": f"ip:{infos[0][4][0]}"}
    except socket.gaierror as exc:
        if exc.errno == socket.EAI_NONAME:
            return {"outcome": "nxdomain"}
        return {"outcome": f"fail:{exc}"}
    except Exception as exc:
        return {"outcome": failure_of(exc)}


def summarize_dns(wire: bytes) -> str:
    reply = dns.message.from_wire(wire)
    if reply.rcode() == dns.rcode.NXDOMAIN:
        return "nxdomain"
    for rrset in reply.answer:
        if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            return f"ip:{next(iter(rrset)).address}"
    return "empty"


async def dns_udp(check: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Send one A query (or `type`, e.g. AAAA) and collect every reply within the window (first
    reply + injections)."""
    query = dns.message.make_query(check["name"], check.get("type", "A"))
    wire = query.to_wire()
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    replies: list[str] = []
    try:
        await loop.sock_connect(sock, (check["server"], 53))
        await loop.sock_sendall(sock, wire)
        deadline = loop.time() + timeout
        window_end: float | None = None
        for _ in range(16):
            end = deadline if window_end is None else window_end
            try:
                async with asyncio.timeout(max(0.0, end - loop.time())):
                    data = await loop.sock_recv(sock, READ_CAP)
            except TimeoutError:
                break
            if data[:2] != wire[:2]:
                continue
            replies.append(summarize_dns(data))
            if window_end is None:
                window_end = loop.time() + check.get("window", 0.5)
    except Exception as exc:
        return {"outcome": failure_of(exc), "replies": replies}
    finally:
        sock.close()
    return {"outcome": replies[0] if replies else "timeout", "replies": replies}


async def dns_tcp(check: dict[str, Any], timeout: float) -> dict[str, Any]:
    query = dns.message.make_query(check["name"], "A").to_wire()
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(check["server"], 53)
            writer.write(struct.pack("!H", len(query)) + query)
            size = struct.unpack("!H", await reader.readexactly(2))[0]
            data = await reader.readexactly(size)
            writer.close()
        return {"outcome": summarize_dns(data)}
    except Exception as exc:
        return {"outcome": failure_of(exc)}


async def tcp(check: dict[str, Any], timeout: float) -> dict[str, Any]:
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(check["ip"], check["port"])
        writer.close()
        return {"outcome": "ok"}
    except Exception as exc:
        return {"outcome": failure_of(exc)}


async def tls(check: dict[str, Any], timeout: float) -> dict[str, Any]:
    context = ssl.create_default_context(cafile=check.get("ca"))
    # checks run concurrently: "delay" orders one after another (residual blocking)
    await asyncio.sleep(float(check.get("delay", 0.0)))
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(check["ip"], check["port"])
            try:
                await writer.start_tls(context, server_hostname=check["sni"])
            except ssl.SSLError as exc:
                if "EOF" in str(exc) or "UNEXPECTED_EOF" in str(exc):
                    return {"outcome": "eof"}
                return {"outcome": "tls_error", "detail": str(exc)}
            writer.close()
        return {"outcome": "ok"}
    except Exception as exc:
        return {"outcome": failure_of(exc)}


async def http(check: dict[str, Any], timeout: float) -> dict[str, Any]:
    request = f"GET / HTTP/1.1\r\nHost: {check['host']}\r\nConnection: close\r\n\r\n".encode()
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(check["ip"], check["port"])
            writer.write(request)
            data = await reader.read(READ_CAP)
            while data and len(data) < READ_CAP:
                chunk = await reader.read(READ_CAP - len(data))
                if not chunk:
                    break
                data += chunk
            writer.close()
    except Exception as exc:
        return {"outcome": failure_of(exc)}
    if not data.startswith(b"HTTP/1."):
        return {"outcome": "eof" if not data else "not_http"}
    status = data.split(b" ", 2)[1].decode()
    if b"<iframe" in data and b"10.10.34." in data:
        return {"outcome": f"{status}-blockpage"}
    return {"outcome": status}


def obfuscated2_init(tag: bytes) -> tuple[bytes, Any, Any]:
    """A client obfuscated2 header (FACTS.md §2) and the two ciphers it sets up."""
    forbidden = (b"HEAD", b"POST", b"GET ", b"OPTI", b"\xdd" * 4, b"\xee" * 4, b"\x16\x03\x01\x02")
    while True:
        init = bytearray(os.urandom(64))
        if init[0] != 0xEF and bytes(init[:4]) not in forbidden and init[4:8] != b"\0" * 4:
            break
    init[56:60] = tag
    encryptor = Cipher(algorithms.AES(bytes(init[8:40])), modes.CTR(bytes(init[40:56]))).encryptor()
    reverse = bytes(init[8:56])[::-1]
    decryptor = Cipher(algorithms.AES(reverse[:32]), modes.CTR(reverse[32:48])).decryptor()
    encrypted = encryptor.update(bytes(init))
    init[56:64] = encrypted[56:64]
    return bytes(init), encryptor, decryptor


async def mtproto(check: dict[str, Any], timeout: float) -> dict[str, Any]:
    transport = check.get("transport", "intermediate")
    nonce = os.urandom(16)
    body = bytes.fromhex("f18e7ebe") + nonce
    message = struct.pack("<qqi", 0, (int(time.time() * 2**32) // 4) * 4, len(body)) + body
    encryptor: Any = None
    decryptor: Any = None
    prefix = b""
    framing = transport
    if transport == "obfuscated2":
        prefix, encryptor, decryptor = obfuscated2_init(b"\xee" * 4)
        framing = "intermediate"
    if framing == "abridged":
        packet = b"\xef" + bytes([len(message) // 4]) + message
    elif framing == "intermediate":
        packet = b"\xee" * 4 + struct.pack("<I", len(message)) + message
    else:
        packet = b"\xdd" * 4 + struct.pack("<I", len(message)) + message
    if encryptor is not None:
        packet = prefix + encryptor.update(packet[4:])
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(check["ip"], check["port"])
            writer.write(packet)
            data = await reader.read(READ_CAP)
            if not data:
                return {"outcome": "eof"}
            while len(data) < (85 if framing == "abridged" else 88):  # framing + 84-byte resPQ
                chunk = await reader.read(READ_CAP)
                if not chunk:
                    break
                data += chunk
            writer.close()
    except Exception as exc:
        return {"outcome": failure_of(exc)}
    if decryptor is not None:
        data = decryptor.update(data)
    return {"outcome": "ok" if nonce in data and bytes.fromhex("63241605") in data else "foreign"}


def first_nameserver(path: str = "/etc/resolv.conf") -> str:
    with open(path, encoding="utf-8") as resolv:
        for line in resolv:
            fields = line.split()
            if len(fields) >= 2 and fields[0] == "nameserver":
                return f"nameserver:{fields[1]}"
    return "none"


async def resolv_conf(check: dict[str, Any], timeout: float) -> dict[str, Any]:
    """The first nameserver this namespace's system resolver uses (ip netns exec bind-mounts
    /etc/netns/<ns>/resolv.conf over /etc/resolv.conf)."""
    return {"outcome": first_nameserver()}


async def quic(check: dict[str, Any], timeout: float) -> dict[str, Any]:
    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.connection import QuicConnection

    configuration = QuicConfiguration(
        is_client=True, alpn_protocols=["h3"], server_name=check["sni"],
        verify_mode=ssl.CERT_NONE,
    )  # fmt: skip
    connection = QuicConnection(configuration=configuration)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.bind(("0.0.0.0", 0))
    transport, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: QuicConnectionProtocol(connection), sock=sock
    )
    try:
        async with asyncio.timeout(timeout):
            protocol.connect((check["ip"], check.get("port", 443)))
            await protocol.wait_connected()
        return {"outcome": "ok"}
    except TimeoutError:
        return {"outcome": "timeout"}
    except ConnectionError:
        return {"outcome": "closed"}
    finally:
        protocol.close()
        transport.close()


async def stun(check: dict[str, Any], timeout: float) -> dict[str, Any]:
    """A bare RFC 5389 Binding request (20-byte header) and any reply echoing its id."""
    transaction_id = os.urandom(12)
    request = struct.pack("!HHI", 0x0001, 0, 0x2112A442) + transaction_id
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.connect((check["ip"], check.get("port", 3478)))
        try:
            async with asyncio.timeout(timeout):
                while True:
                    await loop.sock_sendall(sock, request)
                    try:
                        async with asyncio.timeout(0.3):
                            data = await loop.sock_recv(sock, 2048)
                    except TimeoutError:
                        continue
                    if data[8:20] == transaction_id:
                        return {"outcome": "ok"}
        except TimeoutError:
            return {"outcome": "timeout"}
        except ConnectionRefusedError:
            return {"outcome": "refused"}


CHECKS = {
    "resolv_conf": resolv_conf,
    "resolve_system": resolve_system,
    "dns_udp": dns_udp,
    "dns_tcp": dns_tcp,
    "tcp": tcp,
    "tls": tls,
    "http": http,
    "mtproto": mtproto,
    "quic": quic,
    "stun": stun,
}


async def run_all(checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    async def one(check: dict[str, Any]) -> dict[str, Any]:
        return await CHECKS[check["kind"]](check, float(check.get("timeout", 2.0)))

    return list(await asyncio.gather(*(one(check) for check in checks)))


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run_all(json.load(sys.stdin)))))
