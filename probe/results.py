"""Result files: the append-only JSON Lines writer and a tolerant reader for ours and OONI's."""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import io
import json
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

RESULT_SUFFIXES = (".json", ".jsonl", ".json.gz", ".jsonl.gz", ".parquet")
#: A Parquet result file (what `probe collector serve` stores) holds each record whole, as its
#: canonical JSON (`canonical_json`), in this column.
PARQUET_RECORD_COLUMN = "record"


@dataclass(slots=True)
class SourcedObject:
    """One JSON object read from a file, or the reason a line could not be read."""

    source: str
    line: int
    obj: dict[str, Any] | None
    error: str | None = None


def _open_text(path: Path) -> io.TextIOBase:
    # surrogateescape: a line with invalid UTF-8 is found (its bytes become lone surrogates)
    # and skipped on its own, instead of ending the file or being read half-replaced
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="surrogateescape")
    return open(path, encoding="utf-8", errors="surrogateescape")


_INVALID_UTF8 = re.compile("[\udc80-\udcff]")


class _Unreadable(ValueError):
    """JSON that Python could parse but a record must not contain."""


def _no_constant(name: str) -> Any:
    raise _Unreadable(f"{name} is not JSON")


def loads(text: str) -> Any:
    """json.loads, refusing what a record never holds: invalid UTF-8, NaN/Infinity (not JSON,
    and they poison sums and averages), and nesting deeper than the parser's recursion limit.
    Raises json.JSONDecodeError or _Unreadable with a short reason."""
    if _INVALID_UTF8.search(text):
        raise _Unreadable("invalid UTF-8")
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise _Unreadable("nested too deeply") from None


#: The times a record names; one outside [EARLIEST_TIME, now + FUTURE_SLACK] is absurd (year 1,
#: year 9999, a clock decades off), and so is one that is not an ISO date/time: the object is
#: skipped with the reason, like a line that is not JSON. 2000 is before any measurement (OONI
#: began in 2012); two days ahead allows for a vantage whose clock runs a day fast.
TIME_FIELDS = ("measurement_start_time", "test_start_time")
EARLIEST_TIME = datetime(2000, 1, 1)
FUTURE_SLACK = timedelta(days=2)


def latest_time(now: datetime | None = None) -> datetime:
    """The latest plausible record time (naive UTC): now + FUTURE_SLACK."""
    now = now or datetime.now(UTC)
    if now.tzinfo is not None:
        now = now.astimezone(UTC).replace(tzinfo=None)
    return now + FUTURE_SLACK


def _clip(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def time_problem(obj: dict[str, Any], latest: datetime) -> str | None:
    """Why the object's measurement_start_time or test_start_time cannot be believed, or None.
    A missing or null time is left to the caller (a record without one is not a measurement)."""
    for name in TIME_FIELDS:
        value = obj.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            return f"bad {name} {_clip(value)}"
        try:
            when = datetime.fromisoformat(value.strip())
            if when.tzinfo is not None:
                when = when.astimezone(UTC).replace(tzinfo=None)
        except (ValueError, OverflowError):
            return f"bad {name} {_clip(value)}"
        if not EARLIEST_TIME <= when <= latest:
            return f"absurd {name} {_clip(value)}: before 2000 or more than 2 days ahead"
    return None


def _sourced(source: str, line: int, obj: dict[str, Any], latest: datetime) -> SourcedObject:
    problem = time_problem(obj, latest)
    if problem is not None:
        return SourcedObject(source, line, None, problem)
    return SourcedObject(source, line, obj)


#: A line longer than this is reported, not parsed (a record is a few KB; OONI's up to ~1 MB).
MAX_LINE_CHARS = 64 * 1024 * 1024
#: A whole-file (pretty-printed) JSON document larger than this is reported, not parsed.
MAX_DOCUMENT_CHARS = 256 * 1024 * 1024
_READ_ERRORS = (OSError, EOFError, gzip.BadGzipFile, zlib.error, UnicodeError)


def canonical_json(obj: Any) -> str:
    """The object's canonical JSON: keys sorted, no whitespace, ASCII only. Raises ValueError
    for an object nested too deeply to serialise here."""
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    except RecursionError:
        raise _Unreadable("nested too deeply") from None


def content_hash(obj: Any) -> bytes:
    """SHA-256 of the object's canonical JSON (`canonical_json`): two records are the same
    record exactly when their content hashes are equal, however each file was formatted.
    Raises ValueError for an object nested too deeply to serialise here."""
    return hashlib.sha256(canonical_json(obj).encode("ascii")).digest()


def iter_json_objects(path: str | os.PathLike[str]) -> Iterator[SourcedObject]:
    """Objects in a .json/.jsonl file (plain or .gz): JSON Lines, streamed line by line, or one
    (pretty-printed) JSON document or array.

    Never raises for bad content: a line that is not a JSON object, or an object whose
    `measurement_start_time`/`test_start_time` is absurd or unparsable (`time_problem`), comes
    back with `error`, and a file that cannot be read (or stops being readable, e.g. a
    truncated .gz) ends with one item naming the problem. A `.parquet` file is read row by row
    (`iter_parquet_objects`)."""
    p = Path(path)
    source = str(p)
    if source.endswith(".parquet"):
        yield from iter_parquet_objects(p)
        return
    number = 0
    seen_any = False
    latest = latest_time()
    try:
        with _open_text(p) as handle:
            for number, line in enumerate(_bounded_lines(handle), 1):
                if line is None:
                    yield SourcedObject(source, number, None, "line too long")
                    continue
                stripped = line.strip()
                if not stripped:
                    continue
                first_content = not seen_any
                seen_any = True
                try:
                    obj = loads(stripped)
                except _Unreadable as exc:
                    yield SourcedObject(source, number, None, str(exc))
                    continue
                except json.JSONDecodeError as exc:
                    if first_content and stripped[0] in "{[":
                        # Not JSON Lines: a whole-file document (OONI's single measurements).
                        yield from _whole_document(p, source, latest)
                        return
                    yield SourcedObject(source, number, None, f"not JSON: {exc.msg}")
                    continue
                if isinstance(obj, dict):
                    yield _sourced(source, number, obj, latest)
                elif isinstance(obj, list) and first_content:
                    yield from _array_items(source, obj, latest)
                else:
                    yield SourcedObject(source, number, None, "not a JSON object")
    except _READ_ERRORS as exc:
        yield SourcedObject(source, number, None, f"cannot read: {exc}")
        return
    if not seen_any:
        yield SourcedObject(source, 0, None, "empty file")


def iter_parquet_objects(path: str | os.PathLike[str]) -> Iterator[SourcedObject]:
    """Records in a Parquet file whose `record` column holds each record as JSON (the
    collector's partition files), read a few thousand rows at a time; `line` is the row
    number. Never raises for bad content, like `iter_json_objects`: a file that is not such a
    Parquet file (no `record` column: e.g. `probe report --parquet` output) is one item with
    the reason."""
    import duckdb

    source = os.fspath(path)
    latest = latest_time()
    number = 0
    con = duckdb.connect()
    try:
        try:
            cursor = con.execute(
                f"SELECT {PARQUET_RECORD_COLUMN}::VARCHAR FROM read_parquet($path)",
                {"path": source},
            )
        except duckdb.BinderException:
            yield SourcedObject(source, 0, None, "not a Parquet file of records (no record column)")
            return
        except duckdb.Error as exc:
            yield SourcedObject(source, 0, None, f"cannot read: {str(exc).splitlines()[0]}")
            return
        while True:
            try:
                rows = cursor.fetchmany(4096)
            except duckdb.Error as exc:
                yield SourcedObject(source, number, None, f"cannot read: {exc}")
                return
            if not rows:
                break
            for (text,) in rows:
                number += 1
                yield _parquet_object(source, number, text, latest)
    finally:
        con.close()
    if number == 0:
        yield SourcedObject(source, 0, None, "empty file")


def _parquet_object(source: str, number: int, text: str | None, latest: datetime) -> SourcedObject:
    if text is None:
        return SourcedObject(source, number, None, "no record")
    if len(text) > MAX_LINE_CHARS:
        return SourcedObject(source, number, None, "line too long")
    try:
        obj = loads(text)
    except _Unreadable as exc:
        return SourcedObject(source, number, None, str(exc))
    except json.JSONDecodeError as exc:
        return SourcedObject(source, number, None, f"not JSON: {exc.msg}")
    if not isinstance(obj, dict):
        return SourcedObject(source, number, None, "not a JSON object")
    return _sourced(source, number, obj, latest)


def _bounded_lines(handle: io.TextIOBase) -> Iterator[str | None]:
    """The file's lines, reading at most MAX_LINE_CHARS + 1 characters at a time: a line
    longer than that comes back as None (its rest is skipped, never held in memory)."""
    while True:
        line = handle.readline(MAX_LINE_CHARS + 1)
        if not line:
            return
        if len(line) <= MAX_LINE_CHARS or line.endswith("\n"):
            yield line if len(line) <= MAX_LINE_CHARS else None
            continue
        while line and not line.endswith("\n"):  # skip the rest of the long line
            line = handle.readline(MAX_LINE_CHARS + 1)
        yield None


def _array_items(source: str, items: list[Any], latest: datetime) -> Iterator[SourcedObject]:
    for index, item in enumerate(items, 1):
        if isinstance(item, dict):
            yield _sourced(source, index, item, latest)
        else:
            yield SourcedObject(source, index, None, "not a JSON object")


def _whole_document(p: Path, source: str, latest: datetime) -> Iterator[SourcedObject]:
    try:
        with _open_text(p) as handle:
            text = handle.read(MAX_DOCUMENT_CHARS + 1)
    except _READ_ERRORS as exc:
        yield SourcedObject(source, 0, None, f"cannot read: {exc}")
        return
    if len(text) > MAX_DOCUMENT_CHARS:
        yield SourcedObject(source, 1, None, "JSON document too large")
        return
    try:
        doc = loads(text)
    except _Unreadable as exc:
        yield SourcedObject(source, 1, None, str(exc))
        return
    except json.JSONDecodeError as exc:
        yield SourcedObject(source, exc.lineno, None, f"not JSON: {exc.msg}")
        return
    if isinstance(doc, dict):
        yield _sourced(source, 1, doc, latest)
    elif isinstance(doc, list):
        yield from _array_items(source, doc, latest)
    else:
        yield SourcedObject(source, 1, None, "not a JSON object")


def iter_result_files(paths: list[str]) -> Iterator[Path]:
    """Files given, and result files found recursively under directories given, sorted."""
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = [f for f in p.rglob("*") if f.is_file() and f.name.endswith(RESULT_SUFFIXES)]
            yield from sorted(found)
        else:
            yield p


class ResultsDirError(Exception):
    """The results directory cannot be created or written (bad input: exit status 2)."""


class ResultWriteError(Exception):
    """A record could not be written whole (disk full, I/O error); nothing partial was left."""


class ResultWriter:
    """Appends one JSON object per line to results/YYYY-MM-DD/<start>_<report_id>.jsonl.

    Each record is one `os.write` of one whole line on an O_APPEND descriptor under an
    exclusive `flock`, so two runs writing into the same file never interleave partial lines.
    If a write comes up short (disk full), the file is truncated back to where it was, so a
    reader never sees half a line.
    """

    def __init__(self, out_dir: str | os.PathLike[str], start: str, report_id: str) -> None:
        day = f"{start[0:4]}-{start[4:6]}-{start[6:8]}"  # start is %Y%m%dT%H%M%SZ
        # absolute: the summary says where the file is, whatever the working directory was
        self.path = Path(os.path.abspath(out_dir)) / day / f"{start}_{report_id}.jsonl"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ResultsDirError(f"{out_dir}: results directory not writable ({reason})") from exc
        self.records_written = 0

    def write(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            size_before = os.fstat(self._fd).st_size
            try:
                written = os.write(self._fd, line)
            except OSError as exc:
                self._truncate(size_before)
                raise ResultWriteError(f"{self.path}: {exc.strerror or exc}") from exc
            if written != len(line):
                self._truncate(size_before)
                raise ResultWriteError(f"{self.path}: short write (disk full?)")
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self.records_written += 1

    def _truncate(self, size: int) -> None:
        try:
            os.ftruncate(self._fd, size)
        except OSError:
            pass

    def close(self) -> None:
        if self._fd >= 0:
            try:
                os.fsync(self._fd)
            except OSError:
                pass
            os.close(self._fd)
            self._fd = -1
        # An empty results file (nothing measured) is noise for researchers.
        try:
            if self.records_written == 0 and self.path.stat().st_size == 0:
                self.path.unlink()
        except OSError:
            pass
