"""The terminal outputs: plain text (`render_text`, when stdout is not a terminal) and rich tables
(`print_rich`). Record text is untrusted: every field goes through `terminal_safe` (escape
sequences removed whole, control characters dropped), and rich never reads it as markup (it is
passed as `rich.text.Text`). rich is imported when first used."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from probe.report.model import Report
from probe.report.presentation import (
    event_label,
    fmt_time,
    group_gaps,
    header_lines,
    lane_label,
    network_lane,
    share_label,
    state_label,
)
from probe.report.safe import terminal_safe

if TYPE_CHECKING:
    from rich.table import Table
    from rich.text import Text


SERIES_COLUMNS = (
    "target",
    "network",
    "via",
    "volunteer",
    "latest",
    "at",
    "blocked",
    "method",
    "runs",
)


def _aligned(table: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table]


def _across_lines(report: Report, service: str) -> list[str]:
    """The view across volunteers of one service's targets seen by more than one volunteer."""
    safe = terminal_safe
    views = [v for v in report.across if v.service == service and v.volunteers > 1]
    if not views:
        return []
    table: list[tuple[str, ...]] = [("target", "network", "across volunteers")]
    table += [
        (safe(v.input), safe(network_lane(v.probe_asn, v.probe_cc, v.network_type)), v.sentence())
        for v in views
    ]
    return ["", f"-- {safe(service)} across volunteers (latest run of each) --", *_aligned(table)]


def render_text(report: Report, max_events: int = 200) -> str:
    """The plain-text summary (used when stdout is not a terminal). Record text goes through
    `terminal_safe` (fields before the columns are measured, then every line once more)."""
    safe = terminal_safe
    out = [safe(line) for line in header_lines(report)]
    for service in report.services:
        out += ["", f"== {safe(service)} =="]
        rows = [s for s in report.series if s.service == service]
        table: list[tuple[str, ...]] = [SERIES_COLUMNS]
        table += [
            (
                safe(s.input),
                safe(s.network),
                lane_label(s.network_type),
                safe(s.volunteer),
                safe(state_label(s.latest_status, s.latest_blocking)),
                fmt_time(s.latest_time),
                share_label(s),
                safe(s.method or "-"),
                str(s.runs),
            )
            for s in rows
        ]
        out += _aligned(table)
        out += _across_lines(report, service)
    if report.events:
        out += ["", "== change events (last seen in old state -> first seen in new) =="]
        for e in report.events[-max_events:]:
            gap = "  (across a data gap)" if e.across_gap else ""
            where = network_lane(e.probe_asn, e.probe_cc, e.network_type)
            out.append(
                f"{fmt_time(e.last_old)} -> {fmt_time(e.first_new)}"
                f"  {safe(where)}  {safe(e.volunteer)}  {safe(e.input)}"
                f"  {event_label(e.kind)}: {safe(state_label(e.old_status, e.old_blocking))}"
                f" -> {safe(state_label(e.new_status, e.new_blocking))}{gap}"
            )
        if len(report.events) > max_events:
            out.append(f"({len(report.events) - max_events} earlier events: see --html/--csv)")
    if report.gaps:
        out += ["", "== gaps in data (no conclusive run) =="]
        for asn, cc, before, after, count in group_gaps(report.gaps):
            hours = (after - before).total_seconds() / 3600
            out.append(
                f"{safe(asn)} {safe(cc)}  {fmt_time(before)} -> {fmt_time(after)}"
                f"  ({hours:.0f} h, {count} series)"
            )
    return "\n".join(safe(line) for line in out) + "\n"


_RICH_STYLE = {"ok": "green", "blocked": "bold red", "down": "yellow", "inconclusive": "dim"}


def _cell(value: str, style: str = "") -> Text:
    """Record text for a rich table: made terminal-safe, never parsed as markup."""
    from rich.text import Text

    return Text(terminal_safe(value), style=style)


def _table(title: str | Text, columns: tuple[str, ...], right: tuple[str, ...] = ()) -> Table:
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    for name in columns:
        table.add_column(name, justify="right" if name in right else "left")
    return table


def _service_table(report: Report, service: str) -> Table:
    table = _table(_cell(service), SERIES_COLUMNS, right=("blocked", "runs"))
    for s in (s for s in report.series if s.service == service):
        table.add_row(
            _cell(s.input),
            _cell(s.network),
            lane_label(s.network_type),
            _cell(s.volunteer),
            _cell(
                state_label(s.latest_status, s.latest_blocking),
                _RICH_STYLE.get(s.latest_status, ""),
            ),
            fmt_time(s.latest_time),
            share_label(s),
            _cell(s.method or "-"),
            str(s.runs),
        )
    return table


def _across_table(report: Report, service: str) -> Table | None:
    views = [v for v in report.across if v.service == service and v.volunteers > 1]
    if not views:
        return None
    table = _table(
        _cell(f"{service} across volunteers (latest run of each)"),
        ("target", "network", "across volunteers"),
    )
    for v in views:
        style = "bold red" if v.blocked else ""
        table.add_row(
            _cell(v.input),
            _cell(network_lane(v.probe_asn, v.probe_cc, v.network_type)),
            _cell(v.sentence(), style),
        )
    return table


def _events_table(report: Report, max_events: int) -> Table:
    columns = (
        "last seen old",
        "first seen new",
        "network",
        "volunteer",
        "target",
        "event",
        "change",
    )
    table = _table("change events", columns)
    for e in report.events[-max_events:]:
        change = (
            f"{state_label(e.old_status, e.old_blocking)} → "
            f"{state_label(e.new_status, e.new_blocking)}"
        )
        if e.across_gap:
            change += " (across gap)"
        table.add_row(
            fmt_time(e.last_old),
            fmt_time(e.first_new),
            _cell(network_lane(e.probe_asn, e.probe_cc, e.network_type)),
            _cell(e.volunteer),
            _cell(e.input),
            event_label(e.kind),
            _cell(change),
        )
    return table


def _gaps_table(report: Report) -> Table:
    columns = ("network", "last run before", "first run after", "hours", "series")
    table = _table("gaps in data", columns)
    for asn, cc, before, after, count in group_gaps(report.gaps):
        table.add_row(
            _cell(f"{asn} {cc}"),
            fmt_time(before),
            fmt_time(after),
            f"{(after - before).total_seconds() / 3600:.0f}",
            str(count),
        )
    return table


def print_rich(report: Report, console: Any, max_events: int = 200) -> None:
    """The terminal summary as rich tables (colour when the terminal has it). Record text is
    passed as `rich.text.Text` (never parsed as rich markup) after `terminal_safe`."""
    for line in header_lines(report):
        console.print(_cell(line), highlight=False, markup=False)
    for service in report.services:
        console.print(_service_table(report, service))
        across = _across_table(report, service)
        if across is not None:
            console.print(across)
    if report.events:
        console.print(_events_table(report, max_events))
        if len(report.events) > max_events:
            console.print(f"({len(report.events) - max_events} earlier events: see --html/--csv)")
    if report.gaps:
        console.print(_gaps_table(report))
