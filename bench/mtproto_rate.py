"""MTProto: handshakes per second against the fake data centre, per transport, against a raw
socket floor.

The fake DC (tests/servers/fake_dc.py, mode `ok`) runs in its own process inside a private
network namespace. This process then runs, per transport and alternately:

- probe: `probe.steps.tcp.tcp_connect` + `probe.steps.mtproto.mtproto_handshake` + close —
  exactly the steps
  a `mtproto` flow runs, with their observations and events;
- floor: a raw asyncio socket client sending a hand-built `req_pq_multi` in the same framing
  (AES-256-CTR from `cryptography` for obfuscated2), reading the framed reply and checking that
  it echoes the nonce.

Reported: handshakes per second (wall) and client CPU per handshake (getrusage of this process;
the server's CPU is not counted). With 2 cores the server process is the limit of the rate, so
CPU per handshake is the fairer comparison.

    sudo .venv/bin/python bench/mtproto_rate.py [--count 1500] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import secrets
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import benchlib
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from probe.observations import Trace
from probe.steps import mtproto
from probe.steps.tcp import tcp_connect

TIMEOUT = 5.0
FORBIDDEN_PREFIXES = (
    b"HEAD",
    b"POST",
    b"GET ",
    b"OPTI",
    b"\x16\x03\x01\x02",
    b"\xdd" * 4,
    b"\xee" * 4,
)
TAGS = {"abridged": b"\xef" * 4, "intermediate": b"\xee" * 4, "padded_intermediate": b"\xdd" * 4}


def _ctr(key: bytes, iv: bytes) -> Any:
    return Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()


def floor_request(transport: str, nonce: bytes) -> tuple[bytes, str, Any]:
    """(wire bytes, inner framing, decryptor or None)."""
    body = b"\xf1\x8e\x7e\xbe" + nonce
    message = struct.pack("<qqi", 0, (int(time.time() * 2**32)) & ~3, len(body)) + body
    if transport == "abridged":
        return b"\xef" + bytes([len(message) // 4]) + message, "abridged", None
    if transport == "intermediate":
        return b"\xee" * 4 + struct.pack("<I", len(message)) + message, "intermediate", None
    if transport == "padded_intermediate":
        padding = secrets.token_bytes(secrets.randbelow(16))
        framed = struct.pack("<I", len(message) + len(padding)) + message + padding
        return b"\xdd" * 4 + framed, "padded_intermediate", None
    while True:
        header = bytearray(secrets.token_bytes(64))
        if header[0] != 0xEF and bytes(header[:4]) not in FORBIDDEN_PREFIXES and any(header[4:8]):
            break
    header[56:60] = TAGS["intermediate"]
    encryptor = _ctr(bytes(header[8:40]), bytes(header[40:56]))
    encrypted = encryptor.update(bytes(header))
    reverse = bytes(header[8:56])[::-1]
    wire = bytes(header[:56]) + encrypted[56:64]
    wire += encryptor.update(struct.pack("<I", len(message)) + message)
    return wire, "intermediate", _ctr(reverse[:32], reverse[32:48])


async def floor_handshake(address: tuple[str, int], transport: str) -> bool:
    loop = asyncio.get_running_loop()
    nonce = secrets.token_bytes(16)
    wire, inner, decryptor = floor_request(transport, nonce)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        async with asyncio.timeout(TIMEOUT):
            await loop.sock_connect(sock, address)
            await loop.sock_sendall(sock, wire)
            received = b""
            while True:
                chunk = await loop.sock_recv(sock, 4096)
                if not chunk:
                    return False
                received += decryptor.update(chunk) if decryptor else chunk
                if inner == "abridged":
                    if received and len(received) >= 1 + 4 * received[0]:
                        packet = received[1 : 1 + 4 * received[0]]
                        break
                elif len(received) >= 4:
                    length = struct.unpack("<I", received[:4])[0]
                    if len(received) >= 4 + length:
                        packet = received[4 : 4 + length]
                        break
        return packet[24:40] == nonce
    finally:
        sock.close()


async def probe_handshake(address: tuple[str, int], transport: str) -> bool:
    trace = Trace(time.monotonic(), 1)
    result = await tcp_connect(address[0], address[1], trace=trace, timeout=TIMEOUT)
    if result.stream is None:
        return False
    try:
        observation = await mtproto.mtproto_handshake(
            result.stream,
            transport,
            trace=trace,
            timeout=TIMEOUT,
            address=f"{address[0]}:{address[1]}",
        )
    finally:
        await result.stream.aclose()
    return bool(observation.success)


async def measure(
    client: Callable[[tuple[str, int], str], Awaitable[bool]],
    address: tuple[str, int],
    transport: str,
    count: int,
    concurrency: int,
) -> dict[str, float]:
    limit = asyncio.Semaphore(concurrency)
    ok = 0

    async def one() -> None:
        nonlocal ok
        async with limit:
            succeeded = await client(address, transport)  # (not `ok += await`: a race)
            ok += succeeded

    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(count):
            group.create_task(one())
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if ok != count:
        raise SystemExit(f"{client.__name__} {transport}: only {ok} of {count} succeeded")
    return {"rate": count / wall, "cpu_ms": 1000 * cpu / count, "wall": wall}


async def run(
    address: tuple[str, int], count: int, concurrency: int, repeat: int
) -> dict[str, dict[str, dict[str, float]]]:
    results: dict[str, dict[str, dict[str, float]]] = {}
    # warm up (imports, first connections) outside the measured runs
    await measure(probe_handshake, address, "obfuscated2", 50, concurrency)
    await measure(floor_handshake, address, "obfuscated2", 50, concurrency)
    for transport in mtproto.TRANSPORTS:
        runs: dict[str, list[dict[str, float]]] = {"probe": [], "floor": []}
        for _ in range(repeat):
            runs["floor"].append(
                await measure(floor_handshake, address, transport, count, concurrency)
            )
            runs["probe"].append(
                await measure(probe_handshake, address, transport, count, concurrency)
            )
        results[transport] = {
            client: {
                key: sorted(r[key] for r in samples)[len(samples) // 2]
                for key in ("rate", "cpu_ms", "wall")
            }
            for client, samples in runs.items()
        }
        p, f = results[transport]["probe"], results[transport]["floor"]
        print(
            f"{transport:20} probe {p['rate']:7.0f}/s {p['cpu_ms']:6.3f} ms CPU   "
            f"floor {f['rate']:7.0f}/s {f['cpu_ms']:6.3f} ms CPU   "
            f"CPU ratio {p['cpu_ms'] / f['cpu_ms']:.2f}x",
            flush=True,
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1500, help="handshakes per measurement")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    benchlib.isolate()
    print(benchlib.describe_machine())
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.servers.fake_dc",
            "--host",
            "127.0.0.1",
            "--ports",
            "0",
            "--mode",
            "ok",
        ],
        cwd=benchlib.REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        ready = json.loads(server.stdout.readline())
        address = (ready["host"], ready["ports"][0])
        print(
            f"fake DC at {address[0]}:{address[1]}; {args.count} handshakes per run, "
            f"{args.concurrency} at once, median of {args.repeat}"
        )
        results = asyncio.run(run(address, args.count, args.concurrency, args.repeat))
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(json.dumps({"count": args.count, "concurrency": args.concurrency, "results": results}))
    parts = [
        f"{t} {r['probe']['rate']:.0f}/s vs floor {r['floor']['rate']:.0f}/s "
        f"(CPU {r['probe']['cpu_ms'] / r['floor']['cpu_ms']:.2f}x)"
        for t, r in results.items()
    ]
    benchlib.summary_line("mtproto_rate", "; ".join(parts))


if __name__ == "__main__":
    main()
