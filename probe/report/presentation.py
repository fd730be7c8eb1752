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


def lane_label(network_type: str) -> str:
    """How the series' records reached the network: `direct` or `VPN`."""
    return "VPN" if network_type == "vpn" else "direct"


def network_lane(asn: str, cc: str, network_type: str) -> str:
    """'AS44244 IR', or 'AS44244 IR via VPN' for a VPN lane."""
    return f"{asn} {cc}" + (" via VPN" if network_type == "vpn" else "")


def volunteer_counts(report: Report) -> str:
    """'3 volunteers (1 through a VPN), 40 series without a probe id' (the parts that apply)."""
    ids = {s.probe_id for s in report.series if s.probe_id is not None}
    vpn = {s.probe_id for s in report.series if s.probe_id is not None and s.network_type == "vpn"}
    text = f"{len(ids)} volunteer{'' if len(ids) == 1 else 's'}"
    if vpn:
        text += f" ({len(vpn)} through a VPN)"
    unknown = sum(s.probe_id is None for s in report.series)
    if unknown:
        text += f", {unknown} series without a probe id"
    return text


def header_lines(report: Report) -> list[str]:
    lines = [
        f"{report.rows} records from {report.files} files"
        f" ({report.duplicates} duplicates dropped), {len(report.series)} series,"
        f" {len(report.events)} change events, {len(report.gaps)} gaps;"
        f" {volunteer_counts(report)}",
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
