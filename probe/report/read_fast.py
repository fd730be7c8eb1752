"""Reading, the fast path: our own JSON Lines records straight into DuckDB table `staged`.

DuckDB reads each line with `read_ndjson_objects` and projects it with
`try(json_transform_strict(…))` onto an explicit column list (`RECORD_STRUCTURE`), keeping the
SHA-256 of the line for deduplication; DuckDB parses in parallel and Python never sees a record.
A row is `ours` only when it is one of our records with a verdict, a believable time and nothing
Python's reader would refuse; a file with any other row, and every file DuckDB cannot read (found
by halving the batch, so clean data costs one DuckDB call), is left to `probe.report.read_python`.
Parquet files of records (`probe collector serve`'s partitions: one record per row, whole, as
its canonical JSON in column `record`) take the same path through `read_parquet`; the SHA-256
of that text is the record's content hash, and is staged as such.
"""

from __future__ import annotations

import json
from datetime import datetime

import duckdb

from probe import identity, results
from probe.report.model import ROW_SCHEMA

#: A well-formed probe id (identity.PATTERN without its anchors: RE2's full match anchors it).
PROBE_ID_REGEX = identity.PATTERN.removeprefix("^").removesuffix("$")

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

#: Staging: the record's fields, whether the row is one of our records with a usable verdict
#: (`ours`), the SHA-256 of its line as DuckDB read it (fast path), the SHA-256 of its canonical
#: JSON (`results.content_hash`: the Python path, and fast rows whose identity is in question)
#: and its line number (Python path).
STAGED_SCHEMA = f"{ROW_SCHEMA}, ours BOOLEAN, line_hash BLOB, content_hash BLOB, line INTEGER"

#: The fast path: each line of the files as DuckDB's JSON reader sees it, projected onto
#: RECORD_FIELDS, plus `ours` (a file with any row that is not `ours` takes the Python path): one
#: of our records with a verdict, a believable time (results.time_problem: 2000 to $latest, in
#: our format), nothing that might be NaN or Infinity and at most 512 `{` and `[` (DuckDB reads
#: NaN, Infinity and any nesting; Python refuses them and nesting deeper than ~1,000 levels, so
#: such a file is left to Python to decide — a string holding the word or the brackets included:
#: our records hold about 50). The optional fields, `probe_id` and `annotations.network_type`,
#: are read outside the strict projection (a record without them is still ours); a probe id
#: that is not well formed is NULL (`identity.is_probe_id`), and a line that names either key
#: twice takes the Python path (a duplicate key: DuckDB would keep the first, Python the last).
_FAST_SELECT = """
SELECT
    try_strptime(r.measurement_start_time, '%Y-%m-%d %H:%M:%S') AS time,
    coalesce(r.probe_asn, 'AS0') AS probe_asn,
    coalesce(r.probe_cc, 'ZZ') AS probe_cc,
    CASE WHEN regexp_full_match(extra[1], $probe_id) THEN extra[1] END AS probe_id,
    CASE WHEN extra[2] = 'vpn' THEN 'vpn' ELSE 'direct' END AS network_type,
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
     AND length(json) - length(replace(json, '"probe_id"', '')) <= 10
     AND length(json) - length(replace(json, '"network_type"', '')) <= 14
     AND length(json) - length(replace(replace(json, '{{', ''), '[', '')) <= 512) AS ours,
    unhex(sha256(json)) AS line_hash,
    {content_hash} AS content_hash,
    NULL::INTEGER AS line
FROM (
    SELECT try(json_transform_strict(json, $structure)) AS r, json, filename,
           json_extract_string(json, ['$.probe_id', '$.annotations.network_type']) AS extra
    FROM {source}
)
"""

#: Where the fast path reads lines: JSON Lines, or the `record` column of Parquet files. A
#: Parquet record's text is canonical (the collector stores `results.canonical_json`), so the
#: hash of its text is its content hash; were it not canonical, an identical record elsewhere
#: would show as a conflict, never be merged with a different one.
_SOURCES = {
    "jsonl": ("read_ndjson_objects($files, filename = true)", "NULL::BLOB"),
    "parquet": (
        f"(SELECT {results.PARQUET_RECORD_COLUMN}::VARCHAR AS json, filename"
        " FROM read_parquet($files, filename = true, union_by_name = true))",
        "unhex(sha256(json))",
    ),
}


#: Files per fast-path call, each followed by a checkpoint that compresses what it read. Fewer
#: calls are faster (each costs about half a second beyond its reading on 2 CPUs: 2,000 files a
#: call made 1M records 1.5× slower to read), more files hold more rows uncompressed until the
#: checkpoint (8,000 of our files, one run of 18 records each: about 40 MiB). A collector's
#: Parquet partition can hold many more records in one file: it is read whole.
BATCH_FILES = 8000


def load_fast(con: duckdb.DuckDBPyConnection, files: list[str], latest: datetime) -> list[str]:
    """Insert every file DuckDB reads as JSON Lines (or as Parquet files of records) into
    `staged`; return the files it refused.

    One call per kind for clean data; on an error the batch is halved until the bad files are
    isolated."""
    parquet = [f for f in files if f.endswith(".parquet")]
    lines = [f for f in files if not f.endswith(".parquet")]
    return _load_kind(con, lines, "jsonl", latest) + _load_kind(con, parquet, "parquet", latest)


def _load_kind(
    con: duckdb.DuckDBPyConnection, files: list[str], kind: str, latest: datetime
) -> list[str]:
    source, content_hash = _SOURCES[kind]
    sql = f"INSERT INTO staged {_FAST_SELECT.format(source=source, content_hash=content_hash)}"
    refused: list[str] = []
    # batches, last first (pending is a stack): each batch is compressed by the CHECKPOINT
    # after it, so only one batch's rows are ever held uncompressed
    pending = [files[i : i + BATCH_FILES] for i in range(0, len(files), BATCH_FILES)][::-1]
    while pending:
        batch = pending.pop()
        try:
            con.execute(
                sql,
                {
                    "files": batch,
                    "structure": RECORD_STRUCTURE,
                    "probe_id": PROBE_ID_REGEX,
                    "earliest": results.EARLIEST_TIME,
                    "latest": latest,
                },
            )
            con.execute("CHECKPOINT")
        except duckdb.Error:
            if len(batch) == 1:
                refused.append(batch[0])
            else:
                middle = len(batch) // 2
                pending += [batch[middle:], batch[:middle]]
    return refused
