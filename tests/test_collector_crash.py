"""Durability of `probe collector serve` as a real process: killed with SIGKILL while uploads
arrive, while it compacts and while it merges, it loses no acknowledged record, stores none
twice, and leaves no partial Parquet file (every file reads whole; temporary files are gone
after the restart); SIGTERM compacts every pending record before it exits."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
from pathlib import Path

import duckdb
import pytest

from tests.collector_helpers import (
    Server,
    lines_of,
    request,
    serve,
    stored_rows,
    synthetic_files,
    upload,
    with_report_id,
)

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def lines(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    return lines_of(synthetic_files(tmp_path_factory.mktemp("synthetic"), vantages=2))


class Uploads:
    """Uploaders sending new records until stopped; what was acknowledged and what was sent."""

    def __init__(self, lines: list[bytes], first: int) -> None:
        self.lines = lines
        self.next = first
        self.acknowledged: set[str] = set()
        self.sent = 0

    def batch(self, size: int) -> list[bytes]:
        start, self.next = self.next, self.next + size
        return [
            with_report_id(self.lines[n % len(self.lines)], n) for n in range(start, start + size)
        ]

    async def run(self, server: Server, size: int = 40) -> None:
        while True:
            batch = self.batch(size)
            self.sent += len(batch)
            try:
                reply = await upload(server.port, batch)
            except (OSError, IndexError, ValueError):
                return  # killed mid-request: this batch was not acknowledged
            if reply.status != 200:
                return
            self.acknowledged |= {e["sha256"] for e in reply.json()["lines"]}


def _leftovers(directory: Path) -> tuple[int, int]:
    """(temporary Parquet files, claimed batches) a killed collector left."""
    temporary = len(list(directory.rglob(".part-*.parquet.tmp")))
    ledger = directory / "_collector" / "ledger.sqlite3"
    with contextlib.closing(sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)) as db:
        claimed = db.execute("SELECT count(*) FROM pending WHERE batch IS NOT NULL").fetchone()
    return temporary, int(claimed[0])


def _check_files(directory: Path) -> int:
    """Every partition file reads whole on its own; no temporary file is left; the rows."""
    assert not list(directory.rglob("*.tmp"))
    rows = 0
    with duckdb.connect() as con:
        for path in directory.rglob("*.parquet"):
            found = con.execute("SELECT count(*) FROM read_parquet($p)", {"p": str(path)})
            rows += found.fetchone()[0]  # type: ignore[index]
    return rows


async def _kill_during_uploads(
    directory: Path, uploads: Uploads, log: Path, delay: float, *args: str
) -> tuple[int, int]:
    server = await serve(directory, *args, log=log)
    tasks = [asyncio.create_task(uploads.run(server)) for _ in range(3)]
    await asyncio.sleep(delay)
    server.process.send_signal(signal.SIGKILL)
    await server.process.wait()
    await asyncio.gather(*tasks)
    return _leftovers(directory)


async def test_sigkill_during_uploads_and_compactions_loses_no_acknowledged_record(
    tmp_path: Path, lines: list[bytes]
) -> None:
    """Compaction every second and at every 1 MiB, merges of every 2 small files: a kill lands
    in the middle of uploads, compactions and merges alike."""
    directory = tmp_path / "c"
    uploads = Uploads(lines, 0)
    args = ("--compact-interval", "1", "--compact-mb", "1", "--merge-files", "2")
    seen_mid_write = 0
    for round_, delay in enumerate((0.7, 1.3, 2.1, 2.9, 3.7)):
        temporary, claimed = await _kill_during_uploads(
            directory, uploads, tmp_path / f"log{round_}", delay, *args
        )
        seen_mid_write += temporary + claimed > 0
    assert len(uploads.acknowledged) > 500
    logs = "".join((tmp_path / f"log{n}").read_text() for n in range(5))
    assert "compacted" in logs and "merged" in logs  # the kills landed among both

    server = await serve(directory, log=tmp_path / "final")
    health = (await request(server.port, "GET", "/v1/health")).json()
    assert health["status"] == "ok"
    # a retry of everything acknowledged stores nothing twice
    assert await server.stop() == 0
    stored = [row[0] for row in stored_rows(directory)]
    assert len(stored) == len(set(stored)), "a record stored twice"
    assert uploads.acknowledged <= set(stored), "an acknowledged record was lost"
    assert len(stored) <= uploads.sent
    assert _check_files(directory) == len(stored)
    print(f"{len(uploads.acknowledged)} acked, {len(stored)} stored, {seen_mid_write}/5 mid-write")


async def test_sigkill_mid_compaction_leaves_no_partial_file(
    tmp_path: Path, lines: list[bytes]
) -> None:
    """Many pending records, then SIGTERM (which compacts them all) and SIGKILL as soon as a
    batch is claimed or a temporary file appears: the restart writes the batch again under
    the same name, and deletes the partial file."""
    directory = tmp_path / "c"
    uploads = Uploads(lines, 10**6)  # the first record sent: number 10**6
    caught = 0
    for attempt in range(6):
        server = await serve(
            directory,
            "--compact-interval",
            "3600",
            "--compact-mb",
            "1",
            log=tmp_path / f"log{attempt}",
        )
        for _ in range(25):
            batch = uploads.batch(200)
            reply = await upload(server.port, batch)
            assert reply.status == 200
            uploads.acknowledged |= {e["sha256"] for e in reply.json()["lines"]}
        server.process.send_signal(signal.SIGTERM)
        for _ in range(2000):
            temporary, claimed = _leftovers(directory)
            if temporary or claimed or server.process.returncode is not None:
                break
            await asyncio.sleep(0.002)
        server.process.send_signal(signal.SIGKILL)
        await server.process.wait()
        temporary, claimed = _leftovers(directory)
        caught += bool(temporary or claimed)
        print(f"attempt {attempt}: {temporary} temporary files, {claimed} claimed rows")
        if caught >= 2:
            break
    assert caught >= 1, "no kill landed mid-compaction"

    server = await serve(directory, log=tmp_path / "final")
    first = 10**6
    retry = await upload(server.port, [with_report_id(lines[first % len(lines)], first)])
    assert retry.json()["duplicate"] == 1
    assert await server.stop() == 0
    assert "writing batch" in server.log_text() or "temporary file" in server.log_text()
    stored = [row[0] for row in stored_rows(directory)]
    assert len(stored) == len(set(stored)) == len(uploads.acknowledged)
    assert set(stored) == uploads.acknowledged
    assert _check_files(directory) == len(stored)


async def test_sigterm_compacts_every_pending_record(tmp_path: Path, lines: list[bytes]) -> None:
    directory = tmp_path / "c"
    server = await serve(directory, "--compact-interval", "3600", log=tmp_path / "log")
    assert (await upload(server.port, lines[:300])).json()["stored"] == 300
    assert (await request(server.port, "GET", "/v1/health")).json()["pending_records"] == 300
    assert list(directory.rglob("*.parquet")) == []
    assert await server.stop(signal.SIGTERM) == 0
    assert len(stored_rows(directory)) == 300
    assert "stopping: compacting pending records" in server.log_text()


async def test_temporary_files_a_crash_left_are_deleted_at_start(
    tmp_path: Path, lines: list[bytes]
) -> None:
    """What a kill in the middle of writing a Parquet file leaves (a half-written hidden
    temporary file, DuckDB spill files) is gone after the restart; readers never saw it."""
    directory = tmp_path / "c"
    server = await serve(directory, log=tmp_path / "log")
    await upload(server.port, lines[:20])
    assert await server.stop() == 0
    partition = next(directory.rglob("*.parquet")).parent
    partial = partition / f".part-{'0' * 32}.parquet.tmp"
    partial.write_bytes(b"PAR1 half a file")
    spill = directory / "_collector" / "tmp" / "duckdb_temp_block-1.block"
    spill.write_bytes(b"spill")
    server = await serve(directory, log=tmp_path / "log2")
    assert not partial.exists() and not spill.exists()
    assert await server.stop() == 0
    assert "removed 1 temporary file(s) an interrupted write left" in server.log_text()
    assert _check_files(directory) == 20
