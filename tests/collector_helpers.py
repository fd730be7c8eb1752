"""Helpers of the collector's tests (tests/test_collector_*.py): records to upload (made by
tests/synthetic.py, schema-valid like the probe's), a collector in this process or as a real
`probe collector serve` subprocess on loopback, a small raw HTTP/1.1 client (so that a test
can send a body slowly, cut it short or lie about it) and the stored rows read back."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import signal
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
from aiohttp import web

from probe import results
from probe.collector import STORAGE, CollectorConfig, Storage, start_server
from tests import synthetic
from tests.loopback_world import REPO, probe_env

HOST = "127.0.0.1"


def synthetic_files(out: Path, *, vantages: int = 2, days: int = 1, seed: int = 7) -> Path:
    """A synthetic result set under `out` (records of several dates and networks)."""
    synthetic.generate(out, vantages=vantages, days=days, seed=seed, gaps_per_vantage=0)
    return out


def lines_of(root: Path) -> list[bytes]:
    """Every record line under `root`, in file order."""
    found: list[bytes] = []
    for path in sorted(root.rglob("*.jsonl")):
        found += [line for line in path.read_bytes().splitlines() if line.strip()]
    return found


def sha_of(line: bytes) -> str:
    """The content hash the collector answers with for this line."""
    return results.content_hash(json.loads(line)).hex()


def jsonl(lines: Sequence[bytes]) -> bytes:
    return b"".join(line + b"\n" for line in lines)


@dataclass
class Reply:
    #: 0: no reply, the connection was closed
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _parse(raw: bytes) -> Reply:
    if not raw:  # the collector closed the connection without a reply
        return Reply(0, {}, b"")
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _unchunk(body)
    return Reply(status, headers, body)


def _unchunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return bytes(out)


async def request(
    port: int,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    token: str | None = None,
    length: int | None = None,
    pieces: int = 1,
    pause: float = 0.0,
    cut_short: bool = False,
    limit: float = 60.0,
    host: str = HOST,
) -> Reply:
    """One HTTP/1.1 request on its own connection; the reply read to its end (the collector
    closes every connection after its reply). `length` overrides Content-Length; the body
    goes in `pieces` writes `pause` seconds apart; `cut_short` half-closes the connection
    after the body (with a Content-Length larger than what was sent, a cut-short body)."""
    sent = {"Host": f"{host}:{port}", "Content-Type": "application/x-ndjson"}
    if method == "GET":
        sent.pop("Content-Type")
    sent.update(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    if (method != "GET" or body) and "Transfer-Encoding" not in sent:
        sent["Content-Length"] = str(len(body) if length is None else length)
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in sent.items())
    async with asyncio.timeout(limit):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(head.encode("latin-1") + b"\r\n")
            step = max(1, -(-len(body) // pieces))
            for start in range(0, len(body), step):
                writer.write(body[start : start + step])
                await writer.drain()
                if pause:
                    await asyncio.sleep(pause)
            if cut_short:
                writer.write_eof()
            raw = await reader.read()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    return _parse(raw)


async def upload(
    port: int,
    lines: Sequence[bytes],
    *,
    token: str | None = None,
    gzipped: bool = False,
    host: str = HOST,
) -> Reply:
    body = jsonl(lines)
    headers = {}
    if gzipped:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    return await request(port, "POST", "/v1/records", body, headers, token=token, host=host)


@dataclass
class Running:
    """A collector in this process."""

    config: CollectorConfig
    port: int
    storage: Storage
    app: web.Application = field(repr=False)


@contextlib.asynccontextmanager
async def running(directory: Path, **options: Any) -> AsyncIterator[Running]:
    """A collector on loopback in this process, stopped (pending records compacted) after."""
    config = CollectorConfig(directory=directory, **options)
    runner, site = await start_server(config, HOST, 0)
    try:
        yield Running(config, site.port, runner.app[STORAGE], runner.app)
    finally:
        await runner.cleanup()


def stored_rows(directory: Path) -> list[tuple[Any, ...]]:
    """(record_sha256, date, cc, asn, record) of every row of every partition file, read as
    a researcher would, with DuckDB's hive partitioning."""
    files = sorted(str(p) for p in directory.rglob("*.parquet") if "_collector" not in p.parts)
    if not files:
        return []
    with duckdb.connect() as con:
        return con.execute(
            "SELECT record_sha256, date::VARCHAR, cc, asn, record FROM read_parquet($f,"
            " hive_partitioning = true) ORDER BY record_sha256",
            {"f": files},
        ).fetchall()


def free_port(host: str = HOST) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """`probe collector serve` as a subprocess; its stderr (the log) is collected in a file."""

    process: asyncio.subprocess.Process
    port: int
    log: Path
    host: str = HOST

    async def stop(self, signum: int = signal.SIGTERM, limit: float = 60.0) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signum)
        return await asyncio.wait_for(self.process.wait(), limit)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def with_report_id(line: bytes, number: int) -> bytes:
    """The record of `line` as a new record: its report id ends in `number` (12 hex digits)."""
    record = json.loads(line)
    record["report_id"] = record["report_id"][:-12] + f"{number:012x}"
    return json.dumps(record).encode()


async def serve(
    directory: Path, *args: str, log: Path, port: int | None = None, host: str = HOST
) -> Server:
    """Start `probe collector serve DIRECTORY` and wait until it answers /v1/health."""
    port = free_port(host) if port is None else port
    with log.open("ab") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "probe",
            "collector",
            "serve",
            str(directory),
            "--host",
            host,
            "--port",
            str(port),
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
            env=probe_env(),
            cwd=str(REPO),
        )
    server = Server(process, port, log, host)
    for _ in range(300):
        if process.returncode is not None:
            raise AssertionError(f"the collector exited: {server.log_text()}")
        with contextlib.suppress(OSError, IndexError, ValueError):
            reply = await request(port, "GET", "/v1/health", limit=5, host=host)
            if reply.status == 200:
                return server
        await asyncio.sleep(0.1)
    await server.stop(signal.SIGKILL)
    raise AssertionError(f"the collector did not start: {server.log_text()}")
