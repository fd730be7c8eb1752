"""Pieces every output shares: times, states, shares and event names as shown, the header lines
(counts, filters, skipped lines, conflicts) and the gaps merged per network. Their results still
hold record text: each output makes it safe its own way (`terminal_safe`, `html.escape`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from probe.report.filters import describe_filters
from probe.report.model import DataGap, Report, SeriesSummary


def fmt_time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


def state_label(status: str, blocking: str | None) -> str:
    return f"{status}/{blocking}" if status == "blocked" and blocking else status


def share_label(summary: SeriesSummary) -> str:
    share = summary.share_blocked
    return "-" if share is None else f"{share:.0%}"


def event_label(kind: str) -> str:
    return kind.replace("_", " ")


def header_lines(report: Report) -> list[str]:
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


def group_gaps(gaps: Sequence[DataGap]) -> list[tuple[str, str, datetime, datetime, int]]:
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
