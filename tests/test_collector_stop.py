"""Stopping the collector while a background compaction is writing a batch: the stop waits for
that compaction to end before the final one, so no batch is ever written by two threads at once
(the same temporary names: one's rename takes the other's file, which then fails and leaves
every later record pending, unpublished), and every record is in Parquet once it has stopped."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from probe.collector import parquet
from tests.collector_helpers import lines_of, running, sha_of, stored_rows, synthetic_files, upload

#: Seconds the background compaction's first write is held when no second write comes (with
#: the fix none comes until it ends: the stop waits for it).
HOLD = 2.0


@pytest.fixture(scope="module")
def lines(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    return lines_of(synthetic_files(tmp_path_factory.mktemp("synthetic")))[:100]


class HeldWrites:
    """parquet.write_batch, its first call held until another call starts (or HOLD seconds):
    a stop that does not wait for the background compaction writes its batch again meanwhile,
    and the overlap is noted, whatever the machine's load."""

    def __init__(self) -> None:
        self.real = parquet.write_batch
        self.first_started = threading.Event()
        self.second_started = threading.Event()
        self.lock = threading.Lock()
        self.writing: set[str] = set()
        self.calls: list[str] = []
        self.overlaps: list[str] = []

    def __call__(self, root: Path, reader: sqlite3.Connection, batch: str, temp: Path) -> Any:
        with self.lock:
            if batch in self.writing:
                self.overlaps.append(batch)
            self.writing.add(batch)
            self.calls.append(batch)
            first = len(self.calls) == 1
        if first:
            self.first_started.set()
            self.second_started.wait(HOLD)
        else:
            self.second_started.set()
        try:
            return self.real(root, reader, batch, temp)
        finally:
            with self.lock:
                self.writing.discard(batch)


async def test_stopping_mid_compaction_waits_for_it_and_publishes_every_record(
    tmp_path: Path, lines: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = HeldWrites()
    monkeypatch.setattr(parquet, "write_batch", writes)
    directory = tmp_path / "c"
    async with running(directory, compact_bytes=16 * 1024) as c:
        assert (await upload(c.port, lines)).json()["stored"] == len(lines)
        # more than compact_bytes pending: the background compaction starts writing a batch
        assert await asyncio.to_thread(writes.first_started.wait, 30)
    # stopped (runner.cleanup()) while that write was held
    assert writes.overlaps == []
    assert len(writes.calls) > 1  # the final compaction wrote the rest
    assert [row[0] for row in stored_rows(directory)] == sorted(sha_of(x) for x in lines)
    ledger = sqlite3.connect(directory / "_collector" / "ledger.sqlite3")
    try:
        assert ledger.execute("SELECT count(*) FROM pending").fetchone() == (0,)
    finally:
        ledger.close()
