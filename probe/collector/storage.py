"""The collector's storage: the ledger (hash index and pending records, `ledger`) and the
Parquet partitions (`parquet`), under one directory that one collector at a time may use.

Batching: an upload's new records are committed to the ledger (one fsynced SQLite
transaction) before the reply — acknowledged = durable — and many small uploads cost one
small transaction each, not one file each. A compaction moves pending records into Parquet,
one file per partition per batch, when they reach `compact_bytes`, when the oldest has
waited `compact_interval` seconds, and when the collector stops; a partition that collects
`merge_min_files` small files has them merged into one. Opening the storage finishes what a
crash interrupted: temporary files are deleted, merges whose output exists lose their
inputs, claimed batches are written again under the same names, and an index that is
missing is rebuilt from the Parquet files.

The ledger's writer runs in one thread (`_call`); Parquet is written in worker threads; the
event loop never blocks on a disk."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import duckdb

from probe.collector import parquet
from probe.collector.config import CollectorConfig
from probe.collector.ledger import Ledger, Merge, open_reader
from probe.collector.limits import LEDGER_CACHE_BYTES
from probe.collector.records import Accepted

log = logging.getLogger("probe.collector")

T = TypeVar("T")

#: Seconds between checks whether pending records are due, and after a failed compaction.
CHECK_SECONDS = 5.0
RETRY_SECONDS = 30.0


class DiskFull(Exception):
    """No room for the upload (507): the disk is full, or below the reserve."""


class StorageError(Exception):
    """The ledger cannot be written for another reason (500)."""


class DirectoryInUse(Exception):
    """Another collector holds the directory."""


def _is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    if isinstance(exc, OSError):
        return exc.errno in (28, 122)  # ENOSPC, EDQUOT
    return "No space left on device" in str(exc) or "Disk quota exceeded" in str(exc)


class Storage:
    def __init__(self, config: CollectorConfig) -> None:
        self.config = config
        self.root = config.directory
        self.state_dir = self.root / parquet.STATE_DIR
        self.ledger_path = self.state_dir / "ledger.sqlite3"
        self.temp_dir = self.state_dir / "tmp"
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="collector-ledger")
        self._ledger: Ledger | None = None
        self._lock_fd = -1
        self._compacting = asyncio.Lock()
        self._wake = asyncio.Event()
        self.pending_bytes = 0
        self.pending_records = 0
        self.oldest_pending: float | None = None
        self.compaction_error: str | None = None
        self.disk_full = False

    # --- opening and closing ---------------------------------------------------------------

    async def open(self) -> None:
        """Lock the directory, finish what a crash interrupted, load or rebuild the index.
        On failure everything it took is given back."""
        try:
            await self._open()
        except BaseException:
            await self._release()
            raise

    async def _open(self) -> None:
        await self._call(self._open_sync)
        await self._recover_merges()
        ledger = self._need_ledger()
        for batch in await self._call(ledger.claimed):
            log.info("writing batch %s again: a compaction was interrupted", batch)
            await self._write_and_finish(batch)
        if self.config.rebuild_index:
            await self._call(ledger.reset_index)
        if not await self._call(ledger.index_complete):
            await self._rebuild_index()
        await self._refresh_stats()

    def _open_sync(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.temp_dir.mkdir(exist_ok=True)
        fd = os.open(self.state_dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise DirectoryInUse(f"{self.root}: another collector is using it") from None
        self._lock_fd = fd
        removed = parquet.remove_temporary_files(self.root)
        if removed:
            log.info("removed %d temporary file(s) an interrupted write left", removed)
        for leftover in self.temp_dir.iterdir():
            with contextlib.suppress(OSError):
                leftover.unlink()
        self._ledger = Ledger(self.ledger_path, LEDGER_CACHE_BYTES)

    async def close(self) -> None:
        """Compact every pending record, then release the ledger and the directory."""
        if self._ledger is not None:
            try:
                await self.compact(everything=True)
            except Exception as exc:
                log.warning("pending records stay in the ledger: %s", exc)
        await self._release()

    async def _release(self) -> None:
        if self._ledger is not None:
            await self._call(self._ledger.close)
            self._ledger = None
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1
        self._writer.shutdown(wait=True)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)

    def _need_ledger(self) -> Ledger:
        if self._ledger is None:
            raise StorageError("the storage is not open")
        return self._ledger

    async def _rebuild_index(self) -> None:
        ledger = self._need_ledger()
        started = time.monotonic()
        files = await asyncio.to_thread(lambda: list(parquet.iter_part_files(self.root)))
        for path in files:
            hashes = await asyncio.to_thread(parquet.file_hashes, path)
            await self._call(ledger.add_hashes, hashes)
        await self._call(ledger.mark_index_complete)
        count = await self._call(ledger.indexed)
        log.info(
            "hash index built from %d Parquet file(s): %d records in %.1f s",
            len(files),
            count,
            time.monotonic() - started,
        )

    async def _refresh_stats(self) -> None:
        stats = await self._call(self._need_ledger().pending_stats)
        self.pending_records, self.pending_bytes = stats.records, stats.bytes
        self.oldest_pending = stats.oldest

    # --- uploads -------------------------------------------------------------------------

    async def store(self, records: list[Accepted], group: str | None) -> list[bool]:
        """Store the new records durably; per record whether it was new. Raises DiskFull or
        StorageError, and then nothing of `records` is stored."""
        ledger = self._need_ledger()
        if not records:  # every line rejected: nothing to commit
            return []
        size = sum(len(r.text) for r in records)
        if self.config.reserve_bytes and self._below_reserve(size):
            raise DiskFull("disk almost full")
        received = time.time()
        try:
            new = await self._call(ledger.store, records, group, received)
        except sqlite3.Error as exc:
            if _is_disk_full(exc):
                self.disk_full = True
                raise DiskFull("disk full") from None
            log.error("the ledger cannot be written: %s", exc)
            raise StorageError("storage error") from None
        self.disk_full = False
        added = [r for r, fresh in zip(records, new, strict=True) if fresh]
        if added:
            self.pending_records += len(added)
            self.pending_bytes += sum(len(r.text) for r in added)
            if self.oldest_pending is None:
                self.oldest_pending = received
            if self.pending_bytes >= self.config.compact_bytes:
                self._wake.set()
        return new

    def _below_reserve(self, extra: int) -> bool:
        try:
            free = shutil.disk_usage(self.root).free
        except OSError:
            return False
        full = free < self.config.reserve_bytes + extra
        self.disk_full = full
        return full

    # --- compaction ----------------------------------------------------------------------

    def compaction_due(self, now: float | None = None) -> bool:
        if self.pending_records == 0:
            return False
        if self.pending_bytes >= self.config.compact_bytes:
            return True
        now = time.time() if now is None else now
        oldest = self.oldest_pending
        return oldest is not None and now - oldest >= self.config.compact_interval

    async def run_compactions(self) -> None:
        """Compact whenever records are due, until cancelled; a failure is logged once and
        retried after RETRY_SECONDS (the records stay pending, nothing is lost)."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(CHECK_SECONDS, self.config.compact_interval)):
                    await self._wake.wait()
            self._wake.clear()
            if not self.compaction_due():
                continue
            try:
                await self.compact()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the loop must go on: the records stay pending
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                if self.compaction_error is None:
                    expected = (OSError, duckdb.Error, sqlite3.Error, StorageError)
                    log.warning(
                        "compaction failed (records stay pending, retried every %g s): %s",
                        RETRY_SECONDS,
                        reason,
                        exc_info=not isinstance(exc, expected),
                    )
                self.compaction_error = reason
                await asyncio.sleep(RETRY_SECONDS)

    async def compact(self, everything: bool = False) -> int:
        """Move pending records into Parquet, a batch at a time, while they are due (all of
        them with `everything`); the number of records moved.

        A compaction under way is never cut short: cancelling its caller (the collector
        stopping while one runs in the background) waits for it to end, then raises. Its
        worker threads cannot be stopped; cut short, it would release `_compacting` while
        a thread still writes its claimed batch, and the final compaction would write that
        batch again under the same temporary names at the same time: one writer's rename
        takes the other's file, which then fails, and every later record stays pending."""
        work = asyncio.ensure_future(self._compact(everything))
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            await asyncio.wait([work])
            if not work.cancelled():
                work.exception()  # seen: the caller is going away, the next compaction retries
            raise

    async def _compact(self, everything: bool) -> int:
        moved = 0
        ledger = self._need_ledger()
        async with self._compacting:
            for batch in await self._call(ledger.claimed):  # an earlier attempt failed
                moved += await self._write_and_finish(batch)
            while everything or self.compaction_due():
                batch = uuid.uuid4().hex
                claimed = await self._call(ledger.claim, batch, self.config.compact_bytes)
                if claimed == 0:
                    break
                moved += await self._write_and_finish(batch)
                await self._refresh_stats()
        await self._refresh_stats()
        if self.compaction_error is not None:
            log.info("compaction works again")
            self.compaction_error = None
        return moved

    async def _write_and_finish(self, batch: str) -> int:
        def write() -> tuple[list[str], int]:
            reader = open_reader(self.ledger_path, LEDGER_CACHE_BYTES)
            try:
                found = reader.execute("SELECT count(*) FROM pending WHERE batch = ?", (batch,))
                count = int(found.fetchone()[0])
                return parquet.write_batch(self.root, reader, batch, self.temp_dir), count
            finally:
                reader.close()

        started = time.monotonic()
        partitions, count = await asyncio.to_thread(write)
        await self._call(self._need_ledger().finish, batch)
        log.info(
            "compacted %d records into %d Parquet file(s) in %.2f s",
            count,
            len(partitions),
            time.monotonic() - started,
        )
        for partition in partitions:
            await self._merge_small_files(partition)
        return count

    async def _merge_small_files(self, partition: str) -> None:
        def small_files() -> list[str]:
            return [
                p.name
                for p in parquet.partition_files(self.root, partition)
                if p.stat().st_size < self.config.merge_target_bytes
            ]

        inputs = await asyncio.to_thread(small_files)
        if len(inputs) < self.config.merge_min_files:
            return
        merge = Merge(uuid.uuid4().hex, partition, tuple(inputs))
        ledger = self._need_ledger()
        await self._call(ledger.add_merge, merge)
        try:
            await asyncio.to_thread(
                parquet.merge, self.root, partition, inputs, merge.id, self.temp_dir
            )
        except (OSError, duckdb.Error) as exc:  # e.g. a full disk
            output = self.root / partition / f"part-{merge.id}.parquet"
            if not await asyncio.to_thread(output.exists):  # the inputs stay as they are
                await self._call(ledger.finish_merge, merge.id)
                log.warning("merging %d files of %s failed: %s", len(inputs), partition, exc)
                return
        await asyncio.to_thread(self._delete_inputs, merge)
        await self._call(ledger.finish_merge, merge.id)
        log.info("merged %d small files of %s into one", len(inputs), partition)

    def _delete_inputs(self, merge: Merge) -> None:
        directory = self.root / merge.partition
        for name in merge.inputs:
            with contextlib.suppress(FileNotFoundError):
                (directory / name).unlink()
        parquet.fsync_path(directory)

    async def _recover_merges(self) -> None:
        ledger = self._need_ledger()
        for merge in await self._call(ledger.merges):
            output = self.root / merge.partition / f"part-{merge.id}.parquet"
            if output.exists():
                log.info("finishing an interrupted merge in %s", merge.partition)
                await asyncio.to_thread(self._delete_inputs, merge)
            await self._call(ledger.finish_merge, merge.id)

    # --- health --------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return {
            "accepting": not self.disk_full,
            "pending_records": self.pending_records,
            "compaction": "ok" if self.compaction_error is None else "failing",
        }
