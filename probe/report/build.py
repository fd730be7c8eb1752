"""`build_report`: result files and directories → one `Report`.

Steps: the files (`results.iter_result_files`, recursively), the fast path into table `staged`
(`probe.report.read_fast`), the files it refused or that hold anything but our records with a
verdict read again in Python (`probe.report.read_python`), the filter values that match nothing
(`probe.report.filters`), deduplication turning `staged` into table `rows` in place
(`probe.report.dedup`), then the aggregation: per series (one target seen by one volunteer on
one network, directly or through a VPN) the latest status, the share of conclusive runs blocked
and the most common method (`shared_sql.series_sql`, the SQL Spark runs too), and the change
events and gaps
(`probe.report.changes`), and the view across volunteers (`probe.report.across`). Memory stays
near that of a plain DuckDB query over the same files: the database is compressed, the rows are
never copied, and the one sort of every run is done a part at a time (docs/benchmarks.md).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from probe import results
from probe.report.across import across_volunteers
from probe.report.changes import changes_and_gaps, micros_time
from probe.report.dedup import deduplicate
from probe.report.filters import filter_sql, unmatched_filters
from probe.report.model import (
    ChangeRule,
    Report,
    ReportFilters,
    ReportInputError,
    SeriesSummary,
    SkippedLine,
)
from probe.report.read_fast import STAGED_SCHEMA, load_fast
from probe.report.read_python import insert_rows, python_rows
from probe.report.shared_sql import series_sql

if TYPE_CHECKING:
    from probe.report.ooni_archive import OoniArchive


def _result_files(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    for raw in paths:
        if not Path(raw).exists():
            raise ReportInputError(f"{os.fspath(raw)}: no such file or directory")
    seen: dict[Path, None] = {}
    for path in results.iter_result_files([os.fspath(p) for p in paths]):
        seen.setdefault(path, None)
    return list(seen)


def series_summaries(found: Sequence[Sequence[Any]]) -> list[SeriesSummary]:
    """shared_sql.series_sql's rows (either engine's) → the per-series summaries."""
    summaries = []
    for r in found:
        service, target, asn, cc, runs, conclusive, blocked, confirmed, method = r[:9]
        status, blocking, probe_id, lane = r[11:15]
        summaries.append(
            SeriesSummary(
                service,
                target,
                asn,
                cc,
                int(runs),
                int(conclusive),
                int(blocked),
                int(confirmed),
                method,
                micros_time(r[9]),
                micros_time(r[10]),
                status,
                blocking,
                probe_id,
                lane,
            )
        )
    return summaries


@dataclass(slots=True)
class _Skipped:
    """Lines the readers could not use: every one counted, the first 1000 kept."""

    lines: list[SkippedLine] = field(default_factory=list)
    total: int = 0

    def note(self, line: SkippedLine) -> None:
        self.total += 1
        if len(self.lines) < 1000:
            self.lines.append(line)


def _read_files(
    con: duckdb.DuckDBPyConnection, files: list[str], archive: OoniArchive | None = None
) -> _Skipped:
    """Every file into table `staged`: the fast path first, then Python for the rest, then the
    OONI archive's files (probe.report.ooni_archive), which only Python reads."""
    con.execute(f"CREATE TABLE staged ({STAGED_SCHEMA})")
    refused = load_fast(con, files, results.latest_time())
    # a file with any row that is not our record with a verdict is read again in Python
    odd = [
        r[0] for r in con.execute("SELECT DISTINCT source FROM staged WHERE NOT ours").fetchall()
    ]
    if odd:
        con.execute("DELETE FROM staged WHERE list_contains($odd, source)", {"odd": odd})
    skipped = _Skipped()
    batch: list[tuple[Any, ...]] = []
    rows: Iterator[tuple[Any, ...]] = itertools.chain.from_iterable(
        python_rows(path, skipped.note) for path in sorted(set(refused) | set(odd))
    )
    if archive is not None:
        rows = itertools.chain(rows, archive.rows(skipped.note))
    for row in rows:
        batch.append(row)
        if len(batch) >= 10000:
            insert_rows(con, batch)
            batch = []
    insert_rows(con, batch)
    return skipped


def _count(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None) -> int:
    found = (con.execute(sql, params) if params is not None else con.execute(sql)).fetchone()
    return int(found[0]) if found else 0


def build_report(
    paths: Sequence[str | os.PathLike[str]],
    filters: ReportFilters | None = None,
    rule: ChangeRule | None = None,
    archive: OoniArchive | None = None,
) -> Report:
    """Read result files and directories (recursively), and OONI's archive, into one report."""
    filters = filters or ReportFilters()
    rule = rule or ChangeRule()
    if rule.confirm_runs < 1:
        raise ReportInputError("confirm_runs must be at least 1")
    files = [str(p) for p in _result_files(paths)]
    con = duckdb.connect()
    # a compressed in-memory database: a checkpointed table takes about a sixth of the memory
    # (1M records: 49 MiB instead of 274 MiB); read_fast checkpoints after each batch of files
    con.execute("ATTACH ':memory:' AS report (COMPRESS)")
    con.execute("USE report")
    # rows are ordered explicitly where order matters; this lets read_json insert in parallel
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET enable_progress_bar = false")  # stderr is for our own messages
    skipped = _read_files(con, files, archive)
    unmatched = unmatched_filters(con, filters)
    where, params = filter_sql(filters)
    staged_found = _count(con, f"SELECT count(*) FROM staged WHERE {where}", params)
    total_found = _count(con, "SELECT count(*) FROM staged")
    conflicts, conflicts_total = deduplicate(con, where, params)
    report = Report(
        connection=con,
        filters=filters,
        rule=rule,
        files=len(files) + (archive.stats.files if archive is not None else 0),
        records_read=total_found,
        duplicates=0,
        skipped=skipped.lines,
        skipped_total=skipped.total,
        conflicts=conflicts,
        conflicts_total=conflicts_total,
        unmatched=unmatched,
    )
    report.duplicates = staged_found - report.rows
    report.series = series_summaries(con.execute(series_sql("duckdb")).fetchall())
    report.across = across_volunteers(report.series)
    report.events, report.gaps = changes_and_gaps(con, rule)
    return report
