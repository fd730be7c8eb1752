"""Sending the spool to the collector: batch after batch (at most 500 records and 8 MiB
before gzip, half the collector's limits) until nothing is due, and each batch's outcome
written back to the spool at once, so that an upload cut off anywhere (Ctrl-C, SIGKILL, a
dropped connection) leaves every record not yet acknowledged pending, to be sent again.

The first failed batch ends the session: the collector is unreachable or refuses, and
hammering it helps nobody; its records get their backoff. Only one upload runs at a time per
spool (a lock file next to it): a `probe run --upload` and a `probe upload` started together
do not send the same records twice."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from probe.upload.backoff import Backoff
from probe.upload.client import ClientSettings, CollectorClient, UploadError
from probe.upload.spool import Spool

BATCH_RECORDS = 500
BATCH_BYTES = 8 * 1024 * 1024


class UploadBusy(Exception):
    """Another process is uploading from this spool."""


@dataclass(slots=True)
class Outcome:
    """What one upload session did."""

    delivered: int = 0
    stored: int = 0
    duplicate: int = 0
    rejected: int = 0
    batches: int = 0
    #: why the session stopped early (records kept for the next upload), or None
    error: str | None = None
    #: records still pending when the session ended
    kept: int = 0


@contextmanager
def exclusive(spool_path: Path) -> Iterator[None]:
    """Hold the spool's upload lock (released when the process ends, however it ends)."""
    lock_path = spool_path.with_name(spool_path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UploadBusy("another upload from this device is running") from None
        yield
    finally:
        os.close(fd)


async def upload_spool(
    spool: Spool,
    settings: ClientSettings,
    *,
    due_only: bool = True,
    backoff: Backoff | None = None,
    clock: Callable[[], float] = time.time,
    batch_records: int = BATCH_RECORDS,
    batch_bytes: int = BATCH_BYTES,
) -> Outcome:
    """Send the pending records (those due by now, or all with `due_only=False`)."""
    backoff = backoff or Backoff()
    outcome = Outcome()
    async with CollectorClient(settings) as client:
        while True:
            batch = spool.due(
                now=clock(), max_records=batch_records, max_bytes=batch_bytes, due_only=due_only
            )
            if not batch:
                break
            ids = [item.id for item in batch]
            try:
                result = await client.send([i.line for i in batch], [i.sha256 for i in batch])
            except UploadError as exc:
                if exc.status == 413 and len(batch) > 1:
                    batch_records = max(1, len(batch) // 2)  # the collector's limit is lower
                    continue
                spool.mark_failed(
                    ids, exc.message, backoff, now=clock(), not_before=exc.retry_after
                )
                outcome.error = exc.message
                break
            outcome.batches += 1
            spool.mark_delivered([ids[i] for i in result.delivered], now=clock())
            spool.mark_rejected({ids[i]: why for i, why in result.rejected.items()}, now=clock())
            outcome.delivered += len(result.delivered)
            outcome.stored += result.stored
            outcome.duplicate += result.duplicate
            outcome.rejected += len(result.rejected)
            if result.unmatched:
                error = "the collector's reply did not acknowledge every record"
                unmatched = [ids[i] for i in result.unmatched]
                spool.mark_failed(unmatched, error, backoff, now=clock())
                outcome.error = error
                break
            spool.note_success(now=clock())
    if outcome.delivered:
        spool.shrink()
    outcome.kept = spool.status().pending
    return outcome
