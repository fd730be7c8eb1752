"""`probe report --engine spark`: the same report computed by Apache Spark (PySpark), for result
sets larger than one machine. The aggregation is the SQL DuckDB runs (shared_sql.py) and the
change rule the same Python function per series (changes.series_changes, on Spark's workers
through `groupBy().applyInPandas`); reading is spark_read.py, deduplication `_DEDUP_SQL` below
(the rules of dedup.py: one row per content, records sharing report_id, input and time with
different contents all kept and marked `conflict`).

Spark writes the report's rows as Parquet into a scratch directory (`scratch`, which must be
on storage every worker and the driver share when the master is a cluster); the outputs (text,
HTML, CSV, Parquet) read them through a DuckDB view `rows`, as on the DuckDB engine. In local
mode (the default, `local[2]`) Spark binds and connects only on 127.0.0.1 and runs no web UI.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from probe.report.build import _result_files, _Skipped, series_summaries
from probe.report.changes import micros_time, series_changes, sort_events
from probe.report.dedup import _with_line_numbers
from probe.report.model import (
    ChangeEvent,
    ChangeRule,
    ConflictingRecord,
    DataGap,
    Report,
    ReportFilters,
    ReportInputError,
    Segment,
    UnmatchedFilter,
)
from probe.report.shared_sql import SERIES_KEY, segments_sql, series_sql
from probe.report.spark_read import micros, stage, with_content_hashes

if TYPE_CHECKING:
    from probe.report.ooni_archive import OoniArchive

DEFAULT_MASTER = "local[2]"

#: Staged rows → one row per content per key, `conflict` where a key has several contents.
_DEDUP_SQL = """
WITH ided AS (
    SELECT *, coalesce(content_hash, line_hash) AS identity FROM kept
), marked AS (
    SELECT *,
           size(collect_set(identity) OVER (PARTITION BY report_id, input, time_us)) > 1
               AS conflict,
           row_number() OVER (
               PARTITION BY report_id, input, time_us, identity
               ORDER BY source, line NULLS FIRST
           ) AS copy
    FROM ided
)
SELECT time_us, probe_asn, probe_cc, probe_id, network_type, input, service, status, blocking,
       confirmed, report_id, source, conflict, line, identity
FROM marked WHERE copy = 1
"""

#: The first copy of each content of a conflicting key (as dedup.py lists them).
_CONFLICTS_SQL = """
SELECT first.source, first.line, report_id, input, time_us, identity
FROM (
    SELECT min(named_struct('source', source, 'line', coalesce(line, 0))) AS first,
           report_id, input, time_us, identity
    FROM ided_all
    GROUP BY report_id, input, time_us, identity
) AS contents
ORDER BY time_us, report_id, input, first.source, first.line
"""

#: What applyInPandas returns per series: events (kind) and gaps (kind 'gap').
_CHANGES_DDL = (
    "kind STRING, service STRING, input STRING, probe_asn STRING, probe_cc STRING, "
    "probe_id STRING, network_type STRING, old_status STRING, old_blocking STRING, "
    "new_status STRING, new_blocking STRING, t1 BIGINT, t2 BIGINT, across_gap BOOLEAN"
)


def spark_session(master: str | None = None, scratch: str | None = None) -> Any:
    """A Spark session: `master` (default local[2]). In local mode it binds only 127.0.0.1,
    never resolves a host name and runs no UI; times are UTC."""
    import warnings

    # PySpark warns about pandas versions it has not been tested with; the report's results
    # are checked against DuckDB's (tests/test_report_spark.py), so stderr stays ours
    warnings.filterwarnings("ignore", category=FutureWarning, module="pyspark")
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ReportInputError(
            "--engine spark needs PySpark: pip install 'probe[spark]' (and Java 17)"
        ) from None
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        raise ReportInputError(
            "--engine spark needs Java 17 or later (apt-get install default-jre-headless)"
        )
    master = master or DEFAULT_MASTER
    builder = (
        SparkSession.builder.master(master)
        .appName("probe-report")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.ansi.enabled", "true")
        .config("spark.sql.adaptive.enabled", "true")
    )
    if scratch:
        builder = builder.config("spark.local.dir", scratch).config(
            "spark.sql.warehouse.dir", os.path.join(scratch, "warehouse")
        )
    if master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        os.environ.setdefault("SPARK_LOCAL_HOSTNAME", "localhost")
        builder = (
            builder.config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.blockManager.host", "127.0.0.1")
            # a few cores: Spark's 200 shuffle partitions are 200 tiny tasks per stage
            .config("spark.sql.shuffle.partitions", "8")
        )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _filter(filters: ReportFilters) -> Any:
    from pyspark.sql import functions as F

    keep = F.col("time_us").isNotNull()
    if filters.since is not None:
        keep &= F.col("time_us") >= micros(filters.since)
    if filters.until is not None:
        keep &= F.col("time_us") < micros(filters.until)
    for column, values in (
        ("service", filters.services),
        ("probe_asn", filters.asns),
        ("probe_cc", filters.ccs),
    ):
        if values:
            keep &= F.col(column).isin(list(values))
    return keep


def _unmatched(staged: Any, filters: ReportFilters) -> list[UnmatchedFilter]:
    """As filters.unmatched_filters: the --service/--asn/--cc values no record read has."""
    unmatched = []
    for option, column, values in (
        ("--service", "service", filters.services),
        ("--asn", "probe_asn", filters.asns),
        ("--cc", "probe_cc", filters.ccs),
    ):
        if not values:
            continue
        found = staged.where("time_us IS NOT NULL").select(column).distinct().collect()
        present = sorted(str(r[0]) for r in found)
        missing = tuple(v for v in values if v not in set(present))
        if missing:
            unmatched.append(UnmatchedFilter(option, missing, tuple(present)))
    return unmatched


def _conflicts(spark: Any) -> tuple[list[ConflictingRecord], int]:
    """The first copy of each content of the keys read with different contents (first 1000)."""
    found = spark.sql(_CONFLICTS_SQL)
    total = found.count()
    listed = found.limit(1000).collect()
    conflicts = [
        ConflictingRecord(r[0], r[1] or None, r[2], r[3], micros_time(r[4]), bytes.fromhex(r[5]))
        for r in listed
    ]
    return _with_line_numbers(conflicts), total


def _series_frame(frame: Any, rule: ChangeRule) -> Any:
    """applyInPandas: one series' segments (a pandas frame) → its events and gaps."""
    import pandas as pd

    def text(value: Any) -> str | None:
        return None if value is None or pd.isna(value) else str(value)

    frame = frame.sort_values("segment")
    segments = [
        Segment(
            str(r.status),
            text(r.method),
            int(r.runs),
            micros_time(r.first),
            micros_time(r.last),
            bool(r.gap_before),
        )
        for r in frame.itertuples()
    ]
    first = frame.iloc[0]
    key = tuple(text(first[c]) for c in SERIES_KEY)
    events, gaps = series_changes(key, segments, rule)
    rows = [
        (e.kind, *key, e.old_status, e.old_blocking, e.new_status, e.new_blocking, *times)
        for e in events
        for times in [(micros(e.last_old), micros(e.first_new), e.across_gap)]
    ]
    rows += [
        ("gap", *key, None, None, None, None, micros(g.last_before), micros(g.first_after), False)
        for g in gaps
    ]
    columns = [c.split()[0] for c in _CHANGES_DDL.split(", ")]
    return pd.DataFrame(rows, columns=columns)


def _changes(spark: Any, rule: ChangeRule) -> tuple[list[ChangeEvent], list[DataGap]]:
    from datetime import timedelta

    max_gap_us = rule.max_gap // timedelta(microseconds=1)
    segments = spark.sql(segments_sql("spark", max_gap_us))

    def per_series(frame: Any) -> Any:
        return _series_frame(frame, rule)

    found = segments.groupBy("id").applyInPandas(per_series, schema=_CHANGES_DDL).collect()
    events: list[ChangeEvent] = []
    gaps: list[DataGap] = []
    for r in found:
        key = (r.service, r.input, r.probe_asn, r.probe_cc)
        t1, t2 = micros_time(r.t1), micros_time(r.t2)
        if r.kind == "gap":
            gaps.append(DataGap(*key, t1, t2, r.probe_id, r.network_type))
        else:
            events.append(
                ChangeEvent(
                    r.kind,
                    *key,
                    r.old_status,
                    r.old_blocking,
                    r.new_status,
                    r.new_blocking,
                    t1,
                    t2,
                    r.across_gap,
                    r.probe_id,
                    r.network_type,
                )
            )
    sort_events(events, gaps)
    return events, gaps


def _rows_view(con: duckdb.DuckDBPyConnection, rows_dir: Path) -> None:
    """DuckDB view `rows` (model.ROW_COLUMNS) over the rows Spark wrote."""
    pattern = "'" + str(rows_dir / "*.parquet").replace("'", "''") + "'"
    con.execute(
        "CREATE VIEW rows AS SELECT make_timestamp(time_us) AS time, probe_asn, probe_cc, "
        "probe_id, network_type, input, service, status, blocking, confirmed, report_id, "
        f"source, conflict FROM read_parquet({pattern})"
    )


def build_report_spark(
    paths: Sequence[str | os.PathLike[str]],
    filters: ReportFilters | None = None,
    rule: ChangeRule | None = None,
    *,
    spark: Any | None = None,
    master: str | None = None,
    scratch: str | os.PathLike[str] | None = None,
    archive: OoniArchive | None = None,
) -> Report:
    """`build_report` on Spark: the same Report (rows, series, events, gaps, conflicts).
    OONI's archive (`archive`) is read on the driver by the Python reader, as on DuckDB."""
    filters = filters or ReportFilters()
    rule = rule or ChangeRule()
    if rule.confirm_runs < 1:
        raise ReportInputError("confirm_runs must be at least 1")
    files = [str(p) for p in _result_files(paths)]
    if scratch is not None and not os.path.isdir(scratch):
        raise ReportInputError(f"{os.fspath(scratch)}: not a directory (--spark-scratch)")
    work = Path(tempfile.mkdtemp(prefix="probe-spark-", dir=scratch))
    try:
        session = spark or spark_session(master, str(work))
        report = _build(session, files, filters, rule, work, archive)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    weakref.finalize(report, shutil.rmtree, work, True)
    return report


def _build(
    spark: Any,
    files: list[str],
    filters: ReportFilters,
    rule: ChangeRule,
    work: Path,
    archive: OoniArchive | None,
) -> Report:
    """The steps of build_report_spark (see the module's docstring)."""
    skipped = _Skipped()
    extra = archive.rows(skipped.note) if archive is not None else ()
    staged = stage(spark, files, work, skipped.note, extra)
    staged.write.parquet(str(work / "staged"))
    staged = spark.read.parquet(str(work / "staged"))
    unmatched = _unmatched(staged, filters)
    total_found = staged.count()
    kept = with_content_hashes(spark, staged.where(_filter(filters)))
    staged_found = kept.count()
    kept.createOrReplaceTempView("kept")
    deduplicated = spark.sql(_DEDUP_SQL)
    deduplicated.write.parquet(str(work / "dedup"))
    spark.read.parquet(str(work / "dedup")).createOrReplaceTempView("dedup")
    spark.sql(
        "SELECT * FROM (SELECT *, coalesce(content_hash, line_hash) AS identity FROM kept) "
        "SEMI JOIN (SELECT DISTINCT report_id, input, time_us FROM dedup WHERE conflict) "
        "USING (report_id, input, time_us)"
    ).createOrReplaceTempView("ided_all")
    conflicts, conflicts_total = _conflicts(spark)
    rows_dir = work / "rows"
    spark.sql(
        "SELECT time_us, probe_asn, probe_cc, probe_id, network_type, input, service, status, "
        "blocking, confirmed, report_id, source, conflict FROM dedup"
    ).write.parquet(str(rows_dir))
    spark.read.parquet(str(rows_dir)).selectExpr(
        "timestamp_micros(time_us) AS time", "*"
    ).createOrReplaceTempView("rows")
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    _rows_view(con, rows_dir)
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
    report.series = series_summaries(spark.sql(series_sql("spark")).collect())
    from probe.report.across import across_volunteers

    report.across = across_volunteers(report.series)
    report.events, report.gaps = _changes(spark, rule)
    return report
