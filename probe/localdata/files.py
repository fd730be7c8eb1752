"""Which files in a results directory are the probe's round files.

`results.ResultWriter` writes one file per round, `<dir>/YYYY-MM-DD/<start>_<report_id>.jsonl`
(`<start>` as `%Y%m%dT%H%M%SZ`, UTC; the day is the start's). Only files named so, in a day
directory named so, directly under the results directory, count as round files here; nothing
else in the directory is ever read for a listing or deleted. Symbolic links are never followed:
a linked day directory or file is left alone.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROUND_FILE = re.compile(r"(?P<start>\d{8}T\d{6}Z)_(?P<report_id>[0-9a-f]{8,64})\.jsonl")
DAY_DIR = re.compile(r"\d{4}-\d{2}-\d{2}")
#: how much of a file's first line `is_probe_result_file` reads (a record is a few KB; one
#: with a kept page up to ~200 KB)
FIRST_LINE_LIMIT = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class RoundFile:
    """One round's result file, known by its name."""

    path: Path
    start: datetime  # UTC, aware
    report_id: str


def parse_round_file(path: Path) -> RoundFile | None:
    """The round file `path` names, or None when its name or its day directory's name is not
    the writer's (or the day is not the start's date)."""
    match = ROUND_FILE.fullmatch(path.name)
    if match is None or not DAY_DIR.fullmatch(path.parent.name):
        return None
    try:
        start = datetime.strptime(match["start"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None
    if start.strftime("%Y-%m-%d") != path.parent.name:
        return None
    return RoundFile(path, start, match["report_id"])


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _is_real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def day_dirs(results_dir: Path) -> list[Path]:
    """The day directories directly under `results_dir` (real directories, not links)."""
    try:
        entries = list(os.scandir(results_dir))
    except OSError:
        return []
    return sorted(
        Path(e.path) for e in entries if DAY_DIR.fullmatch(e.name) and _is_real_dir(Path(e.path))
    )


def round_files(results_dir: str | os.PathLike[str]) -> list[RoundFile]:
    """The round files under `results_dir`, oldest first (by start, then report id): regular
    files only, two levels deep, named as the writer names them."""
    found: list[RoundFile] = []
    for day in day_dirs(Path(results_dir)):
        try:
            names = os.listdir(day)
        except OSError:
            continue
        for name in names:
            parsed = parse_round_file(day / name)
            if parsed is not None and _is_regular(parsed.path):
                found.append(parsed)
    return sorted(found, key=lambda f: (f.start, f.report_id, str(f.path)))


def is_probe_result_file(round_file: RoundFile) -> bool:
    """Whether the file holds this probe's records for that round: empty, or its first line is
    a record of `software_name` "probe" with the report id in the file's name. (Checked before
    deleting from a directory that is not the probe's own.)"""
    if not _is_regular(round_file.path):
        return False
    try:
        with open(round_file.path, "rb") as handle:
            first = handle.readline(FIRST_LINE_LIMIT)
    except OSError:
        return False
    if not first.strip():
        return first == b""
    try:
        record = json.loads(first)
    except (ValueError, RecursionError):
        return False
    return (
        isinstance(record, dict)
        and record.get("software_name") == "probe"
        and record.get("report_id") == round_file.report_id
    )
