"""The view across volunteers: per target, network (ASN, country) and lane (direct or through a
VPN), how many volunteers' latest run found it blocked, ok, down or inconclusive — "2 of 3
volunteers in AS44244 see blocking". Series and change events are per volunteer (build.py,
changes.py); this is the one place where volunteers are counted together, from the series'
latest states, never by merging their runs.

`across_volunteers` computes it from the series; `write_across_csv` and `write_across_parquet`
export it (columns `ACROSS_COLUMNS`, written atomically like the rows)."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence

import duckdb

from probe.report.atomic import atomic_target
from probe.report.model import Report, ReportInputError, SeriesSummary, VolunteerView

#: The columns of the exported view, one row per (service, target, network, lane).
ACROSS_COLUMNS = (
    "service",
    "input",
    "probe_asn",
    "probe_cc",
    "network_type",
    "volunteers",
    "blocked",
    "ok",
    "down",
    "inconclusive",
    "methods",
    "unknown_volunteer",
)


def across_volunteers(series: Sequence[SeriesSummary]) -> list[VolunteerView]:
    """One view per (service, target, network, lane), in the series' order."""
    groups: dict[tuple[str, str, str, str, str], list[SeriesSummary]] = {}
    for s in series:
        key = (s.service, s.input, s.probe_asn, s.probe_cc, s.network_type)
        groups.setdefault(key, []).append(s)
    views = []
    for (service, target, asn, cc, lane), members in groups.items():
        statuses = Counter(s.latest_status for s in members)
        methods = Counter(
            s.latest_blocking or "unknown" for s in members if s.latest_status == "blocked"
        )
        ordered = tuple(m for m, _ in sorted(methods.items(), key=lambda m: (-m[1], m[0])))
        views.append(
            VolunteerView(
                service,
                target,
                asn,
                cc,
                lane,
                volunteers=len(members),
                blocked=statuses["blocked"],
                ok=statuses["ok"],
                down=statuses["down"],
                inconclusive=statuses["inconclusive"],
                methods=ordered,
                unknown=any(s.probe_id is None for s in members),
            )
        )
    return views


def _table(report: Report) -> str:
    """The view as DuckDB table `across` of the report's connection (made once)."""
    con = report.connection
    con.execute(
        "CREATE OR REPLACE TABLE across (service VARCHAR, input VARCHAR, probe_asn VARCHAR, "
        "probe_cc VARCHAR, network_type VARCHAR, volunteers INTEGER, blocked INTEGER, "
        "ok INTEGER, down INTEGER, inconclusive INTEGER, methods VARCHAR, "
        "unknown_volunteer BOOLEAN)"
    )
    rows = [
        (
            v.service,
            v.input,
            v.probe_asn,
            v.probe_cc,
            v.network_type,
            v.volunteers,
            v.blocked,
            v.ok,
            v.down,
            v.inconclusive,
            ",".join(v.methods),
            v.unknown,
        )
        for v in report.across
    ]
    if rows:
        con.executemany("INSERT INTO across VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return "across"


def _copy(report: Report, path: str | os.PathLike[str], fmt: str) -> None:
    from probe.report.tabular import csv_cell

    final, temp = atomic_target(path)
    table = _table(report)
    text = ("service", "input", "probe_asn", "probe_cc", "network_type", "methods")
    columns = [
        csv_cell(c, table) if fmt == "csv" and c in text else f"{table}.{c}" for c in ACROSS_COLUMNS
    ]
    options = "FORMAT csv, HEADER true" if fmt == "csv" else "FORMAT parquet"
    literal = "'" + str(temp).replace("'", "''") + "'"
    try:
        report.connection.execute(
            f"COPY (SELECT {', '.join(columns)} FROM {table} ORDER BY service, input, "
            f"probe_cc, probe_asn, network_type) TO {literal} ({options})"
        )
        os.replace(temp, final)
    except duckdb.Error as exc:
        raise ReportInputError(f"{final}: cannot write: {exc}") from None
    finally:
        temp.unlink(missing_ok=True)


def write_across_csv(report: Report, path: str | os.PathLike[str]) -> None:
    """The view across volunteers as CSV (formula cells neutralised, written atomically)."""
    _copy(report, path, "csv")


def write_across_parquet(report: Report, path: str | os.PathLike[str]) -> None:
    """The view across volunteers as Parquet (written atomically)."""
    _copy(report, path, "parquet")
