"""Deduplication: table `staged` becomes table `rows` in place, identical records counted once.

Two records are the same record when their content hash is equal (`results.content_hash`, the
SHA-256 of the canonical JSON). Cheaply: when every copy of a (report_id, input, time) came
through the fast path with the same bytes (a file copied or sent twice), the SHA-256 of the line
as DuckDB read it settles it; only the fast-path lines that share keys with a line of other bytes,
or with a record of the Python path, are hashed canonically in Python (`_hash_contents`).
Records that share report_id, input and time but differ in content are all kept, marked
`conflict`, and listed (`ConflictingRecord`): a crafted record cannot replace a real one by
copying its keys.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import duckdb

from probe import results
from probe.report.model import TIME_FORMAT, ConflictingRecord

#: Keys of the rows of one (report_id, input, time) read more than once. Their 64-bit hashes
#: first: a hash table of every key's hash is a fraction of one of every key (a hash shared by
#: different keys only costs a second look at their rows).
_COLLIDED_SQL = """
CREATE TEMP TABLE collided AS
WITH candidates AS (
    SELECT hash(report_id, input, time) AS h FROM staged WHERE {where}
    GROUP BY h HAVING count(*) > 1
), keys AS (
    SELECT report_id, input, time FROM staged
    WHERE {where} AND hash(report_id, input, time) IN (SELECT h FROM candidates)
    GROUP BY report_id, input, time HAVING count(*) > 1
)
SELECT report_id, input, time,
       count(DISTINCT line_hash) > 1 OR count(content_hash) > 0 AS mixed
FROM staged SEMI JOIN keys USING (report_id, input, time)
WHERE {where}
GROUP BY report_id, input, time
"""


#: What identifies a record's content: its canonical hash when computed, else its line's hash.
_IDENTITY = "coalesce(content_hash, line_hash)"

#: Keys (report_id, input, time) with more than one conflicting content.
_CONFLICTED_SQL = f"""
CREATE TEMP TABLE conflicted AS
SELECT report_id, input, time FROM staged
SEMI JOIN collided USING (report_id, input, time)
WHERE {{where}}
GROUP BY report_id, input, time HAVING count(DISTINCT {_IDENTITY}) > 1
"""

#: One entry per distinct content: its first copy (by file name, line), with the total count.
_LISTED_SQL = f"""
SELECT first.source, first.line, report_id, input, time, count(*) OVER (), identity
FROM (
    SELECT min({{{{'source': source, 'line': coalesce(line, 0)}}}}) AS first,
           report_id, input, time, {_IDENTITY} AS identity
    FROM staged SEMI JOIN conflicted USING (report_id, input, time)
    WHERE {{where}}
    GROUP BY report_id, input, time, identity
)
ORDER BY time, report_id, input, first.source, first.line
LIMIT 1000
"""


#: The rows to drop: every copy of a content after its first (by row id) among the keys read
#: more than once; the keys read once (nearly all) are never touched.
_COPIES_SQL = f"""
DELETE FROM staged WHERE rowid IN (
    SELECT id FROM (
        SELECT rowid AS id, report_id, input, time, {_IDENTITY} AS identity
        FROM staged WHERE {{where}}
    ) SEMI JOIN collided USING (report_id, input, time)
    QUALIFY row_number() OVER (PARTITION BY report_id, input, time, identity ORDER BY id) > 1
)
"""

#: The staging columns that only reading and deduplication need.
_STAGING_ONLY = ("ours", "line_hash", "content_hash", "line")


def deduplicate(
    con: duckdb.DuckDBPyConnection, where: str, params: dict[str, Any]
) -> tuple[list[ConflictingRecord], int]:
    """Table `staged` becomes table `rows`, in place: the rows the filters drop are deleted;
    identical records (the same content hash) are kept once; records that share report_id,
    input and time but differ in content are all kept, marked `conflict`, and returned (first
    1000, with the total count) — a crafted record cannot replace a real one by copying its keys.

    Identity is the SHA-256 of the line as read when every copy came through the fast path with
    the same bytes (the usual duplicate: a file copied or sent twice); otherwise the content hash
    of the canonical JSON, computed in Python for just those fast-path lines. In place rather
    than into a new table: a copy would hold every row twice, and the keys read once (nearly
    all) need no work at all."""
    con.execute(_COLLIDED_SQL.format(where=where), params)
    found = con.execute("SELECT count(*), count(*) FILTER (WHERE mixed) FROM collided").fetchone()
    collided, mixed = (int(found[0]), int(found[1])) if found else (0, 0)
    if mixed:
        _hash_contents(con, where, params)
    con.execute("ALTER TABLE staged ADD COLUMN conflict BOOLEAN DEFAULT false")
    conflicts: list[ConflictingRecord] = []
    total = 0
    if collided:
        conflicts, total = _mark_conflicts(con, where, params)
        con.execute(_COPIES_SQL.format(where=where), params)
    con.execute("DROP TABLE collided")
    con.execute(f"DELETE FROM staged WHERE NOT coalesce({where}, false)", params)
    for column in _STAGING_ONLY:
        con.execute(f"ALTER TABLE staged DROP COLUMN {column}")
    con.execute("ALTER TABLE staged RENAME TO rows")
    return conflicts, total


def _mark_conflicts(
    con: duckdb.DuckDBPyConnection, where: str, params: dict[str, Any]
) -> tuple[list[ConflictingRecord], int]:
    """Rows of keys read with different contents get `conflict = true`; their first 1000
    distinct contents are returned, with the total count (from every copy: before the copies
    are dropped)."""
    con.execute(_CONFLICTED_SQL.format(where=where), params)
    con.execute(
        "UPDATE staged SET conflict = true FROM conflicted AS c WHERE staged.report_id = "
        "c.report_id AND staged.input = c.input AND staged.time = c.time"
    )
    listed = con.execute(_LISTED_SQL.format(where=where), params).fetchall()
    total = int(listed[0][5]) if listed else 0
    conflicts = _with_line_numbers(
        [ConflictingRecord(r[0], r[1] or None, r[2], r[3], r[4], r[6]) for r in listed]
    )
    con.execute("DROP TABLE conflicted")
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
    if files:
        mapping = _content_hashes(con, files)
    con.execute("DROP TABLE needed")
    if mapping[0]:
        con.execute(
            """UPDATE staged SET content_hash = m.content_hash
            FROM (SELECT unnest($lines) AS line_hash, unnest($contents) AS content_hash) AS m
            WHERE staged.line_hash = m.line_hash""",
            {"lines": mapping[0], "contents": mapping[1]},
        )


def _content_hashes(
    con: duckdb.DuckDBPyConnection, files: list[str]
) -> tuple[list[bytes], list[bytes]]:
    """(line hashes, content hashes) of the lines of `files` listed in table `needed`."""
    mapping: tuple[list[bytes], list[bytes]] = ([], [])
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
    return mapping


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
