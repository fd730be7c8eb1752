"""The flattened rows as CSV and Parquet files (DuckDB `COPY`, written atomically).

A CSV text cell a spreadsheet would read as a formula (first character `=`, `+`, `-`, `@`, tab or
carriage return) gets a leading single quote, as OWASP recommends against formula injection; only
the CSV is changed: the Parquet file and the DuckDB table keep the values as read."""

from __future__ import annotations

import os

import duckdb

from probe.report.atomic import atomic_target
from probe.report.model import ROW_COLUMNS, Report, ReportInputError

#: Text columns of the rows (the others: TIMESTAMP `time`, BOOLEANs `confirmed` and `conflict`).
TEXT_COLUMNS = tuple(c for c in ROW_COLUMNS if c not in ("time", "confirmed", "conflict"))

#: A CSV cell starting with one of these is a formula to a spreadsheet (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(column: str, table: str = "rows") -> str:
    """SQL for a text column in CSV: a cell a spreadsheet would read as a formula gets a leading
    single quote (chr(39)), so it is shown as text (OWASP's advice); other cells are left as
    they are."""
    starts = ", ".join(f"chr({ord(c)})" for c in FORMULA_STARTS)
    return (
        f"CASE WHEN left({table}.{column}, 1) IN ({starts}) THEN chr(39) || {table}.{column} "
        f"ELSE {table}.{column} END AS {column}"
    )


def _copy_rows(report: Report, path: str | os.PathLike[str], fmt: str) -> None:
    final, temp = atomic_target(path)
    try:
        options = "FORMAT csv, HEADER true" if fmt == "csv" else "FORMAT parquet"
        columns = [
            csv_cell(c) if fmt == "csv" and c in TEXT_COLUMNS else f"rows.{c}" for c in ROW_COLUMNS
        ]
        # COPY takes no parameter for the path: quote it as an SQL string literal
        literal = "'" + str(temp).replace("'", "''") + "'"
        report.connection.execute(
            f"COPY (SELECT {', '.join(columns)} FROM rows ORDER BY rows.time, rows.probe_asn, "
            f"rows.probe_cc, rows.input, rows.network_type, rows.probe_id) TO {literal} "
            f"({options})"
        )
        os.replace(temp, final)
    except duckdb.Error as exc:
        raise ReportInputError(f"{final}: cannot write: {exc}") from None
    finally:
        temp.unlink(missing_ok=True)


def write_csv(report: Report, path: str | os.PathLike[str]) -> None:
    """The flattened rows as CSV with a header (written atomically); text cells that start like a
    formula are prefixed with a single quote (`csv_cell`)."""
    _copy_rows(report, path, "csv")


def write_parquet(report: Report, path: str | os.PathLike[str]) -> None:
    """The flattened rows as Parquet (written atomically)."""
    _copy_rows(report, path, "parquet")
