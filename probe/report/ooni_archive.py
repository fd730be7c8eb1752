"""OONI's public archive as report input (`probe report --ooni-archive DIR`): a local copy of
the date-partitioned, gzipped JSON Lines files of OONI's S3 bucket, in either of its layouts
(ooni/backend docs/MeasurementUploader.md, "S3 measurement files layout"):

- ``raw/<YYYYMMDD>/<HH>/<CC>/<testname>/<YYYYMMDDHH>_<CC>_<testname>.<host>.<n>.jsonl.gz``
  (measurements received from 2020-10-20 on; the `.tar.gz` "postcans" beside them hold the
  same measurements as uploaded, and are left aside),
- ``jsonl/<testname>/<CC>/<YYYYMMDD>/<HH>/<YYYYMMDD>_<CC>_<testname>.<x>.<n>.jsonl.gz``
  (measurements before 2020-10-21),

or any directory of `.jsonl`/`.jsonl.gz`/`.json`/`.json.gz` files (a partial download, the API's
`measurement_meta` answers). `testname` is OONI's test name without underscores
(`facebookmessenger`); the date and hour are when OONI received the measurement.

Partitions are pruned by their path before anything is opened: a directory or file whose date,
country or test name is outside the selection (`ArchiveSelection`: the report's `--since`,
`--until`, `--cc` and `--test-name`, by default OONI's four messenger tests) is never listed
further or read. The receipt hour is after the measurement, so `--since` prunes partitions
received before it (less `CLOCK_SKEW` for a probe whose clock runs fast) and `--until` those
received `LATE_UPLOAD` or more after it (a probe uploads late when it was offline). Files are
streamed line by line (`results.iter_json_objects`): memory does not grow with the archive.
Each line is one measurement; OONI writes `{}` for a submission it could not parse (counted,
not reported), an API `measurement_meta` answer is unwrapped to its `raw_measurement`, and the
measurement becomes rows as any OONI measurement does (`read_python.rows_of_objects`, with
OONI's probes as the volunteer `ooni`). A corrupt or truncated `.gz` keeps the lines read
before the damage and is counted in the summary line (`ArchiveStats.summary`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from probe import results
from probe.report.model import TIME_FORMAT, ReportInputError, SkippedLine
from probe.report.read_python import rows_of_objects

#: The tests read when `--test-name` is not given: OONI's messenger tests.
MESSENGER_TEST_NAMES = ("telegram", "signal", "whatsapp", "facebook_messenger")
#: How long after a measurement OONI may receive it and still be found under `--until`.
LATE_UPLOAD = timedelta(days=7)
#: How far ahead of the receipt hour a probe's clock may put its measurement.
CLOCK_SKEW = results.FUTURE_SLACK
#: Files read as measurements; `.tar.gz` postcans are counted and left aside.
MEASUREMENT_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz")
POSTCAN_SUFFIX = ".tar.gz"

_DATE = re.compile(r"\d{8}")
_HOUR = re.compile(r"[01]\d|2[0-3]")
_CC = re.compile(r"[A-Z]{2}")
_TEST = re.compile(r"[a-z0-9_]+")
#: `2021081715_US_webconnectivity.n0.0.jsonl.gz` (raw) or `20200921_IT_webconnectivity.l.0…`
_FILE_NAME = re.compile(r"(\d{8})(\d{2})?_([A-Z]{2})_([a-z0-9]+)\.")
_ANCHORS = ("raw", "jsonl")


def test_key(name: str) -> str:
    """A test name as the archive's paths spell it: lower case, no underscores."""
    return name.replace("_", "").lower()


@dataclass(frozen=True, slots=True)
class Partition:
    """What a path says about the measurements under it (None: it does not say)."""

    day: date | None = None
    hour: int | None = None
    cc: str | None = None
    test: str | None = None


@dataclass(frozen=True, slots=True)
class ArchiveSelection:
    """Which partitions and measurements are read. Times naive UTC; `tests` as `test_key`
    gives them (empty: every test); `ccs` upper case (empty: every country)."""

    since: datetime | None = None
    until: datetime | None = None
    ccs: frozenset[str] = frozenset()
    tests: frozenset[str] = frozenset(test_key(n) for n in MESSENGER_TEST_NAMES)

    def keeps(self, part: Partition) -> bool:
        if part.cc is not None and self.ccs and part.cc not in self.ccs:
            return False
        if part.test is not None and self.tests and test_key(part.test) not in self.tests:
            return False
        if part.day is None:
            return True
        start = datetime.combine(part.day, datetime.min.time())
        length = timedelta(days=1)
        if part.hour is not None:
            start, length = start + timedelta(hours=part.hour), timedelta(hours=1)
        if self.since is not None and start + length + CLOCK_SKEW <= self.since:
            return False
        return not (self.until is not None and start >= self.until + LATE_UPLOAD)

    def keeps_measurement(self, obj: dict[str, Any]) -> str | None:
        """None to read the measurement, else which count it goes to."""
        name = obj.get("test_name")
        if self.tests and isinstance(name, str) and test_key(name) not in self.tests:
            return "other_tests"
        cc = obj.get("probe_cc")
        if self.ccs and isinstance(cc, str) and cc.upper() not in self.ccs:
            return "outside"
        try:
            when = datetime.strptime(str(obj.get("measurement_start_time")), TIME_FORMAT)
        except ValueError:
            return None  # the reader says why it cannot be used
        if (self.since is not None and when < self.since) or (
            self.until is not None and when >= self.until
        ):
            return "outside"
        return None


def make_selection(
    since: datetime | None, until: datetime | None, ccs: Iterable[str], test_names: Iterable[str]
) -> ArchiveSelection:
    """The selection from the report's filters and `--test-name` values (either spelling:
    `facebook_messenger` or `facebookmessenger`; `all` for every test; commas allowed)."""
    names = [p.strip() for v in test_names for p in v.split(",") if p.strip()]
    for name in names:
        if not _TEST.fullmatch(name.lower()):
            raise ReportInputError(
                f"--test-name: {name!r} is not an OONI test name (e.g. telegram)"
            )
    tests = frozenset(test_key(n) for n in (names or MESSENGER_TEST_NAMES))
    return ArchiveSelection(
        since, until, frozenset(c.upper() for c in ccs), frozenset() if "all" in tests else tests
    )


def _day(text: str) -> date | None:
    if not _DATE.fullmatch(text):
        return None
    try:
        return datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        return None


def _at(parts: Sequence[str], index: int, pattern: re.Pattern[str]) -> str | None:
    if 0 <= index < len(parts) and pattern.fullmatch(parts[index]):
        return parts[index]
    return None


def directory_partition(parts: Sequence[str]) -> Partition:
    """What directory names say, recognised only below an anchor as OONI's layouts have them:
    `raw/<day>/<hour>/<CC>/<test>` and `jsonl/<test>/<CC>/<day>/<hour>`. A directory of some
    other shape (a researcher's own `downloads/20260301/`) says nothing: its files' names
    still do (`file_partition`)."""
    anchors = [i for i, name in enumerate(parts) if name in _ANCHORS]
    if not anchors:
        return Partition()
    i = anchors[-1]
    rest = parts[i + 1 :]
    if parts[i] == "raw":
        day = _day(rest[0]) if rest else None
        if day is None:
            return Partition()
        hour_text = _at(rest, 1, _HOUR)
        cc = _at(rest, 2, _CC) if hour_text is not None else None
        test = _at(rest, 3, _TEST) if cc is not None else None
        return Partition(day, int(hour_text) if hour_text else None, cc, test)
    test = _at(rest, 0, _TEST)
    cc = _at(rest, 1, _CC) if test is not None else None
    day = _day(rest[2]) if cc is not None and len(rest) > 2 else None
    hour_text = _at(rest, 3, _HOUR) if day is not None else None
    return Partition(day, int(hour_text) if hour_text else None, cc, test)


def file_partition(name: str) -> Partition:
    """What an archive file's name says (`2021081715_US_webconnectivity.n0.0.jsonl.gz`)."""
    found = _FILE_NAME.match(name)
    if found is None:
        return Partition()
    day_text, hour_text, cc, test = found.groups()
    hour = int(hour_text) if hour_text is not None and _HOUR.fullmatch(hour_text) else None
    return Partition(_day(day_text), hour, cc, test)


def _root_parts(root: Path) -> tuple[str, ...]:
    """The root's own names from its last `raw`/`jsonl` anchor on (a root inside a layout,
    e.g. `mirror/raw/20210817`); without one, none: a date higher up says nothing."""
    parts = root.resolve().parts
    anchors = [i for i, name in enumerate(parts) if name in _ANCHORS]
    return parts[anchors[-1] :] if anchors else ()


@dataclass(slots=True)
class ArchiveStats:
    """What reading the archives found, for the summary line."""

    archives: int = 0
    files: int = 0
    pruned_dirs: int = 0
    pruned_files: int = 0
    postcans: int = 0
    measurements: int = 0
    other_tests: int = 0
    outside: int = 0
    placeholders: int = 0
    unreadable_lines: int = 0
    special_files: int = 0
    unlisted_dirs: int = 0
    corrupt_files: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: files read and pruned, measurements used and left out, damage found."""
        pruned = f"{self.pruned_dirs:,} directories and {self.pruned_files:,} files pruned by path"
        if self.postcans:
            pruned += f", {self.postcans:,} postcans (.tar.gz) left aside"
        left = f"{self.other_tests:,} of other tests, {self.outside:,} outside dates or countries"
        if self.placeholders:
            left += f", {self.placeholders:,} empty placeholders"
        line = (
            f"OONI archive: {self.files:,} files read ({pruned}); {self.measurements:,} "
            f"measurements used ({left}); {len(self.corrupt_files):,} corrupt or truncated "
            f"files, {self.unreadable_lines:,} unreadable lines"
        )
        if self.corrupt_files:
            line += f" (first: {self.corrupt_files[0]})"
        if self.special_files or self.unlisted_dirs:
            line += (
                f"; {self.special_files:,} special files (FIFO, device) and "
                f"{self.unlisted_dirs:,} directories that cannot be listed left aside"
            )
        return line


def _is_measurement_file(name: str) -> bool:
    return name.endswith(MEASUREMENT_SUFFIXES)


def archive_roots(roots: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The roots to walk: each must exist (else ReportInputError); one given twice, or inside
    another given, is walked once."""
    found: list[Path] = []
    for raw in roots:
        root = Path(raw)
        if not root.exists():
            raise ReportInputError(f"--ooni-archive {os.fspath(raw)}: no such file or directory")
        found.append(root)
    resolved = [r.resolve() for r in found]
    return [
        root
        for i, (root, real) in enumerate(zip(found, resolved, strict=True))
        if real not in resolved[:i]
        and not any(other != real and real.is_relative_to(other) for other in resolved)
    ]


def archive_files(
    roots: Sequence[Path], selection: ArchiveSelection, stats: ArchiveStats
) -> Iterator[Path]:
    """The measurement files under the roots that the selection keeps, sorted within each
    directory, found as they are read (memory does not grow with the archive); the
    directories the selection prunes are never listed."""
    for root in roots:
        if root.is_file():
            yield root
        else:
            yield from _walk(root, selection, stats)


def _walk(root: Path, selection: ArchiveSelection, stats: ArchiveStats) -> Iterator[Path]:
    base = _root_parts(root)

    def unlisted(error: OSError) -> None:  # a directory that cannot be listed
        stats.unlisted_dirs += 1

    for top, dirs, files in os.walk(root, onerror=unlisted, followlinks=False):
        parts = base + Path(top).relative_to(root).parts
        kept = []
        for name in sorted(dirs):
            if selection.keeps(directory_partition((*parts, name))):
                kept.append(name)
            else:
                stats.pruned_dirs += 1
        dirs[:] = kept  # os.walk descends only into these
        here = directory_partition(parts)
        for name in sorted(files):
            if name.endswith(POSTCAN_SUFFIX):
                stats.postcans += 1
            elif not _is_measurement_file(name):
                continue
            elif not (Path(top) / name).is_file():  # a FIFO or device would block the read
                stats.special_files += 1
            elif selection.keeps(here) and selection.keeps(file_partition(name)):
                yield Path(top) / name
            else:
                stats.pruned_files += 1


def unwrap(obj: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The measurement in an API `measurement_meta` answer (its `raw_measurement`, a JSON
    string or object; ooni/data oonidata/apiclient.py reads it so), or `obj` itself; else
    (None, why)."""
    if "raw_measurement" not in obj:
        return obj, None
    raw = obj["raw_measurement"]
    if isinstance(raw, str):
        try:
            raw = results.loads(raw)
        except ValueError as exc:  # json.JSONDecodeError, or a value a record never holds
            return None, f"measurement_meta: raw_measurement is not a measurement ({exc})"
    if not isinstance(raw, dict):
        return None, "measurement_meta without a raw_measurement object"
    problem = results.time_problem(raw, results.latest_time())
    return (None, problem) if problem else (raw, None)


def _measurements(
    path: Path, selection: ArchiveSelection, stats: ArchiveStats
) -> Iterator[results.SourcedObject]:
    """The file's measurements the selection keeps, unwrapped; unreadable lines pass through
    (the reader reports them), and the counts go into `stats`."""
    stats.files += 1
    for item in results.iter_json_objects(path):
        if item.obj is None:
            if (item.error or "").startswith("cannot read"):  # a corrupt or truncated .gz
                stats.corrupt_files.append(str(path))
            elif item.error != "empty file":
                stats.unreadable_lines += 1
            yield item
            continue
        if not item.obj:  # `{}`: OONI's stand-in for a submission it could not parse
            stats.placeholders += 1
            continue
        obj, problem = unwrap(item.obj)
        if obj is None:
            stats.unreadable_lines += 1
            yield results.SourcedObject(item.source, item.line, None, problem)
            continue
        left_out = selection.keeps_measurement(obj)
        if left_out is not None:
            setattr(stats, left_out, getattr(stats, left_out) + 1)
            continue
        stats.measurements += 1
        yield results.SourcedObject(item.source, item.line, obj)


@dataclass(slots=True)
class OoniArchive:
    """Archives to read into a report (`build_report(..., archive=)`): the roots are checked
    when made; `rows` walks them and streams one file at a time (once: the counts in `stats`
    are of that pass)."""

    roots: list[Path]
    selection: ArchiveSelection
    stats: ArchiveStats

    @classmethod
    def open(
        cls, roots: Sequence[str | os.PathLike[str]], selection: ArchiveSelection
    ) -> OoniArchive:
        found = archive_roots(roots)
        return cls(found, selection, ArchiveStats(archives=len(found)))

    def files(self) -> Iterator[Path]:
        """The files `rows` reads, found lazily (pruned ones counted in `stats`)."""
        return archive_files(self.roots, self.selection, self.stats)

    def rows(self, skipped: Callable[[SkippedLine], None]) -> Iterator[tuple[Any, ...]]:
        """The report's rows of every file (read_python.rows_of_objects' shape)."""
        for path in self.files():
            yield from rows_of_objects(
                _measurements(path, self.selection, self.stats), str(path), skipped
            )
