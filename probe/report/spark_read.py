"""Reading for the Spark engine (`probe report --engine spark`): result files → staged rows,
written by Spark as Parquet into the report's scratch directory.

The same split as on DuckDB (read_fast.py): Spark reads our JSON Lines (plain or .gz) and the
collector's Parquet partitions (column `record`) itself, in parallel on its workers, and
projects each line onto the row columns (`_FAST_SQL`: `from_json` with `RECORD_SCHEMA` where
DuckDB uses its strict JSON projection). A line is `ours` under the same tests as DuckDB's
(one of our records with a verdict, a believable time, no NaN or Infinity, at most 512 `{` and
`[`, `probe_id` and `network_type` named at most once); a file with any other line, a file
Spark cannot read (found by halving the batch) and a path Hadoop would read as a pattern
(`*?[]{}\\:`) are read on the driver by the one Python reader (read_python.py), which names
every line it skips.

Times travel as microseconds since 1970 (`time_us`): Spark's TIMESTAMP depends on a time
zone, the integer does not.
"""

from __future__ import annotations

import itertools
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from probe import identity, results
from probe.report.model import SkippedLine
from probe.report.read_python import python_rows

#: Columns of the staged rows, as a Spark schema (DDL).
STAGED_DDL = (
    "time_us BIGINT, probe_asn STRING, probe_cc STRING, probe_id STRING, network_type STRING, "
    "input STRING, service STRING, status STRING, blocking STRING, confirmed BOOLEAN, "
    "report_id STRING, source STRING, ours BOOLEAN, line_hash STRING, content_hash STRING, "
    "line INT"
)

#: Characters Hadoop reads as a glob or a URI part in a path: such files take the Python path.
_UNSAFE_PATH = frozenset("*?[]{}\\:")

#: Files per Spark read: a batch that fails is halved until the unreadable files are found.
BATCH_FILES = 20000

_EPOCH = datetime(1970, 1, 1)

#: One line → one row (columns STAGED_DDL, source as Spark names the file). `{content_hash}`:
#: the line's SHA-256 for Parquet (the collector stores canonical JSON), else NULL.
_FAST_SQL = r"""
WITH parsed AS (
    SELECT json, source, r.software_name, r.test_name, r.input, r.report_id,
           r.measurement_start_time AS time_text, r.test_start_time AS start_text,
           r.probe_asn, r.probe_cc, r.probe_id, r.annotations.network_type AS lane,
           r.test_keys.target.service AS target_service,
           r.test_keys.verdict.status AS status,
           r.test_keys.verdict.blocking AS blocking,
           r.test_keys.verdict.confirmed AS confirmed
    FROM (SELECT json, source, from_json(json, '{structure}') AS r FROM lines) AS p
), timed AS (
    SELECT *, try_to_timestamp(time_text, 'yyyy-MM-dd HH:mm:ss') AS time,
           try_to_timestamp(start_text, 'yyyy-MM-dd HH:mm:ss') AS start_time,
           coalesce(target_service, test_name) AS service
    FROM parsed
)
SELECT unix_micros(time) AS time_us,
       coalesce(probe_asn, 'AS0') AS probe_asn,
       coalesce(probe_cc, 'ZZ') AS probe_cc,
       CASE WHEN probe_id RLIKE '{probe_id}' THEN probe_id END AS probe_id,
       CASE WHEN lane = 'vpn' THEN 'vpn' ELSE 'direct' END AS network_type,
       input, service, status, blocking,
       coalesce(confirmed = 'true', false) AS confirmed,
       report_id, source,
       coalesce(
           ltrim(json) LIKE '{{%'
           AND software_name = 'probe'
           AND status IN ('ok', 'blocked', 'down', 'inconclusive')
           AND (confirmed IS NULL OR confirmed IN ('true', 'false'))
           AND time IS NOT NULL AND input IS NOT NULL
           AND report_id IS NOT NULL AND report_id <> ''
           AND service IS NOT NULL
           AND time BETWEEN TIMESTAMP '{earliest}' AND TIMESTAMP '{latest}'
           AND (start_text IS NULL
                OR coalesce(start_time BETWEEN TIMESTAMP '{earliest}' AND TIMESTAMP '{latest}',
                            false))
           AND NOT contains(json, 'NaN') AND NOT contains(json, 'Infinity')
           AND length(json) - length(replace(json, '"probe_id"', '')) <= 10
           AND length(json) - length(replace(json, '"network_type"', '')) <= 14
           AND length(json) - length(regexp_replace(json, '[\\[{{]', '')) <= 512,
           false) AS ours,
       sha2(json, 256) AS line_hash,
       {content_hash} AS content_hash,
       CAST(NULL AS INT) AS line
FROM timed
"""


def micros(value: datetime) -> int:
    """A naive UTC datetime as microseconds since 1970."""
    return (value - _EPOCH) // timedelta(microseconds=1)


#: The fields the fast path reads, as the schema `from_json` parses each line with (once: one
#: `get_json_object` per field would parse a 3 KB record sixteen times). A value of another
#: JSON type in a STRING field is read as its JSON text.
RECORD_SCHEMA = (
    "software_name STRING, test_name STRING, input STRING, report_id STRING, "
    "measurement_start_time STRING, test_start_time STRING, probe_asn STRING, "
    "probe_cc STRING, probe_id STRING, annotations STRUCT<network_type: STRING>, "
    "test_keys STRUCT<target: STRUCT<service: STRING>, "
    "verdict: STRUCT<status: STRING, blocking: STRING, confirmed: STRING>>"
)


def fast_sql(kind: str, latest: datetime) -> str:
    return _FAST_SQL.format(
        structure=RECORD_SCHEMA,
        probe_id=identity.PATTERN,
        earliest=f"{results.EARLIEST_TIME:%Y-%m-%d %H:%M:%S}",
        latest=f"{latest:%Y-%m-%d %H:%M:%S}",
        content_hash="sha2(json, 256)" if kind == "parquet" else "CAST(NULL AS STRING)",
    )


def _lines(spark: Any, files: Sequence[str], kind: str) -> Any:
    """The files' lines as a DataFrame (json, source): text lines, or Parquet `record`s."""
    from pyspark.sql import functions as F

    paths = [os.path.abspath(f) for f in files]
    if kind == "parquet":
        frame = spark.read.option("mergeSchema", "false").parquet(*paths)
        text = F.col(results.PARQUET_RECORD_COLUMN).cast("string")
    else:
        frame = spark.read.text(paths)
        text = F.col("value")
    lines = frame.select(text.alias("json"), F.col("_metadata.file_path").alias("source"))
    return lines.where(F.col("json").isNull() | (F.trim(F.col("json")) != ""))


def stage_fast(spark: Any, files: Sequence[str], latest: datetime, out: str) -> list[str]:
    """Stage every file Spark reads into Parquet directory `out` (appending); return the files
    it could not read. A batch that fails is halved until the bad files are isolated."""
    refused: list[str] = []
    for kind in ("jsonl", "parquet"):
        chosen = [f for f in files if (kind == "parquet") == f.endswith(".parquet")]
        pending = [chosen[i : i + BATCH_FILES] for i in range(0, len(chosen), BATCH_FILES)][::-1]
        while pending:
            batch = pending.pop()
            try:
                _lines(spark, batch, kind).createOrReplaceTempView("lines")
                spark.sql(fast_sql(kind, latest)).write.mode("append").parquet(out)
            except Exception:  # any Spark or Java error: isolate the failing file
                if len(batch) == 1:
                    refused.append(batch[0])
                else:
                    middle = len(batch) // 2
                    pending += [batch[middle:], batch[:middle]]
    return refused


def spark_readable(path: str) -> bool:
    """Whether Spark may read the file itself (else the Python path reads it)."""
    return not (_UNSAFE_PATH & set(os.path.abspath(path)))


def file_of(uri: str, originals: dict[str, str]) -> str:
    """The path the user gave for the file Spark names by URI (file:///a%20b/c.jsonl)."""
    parts = urlsplit(uri)
    path = unquote(parts.path) if parts.scheme in ("file", "") else uri
    return originals.get(os.path.abspath(path), path)


@dataclass(frozen=True, slots=True)
class PythonRows:
    """Rows of the Python path, as Spark rows (STAGED_DDL): the files', then `extra` (rows of
    the same shape from elsewhere: OONI's archive, probe.report.ooni_archive)."""

    files: Sequence[str]
    skipped: Callable[[SkippedLine], None]
    extra: Iterable[tuple[Any, ...]] = ()

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        found = itertools.chain.from_iterable(python_rows(p, self.skipped) for p in self.files)
        for row in itertools.chain(found, self.extra):
            time, *fields, content_hash, line = row
            yield (micros(time), *fields, True, None, bytes(content_hash).hex(), line)


#: Rows of the Python path per Spark DataFrame written: the driver holds one chunk at a time.
PYTHON_CHUNK = 50_000


def _stage_python(spark: Any, rows: PythonRows, out: str) -> Any:
    """The Python path's rows, written to Parquet directory `out` a chunk at a time."""
    chunk: list[tuple[Any, ...]] = []
    written = False
    for row in rows:
        chunk.append(row)
        if len(chunk) >= PYTHON_CHUNK:
            spark.createDataFrame(chunk, STAGED_DDL).write.mode("append").parquet(out)
            chunk, written = [], True
    if not written:
        return spark.createDataFrame(chunk, STAGED_DDL)
    if chunk:
        spark.createDataFrame(chunk, STAGED_DDL).write.mode("append").parquet(out)
    return spark.read.schema(STAGED_DDL).parquet(out)


def stage(
    spark: Any,
    files: list[str],
    scratch: Path,
    skipped: Callable[[SkippedLine], None],
    extra: Iterable[tuple[Any, ...]] = (),
) -> Any:
    """Every file read into staged rows (fast path, then Python for the rest, then `extra`:
    rows the Python path made elsewhere); sources are the paths as given."""
    from pyspark.sql import functions as F

    fast_dir = str(scratch / "fast")
    direct = [f for f in files if spark_readable(f)]
    refused = stage_fast(spark, direct, results.latest_time(), fast_dir)
    refused += [f for f in files if not spark_readable(f)]
    originals = {os.path.abspath(f): f for f in files}
    fast = spark.read.schema(STAGED_DDL).parquet(fast_dir) if os.path.isdir(fast_dir) else None
    odd: set[str] = set()
    if fast is not None:
        uris = [r[0] for r in fast.select("source").distinct().collect()]
        names = spark.createDataFrame(
            [(u, file_of(u, originals)) for u in uris], "uri STRING, path STRING"
        )
        fast = (
            fast.join(F.broadcast(names), fast.source == names.uri)
            .withColumn("source", F.col("path"))
            .drop("uri", "path")
        )
        odd = {r[0] for r in fast.where("NOT ours").select("source").distinct().collect()}
        fast = fast.where(~F.col("source").isin(sorted(odd))) if odd else fast
    python = sorted(set(refused) | odd)
    slow = _stage_python(spark, PythonRows(python, skipped, extra), str(scratch / "python"))
    return slow if fast is None else fast.unionByName(slow)


def with_content_hashes(spark: Any, kept: Any) -> Any:
    """`kept` with the canonical content hash of the fast-path rows whose identity is in
    question (they share their key with a row of other bytes or of the Python path)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType

    mixed = (
        kept.groupBy("report_id", "input", "time_us")
        .agg(
            F.count("*").alias("n"),
            F.countDistinct("line_hash").alias("lines"),
            F.count("content_hash").alias("contents"),
        )
        .where("n > 1 AND (lines > 1 OR contents > 0)")
        .select("report_id", "input", "time_us")
    )
    needed = kept.join(mixed, ["report_id", "input", "time_us"], "left_semi").where(
        "content_hash IS NULL AND line_hash IS NOT NULL"
    )
    files = sorted(r[0] for r in needed.select("source").distinct().collect())
    if not files:
        return kept

    def canonical(text: str) -> str | None:
        try:
            return results.content_hash(results.loads(text)).hex()
        except ValueError:
            return None

    with warnings.catch_warnings():  # PySpark cannot read `str | None` as a pandas type hint
        warnings.simplefilter("ignore", UserWarning)
        canonical_udf = F.udf(canonical, StringType())
    hashes = (
        spark.read.text([os.path.abspath(f) for f in files])
        .select(F.sha2("value", 256).alias("line_hash"), F.col("value"))
        .join(needed.select("line_hash").distinct(), "line_hash", "left_semi")
        .dropDuplicates(["line_hash"])
        .select("line_hash", canonical_udf("value").alias("canonical"))
    )
    return (
        kept.join(hashes, "line_hash", "left")
        .withColumn("content_hash", F.coalesce("content_hash", "canonical"))
        .drop("canonical")
    )
