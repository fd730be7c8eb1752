"""The report's filters: command-line text → `ReportFilters` (`make_filters`), the SQL predicate
that keeps rows (`filter_sql`), the --service/--asn/--cc values that match no record read
(`unmatched_filters`; `Report.unmatched_summary` words them, and the command line refuses them)
and the one-line description of the filters in force (`describe_filters`)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import duckdb

from probe.report.model import ReportFilters, ReportInputError, UnmatchedFilter


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


def filter_sql(filters: ReportFilters) -> tuple[str, dict[str, Any]]:
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


def unmatched_filters(
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
