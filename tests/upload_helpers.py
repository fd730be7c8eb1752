"""What the upload tests share: synthetic volunteers' result files, a collector on loopback
(in-process, or `probe collector serve` as a subprocess), and the content hashes the
collector holds (read back from its Parquet files, one entry per stored row)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from probe import results
from probe.collector import CollectorConfig, start_server
from probe.upload import Spool, queue_files
from tests import synthetic


def volunteer_files(directory: Path, *, seed: int, days: int = 1) -> Path:
    """One volunteer's synthetic result files (72 records a day at 6 h), under `directory`."""
    synthetic.generate(
        directory,
        vantages=1,
        days=days,
        interval=timedelta(hours=6),
        start=datetime(2026, 11, 1, tzinfo=UTC),
        seed=seed,
        gaps_per_vantage=0,
    )
    return directory


def volunteer_series(
    directory: Path, volunteer: synthetic.Vantage, *, seed: int, days: int = 8
) -> synthetic.GroundTruth:
    """One volunteer's (probe id, network) synthetic result files under `directory` (72
    records a day at 6 h), with a gap in the data; returns that volunteer's ground truth."""
    return synthetic.generate(
        directory,
        days=days,
        interval=timedelta(hours=6),
        start=datetime(2026, 11, 1, tzinfo=UTC),
        seed=seed,
        noise=0.03,
        gaps_per_vantage=1,
        volunteers=[volunteer],
    )


def file_hashes(directory: Path) -> Counter[bytes]:
    found: Counter[bytes] = Counter()
    for path in results.iter_result_files([str(directory)]):
        for item in results.iter_json_objects(path):
            assert item.obj is not None, item.error
            found[results.content_hash(item.obj)] += 1
    return found


def stored_hashes(collector_dir: Path) -> Counter[bytes]:
    """Every record in the collector's Parquet files, by content hash (a count of 2 is a
    duplicate stored twice)."""
    found: Counter[bytes] = Counter()
    for path in sorted(collector_dir.rglob("*.parquet")):
        for item in results.iter_parquet_objects(path):
            assert item.obj is not None, item.error
            found[results.content_hash(item.obj)] += 1
    return found


def spool_in(directory: Path) -> Spool:
    return Spool.open(directory / "upload" / "spool.sqlite3")


def queued_spool(data_dir: Path, files: Path) -> Spool:
    spool = spool_in(data_dir)
    queue_files(spool, [files])
    return spool


@contextlib.asynccontextmanager
async def collector(directory: Path, **config: object) -> AsyncIterator[str]:
    """A collector on 127.0.0.1 (any free port), in this process; yields its base URL. Its
    Parquet files are complete once the block ends (cleanup compacts every pending record)."""
    runner, site = await start_server(
        CollectorConfig(directory, reserve_bytes=0, **config),  # type: ignore[arg-type]
        "127.0.0.1",
        0,
    )
    try:
        yield f"http://127.0.0.1:{site.port}"
    finally:
        await runner.cleanup()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def probe_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "probe", *args]


def start_collector_process(directory: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """`probe collector serve DIRECTORY --port PORT` in the background, once it answers."""
    handle = open(log, "ab")  # the process writes it until it ends
    process = subprocess.Popen(
        probe_command(
            "collector", "serve", str(directory), "--port", str(port), "--reserve-mb", "0"
        ),
        stdout=handle,
        stderr=handle,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"collector exited: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return process
        time.sleep(0.1)
    process.kill()
    raise AssertionError("collector did not start")


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    if process.poll() is None:
        os.kill(process.pid, sig)
    return process.wait(timeout=120)
