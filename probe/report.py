"""Reports over time: many result files (ours and OONI's) → timelines, change events, per-network
tables; text, HTML (inline SVG), CSV and Parquet.

Reading. Our own JSON Lines records go through DuckDB (`read_ndjson_objects`, projected by
`json_transform_strict` onto an explicit column list: the fast path; DuckDB parses in parallel,
Python never sees a record). A file takes the Python path instead when DuckDB cannot read it as
our records (bad line, pretty-printed JSON, wrong types) or when any of its rows is not one of our
records with a verdict (OONI measurements: `software_name` is not "probe", or
`test_keys.verdict` is missing), with a believable time and without NaN or Infinity
(`results.time_problem` and `results.loads` decide those in Python). The Python path reads
objects with `results.iter_json_objects`, converts OONI measurements with
`ooni.records_from_measurement` and analyses records without a verdict with `analysis.analyze`;
every line it cannot use is counted with its reason. Files DuckDB rejects are found by
bisection, so clean data costs one DuckDB call.

Identical records (the same content hash: `results.content_hash`, SHA-256 of the canonical JSON)
count once; records with the same (report_id, input, measurement_start_time) but different
content are all kept and reported as conflicts (`_deduplicate`). Filters are SQL predicates; a
--service/--asn/--cc value that no record has is reported in `Report.unmatched`.
OONI measurements without a `report_id` (OONI's simulated-censorship data) get a stable one
derived from their content (`ooni.derived_report_id`), as in `probe analyze`. A skipped line's
reason names what was missing (no test_keys, no measurement_start_time, no report_id, ...).

Change detection (see `detect_changes`): per series (target, ASN, country) in time order,
inconclusive runs are ignored (they neither confirm nor break a state); a new status is accepted
when it is seen in `confirm_runs` consecutive conclusive runs (default 2), so one odd run between
agreeing runs is noise; a new blocking method inside an accepted blocking period likewise. A time
without any conclusive run longer than `max_gap` (default 24 h) is reported as a gap, and a
candidate state never spans a gap; if the state after a gap differs from the one before, the event
is marked `across_gap` (it happened somewhere inside the gap).

Outputs treat every string from a record (target ids, services, ASNs, countries, methods, file
names, skip reasons) as hostile: the HTML page escapes it everywhere, the SVG `<title>`s and
attributes included; the CSV prefixes a text cell that a spreadsheet would read as a formula
(first character `=`, `+`, `-`, `@`, tab or CR) with a single quote, as OWASP recommends; the text
and rich terminal outputs remove terminal control sequences and control characters
(`terminal_safe`) and never read record text as rich markup.
"""

from __future__ import annotations

import dataclasses
import html
import importlib
import json
import os
import re
import secrets
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from probe import results

STATUSES = ("ok", "blocked", "down", "inconclusive")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

#: Columns of our records the report uses, as `read_json` column types (bench/bench_report.py's
#: floor reads them so); the fast path reads the same through RECORD_STRUCTURE.
RECORD_COLUMNS: dict[str, str] = {
    "software_name": "VARCHAR",
    "test_name": "VARCHAR",
    "input": "VARCHAR",
    "report_id": "VARCHAR",
    "measurement_start_time": "VARCHAR",
    "probe_asn": "VARCHAR",
    "probe_cc": "VARCHAR",
    "test_keys": (
        "STRUCT(target STRUCT(service VARCHAR), "
        "verdict STRUCT(status VARCHAR, blocking VARCHAR, confirmed BOOLEAN))"
    ),
}

#: The same columns as the JSON structure `json_transform_strict` extracts on the fast path
#: (strict: a missing key, a duplicate key or a value of the wrong type makes it fail, `try` makes
#: that a NULL, and the file takes the Python path); `test_start_time` is read to be checked.
RECORD_STRUCTURE = json.dumps(
    {
        "software_name": "VARCHAR",
        "test_name": "VARCHAR",
        "input": "VARCHAR",
        "report_id": "VARCHAR",
        "measurement_start_time": "VARCHAR",
        "test_start_time": "VARCHAR",
        "probe_asn": "VARCHAR",
        "probe_cc": "VARCHAR",
        "test_keys": {
            "target": {"service": "VARCHAR"},
            "verdict": {"status": "VARCHAR", "blocking": "VARCHAR", "confirmed": "BOOLEAN"},
        },
    }
)

ROW_SCHEMA = (
    "time TIMESTAMP, probe_asn VARCHAR, probe_cc VARCHAR, input VARCHAR, service VARCHAR, "
    "status VARCHAR, blocking VARCHAR, confirmed BOOLEAN, report_id VARCHAR, source VARCHAR"
)
#: The columns of table `rows` and of the CSV and Parquet files. `conflict`: another record with
#: the same report_id, input and time but different content was read (both are kept).
ROW_COLUMNS = (
    "time",
    "probe_asn",
    "probe_cc",
    "input",
    "service",
    "status",
    "blocking",
    "confirmed",
    "report_id",
    "source",
    "conflict",
)
#: What one record yields (ROW_SCHEMA); `conflict` is known once every file has been read.
RECORD_FIELDS = ROW_COLUMNS[:-1]

#: Staging: the record's fields, whether the row is one of our records with a usable verdict
#: (`ours`), the SHA-256 of its line as DuckDB read it (fast path), the SHA-256 of its canonical
#: JSON (`results.content_hash`: the Python path, and fast rows whose identity is in question)
#: and its line number (Python path).
_STAGED_SCHEMA = f"{ROW_SCHEMA}, ours BOOLEAN, line_hash BLOB, content_hash BLOB, line INTEGER"

#: The fast path: each line of the files as DuckDB's JSON reader sees it, projected onto
#: RECORD_FIELDS, plus `ours` (a file with any row that is not `ours` takes the Python path): one
#: of our records with a verdict, a believable time (results.time_problem: 2000 to $latest, in
#: our format), nothing that might be NaN or Infinity and at most 512 `{` and `[` (DuckDB reads
#: NaN, Infinity and any nesting; Python refuses them and nesting deeper than ~1,000 levels, so
#: such a file is left to Python to decide — a string holding the word or the brackets included:
#: our records hold about 50).
_FAST_SELECT = """
SELECT
    try_strptime(r.measurement_start_time, '%Y-%m-%d %H:%M:%S') AS time,
    coalesce(r.probe_asn, 'AS0') AS probe_asn,
    coalesce(r.probe_cc, 'ZZ') AS probe_cc,
    r.input,
    coalesce(r.test_keys.target.service, r.test_name) AS service,
    r.test_keys.verdict.status AS status,
    r.test_keys.verdict.blocking AS blocking,
    coalesce(r.test_keys.verdict.confirmed, false) AS confirmed,
    r.report_id,
    filename AS source,
    (r IS NOT NULL AND r.software_name IS NOT DISTINCT FROM 'probe'
     AND r.test_keys.verdict.status IN ('ok', 'blocked', 'down', 'inconclusive')
     AND time IS NOT NULL AND r.input IS NOT NULL
     AND r.report_id IS NOT NULL AND r.report_id <> ''
     AND service IS NOT NULL
     AND time BETWEEN $earliest AND $latest
     AND (r.test_start_time IS NULL OR coalesce(
         try_strptime(r.test_start_time, '%Y-%m-%d %H:%M:%S') BETWEEN $earliest AND $latest,
         false))
     AND NOT contains(json, 'NaN') AND NOT contains(json, 'Infinity')
     AND length(json) - length(replace(replace(json, '{', ''), '[', '')) <= 512) AS ours,
    unhex(sha256(json)) AS line_hash,
    NULL::BLOB AS content_hash,
    NULL::INTEGER AS line
FROM (
    SELECT try(json_transform_strict(json, $structure)) AS r, json, filename
    FROM read_ndjson_objects($files, filename = true)
)
"""


class ReportInputError(ValueError):
    """A path or option the report cannot use (one line, for the command line)."""


@dataclass(frozen=True, slots=True)
class ReportFilters:
    """Which rows the report keeps. Times are naive UTC; since inclusive, until exclusive."""

    since: datetime | None = None
    until: datetime | None = None
    services: tuple[str, ...] = ()
    asns: tuple[str, ...] = ()
    ccs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ChangeRule:
    """The noise-robust change rule (module docstring)."""

    confirm_runs: int = 2
    max_gap: timedelta = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class SkippedLine:
    source: str
    line: int
    reason: str


@dataclass(frozen=True, slots=True)
class ConflictingRecord:
    """A record that shares report_id, input and time with another of different content (both
    are kept): where its first copy is (line None when not known) and its content identity."""

    source: str
    line: int | None
    report_id: str
    input: str
    time: datetime
    identity: bytes

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}" if self.line else self.source


@dataclass(frozen=True, slots=True)
class UnmatchedFilter:
    """A --service/--asn/--cc option whose values `missing` no record read has; `present`: the
    values the records have."""

    option: str
    missing: tuple[str, ...]
    present: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Segment:
    """Consecutive conclusive runs of one series in one state (status, blocking)."""

    status: str
    blocking: str | None
    runs: int
    first: datetime
    last: datetime
    gap_before: bool = False


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    kind: str  # blocking_started | blocking_ended | method_changed | outage_started | ...
    service: str
    input: str
    probe_asn: str
    probe_cc: str
    old_status: str
    old_blocking: str | None
    new_status: str
    new_blocking: str | None
    last_old: datetime  # last observation in the old state
    first_new: datetime  # first observation in the new state
    across_gap: bool = False


@dataclass(frozen=True, slots=True)
class DataGap:
    service: str
    input: str
    probe_asn: str
    probe_cc: str
    last_before: datetime
    first_after: datetime


@dataclass(frozen=True, slots=True)
class SeriesSummary:
    """One target on one network: latest status, share of runs blocked, most common method."""

    service: str
    input: str
    probe_asn: str
    probe_cc: str
    runs: int
    conclusive_runs: int
    blocked_runs: int
    confirmed_runs: int
    method: str | None
    first_time: datetime
    latest_time: datetime
    latest_status: str
    latest_blocking: str | None

    @property
    def network(self) -> str:
        return f"{self.probe_asn} {self.probe_cc}"

    @property
    def share_blocked(self) -> float | None:
        return self.blocked_runs / self.conclusive_runs if self.conclusive_runs else None


@dataclass
class Report:
    """The flattened rows live in DuckDB table `rows` of `connection`; the rest is summarised."""

    connection: duckdb.DuckDBPyConnection
    filters: ReportFilters
    rule: ChangeRule
    files: int
    records_read: int
    duplicates: int
    skipped: list[SkippedLine]
    skipped_total: int
    series: list[SeriesSummary] = field(default_factory=list)
    events: list[ChangeEvent] = field(default_factory=list)
    gaps: list[DataGap] = field(default_factory=list)
    #: records kept side by side because they share their keys but not their content
    conflicts: list[ConflictingRecord] = field(default_factory=list)
    conflicts_total: int = 0
    #: filter values that match no record read (the command line refuses them, exit 2)
    unmatched: list[UnmatchedFilter] = field(default_factory=list)

    @property
    def rows(self) -> int:
        found = self.connection.execute("SELECT count(*) FROM rows").fetchone()
        return int(found[0]) if found else 0

    @property
    def services(self) -> list[str]:
        return sorted({s.service for s in self.series})

    def skipped_summary(self, limit: int = 5) -> str | None:
        """'3 lines skipped in 2 files: a.jsonl:4 (not JSON: …), …' or None."""
        if not self.skipped_total:
            return None
        files = len({s.source for s in self.skipped})
        examples = ", ".join(f"{s.source}:{s.line} ({s.reason})" for s in self.skipped[:limit])
        more = " …" if self.skipped_total > limit else ""
        lines = "line" if self.skipped_total == 1 else "lines"
        in_files = "file" if files == 1 else "files"
        return f"{self.skipped_total} {lines} skipped in {files} {in_files}: {examples}{more}"

    def conflicts_summary(self, limit: int = 5) -> str | None:
        """'2 conflicting records (same report_id, input and time, different content; both
        kept): a.jsonl:3, evil.jsonl:1' or None."""
        if not self.conflicts_total:
            return None
        examples = ", ".join(c.where for c in self.conflicts[:limit])
        more = " …" if self.conflicts_total > limit else ""
        records = "record" if self.conflicts_total == 1 else "records"
        return (
            f"{self.conflicts_total} conflicting {records} (same report_id, input and time, "
            f"different content; all kept): {examples}{more}"
        )

    def unmatched_summary(self, limit: int = 20) -> str | None:
        """'--service telegarm matched no record (services in the data: signal, telegram)' for
        each filter that matched nothing, on one line; None when every value matched."""
        if not self.unmatched:
            return None
        what = {"--service": "services", "--asn": "ASNs", "--cc": "countries"}
        parts = []
        for u in self.unmatched:
            shown = [_clip(v) for v in u.present[:limit]]
            if len(u.present) > limit:
                shown.append(f"… {len(u.present) - limit} more")
            there = (
                f"{what.get(u.option, 'values')} in the data: {', '.join(shown)}"
                if shown
                else "no records were read"
            )
            missing = ",".join(_clip(v) for v in u.missing)
            parts.append(f"{u.option} {missing} matched no record ({there})")
        return terminal_safe("; ".join(parts))


# --- options --------------------------------------------------------------------------------


def parse_time(text: str, option: str) -> datetime:
    """An ISO date or datetime; naive means UTC, aware is converted. Returns naive UTC."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ReportInputError(
            f"{option}: {text!r} is not an ISO date or datetime (e.g. 2024-03-01 or "
            "2024-03-01T12:00Z)"
        ) from None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _split(values: Iterable[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def make_filters(
    since: str | None = None,
    until: str | None = None,
    services: Iterable[str] = (),
    asns: Iterable[str] = (),
    ccs: Iterable[str] = (),
) -> ReportFilters:
    """Filters from command-line text: ASNs as AS1234 or 1234, countries any case, commas ok."""
    start = parse_time(since, "--since") if since else None
    end = parse_time(until, "--until") if until else None
    if start is not None and end is not None and end <= start:
        raise ReportInputError("--until must be later than --since")
    asn_list = []
    for asn in _split(asns):
        digits = asn[2:] if asn.upper().startswith("AS") else asn
        if not digits.isdigit():
            raise ReportInputError(f"--asn: {asn!r} is not an AS number (e.g. AS44244)")
        asn_list.append(f"AS{int(digits)}")
    cc_list = []
    for cc in _split(ccs):
        if len(cc) != 2 or not cc.isalpha():
            raise ReportInputError(f"--cc: {cc!r} is not a two-letter country code")
        cc_list.append(cc.upper())
    return ReportFilters(start, end, tuple(_split(services)), tuple(asn_list), tuple(cc_list))


def _filter_sql(filters: ReportFilters) -> tuple[str, dict[str, Any]]:
    clauses, params = ["time IS NOT NULL"], dict[str, Any]()
    if filters.since is not None:
        clauses.append("time >= $since")
        params["since"] = filters.since
    if filters.until is not None:
        clauses.append("time < $until")
        params["until"] = filters.until
    for name, column, values in (
        ("services", "service", filters.services),
        ("asns", "probe_asn", filters.asns),
        ("ccs", "probe_cc", filters.ccs),
    ):
        if values:
            clauses.append(f"list_contains(${name}, {column})")
            params[name] = list(values)
    return " AND ".join(clauses), params


# --- reading ---------------------------------------------------------------------------------


def _result_files(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    for raw in paths:
        if not Path(raw).exists():
            raise ReportInputError(f"{os.fspath(raw)}: no such file or directory")
    seen: dict[Path, None] = {}
    for path in results.iter_result_files([os.fspath(p) for p in paths]):
        seen.setdefault(path, None)
    return list(seen)


def _load_fast(con: duckdb.DuckDBPyConnection, files: list[str], latest: datetime) -> list[str]:
    """Insert every file DuckDB reads as JSON Lines into `staged`; return the files it refused.

    One call for clean data; on an error the batch is halved until the bad files are isolated."""
    refused: list[str] = []
    pending = [files] if files else []
    while pending:
        batch = pending.pop()
        try:
            con.execute(
                f"INSERT INTO staged {_FAST_SELECT}",
                {
                    "files": batch,
                    "structure": RECORD_STRUCTURE,
                    "earliest": results.EARLIEST_TIME,
                    "latest": latest,
                },
            )
        except duckdb.Error:
            if len(batch) == 1:
                refused.append(batch[0])
            else:
                middle = len(batch) // 2
                pending += [batch[middle:], batch[:middle]]
    return refused


def _optional(module: str) -> Any | None:
    """probe.ooni / probe.analysis, imported lazily: the report works without them."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _verdict_of(record: dict[str, Any], analysis: Any | None) -> tuple[Any, str | None]:
    """(verdict, None) from the record, or from re-analysis; (None, reason) when neither works."""
    test_keys = record.get("test_keys")
    verdict = test_keys.get("verdict") if isinstance(test_keys, dict) else None
    if isinstance(verdict, dict) and verdict.get("status") in STATUSES:
        return verdict, None
    if analysis is None:
        return None, "record without a verdict (probe.analysis not available)"
    try:
        return analysis.analyze(record).verdict, None
    except Exception as exc:  # a record the analyser cannot handle must not end the report
        return None, f"cannot analyse: {type(exc).__name__}: {exc}"


def _row(record: dict[str, Any], verdict: Any, source: str) -> tuple[Any, ...] | str:
    """One flattened row, or the reason the record cannot become one."""
    status = _field(verdict, "status")
    if status not in STATUSES:
        return f"unknown verdict status {status!r}"
    when = record.get("measurement_start_time")
    try:
        time = datetime.strptime(str(when), TIME_FORMAT)
    except ValueError:
        return f"bad measurement_start_time {when!r}"
    test_keys = record.get("test_keys")
    if not isinstance(test_keys, dict):
        test_keys = {}
    target = test_keys.get("target")
    if not isinstance(target, dict):
        target = {}
    service = target.get("service") or record.get("test_name")
    target_id, report_id = record.get("input"), record.get("report_id")
    if not isinstance(target_id, str) or not target_id:
        return "record without input (target id)"
    if not isinstance(report_id, str) or not report_id:
        return "record without report_id"
    if not isinstance(service, str) or not service:
        return "record without test_name (service)"
    blocking = _field(verdict, "blocking")
    return (
        time,
        str(record.get("probe_asn") or "AS0"),
        str(record.get("probe_cc") or "ZZ"),
        target_id,
        service,
        status,
        None if blocking is None else str(blocking),
        bool(_field(verdict, "confirmed")),
        report_id,
        source,
    )


def _python_rows(path: str, skipped: Callable[[SkippedLine], None]) -> Iterator[tuple[Any, ...]]:
    """Rows of a file DuckDB could not take: our records line by line, OONI measurements. Each
    is RECORD_FIELDS followed by the content hash of the object read (`results.content_hash`;
    an OONI measurement's records share it) and its line number."""
    ooni = analysis = None
    items = results.iter_json_objects(path)
    while True:
        try:
            item = next(items)
        except StopIteration:
            return
        except (OSError, EOFError, zlib.error) as exc:  # a corrupt .gz stream
            skipped(SkippedLine(path, 0, f"cannot read: {exc}"))
            return
        if item.obj is None:
            skipped(SkippedLine(item.source, item.line, item.error or "unreadable"))
            continue
        obj = item.obj
        if not isinstance(obj.get("test_keys"), dict):
            skipped(
                SkippedLine(
                    item.source, item.line, "not a measurement record (no test_keys object)"
                )
            )
            continue
        if "measurement_start_time" not in obj:
            why = "not a measurement record (no measurement_start_time)"
            skipped(SkippedLine(item.source, item.line, why))
            continue
        if obj.get("software_name") == "probe":
            records: list[dict[str, Any]] = [obj]
        else:
            ooni = ooni or _optional("probe.ooni")
            if ooni is None:
                skipped(
                    SkippedLine(
                        item.source, item.line, "OONI measurement (probe.ooni not available)"
                    )
                )
                continue
            try:
                records = list(ooni.records_from_measurement(obj))
            except Exception as exc:  # bad measurement content: count it, keep going
                skipped(
                    SkippedLine(item.source, item.line, f"cannot convert OONI measurement: {exc}")
                )
                continue
            if not records:
                problem = ooni.measurement_problem(obj)
                why = (
                    f"not a measurement record ({problem})"
                    if problem
                    else f"OONI {obj.get('test_name')} measurement holds no observations"
                )
                skipped(SkippedLine(item.source, item.line, why))
                continue
        try:
            digest = results.content_hash(obj)
        except ValueError as exc:  # nested just deep enough to parse but not to serialise
            skipped(SkippedLine(item.source, item.line, str(exc)))
            continue
        for record in records:
            analysis = analysis or _optional("probe.analysis")
            verdict, reason = _verdict_of(record, analysis)
            row = reason or _row(record, verdict, item.source)
            if isinstance(row, str):
                skipped(SkippedLine(item.source, item.line, row))
            else:
                yield (*row, digest, item.line)


def _insert_rows(con: duckdb.DuckDBPyConnection, rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    names = (*RECORD_FIELDS, "content_hash", "line")
    columns = list(zip(*rows, strict=True))
    params = {name: list(values) for name, values in zip(names, columns, strict=True)}
    fields = ", ".join(f"unnest(${name})" for name in RECORD_FIELDS)
    con.execute(
        f"INSERT INTO staged SELECT {fields}, true, NULL, unnest($content_hash), unnest($line)",
        params,
    )


# --- change detection -----------------------------------------------------------------------


def event_kind(old_status: str, new_status: str) -> str:
    """The name of a change between two conclusive statuses (method changes: both blocked)."""
    if old_status == "blocked" and new_status == "blocked":
        return "method_changed"
    if new_status == "blocked":
        return "blocking_started"
    if old_status == "blocked":
        return "blocking_ended"
    if new_status == "down":
        return "outage_started"
    if old_status == "down":
        return "outage_ended"
    return "status_changed"


def segments_of(
    observations: Iterable[tuple[datetime, str, str | None]], max_gap: timedelta
) -> list[Segment]:
    """(time, status, blocking) observations of one series → segments (inconclusive dropped)."""
    found: list[Segment] = []
    for time, status, blocking in sorted(observations, key=lambda o: o[0]):
        if status == "inconclusive":
            continue
        method = blocking if status == "blocked" else None
        previous = found[-1] if found else None
        gap = previous is not None and time - previous.last > max_gap
        if previous and not gap and (previous.status, previous.blocking) == (status, method):
            found[-1] = Segment(
                status, method, previous.runs + 1, previous.first, time, previous.gap_before
            )
        else:
            found.append(Segment(status, method, 1, time, time, gap))
    return found


@dataclass(slots=True)
class _Candidate:
    """A state seen lately that is not (yet) the accepted one."""

    key: str | None  # the status (status level) or the blocking method (method level)
    runs: int
    first: datetime
    methods: Counter[str | None] = field(default_factory=Counter)


Change = tuple[str, str | None, str, str | None, datetime, datetime, bool]


def detect_changes(
    segments: Iterable[Segment], rule: ChangeRule
) -> tuple[list[Change], list[tuple[datetime, datetime]]]:
    """Accepted changes and gaps of one series, from its segments in time order.

    Returns (changes, gaps): a change is (old_status, old_blocking, new_status, new_blocking,
    last_old, first_new, across_gap); a gap is (last_before, first_after). The first accepted
    state of a series is where it starts, not a change."""
    changes: list[Change] = []
    gaps: list[tuple[datetime, datetime]] = []
    status: str | None = None  # the accepted state
    method: str | None = None
    last_in_state: datetime | None = None  # last run in the accepted status
    last_in_method: datetime | None = None  # last run in the accepted blocking method
    candidate: _Candidate | None = None
    method_candidate: _Candidate | None = None
    previous_last: datetime | None = None
    across_gap = False  # a gap came after the last run in the accepted state
    for seg in segments:
        if seg.gap_before and previous_last is not None:
            gaps.append((previous_last, seg.first))
            candidate = method_candidate = None
            across_gap = True
        previous_last = seg.last
        if seg.status == status:
            candidate = None
            last_in_state = seg.last
            if status != "blocked" or seg.blocking == method:
                method_candidate = None
                last_in_method = seg.last
                across_gap = False
                continue
            if method_candidate is None or method_candidate.key != seg.blocking:
                method_candidate = _Candidate(seg.blocking, 0, seg.first)
            method_candidate.runs += seg.runs
            if method_candidate.runs >= rule.confirm_runs and last_in_method is not None:
                changes.append(
                    (
                        "blocked",
                        method,
                        "blocked",
                        seg.blocking,
                        last_in_method,
                        method_candidate.first,
                        across_gap,
                    )
                )
                method, last_in_method = seg.blocking, seg.last
                method_candidate = None
                across_gap = False
            continue
        method_candidate = None
        if candidate is None or candidate.key != seg.status:
            candidate = _Candidate(seg.status, 0, seg.first)
        candidate.runs += seg.runs
        candidate.methods[seg.blocking] += seg.runs
        if candidate.runs < rule.confirm_runs:
            continue
        # the method of the new state: the one with most runs, ties to the latest seen
        most = max(candidate.methods.values())
        new_method = [m for m, n in candidate.methods.items() if n == most][-1]
        if status is not None and last_in_state is not None:
            changes.append(
                (status, method, seg.status, new_method, last_in_state, candidate.first, across_gap)
            )
        status, method = seg.status, new_method
        last_in_state = last_in_method = seg.last
        candidate = None
        across_gap = False
    return changes, gaps


_SEGMENTS_SQL = """
WITH conclusive AS (
    SELECT service, input, probe_asn, probe_cc, time, status,
           CASE WHEN status = 'blocked' THEN blocking END AS method
    FROM rows WHERE status <> 'inconclusive'
), marked AS (
    SELECT *,
        time - lag(time) OVER series > $max_gap AS gap_before,
        lag(status) OVER series IS DISTINCT FROM status
            OR lag(method) OVER series IS DISTINCT FROM method
            OR time - lag(time) OVER series > $max_gap AS starts
    FROM conclusive
    WINDOW series AS (PARTITION BY input, probe_asn, probe_cc ORDER BY time)
), numbered AS (
    SELECT *, sum(starts::INTEGER) OVER (
        PARTITION BY input, probe_asn, probe_cc ORDER BY time ROWS UNBOUNDED PRECEDING
    ) AS segment
    FROM marked
)
SELECT service, input, probe_asn, probe_cc, any_value(status), any_value(method), count(*),
       min(time), max(time), coalesce(bool_or(gap_before), false)
FROM numbered
GROUP BY service, input, probe_asn, probe_cc, segment
ORDER BY input, probe_asn, probe_cc, min(time)
"""


def _changes_and_gaps(
    con: duckdb.DuckDBPyConnection, rule: ChangeRule
) -> tuple[list[ChangeEvent], list[DataGap]]:
    events: list[ChangeEvent] = []
    gaps: list[DataGap] = []
    found = con.execute(_SEGMENTS_SQL, {"max_gap": rule.max_gap}).fetchall()
    index = 0
    while index < len(found):
        key = found[index][:4]
        end = index
        while end < len(found) and found[end][:4] == key:
            end += 1
        segments = [Segment(r[4], r[5], r[6], r[7], r[8], r[9]) for r in found[index:end]]
        index = end
        service, target, asn, cc = key
        changes, series_gaps = detect_changes(segments, rule)
        for old_s, old_m, new_s, new_m, last_old, first_new, across in changes:
            events.append(
                ChangeEvent(
                    event_kind(old_s, new_s),
                    service,
                    target,
                    asn,
                    cc,
                    old_s,
                    old_m,
                    new_s,
                    new_m,
                    last_old,
                    first_new,
                    across,
                )
            )
        gaps += [DataGap(service, target, asn, cc, a, b) for a, b in series_gaps]
    events.sort(key=lambda e: (e.first_new, e.service, e.input, e.probe_asn))
    gaps.sort(key=lambda g: (g.last_before, g.probe_asn, g.input))
    return events, gaps


_SERIES_SQL = """
SELECT service, input, probe_asn, probe_cc,
       count(*),
       count(*) FILTER (WHERE status <> 'inconclusive'),
       count(*) FILTER (WHERE status = 'blocked'),
       count(*) FILTER (WHERE status = 'blocked' AND confirmed),
       mode(blocking) FILTER (WHERE status = 'blocked'),
       min(time), max(time),
       arg_max(status, time), arg_max_null(blocking, time)
FROM rows
GROUP BY service, input, probe_asn, probe_cc
ORDER BY service, input, probe_asn, probe_cc
"""


# --- building --------------------------------------------------------------------------------


#: Keys of the rows of one (report_id, input, time) read more than once.
_COLLIDED_SQL = """
CREATE TEMP TABLE collided AS
WITH keys AS (
    SELECT report_id, input, time FROM staged WHERE {where}
    GROUP BY report_id, input, time HAVING count(*) > 1
)
SELECT report_id, input, time,
       count(DISTINCT line_hash) > 1 OR count(content_hash) > 0 AS mixed
FROM staged SEMI JOIN keys USING (report_id, input, time)
WHERE {where}
GROUP BY report_id, input, time
"""


def _deduplicate(
    con: duckdb.DuckDBPyConnection, where: str, params: dict[str, Any]
) -> tuple[list[ConflictingRecord], int]:
    """Table `rows` from the rows of `staged` the filters keep: identical records (the same
    content hash) count once; records that share report_id, input and time but differ in content
    are all kept, marked `conflict`, and returned (first 1000, with the total count) — a crafted
    record cannot replace a real one by copying its keys.

    Identity is the SHA-256 of the line as read when every copy came through the fast path with
    the same bytes (the usual duplicate: a file copied or sent twice); otherwise the content hash
    of the canonical JSON, computed in Python for just those fast-path lines."""
    fields = ", ".join(RECORD_FIELDS)
    con.execute(_COLLIDED_SQL.format(where=where), params)
    found = con.execute("SELECT count(*), count(*) FILTER (WHERE mixed) FROM collided").fetchone()
    collided, mixed = (int(found[0]), int(found[1])) if found else (0, 0)
    if mixed:
        _hash_contents(con, where, params)
    identity = "coalesce(content_hash, line_hash)"
    con.execute(
        f"""CREATE TABLE rows AS
        SELECT DISTINCT ON (report_id, input, time, {identity}) {fields}, false AS conflict
        FROM staged WHERE {where}""",
        params,
    )
    conflicts: list[ConflictingRecord] = []
    total = 0
    if collided:
        con.execute(
            f"""CREATE TEMP TABLE conflicted AS
            SELECT report_id, input, time FROM staged
            SEMI JOIN collided USING (report_id, input, time)
            WHERE {where}
            GROUP BY report_id, input, time HAVING count(DISTINCT {identity}) > 1""",
            params,
        )
        con.execute(
            "UPDATE rows SET conflict = true FROM conflicted AS c WHERE rows.report_id = "
            "c.report_id AND rows.input = c.input AND rows.time = c.time"
        )
        # one entry per distinct content: its first copy (by file name, line)
        listed = con.execute(
            f"""SELECT first.source, first.line, report_id, input, time, count(*) OVER (),
                   identity
            FROM (
                SELECT min({{'source': source, 'line': coalesce(line, 0)}}) AS first,
                       report_id, input, time, {identity} AS identity
                FROM staged SEMI JOIN conflicted USING (report_id, input, time)
                WHERE {where}
                GROUP BY report_id, input, time, identity
            )
            ORDER BY time, report_id, input, first.source, first.line
            LIMIT 1000""",
            params,
        ).fetchall()
        total = int(listed[0][5]) if listed else 0
        conflicts = _with_line_numbers(
            [ConflictingRecord(r[0], r[1] or None, r[2], r[3], r[4], r[6]) for r in listed]
        )
        con.execute("DROP TABLE conflicted")
    con.execute("DROP TABLE collided")
    return conflicts, total


def _hash_contents(con: duckdb.DuckDBPyConnection, where: str, params: dict[str, Any]) -> None:
    """Content hashes for the fast-path rows whose identity is in question: those sharing their
    keys with a row of another line hash, or with a row of the Python path."""
    con.execute(
        f"""CREATE TEMP TABLE needed AS
        SELECT DISTINCT source, line_hash FROM staged
        SEMI JOIN (SELECT report_id, input, time FROM collided WHERE mixed)
            USING (report_id, input, time)
        WHERE {where} AND content_hash IS NULL AND line_hash IS NOT NULL""",
        params,
    )
    files = [r[0] for r in con.execute("SELECT DISTINCT source FROM needed ORDER BY 1").fetchall()]
    mapping: tuple[list[bytes], list[bytes]] = ([], [])
    if not files:
        con.execute("DROP TABLE needed")
        return
    seen: set[bytes] = set()
    try:
        # a few files at a time: DuckDB hands a query's whole result over at once, and in a set
        # where every record is in conflict that would be every line
        for first in range(0, len(files), 64):
            found = con.execute(
                """SELECT line_hash, json FROM (
                    SELECT unhex(sha256(json)) AS line_hash, json
                    FROM read_ndjson_objects($files)
                ) SEMI JOIN (SELECT DISTINCT line_hash FROM needed) USING (line_hash)""",
                {"files": files[first : first + 64]},
            ).fetchall()
            for line_hash, text in found:
                if line_hash in seen:
                    continue
                seen.add(line_hash)
                try:
                    digest = results.content_hash(results.loads(text))
                except ValueError:  # not for a line DuckDB took as ours; it keeps its line hash
                    continue
                mapping[0].append(line_hash)
                mapping[1].append(digest)
            del found
    except duckdb.Error:  # a file changed since it was read: its lines keep their line hash
        pass
    con.execute("DROP TABLE needed")
    if mapping[0]:
        con.execute(
            """UPDATE staged SET content_hash = m.content_hash
            FROM (SELECT unnest($lines) AS line_hash, unnest($contents) AS content_hash) AS m
            WHERE staged.line_hash = m.line_hash""",
            {"lines": mapping[0], "contents": mapping[1]},
        )


def _with_line_numbers(conflicts: list[ConflictingRecord]) -> list[ConflictingRecord]:
    """Line numbers for conflicting records read on the fast path (DuckDB does not say which
    line a row came from): the files are read again in Python, only for the first 200 listed."""
    wanted: dict[str, dict[tuple[str, str, datetime, bytes], int]] = {}
    for index, c in enumerate(conflicts[:200]):
        if c.line is None:
            wanted.setdefault(c.source, {})[(c.report_id, c.input, c.time, c.identity)] = index
    found = list(conflicts)
    for source, keys in wanted.items():
        triples = {k[:3] for k in keys}
        for item in results.iter_json_objects(source):
            obj = item.obj
            if obj is None:
                continue
            try:
                when = datetime.strptime(str(obj.get("measurement_start_time")), TIME_FORMAT)
            except ValueError:
                continue
            report_id, target = obj.get("report_id"), obj.get("input")
            if not isinstance(report_id, str) or not isinstance(target, str):
                continue
            if (report_id, target, when) not in triples:
                continue
            try:
                at = keys.get((report_id, target, when, results.content_hash(obj)))
            except ValueError:
                continue
            if at is not None:
                found[at] = dataclasses.replace(found[at], line=item.line)
    return found


def _unmatched_filters(
    con: duckdb.DuckDBPyConnection, filters: ReportFilters
) -> list[UnmatchedFilter]:
    """--service, --asn and --cc values that no record read has, with the values there are."""
    unmatched = []
    for option, column, values in (
        ("--service", "service", filters.services),
        ("--asn", "probe_asn", filters.asns),
        ("--cc", "probe_cc", filters.ccs),
    ):
        if not values:
            continue
        present = [
            str(r[0])
            for r in con.execute(
                f"SELECT DISTINCT {column} FROM staged WHERE time IS NOT NULL ORDER BY 1"
            ).fetchall()
        ]
        known = set(present)
        missing = tuple(v for v in values if v not in known)
        if missing:
            unmatched.append(UnmatchedFilter(option, missing, tuple(present)))
    return unmatched


def build_report(
    paths: Sequence[str | os.PathLike[str]],
    filters: ReportFilters | None = None,
    rule: ChangeRule | None = None,
) -> Report:
    """Read result files and directories (recursively) into one report."""
    filters = filters or ReportFilters()
    rule = rule or ChangeRule()
    if rule.confirm_runs < 1:
        raise ReportInputError("confirm_runs must be at least 1")
    files = [str(p) for p in _result_files(paths)]
    con = duckdb.connect()
    # rows are ordered explicitly where order matters; this lets read_json insert in parallel
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET enable_progress_bar = false")  # stderr is for our own messages
    con.execute(f"CREATE TABLE staged ({_STAGED_SCHEMA})")
    refused = _load_fast(con, files, results.latest_time())
    # a file with any row that is not our record with a verdict is read again in Python
    odd = [
        r[0] for r in con.execute("SELECT DISTINCT source FROM staged WHERE NOT ours").fetchall()
    ]
    if odd:
        con.execute("DELETE FROM staged WHERE list_contains($odd, source)", {"odd": odd})
    skipped: list[SkippedLine] = []
    skipped_total = 0

    def note(line: SkippedLine) -> None:
        nonlocal skipped_total
        skipped_total += 1
        if len(skipped) < 1000:
            skipped.append(line)

    batch: list[tuple[Any, ...]] = []
    for path in sorted(set(refused) | set(odd)):
        for row in _python_rows(path, note):
            batch.append(row)
            if len(batch) >= 10000:
                _insert_rows(con, batch)
                batch = []
    _insert_rows(con, batch)

    unmatched = _unmatched_filters(con, filters)
    where, params = _filter_sql(filters)
    conflicts, conflicts_total = _deduplicate(con, where, params)
    staged_found = con.execute(f"SELECT count(*) FROM staged WHERE {where}", params).fetchone()
    total_found = con.execute("SELECT count(*) FROM staged").fetchone()
    con.execute("DROP TABLE staged")
    report = Report(
        connection=con,
        filters=filters,
        rule=rule,
        files=len(files),
        records_read=int(total_found[0]) if total_found else 0,
        duplicates=0,
        skipped=skipped,
        skipped_total=skipped_total,
        conflicts=conflicts,
        conflicts_total=conflicts_total,
        unmatched=unmatched,
    )
    report.duplicates = (int(staged_found[0]) if staged_found else 0) - report.rows
    report.series = [SeriesSummary(*r) for r in con.execute(_SERIES_SQL).fetchall()]
    report.events, report.gaps = _changes_and_gaps(con, rule)
    return report


# --- outputs ---------------------------------------------------------------------------------


def _atomic_target(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """The final path, checked, and a fresh temporary name beside it (created by the writer, so
    the usual umask applies; renamed over the final path when complete)."""
    final = Path(path)
    if final.is_dir():
        raise ReportInputError(f"{final}: is a directory")
    if not final.parent.is_dir():
        raise ReportInputError(f"{final}: directory {final.parent} does not exist")
    return final, final.parent / f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"


#: Text columns of the rows (the others: TIMESTAMP `time`, BOOLEANs `confirmed` and `conflict`).
TEXT_COLUMNS = tuple(c for c in ROW_COLUMNS if c not in ("time", "confirmed", "conflict"))

#: A CSV cell starting with one of these is a formula to a spreadsheet (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(column: str) -> str:
    """SQL for a text column in CSV: a cell a spreadsheet would read as a formula gets a leading
    single quote (chr(39)), so it is shown as text (OWASP's advice); other cells are left as
    they are."""
    starts = ", ".join(f"chr({ord(c)})" for c in FORMULA_STARTS)
    return (
        f"CASE WHEN left(rows.{column}, 1) IN ({starts}) THEN chr(39) || rows.{column} "
        f"ELSE rows.{column} END AS {column}"
    )


def _copy_rows(report: Report, path: str | os.PathLike[str], fmt: str) -> None:
    final, temp = _atomic_target(path)
    try:
        options = "FORMAT csv, HEADER true" if fmt == "csv" else "FORMAT parquet"
        columns = [
            _csv_cell(c) if fmt == "csv" and c in TEXT_COLUMNS else f"rows.{c}" for c in ROW_COLUMNS
        ]
        # COPY takes no parameter for the path: quote it as an SQL string literal
        literal = "'" + str(temp).replace("'", "''") + "'"
        report.connection.execute(
            f"COPY (SELECT {', '.join(columns)} FROM rows ORDER BY rows.time, rows.probe_asn, "
            f"rows.probe_cc, rows.input) TO {literal} ({options})"
        )
        os.replace(temp, final)
    except duckdb.Error as exc:
        raise ReportInputError(f"{final}: cannot write: {exc}") from None
    finally:
        temp.unlink(missing_ok=True)


def write_csv(report: Report, path: str | os.PathLike[str]) -> None:
    """The flattened rows as CSV with a header (written atomically); text cells that start like a
    formula are prefixed with a single quote (`_csv_cell`)."""
    _copy_rows(report, path, "csv")


def write_parquet(report: Report, path: str | os.PathLike[str]) -> None:
    """The flattened rows as Parquet (written atomically)."""
    _copy_rows(report, path, "parquet")


def write_text_file(path: str | os.PathLike[str], text: str) -> None:
    """Write text atomically: a temporary file in the same directory, then rename."""
    final, temp = _atomic_target(path)
    try:
        with open(temp, "x", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temp, final)
    except OSError as exc:
        raise ReportInputError(f"{final}: cannot write: {exc.strerror or exc}") from None
    finally:
        temp.unlink(missing_ok=True)


#: Whole terminal control sequences: CSI (ESC [ or C1 CSI), the string controls OSC, DCS, SOS,
#: PM and APC with their terminator (BEL, ST or C1 ST; OSC 52 writes the clipboard, OSC 0 the
#: window title, OSC 8 makes links), and other ESC sequences.
_ESCAPE_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)"
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]"
)
_LINE_BREAKS = re.compile(r"[\t\n\v\f\r\x85]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def terminal_safe(text: str) -> str:
    """One field or line of record text made harmless for a terminal: escape sequences removed
    whole, tab and line breaks turned into spaces, every other C0/C1 control character and DEL
    removed (whatever is left of a broken sequence is then plain text)."""
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub("", _LINE_BREAKS.sub(" ", _ESCAPE_SEQUENCE.sub("", text)))


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fmt_time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


def _state(status: str, blocking: str | None) -> str:
    return f"{status}/{blocking}" if status == "blocked" and blocking else status


def _share(summary: SeriesSummary) -> str:
    share = summary.share_blocked
    return "-" if share is None else f"{share:.0%}"


def _event_label(kind: str) -> str:
    return kind.replace("_", " ")


def _header_lines(report: Report) -> list[str]:
    lines = [
        f"{report.rows} records from {report.files} files"
        f" ({report.duplicates} duplicates dropped), {len(report.series)} series,"
        f" {len(report.events)} change events, {len(report.gaps)} gaps",
    ]
    described = describe_filters(report.filters)
    if described:
        lines.append(f"filters: {described}")
    skipped = report.skipped_summary()
    if skipped:
        lines.append(skipped)
    conflicts = report.conflicts_summary()
    if conflicts:
        lines.append(conflicts)
    return lines


def describe_filters(filters: ReportFilters) -> str:
    parts = []
    if filters.since:
        parts.append(f"since {filters.since:%Y-%m-%d %H:%M:%S}")
    if filters.until:
        parts.append(f"until {filters.until:%Y-%m-%d %H:%M:%S}")
    for name, values in (("service", filters.services), ("asn", filters.asns), ("cc", filters.ccs)):
        if values:
            parts.append(f"{name} {','.join(values)}")
    return "; ".join(parts)


def _group_gaps(gaps: Sequence[DataGap]) -> list[tuple[str, str, datetime, datetime, int]]:
    """Gaps per network: overlapping gaps of one network's series (a vantage offline makes every
    target's series gap at about the same time) become one (asn, cc, before, after, series)."""
    merged: list[tuple[str, str, datetime, datetime, int]] = []
    ordered = sorted(gaps, key=lambda g: (g.probe_asn, g.probe_cc, g.last_before))
    for gap in ordered:
        if merged:
            asn, cc, before, after, count = merged[-1]
            if (asn, cc) == (gap.probe_asn, gap.probe_cc) and gap.last_before < after:
                merged[-1] = (asn, cc, before, max(after, gap.first_after), count + 1)
                continue
        merged.append((gap.probe_asn, gap.probe_cc, gap.last_before, gap.first_after, 1))
    return sorted(merged, key=lambda g: (g[2], g[0]))


def render_text(report: Report, max_events: int = 200) -> str:
    """The plain-text summary (used when stdout is not a terminal). Record text goes through
    `terminal_safe` (fields before the columns are measured, then every line once more)."""
    safe = terminal_safe
    out = [safe(line) for line in _header_lines(report)]
    for service in report.services:
        out += ["", f"== {safe(service)} =="]
        rows = [s for s in report.series if s.service == service]
        table = [("target", "network", "latest", "at", "blocked", "method", "runs")]
        table += [
            (
                safe(s.input),
                safe(s.network),
                safe(_state(s.latest_status, s.latest_blocking)),
                _fmt_time(s.latest_time),
                _share(s),
                safe(s.method or "-"),
                str(s.runs),
            )
            for s in rows
        ]
        widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
        out += [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table
        ]
    if report.events:
        out += ["", "== change events (last seen in old state -> first seen in new) =="]
        for e in report.events[-max_events:]:
            gap = "  (across a data gap)" if e.across_gap else ""
            out.append(
                f"{_fmt_time(e.last_old)} -> {_fmt_time(e.first_new)}"
                f"  {safe(e.probe_asn)} {safe(e.probe_cc)}  {safe(e.input)}"
                f"  {_event_label(e.kind)}: {safe(_state(e.old_status, e.old_blocking))}"
                f" -> {safe(_state(e.new_status, e.new_blocking))}{gap}"
            )
        if len(report.events) > max_events:
            out.append(f"({len(report.events) - max_events} earlier events: see --html/--csv)")
    if report.gaps:
        out += ["", "== gaps in data (no conclusive run) =="]
        for asn, cc, before, after, count in _group_gaps(report.gaps):
            hours = (after - before).total_seconds() / 3600
            out.append(
                f"{safe(asn)} {safe(cc)}  {_fmt_time(before)} -> {_fmt_time(after)}"
                f"  ({hours:.0f} h, {count} series)"
            )
    return "\n".join(safe(line) for line in out) + "\n"


_RICH_STYLE = {"ok": "green", "blocked": "bold red", "down": "yellow", "inconclusive": "dim"}


def print_rich(report: Report, console: Any, max_events: int = 200) -> None:
    """The terminal summary as rich tables (colour when the terminal has it). Record text is
    passed as `rich.text.Text` (never parsed as rich markup) after `terminal_safe`."""
    from rich.table import Table
    from rich.text import Text

    def cell(value: str, style: str = "") -> Text:
        return Text(terminal_safe(value), style=style)

    for line in _header_lines(report):
        console.print(cell(line), highlight=False, markup=False)
    for service in report.services:
        table = Table(title=cell(service), title_justify="left", header_style="bold")
        for name in ("target", "network", "latest", "at", "blocked", "method", "runs"):
            table.add_column(name, justify="right" if name in ("blocked", "runs") else "left")
        for s in (s for s in report.series if s.service == service):
            table.add_row(
                cell(s.input),
                cell(s.network),
                cell(
                    _state(s.latest_status, s.latest_blocking),
                    _RICH_STYLE.get(s.latest_status, ""),
                ),
                _fmt_time(s.latest_time),
                _share(s),
                cell(s.method or "-"),
                str(s.runs),
            )
        console.print(table)
    if report.events:
        table = Table(title="change events", title_justify="left", header_style="bold")
        for name in ("last seen old", "first seen new", "network", "target", "event", "change"):
            table.add_column(name)
        for e in report.events[-max_events:]:
            change = (
                f"{_state(e.old_status, e.old_blocking)} → {_state(e.new_status, e.new_blocking)}"
            )
            if e.across_gap:
                change += " (across gap)"
            table.add_row(
                _fmt_time(e.last_old),
                _fmt_time(e.first_new),
                cell(f"{e.probe_asn} {e.probe_cc}"),
                cell(e.input),
                _event_label(e.kind),
                cell(change),
            )
        console.print(table)
        if len(report.events) > max_events:
            console.print(f"({len(report.events) - max_events} earlier events: see --html/--csv)")
    if report.gaps:
        table = Table(title="gaps in data", title_justify="left", header_style="bold")
        for name in ("network", "last run before", "first run after", "hours", "series"):
            table.add_column(name)
        for asn, cc, before, after, count in _group_gaps(report.gaps):
            table.add_row(
                cell(f"{asn} {cc}"),
                _fmt_time(before),
                _fmt_time(after),
                f"{(after - before).total_seconds() / 3600:.0f}",
                str(count),
            )
        console.print(table)


# --- HTML ------------------------------------------------------------------------------------

_COLOURS = {
    "ok": "#2e9e4f",
    "partial": "#f0a030",
    "blocked": "#d62f2f",
    "down": "#6a6fbf",
    "inconclusive": "#c8c8c8",
}
_CLASS_LABEL = {
    "ok": "ok",
    "partial": "some targets blocked",
    "blocked": "all targets blocked",
    "down": "down",
    "inconclusive": "inconclusive only",
}
_BUCKETS = (
    timedelta(hours=1),
    timedelta(hours=2),
    timedelta(hours=3),
    timedelta(hours=6),
    timedelta(hours=12),
    timedelta(days=1),
    timedelta(days=2),
    timedelta(days=7),
    timedelta(days=14),
    timedelta(days=30),
)

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#222;
background:#fff;max-width:1400px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:18px 0 6px}p.meta{color:#555;margin:2px 0}
table{border-collapse:collapse;font-size:12px;margin:6px 0}
th,td{border:1px solid #ddd;padding:3px 6px;text-align:left;white-space:nowrap}
th{background:#f4f4f4;position:sticky;top:0}
td.ok{background:#dff3e4}td.blocked{background:#f8d7d7}td.down{background:#e3e4f5}
td.inconclusive{background:#eee;color:#666}
.scroll{overflow-x:auto;max-width:100%}
.legend span{display:inline-block;margin-right:14px;font-size:12px}
.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-2px}
svg text{font-family:system-ui,sans-serif;font-size:11px;fill:#333}
"""


def _bucket_width(start: datetime, end: datetime, columns: int = 360) -> timedelta:
    span = end - start
    for width in _BUCKETS:
        if span / width <= columns:
            return width
    return _BUCKETS[-1]


def _cell_class(ok: int, blocked: int, down: int, conclusive: int) -> str:
    if conclusive == 0:
        return "inconclusive"
    if blocked:
        return "blocked" if blocked == conclusive else "partial"
    return "down" if down > ok else "ok"


def _timeline_svg(report: Report, service: str, width: int = 1200) -> str:
    """Status over time per network for one service: one lane per network, one cell per bucket."""
    con = report.connection
    bounds = con.execute("SELECT min(time), max(time) FROM rows").fetchone()
    if not bounds or bounds[0] is None:
        return ""
    start, end = bounds[0], bounds[1] + timedelta(seconds=1)
    bucket = _bucket_width(start, end)
    seconds = int(bucket.total_seconds())
    origin = datetime(start.year, start.month, start.day)
    cells = con.execute(
        """
        SELECT probe_asn, probe_cc,
               (epoch(time) - epoch($origin))::BIGINT // $seconds AS slot,
               count(*) FILTER (WHERE status = 'ok'),
               count(*) FILTER (WHERE status = 'blocked'),
               count(*) FILTER (WHERE status = 'down'),
               count(*) FILTER (WHERE status <> 'inconclusive')
        FROM rows WHERE service = $service
        GROUP BY ALL ORDER BY probe_asn, probe_cc, slot
        """,
        {"origin": origin, "seconds": seconds, "service": service},
    ).fetchall()
    networks = sorted({(c[0], c[1]) for c in cells}, key=lambda n: (n[1], n[0]))
    lane_of = {n: i for i, n in enumerate(networks)}
    slots = int((end - origin).total_seconds() // seconds) + 1
    left, top, lane_h, right = 110, 8, 16, 10
    plot_w = width - left - right
    cell_w = plot_w / slots
    height = top + lane_h * len(networks) + 28
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(service)} timeline">'
    ]
    for network, lane in lane_of.items():
        y = top + lane * lane_h
        parts.append(
            f'<text x="{left - 6}" y="{y + 12}" text-anchor="end">'
            f"{html.escape(network[0])} {html.escape(network[1])}</text>"
        )
        parts.append(
            f'<rect x="{left}" y="{y + 1}" width="{plot_w}" height="{lane_h - 2}" fill="#f7f7f7"/>'
        )
    # consecutive cells of one class become one rectangle (keeps the page small)
    runs: list[tuple[int, int, int, str]] = []  # lane, first slot, last slot, class
    for asn, cc, slot, ok, blocked, down, conclusive in cells:
        lane, cls = lane_of[(asn, cc)], _cell_class(ok, blocked, down, conclusive)
        if runs and runs[-1][0] == lane and runs[-1][3] == cls and runs[-1][2] == slot - 1:
            runs[-1] = (lane, runs[-1][1], slot, cls)
        else:
            runs.append((lane, slot, slot, cls))
    for lane, first, last, cls in runs:
        x = left + first * cell_w
        w = (last - first + 1) * cell_w
        t0 = origin + first * bucket
        t1 = origin + (last + 1) * bucket
        parts.append(
            f'<rect x="{x:.1f}" y="{top + lane * lane_h + 1}" width="{w:.2f}" '
            f'height="{lane_h - 2}" fill="{_COLOURS[cls]}"><title>{_CLASS_LABEL[cls]}: '
            f"{_fmt_time(t0)} – {_fmt_time(t1)}</title></rect>"
        )
    for event in report.events:
        lane_index = lane_of.get((event.probe_asn, event.probe_cc))
        if event.service != service or lane_index is None:
            continue
        x = left + (event.first_new - origin).total_seconds() / seconds * cell_w
        y = top + lane_index * lane_h
        parts.append(
            f'<path d="M{x:.1f} {y + lane_h - 1} l-4 -6 h8 z" fill="#111">'
            f"<title>{html.escape(event.input)}: {_event_label(event.kind)} "
            f"({html.escape(_state(event.old_status, event.old_blocking))} → "
            f"{html.escape(_state(event.new_status, event.new_blocking))}), first seen "
            f"{_fmt_time(event.first_new)}</title></path>"
        )
    axis_y = top + lane_h * len(networks) + 4
    parts.append(
        f'<line x1="{left}" y1="{axis_y}" x2="{left + plot_w}" y2="{axis_y}" stroke="#999"/>'
    )
    span_days = max(1, (end - origin).days + 1)
    step = next(d for d in (1, 2, 7, 14, 30, 61, 91, 182, 365, 10**6) if span_days / d <= 12)
    day = origin
    while day <= end:
        x = left + (day - origin).total_seconds() / seconds * cell_w
        parts.append(
            f'<line x1="{x:.1f}" y1="{axis_y}" x2="{x:.1f}" y2="{axis_y + 4}" stroke="#999"/>'
        )
        parts.append(
            f'<text x="{x:.1f}" y="{axis_y + 16}" text-anchor="middle">{day:%Y-%m-%d}</text>'
        )
        day += timedelta(days=step)
    parts.append("</svg>")
    return "".join(parts)


def render_html(report: Report, title: str = "probe report") -> str:
    """One self-contained page: inline CSS and SVG, no script, no external reference."""
    esc = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    bounds = report.connection.execute("SELECT min(time), max(time) FROM rows").fetchone()
    if bounds and bounds[0] is not None:
        out.append(
            f'<p class="meta">Runs from {_fmt_time(bounds[0])} to {_fmt_time(bounds[1])} UTC.</p>'
        )
    out += [f'<p class="meta">{esc(line)}</p>' for line in _header_lines(report)]
    out.append(
        f'<p class="meta">Change rule: a new state counts after {report.rule.confirm_runs} '
        "consecutive conclusive runs; inconclusive runs are ignored; no conclusive run for more "
        f"than {report.rule.max_gap.total_seconds() / 3600:.0f} h is a gap.</p>"
    )
    legend = "".join(
        f'<span><i style="background:{_COLOURS[c]}"></i>{_CLASS_LABEL[c]}</span>' for c in _COLOURS
    )
    out.append(
        f'<p class="legend">{legend}<span>▼ change event</span><span>(blank: no data)</span></p>'
    )
    for service in report.services:
        out.append(f'<h2 id="service-{esc(service)}">{esc(service)}</h2>')
        out.append(
            f'<h3>Status over time per network</h3><div class="scroll">'
            f"{_timeline_svg(report, service)}</div>"
        )
        rows = [s for s in report.series if s.service == service]
        networks = sorted({(s.probe_asn, s.probe_cc) for s in rows}, key=lambda n: (n[1], n[0]))
        targets = sorted({s.input for s in rows})
        by_key = {(s.input, s.probe_asn, s.probe_cc): s for s in rows}
        out.append(
            "<h3>Latest status per network (share of conclusive runs blocked, most "
            'common method)</h3><div class="scroll"><table><tr><th>target</th>'
        )
        out += [f"<th>{esc(a)}<br>{esc(c)}</th>" for a, c in networks]
        out.append("</tr>")
        for target in targets:
            out.append(f"<tr><th>{esc(target)}</th>")
            for asn, cc in networks:
                s = by_key.get((target, asn, cc))
                if s is None:
                    out.append("<td></td>")
                    continue
                detail = f"{_share(s)} blocked" + (f", {s.method}" if s.method else "")
                out.append(
                    f'<td class="{esc(s.latest_status)}" title="latest {_fmt_time(s.latest_time)}'
                    f', {s.runs} runs">{esc(_state(s.latest_status, s.latest_blocking))}<br>'
                    f"<small>{esc(detail)}</small></td>"
                )
            out.append("</tr>")
        out.append("</table></div>")
    out.append("<h2>Change events</h2>")
    if report.events:
        out.append(
            '<div class="scroll"><table><tr><th>last seen in old state</th>'
            "<th>first seen in new state</th><th>service</th><th>target</th>"
            "<th>network</th><th>event</th><th>from</th><th>to</th></tr>"
        )
        for e in report.events:
            gap = " (across a data gap)" if e.across_gap else ""
            out.append(
                f"<tr><td>{_fmt_time(e.last_old)}</td><td>{_fmt_time(e.first_new)}</td>"
                f"<td>{esc(e.service)}</td><td>{esc(e.input)}</td>"
                f"<td>{esc(e.probe_asn)} {esc(e.probe_cc)}</td>"
                f"<td>{esc(_event_label(e.kind))}{gap}</td>"
                f'<td class="{esc(e.old_status)}">{esc(_state(e.old_status, e.old_blocking))}</td>'
                f'<td class="{esc(e.new_status)}">{esc(_state(e.new_status, e.new_blocking))}'
                "</td></tr>"
            )
        out.append("</table></div>")
    else:
        out.append("<p>No change events.</p>")
    if report.gaps:
        out.append(
            "<h2>Gaps in data</h2><table><tr><th>network</th><th>last run before</th>"
            "<th>first run after</th><th>hours</th><th>series</th></tr>"
        )
        for asn, cc, before, after, count in _group_gaps(report.gaps):
            out.append(
                f"<tr><td>{esc(asn)} {esc(cc)}</td><td>{_fmt_time(before)}</td>"
                f"<td>{_fmt_time(after)}</td>"
                f"<td>{(after - before).total_seconds() / 3600:.0f}</td>"
                f"<td>{count}</td></tr>"
            )
        out.append("</table>")
    if report.conflicts:
        out.append(
            "<h2>Conflicting records</h2><p>Records with the same report_id, target and time "
            "but different content: all are kept (column conflict is true in the CSV and "
            "Parquet rows); one of them may be forged.</p><table><tr><th>file:line</th>"
            "<th>report_id</th><th>target</th><th>time</th></tr>"
        )
        out += [
            f"<tr><td>{esc(c.where)}</td><td>{esc(c.report_id)}</td><td>{esc(c.input)}</td>"
            f"<td>{c.time:%Y-%m-%d %H:%M:%S}</td></tr>"
            for c in report.conflicts[:200]
        ]
        if report.conflicts_total > 200:
            out.append(f"<tr><td>… {report.conflicts_total - 200} more</td></tr>")
        out.append("</table>")
    if report.skipped:
        out.append("<h2>Skipped lines</h2><ul>")
        out += [f"<li>{esc(s.source)}:{s.line}: {esc(s.reason)}</li>" for s in report.skipped[:200]]
        out.append("</ul>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_html(report: Report, path: str | os.PathLike[str]) -> None:
    write_text_file(path, render_html(report))
