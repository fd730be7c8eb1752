"""The report's aggregation, written once and run on two engines: DuckDB (the default, one
machine) and Apache Spark (`probe report --engine spark`, probe/report/spark.py).

Both engines run the same SQL text over a relation `rows` with the columns of
`model.ROW_COLUMNS`; the few spellings that differ are filled in from `DIALECTS`. The SQL uses
only window functions, GROUP BY, joins on plain keys and CASE, which both engines read alike.
Every order is total, so both engines give the same rows in the same order:

- `SERIES_SQL`: one row per series (target, volunteer = probe id, network, lane): runs, share
  blocked, the most common method (a tie goes to the method seen last, then to the greater
  name), the latest status and method (runs in the same second: the greater status, then the
  greater method).
- `SEGMENTS_SQL`: each series' conclusive runs in time order (same second: by status, then
  method), cut into segments where the state changes or a gap longer than the rule's opens.

The change rule itself (2 runs to confirm, the 24 h gap) walks the segments of one series in
Python, `changes.series_changes`: DuckDB's segments are fetched and walked in this process,
Spark runs the same function once per series on its workers (`groupBy().applyInPandas`).
"""

from __future__ import annotations

from collections.abc import Mapping

#: The series key: one target seen by one volunteer on one network, directly or through a VPN.
SERIES_KEY = ("service", "input", "probe_asn", "probe_cc", "probe_id", "network_type")

#: What differs between the engines: a timestamp as microseconds since 1970 (an exact integer).
DIALECTS: Mapping[str, Mapping[str, str]] = {
    "duckdb": {"micros": "epoch_us"},
    "spark": {"micros": "unix_micros"},
}

_KEY = ", ".join(SERIES_KEY)
#: Joins on the key: a missing probe id is NULL, and no well-formed probe id is empty.
_JOIN = " AND ".join(
    f"coalesce(a.{c}, '') = coalesce(b.{c}, '')" if c == "probe_id" else f"a.{c} = b.{c}"
    for c in SERIES_KEY
)

_SERIES_SQL = f"""
WITH counts AS (
    SELECT {_KEY},
           count(*) AS runs,
           sum(CASE WHEN status <> 'inconclusive' THEN 1 ELSE 0 END) AS conclusive,
           sum(CASE WHEN status = 'blocked' THEN 1 ELSE 0 END) AS blocked,
           sum(CASE WHEN status = 'blocked' AND confirmed THEN 1 ELSE 0 END) AS confirmed,
           min(time) AS first, max(time) AS last
    FROM rows GROUP BY {_KEY}
), latest AS (
    SELECT {_KEY}, status, blocking,
           row_number() OVER (
               PARTITION BY {_KEY}
               ORDER BY time DESC, status DESC, blocking DESC NULLS LAST
           ) AS n
    FROM rows
), methods AS (
    SELECT {_KEY}, blocking AS method,
           row_number() OVER (
               PARTITION BY {_KEY}
               ORDER BY count(*) DESC, max(time) DESC, blocking DESC
           ) AS n
    FROM rows WHERE status = 'blocked' AND blocking IS NOT NULL
    GROUP BY {_KEY}, blocking
)
SELECT a.service, a.input, a.probe_asn, a.probe_cc, a.runs, a.conclusive, a.blocked,
       a.confirmed, m.method, {{micros}}(a.first) AS first, {{micros}}(a.last) AS last,
       b.status, b.blocking, a.probe_id, a.network_type
FROM counts AS a
JOIN latest AS b ON {_JOIN} AND b.n = 1
LEFT JOIN (SELECT * FROM methods WHERE n = 1) AS m
    ON {_JOIN.replace("b.", "m.")}
ORDER BY a.service, a.input, a.probe_asn, a.probe_cc, a.network_type, a.probe_id NULLS FIRST
"""

#: Series are numbered (`ids`, in the order of the result) so the window sorts a narrow row,
#: and one query takes the ids in ({low}, {high}]: DuckDB cuts a large report into parts so
#: its sort never holds more than about one part's runs (changes._PART_ROWS); Spark takes all.
_SEGMENTS_SQL = f"""
WITH ids AS (
    SELECT * FROM (
        SELECT row_number() OVER (
                   ORDER BY service, input, probe_asn, probe_cc, network_type,
                            probe_id NULLS FIRST
               ) AS id,
               {_KEY}
        FROM (SELECT DISTINCT {_KEY} FROM rows) AS k
    ) AS numbered WHERE id > {{low}} AND id <= {{high}}
), conclusive AS (
    SELECT b.id, a.time, a.status,
           CASE WHEN a.status = 'blocked' THEN a.blocking END AS method
    FROM rows AS a JOIN ids AS b ON {_JOIN}
    WHERE a.status <> 'inconclusive'
), marked AS (
    SELECT id, time, status, method,
           {{micros}}(time) - {{micros}}(lag(time) OVER w) > {{max_gap_us}} AS gap,
           lag(status) OVER w AS previous_status,
           coalesce(lag(method) OVER w, '') AS previous_method
    FROM conclusive
    WINDOW w AS (PARTITION BY id ORDER BY time, status, method NULLS FIRST)
), numbered AS (
    SELECT id, time, status, method, coalesce(gap, false) AS gap,
           sum(CASE WHEN previous_status IS NULL OR previous_status <> status
                         OR previous_method <> coalesce(method, '') OR gap
                    THEN 1 ELSE 0 END) OVER (
               PARTITION BY id ORDER BY time, status, method NULLS FIRST
               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
           ) AS segment
    FROM marked
), segments AS (
    SELECT id, segment, min(status) AS status, min(method) AS method, count(*) AS runs,
           min(time) AS first, max(time) AS last,
           max(CASE WHEN gap THEN 1 ELSE 0 END) = 1 AS gap_before
    FROM numbered
    GROUP BY id, segment
)
SELECT b.service, b.input, b.probe_asn, b.probe_cc, b.probe_id, b.network_type,
       a.status, a.method, a.runs, {{micros}}(a.first) AS first, {{micros}}(a.last) AS last,
       a.gap_before, a.id, a.segment
FROM segments AS a JOIN ids AS b ON a.id = b.id
ORDER BY a.id, a.segment
"""

#: The columns of a segments row (`SEGMENTS_SQL`), in order.
SEGMENT_COLUMNS = (
    *SERIES_KEY,
    "status",
    "method",
    "runs",
    "first",
    "last",
    "gap_before",
    "id",
    "segment",
)


def series_sql(dialect: str) -> str:
    """Per series: service, input, probe_asn, probe_cc, runs, conclusive, blocked, confirmed,
    method, first, last (microseconds since 1970), status, blocking, probe_id, network_type."""
    return _SERIES_SQL.format(**DIALECTS[dialect])


def segments_sql(dialect: str, max_gap_us: int, low: int = 0, high: int | None = None) -> str:
    """The segments of the series numbered in (low, high] (all when high is None): the columns
    `SEGMENT_COLUMNS`, times as microseconds since 1970, ordered by series then time."""
    upper = str(high) if high is not None else "9223372036854775807"
    return _SEGMENTS_SQL.format(
        **DIALECTS[dialect], max_gap_us=int(max_gap_us), low=int(low), high=upper
    )
