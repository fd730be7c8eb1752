"""The floor for the success path: a minimal raw asyncio + ssl client doing what `probe run`
does for an https target, and nothing more.

For each name: A and AAAA queries over UDP to the resolver (hand-built packets), TCP connect to
the first A address, a TLS handshake that verifies the certificate and the host name against
the system store plus `--ca-file` (as the probe does), `GET /` with the probe's request headers
(Host, User-Agent, Accept, Accept-Language, Accept-Encoding, Connection), read the
response (at most 64 KiB), close. No records, no analysis, no events: the cost of the network
work itself in Python on this machine.

    python bench/floor_https.py --names-file NAMES --resolver 127.0.0.1:53 --ca-file CA.pem

Prints one JSON object: {"ok": n, "failed": n, "errors": {...}}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import socket
import ssl
import struct
from collections import Counter

BODY_CAP = 65536
#: the probe's request headers after Host (probe/steps/http/exchange.py BROWSER_HEADERS), spelt
#: out so that the floor imports nothing of the probe
REQUEST_HEADERS = (
    "User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 "
    "Firefox/128.0\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate\r\n"
    "Connection: close\r\n"
)
TIMEOUT = 10.0


def dns_query(name: str, qtype: int) -> tuple[int, bytes]:
    query_id = secrets.randbits(16)
    qname = b"".join(bytes([len(p)]) + p.encode("ascii") for p in name.split(".")) + b"\0"
    return query_id, struct.pack("!HHHHHH", query_id, 0x0100, 1, 0, 0, 0) + qname + struct.pack(
        "!HH", qtype, 1
    )


def skip_name(data: bytes, offset: int) -> int:
    while True:
        length = data[offset]
        if length & 0xC0 == 0xC0:
            return offset + 2
        if length == 0:
            return offset + 1
        offset += length + 1


def a_records(data: bytes, query_id: int) -> list[str]:
    got_id, _, qdcount, ancount = struct.unpack("!HHHH", data[:8])
    if got_id != query_id:
        raise ValueError("wrong DNS query id")
    offset = 12
    for _ in range(qdcount):
        offset = skip_name(data, offset) + 4
    addresses = []
    for _ in range(ancount):
        offset = skip_name(data, offset)
        rtype, _, _, rdlength = struct.unpack("!HHIH", data[offset : offset + 10])
        offset += 10
        if rtype == 1 and rdlength == 4:
            addresses.append(socket.inet_ntoa(data[offset : offset + 4]))
        offset += rdlength
    return addresses


async def resolve(name: str, qtype: int, server: tuple[str, int]) -> list[str]:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, server)
        query_id, packet = dns_query(name, qtype)
        await loop.sock_sendall(sock, packet)
        return a_records(await loop.sock_recv(sock, 4096), query_id)
    finally:
        sock.close()


async def fetch(
    name: str, server: tuple[str, int], context: ssl.SSLContext, timeout: float = TIMEOUT
) -> None:
    async with asyncio.timeout(timeout):
        a, _aaaa = await asyncio.gather(resolve(name, 1, server), resolve(name, 28, server))
        reader, writer = await asyncio.open_connection(a[0], 443, ssl=context, server_hostname=name)
        try:
            writer.write(f"GET / HTTP/1.1\r\nHost: {name}\r\n{REQUEST_HEADERS}\r\n".encode())
            received = b""
            while len(received) < BODY_CAP:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                received += chunk
            if not received.startswith(b"HTTP/1.1 200"):
                raise ValueError("not a 200 response")
        finally:
            writer.close()


async def main(args: argparse.Namespace) -> dict[str, object]:
    host, _, port = args.resolver.rpartition(":")
    server = (host, int(port))
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    context.load_verify_locations(cafile=args.ca_file)
    with open(args.names_file) as names_file:
        names = [line.strip() for line in names_file if line.strip()]
    limit = asyncio.Semaphore(args.concurrency)
    errors: Counter[str] = Counter()

    async def one(name: str) -> None:
        async with limit:
            try:
                await fetch(name, server, context, args.timeout)
            except Exception as exc:  # a floor that fails is reported, not hidden
                errors[type(exc).__name__] += 1

    async with asyncio.TaskGroup() as group:
        for name in names:
            group.create_task(one(name))
    failed = sum(errors.values())
    return {"ok": len(names) - failed, "failed": failed, "errors": dict(errors)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--names-file", required=True)
    parser.add_argument("--resolver", required=True)
    parser.add_argument("--ca-file", required=True)
    parser.add_argument("--concurrency", type=int, default=512)
    parser.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds per name")
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
