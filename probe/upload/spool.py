"""The spool: the records this installation has not delivered to the collector yet, in a
local SQLite database (`spool.sqlite3` in the data directory's `upload/`).

A row per record, keyed by its content hash (`results.content_hash`, the identity the
collector acknowledges): the record's JSON as the probe writes it, its state (`pending`,
`delivered`, `rejected` with the collector's reason), attempts, when the next attempt is due,
when it was queued and the last error. The spool holds its own copy of every pending record,
so local retention of result files (`keep_days`) may delete a file whose records are still
waiting here.

Crash safety: WAL journal with `synchronous=FULL`; each enqueue and each state change is one
transaction, so a process killed at any point leaves every record either queued whole or not
at all, and a record is marked delivered only after the collector acknowledged it. A
delivered record's bytes are dropped at once (its hash stays, so that uploading the same file
again sends nothing twice); when the spool grows past `max_bytes`, the oldest delivered hashes
go first, and pending records are never dropped: new records are refused (and counted, and
`probe upload --status` says so) until there is room.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from probe.upload.backoff import Backoff

PENDING = "pending"
DELIVERED = "delivered"
REJECTED = "rejected"

#: Bytes of records (pending and rejected) the spool holds at most: about 20,000 records.
DEFAULT_MAX_BYTES = 512 * 1024 * 1024
#: Delivered hashes kept to recognise a record queued again (32 bytes each, plus the row).
MAX_DELIVERED_HASHES = 1_000_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY,
    sha256 BLOB NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL,
    first_queued REAL NOT NULL,
    last_attempt REAL,
    done_at REAL,
    last_error TEXT
);
-- the bytes apart: a delivered record's row is deleted here, and its pages are freed (set to
-- NULL in place, they would stay allocated, nearly empty)
CREATE TABLE IF NOT EXISTS bodies (
    id INTEGER PRIMARY KEY REFERENCES records (id),
    record BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS records_due ON records (state, next_attempt);
CREATE INDEX IF NOT EXISTS records_done ON records (state, done_at);
CREATE INDEX IF NOT EXISTS records_size ON records (state, size);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""


@dataclass(frozen=True, slots=True)
class Queued:
    """One record to enqueue: its content hash and its JSON line (without the newline)."""

    sha256: bytes
    line: bytes


@dataclass(frozen=True, slots=True)
class Pending:
    """A pending record picked for a batch."""

    id: int
    sha256: bytes
    line: bytes


@dataclass(frozen=True, slots=True)
class Enqueued:
    added: int
    known: int
    #: refused because the spool is full (the records stay in their result files)
    refused: int


@dataclass(frozen=True, slots=True)
class Status:
    pending: int
    delivered: int
    rejected: int
    pending_bytes: int
    oldest_pending: float | None
    next_attempt: float | None
    last_error: str | None
    last_attempt: float | None
    last_delivery: float | None
    refused: int
    file_bytes: int
    rejected_reasons: list[tuple[str, int]]


class Spool:
    """The spool database; open with `Spool.open(path)`, close with `close()`."""

    def __init__(self, db: sqlite3.Connection, path: Path, max_bytes: int) -> None:
        self.db = db
        self.path = path
        self.max_bytes = max_bytes

    @classmethod
    def open(cls, path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Spool:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=30.0, isolation_level=None)
        try:
            # before the first table: freed pages (delivered records) can be given back
            db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
        except sqlite3.Error:
            db.close()
            raise
        return cls(db, path, max_bytes)

    def close(self) -> None:
        self.db.close()

    def shrink(self) -> None:
        """Give the pages of delivered records back to the file system (after an upload)."""
        # executescript steps the pragma to its end (execute() would free one page)
        self.db.executescript("PRAGMA incremental_vacuum;")
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def held_bytes(self) -> int:
        # from the (state, size) index: never reads a record's bytes
        row = self.db.execute(
            "SELECT COALESCE(SUM(size), 0) FROM records WHERE state IN (?, ?)", (PENDING, REJECTED)
        )
        return int(row.fetchone()[0])

    def enqueue(self, items: Iterable[Queued], now: float | None = None) -> Enqueued:
        """Queue records not seen before, in one transaction; a record already in the spool
        (pending, delivered or rejected) is not queued again."""
        now = time.time() if now is None else now
        added = known = refused = 0
        with self._transaction() as db:
            room = self.max_bytes - self.held_bytes()
            for item in items:
                if db.execute("SELECT 1 FROM records WHERE sha256 = ?", (item.sha256,)).fetchone():
                    known += 1
                    continue
                if len(item.line) > room:
                    refused += 1
                    continue
                cursor = db.execute(
                    "INSERT INTO records (sha256, size, state, next_attempt, first_queued)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (item.sha256, len(item.line), PENDING, now, now),
                )
                db.execute(
                    "INSERT INTO bodies (id, record) VALUES (?, ?)", (cursor.lastrowid, item.line)
                )
                room -= len(item.line)
                added += 1
            if refused:
                self._add_meta(db, "refused", refused)
            elif added:
                # everything offered found room: earlier refusals were queued again or are moot
                db.execute("DELETE FROM meta WHERE key = 'refused'")
        return Enqueued(added, known, refused)

    def due(
        self, *, now: float, max_records: int, max_bytes: int, due_only: bool = True
    ) -> list[Pending]:
        """The next batch: pending records due by `now` (or all pending, `due_only=False`),
        oldest due first, at most `max_records` and `max_bytes` (but at least one)."""
        query = (
            "SELECT records.id, sha256, record FROM records JOIN bodies USING (id) WHERE state = ?"
        )
        args: tuple[object, ...] = (PENDING,)
        if due_only:
            query += " AND next_attempt <= ?"
            args += (now,)
        query += " ORDER BY next_attempt, id LIMIT ?"
        batch: list[Pending] = []
        total = 0
        # fetchall: a cursor left half-read would keep its read transaction open
        for row_id, sha256, record in self.db.execute(query, (*args, max_records)).fetchall():
            if batch and total + len(record) > max_bytes:
                break
            batch.append(Pending(row_id, bytes(sha256), bytes(record)))
            total += len(record)
        return batch

    def mark_delivered(self, ids: Iterable[int], now: float | None = None) -> None:
        """The collector acknowledged these records (stored or duplicate): keep the hash only."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            ids = list(ids)
            db.executemany(
                "UPDATE records SET state = ?, done_at = ?, last_attempt = ?,"
                " attempts = attempts + 1, last_error = NULL WHERE id = ? AND state = ?",
                [(DELIVERED, now, now, row_id, PENDING) for row_id in ids],
            )
            # the ids are of a pending batch: their bytes are no longer needed
            db.executemany("DELETE FROM bodies WHERE id = ?", [(row_id,) for row_id in ids])
            self._set_meta(db, "last_delivery", str(now))
            self._trim_delivered(db)

    def mark_rejected(self, reasons: dict[int, str], now: float | None = None) -> None:
        """The collector refused these records for good; kept with the reason, not retried."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            db.executemany(
                "UPDATE records SET state = ?, reason = ?, done_at = ?, last_attempt = ?,"
                " attempts = attempts + 1 WHERE id = ? AND state = ?",
                [(REJECTED, reason, now, now, i, PENDING) for i, reason in reasons.items()],
            )

    def mark_failed(
        self,
        ids: Iterable[int],
        error: str,
        backoff: Backoff,
        *,
        now: float | None = None,
        not_before: float = 0.0,
    ) -> None:
        """An attempt failed (network, timeout, a 5xx, a reply that does not match): the
        records stay pending, due again after the backoff (at least `not_before` seconds)."""
        now = time.time() if now is None else now
        ids = list(ids)
        marks = ",".join("?" * len(ids))
        with self._transaction() as db:
            rows = db.execute(
                f"SELECT id, attempts FROM records WHERE state = ? AND id IN ({marks})",
                (PENDING, *ids),
            ).fetchall()
            for row_id, attempts in rows:
                delay = max(backoff.delay(attempts + 1), not_before)
                db.execute(
                    "UPDATE records SET attempts = ?, next_attempt = ?, last_attempt = ?,"
                    " last_error = ? WHERE id = ?",
                    (attempts + 1, now + delay, now, error, row_id),
                )
            self._set_meta(db, "last_error", error)
            self._set_meta(db, "last_attempt", str(now))

    def note_success(self, now: float | None = None) -> None:
        """An attempt reached the collector: the last error is history."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            db.execute("DELETE FROM meta WHERE key = 'last_error'")
            self._set_meta(db, "last_attempt", str(now))

    def _trim_delivered(self, db: sqlite3.Connection) -> None:
        (count,) = db.execute(
            "SELECT COUNT(*) FROM records WHERE state = ?", (DELIVERED,)
        ).fetchone()
        excess = int(count) - MAX_DELIVERED_HASHES
        if excess > 0:
            db.execute(
                "DELETE FROM records WHERE id IN (SELECT id FROM records WHERE state = ?"
                " ORDER BY done_at, id LIMIT ?)",
                (DELIVERED, excess),
            )  # delivered records have no body left

    @staticmethod
    def _set_meta(db: sqlite3.Connection, key: str, value: str) -> None:
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def _add_meta(self, db: sqlite3.Connection, key: str, amount: int) -> None:
        old = self._meta(key)
        self._set_meta(db, key, str(int(old or 0) + amount))

    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def status(self) -> Status:
        counts = dict(self.db.execute("SELECT state, COUNT(*) FROM records GROUP BY state"))
        pending_bytes, oldest, next_due = self.db.execute(
            "SELECT COALESCE(SUM(size), 0), MIN(first_queued), MIN(next_attempt) FROM records"
            " WHERE state = ?",
            (PENDING,),
        ).fetchone()
        reasons = self.db.execute(
            "SELECT reason, COUNT(*) FROM records WHERE state = ? GROUP BY reason"
            " ORDER BY COUNT(*) DESC, reason LIMIT 5",
            (REJECTED,),
        ).fetchall()
        last_attempt = self._meta("last_attempt")
        last_delivery = self._meta("last_delivery")
        return Status(
            pending=int(counts.get(PENDING, 0)),
            delivered=int(counts.get(DELIVERED, 0)),
            rejected=int(counts.get(REJECTED, 0)),
            pending_bytes=int(pending_bytes),
            oldest_pending=oldest,
            next_attempt=next_due,
            last_error=self._meta("last_error"),
            last_attempt=float(last_attempt) if last_attempt else None,
            last_delivery=float(last_delivery) if last_delivery else None,
            refused=int(self._meta("refused") or 0),
            file_bytes=self._file_bytes(),
            rejected_reasons=[(str(r), int(n)) for r, n in reasons],
        )

    def _file_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal", "-shm"):
            try:
                total += Path(f"{self.path}{suffix}").stat().st_size
            except OSError:
                pass
        return total

    def hashes(self, state: str) -> set[bytes]:
        """The content hashes of the records in `state` (tests, diagnostics)."""
        rows = self.db.execute("SELECT sha256 FROM records WHERE state = ?", (state,))
        return {bytes(sha256) for (sha256,) in rows}
