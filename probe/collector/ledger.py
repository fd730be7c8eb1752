"""The ledger: one SQLite database (`DIR/_collector/ledger.sqlite3`, WAL, synchronous=FULL)
holding the hash index and the records acknowledged but not yet in Parquet.

- `seen`: the content hash of every record stored (32 bytes, a WITHOUT ROWID B-tree): the
  idempotency index. It lives on disk; memory is SQLite's page cache (`cache_bytes`),
  whatever the number of records. Lost or deleted, it is rebuilt from the Parquet files.
- `pending`: acknowledged records waiting for compaction, with their partition and columns.
  An upload's new records go into `seen` and `pending` in one transaction, committed (and
  fsynced) before the reply: acknowledged = durable, a record whole or not at all, and a
  crash before the commit stores none of the request.
- A compaction claims pending rows as a batch (`batch` set, committed) before it writes
  their Parquet files, and deletes them once the files are durable; a batch still claimed at
  start was interrupted and is written again under the same file names.
- `merges`: the intent of a merge of small Parquet files, committed before its output is
  renamed into place; at start an intent whose output exists has its inputs deleted.

Every method blocks: the storage calls the writer from one thread (`Storage`), and a
compaction reads its batch through a connection of its own (`open_reader`)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from probe.collector.records import TIME_FORMAT, Accepted

_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (hash BLOB PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending (
    seq INTEGER PRIMARY KEY,
    batch TEXT,
    partition TEXT NOT NULL,
    hash BLOB NOT NULL,
    size INTEGER NOT NULL,
    time TEXT NOT NULL,
    report_id TEXT NOT NULL,
    input TEXT NOT NULL,
    test_name TEXT NOT NULL,
    service TEXT NOT NULL,
    probe_asn TEXT NOT NULL,
    probe_cc TEXT NOT NULL,
    probe_network_name TEXT,
    network_type TEXT,
    software_version TEXT NOT NULL,
    status TEXT NOT NULL,
    blocking TEXT,
    confirmed INTEGER NOT NULL,
    upload_group TEXT,
    received REAL NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS pending_batch ON pending (batch, seq, size, received);
CREATE TABLE IF NOT EXISTS merges (id TEXT PRIMARY KEY, partition TEXT NOT NULL, inputs TEXT);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

#: The columns a compaction reads for each pending row, in this order.
ROW_COLUMNS = (
    "seq",
    "partition",
    "hash",
    "size",
    "time",
    "report_id",
    "input",
    "test_name",
    "service",
    "probe_asn",
    "probe_cc",
    "probe_network_name",
    "network_type",
    "software_version",
    "status",
    "blocking",
    "confirmed",
    "upload_group",
    "received",
    "record",
)


@dataclass(frozen=True, slots=True)
class PendingStats:
    records: int
    bytes: int
    #: when the oldest unclaimed record was acknowledged (Unix time), None when there is none
    oldest: float | None


@dataclass(frozen=True, slots=True)
class Merge:
    id: str
    partition: str
    inputs: tuple[str, ...]


def _connect(path: Path, cache_bytes: int, readonly: bool = False) -> sqlite3.Connection:
    uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
    db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    db.execute(f"PRAGMA cache_size = -{max(1, cache_bytes // 1024)}")
    db.execute("PRAGMA busy_timeout = 60000")
    return db


def open_reader(path: Path, cache_bytes: int) -> sqlite3.Connection:
    """A read-only connection (a compaction's own: WAL lets it read while uploads commit)."""
    return _connect(path, cache_bytes, readonly=True)


class Ledger:
    """The writer's connection. Not thread-safe: one thread uses it at a time."""

    def __init__(self, path: Path, cache_bytes: int) -> None:
        self.path = path
        self.db = _connect(path, cache_bytes)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = FULL")
        self.db.execute("PRAGMA journal_size_limit = 67108864")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    # --- the index ----------------------------------------------------------------------

    def index_complete(self) -> bool:
        found = self.db.execute("SELECT value FROM meta WHERE key = 'index'").fetchone()
        return found is not None and found[0] == "complete"

    def add_hashes(self, hashes: Iterable[bytes]) -> None:
        """Add hashes to the index (rebuilding it from Parquet), in one transaction."""
        with self._transaction():
            self.db.executemany(
                "INSERT OR IGNORE INTO seen (hash) VALUES (?)", ((h,) for h in hashes)
            )

    def reset_index(self) -> None:
        """Forget every hash (a full rebuild from the Parquet files follows)."""
        with self._transaction():
            self.db.execute("DELETE FROM meta WHERE key = 'index'")
            self.db.execute("DELETE FROM seen")

    def mark_index_complete(self) -> None:
        with self._transaction():
            self.db.execute("INSERT OR IGNORE INTO seen (hash) SELECT hash FROM pending")
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('index', 'complete')")

    def indexed(self) -> int:
        found = self.db.execute("SELECT count(*) FROM seen").fetchone()
        return int(found[0])

    # --- uploads ------------------------------------------------------------------------

    def store(self, records: list[Accepted], group: str | None, received: float) -> list[bool]:
        """Store the records not yet seen, in one transaction; per record whether it was new
        (False: a duplicate of a stored record, or of an earlier one in `records`)."""
        with self._transaction():
            known = self._known([r.sha256 for r in records])
            new: list[bool] = []
            rows: list[tuple[Any, ...]] = []
            for record in records:
                fresh = record.sha256 not in known
                new.append(fresh)
                if fresh:
                    known.add(record.sha256)
                    rows.append(_pending_row(record, group, received))
            if rows:
                self.db.executemany(
                    "INSERT INTO seen (hash) VALUES (?)", ((row[1],) for row in rows)
                )
                self.db.executemany(
                    f"INSERT INTO pending ({', '.join(ROW_COLUMNS[1:])})"
                    f" VALUES ({', '.join('?' * (len(ROW_COLUMNS) - 1))})",
                    rows,
                )
        return new

    def _known(self, hashes: list[bytes]) -> set[bytes]:
        known: set[bytes] = set()
        for first in range(0, len(hashes), 500):
            chunk = hashes[first : first + 500]
            found = self.db.execute(
                f"SELECT hash FROM seen WHERE hash IN ({', '.join('?' * len(chunk))})", chunk
            ).fetchall()
            known.update(row[0] for row in found)
        return known

    # --- compaction ---------------------------------------------------------------------

    def pending_stats(self) -> PendingStats:
        found = self.db.execute(
            "SELECT count(*), coalesce(sum(size), 0), min(received) FROM pending"
            " WHERE batch IS NULL"
        ).fetchone()
        return PendingStats(int(found[0]), int(found[1]), found[2])

    def claim(self, batch: str, max_bytes: int) -> int:
        """Claim the oldest unclaimed rows, up to about `max_bytes` of records (at least one),
        as `batch`; the number of rows claimed."""
        total, last = 0, None
        for seq, size in self.db.execute(
            "SELECT seq, size FROM pending WHERE batch IS NULL ORDER BY seq"
        ):
            if last is not None and total + size > max_bytes:
                break
            total, last = total + size, seq
        if last is None:
            return 0
        with self._transaction():
            cursor = self.db.execute(
                "UPDATE pending SET batch = ? WHERE batch IS NULL AND seq <= ?", (batch, last)
            )
        return int(cursor.rowcount)

    def claimed(self) -> list[str]:
        """Batches claimed and not finished (a compaction was interrupted)."""
        found = self.db.execute("SELECT DISTINCT batch FROM pending WHERE batch IS NOT NULL")
        return sorted(row[0] for row in found)

    def finish(self, batch: str) -> None:
        """The batch's Parquet files are durable: its rows are no longer pending."""
        with self._transaction():
            self.db.execute("DELETE FROM pending WHERE batch = ?", (batch,))

    def add_merge(self, merge: Merge) -> None:
        with self._transaction():
            self.db.execute(
                "INSERT INTO merges VALUES (?, ?, ?)",
                (merge.id, merge.partition, json.dumps(list(merge.inputs))),
            )

    def merges(self) -> list[Merge]:
        found = self.db.execute("SELECT id, partition, inputs FROM merges ORDER BY id")
        return [Merge(row[0], row[1], tuple(json.loads(row[2]))) for row in found]

    def finish_merge(self, merge_id: str) -> None:
        with self._transaction():
            self.db.execute("DELETE FROM merges WHERE id = ?", (merge_id,))

    def _transaction(self) -> _Transaction:
        return _Transaction(self.db)


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on any error (a full disk included)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        if kind is None:
            try:
                self.db.execute("COMMIT")
                return
            except BaseException:
                self._rollback()
                raise
        self._rollback()

    def _rollback(self) -> None:
        if self.db.in_transaction:
            try:
                self.db.execute("ROLLBACK")
            except sqlite3.Error:
                pass


def _pending_row(record: Accepted, group: str | None, received: float) -> tuple[Any, ...]:
    return (
        record.partition,
        record.sha256,
        len(record.text),
        record.time.strftime(TIME_FORMAT),
        record.report_id,
        record.input,
        record.test_name,
        record.service,
        record.probe_asn,
        record.probe_cc,
        record.probe_network_name,
        record.network_type,
        record.software_version,
        record.status,
        record.blocking,
        int(record.confirmed),
        group,
        received,
        record.text,
    )


def batch_rows(db: sqlite3.Connection, batch: str, chunk: int = 2000) -> Iterator[list[Any]]:
    """The rows of a claimed batch (ROW_COLUMNS), a chunk at a time, in order."""
    after = -1
    columns = ", ".join(ROW_COLUMNS)
    while True:
        rows = db.execute(
            f"SELECT {columns} FROM pending WHERE batch = ? AND seq > ? ORDER BY seq LIMIT ?",
            (batch, after, chunk),
        ).fetchall()
        if not rows:
            return
        after = rows[-1][0]
        yield rows


def received_hour(received: float) -> datetime:
    """The acknowledgment time stored with a record, to the hour (UTC)."""
    from datetime import UTC

    when = datetime.fromtimestamp(received, UTC).replace(tzinfo=None)
    return when.replace(minute=0, second=0, microsecond=0)
