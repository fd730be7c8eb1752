"""Retention: delete local round files older than N days (`keep_days` in the config,
`probe run --keep-days N`), at the end of each round of `probe run`.

The age of a file is the age of its round, from the start time in its name (not the file's
modification time, which copying or touching changes). The round just written is never deleted,
whatever the clocks say, and neither is anything that is not a round file (`files`); in a
results directory that is not the probe's own, a file is deleted only if its content is this
probe's records too (`files.is_probe_result_file`).

"Exported" is the hook for uploads (issue 17): `may_delete` decides, per old file, whether it
may go. Every old file may (the volunteer chose the number of days): the upload spool
(probe/upload/spool.py) holds its own copy of every record it has not delivered, so deleting
a result file never loses a record waiting for upload (docs/upload.md, "Retention").
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from probe.localdata.files import RoundFile, is_probe_result_file, round_files

#: the largest keep_days accepted (about 100 years)
MAX_KEEP_DAYS = 36500


def always(_: RoundFile) -> bool:
    """The default `may_delete`: records waiting for upload are in the spool, not the files."""
    return True


@dataclass(slots=True)
class Expired:
    """What one retention pass did."""

    removed: list[Path] = field(default_factory=list)
    #: old files kept: not confirmed as this probe's, or `may_delete` said no, or unlink failed
    kept: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def expire_rounds(
    results_dir: str | os.PathLike[str],
    keep_days: int,
    *,
    keep: Iterable[str | os.PathLike[str]] = (),
    now: datetime | None = None,
    own_dir: bool = True,
    may_delete: Callable[[RoundFile], bool] = always,
) -> Expired:
    """Delete the round files under `results_dir` whose round started more than `keep_days`
    days before `now`, except the files in `keep` (the round just written). With
    `own_dir=False` (a directory the user chose), a file must also hold this probe's records.
    Day directories emptied by this are removed."""
    if not 0 <= keep_days <= MAX_KEEP_DAYS:
        raise ValueError(f"keep_days must be between 0 and {MAX_KEEP_DAYS}")
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(days=keep_days)
    protected = {os.path.abspath(p) for p in keep}
    done = Expired()
    for file in round_files(results_dir):
        if file.start >= cutoff or os.path.abspath(file.path) in protected:
            continue
        if (not own_dir and not is_probe_result_file(file)) or not may_delete(file):
            done.kept.append(file.path)
            continue
        try:
            file.path.unlink()
        except OSError as exc:
            done.kept.append(file.path)
            done.errors.append(f"{file.path}: {exc.strerror or exc}")
            continue
        done.removed.append(file.path)
    # only the days files were removed from: another run may be about to write into today's
    remove_empty_dirs(sorted({p.parent for p in done.removed}))
    return done


def remove_empty_dirs(dirs: Iterable[Path]) -> list[Path]:
    """Remove those of `dirs` that are empty (rmdir never removes anything else); the ones
    removed."""
    removed = []
    for directory in dirs:
        try:
            directory.rmdir()
        except OSError:
            continue
        removed.append(directory)
    return removed
