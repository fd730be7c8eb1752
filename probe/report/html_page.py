"""The HTML page (`render_html`, `write_html`): one self-contained file with inline CSS and inline
SVG drawn by Python (`probe.report.timeline`), no script, no fonts or images fetched, no external
reference of any kind. Per service a timeline (a lane per network, VPN records in their own),
the matrix of targets × networks across volunteers and the table of series per volunteer; then
the change events, the gaps in data, any conflicting records and any skipped lines.

Every string that comes from a record or a file name (target ids, services, ASNs, countries,
methods, report ids, file names, skip reasons) is HTML-escaped wherever it lands, attribute
values included."""

from __future__ import annotations

import html
import os

from probe.report.atomic import write_text_file
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
from probe.report.timeline import CLASS_LABEL, COLOURS, timeline_svg

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#222;
background:#fff;max-width:1400px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:18px 0 6px}p.meta{color:#555;margin:2px 0}
table{border-collapse:collapse;font-size:12px;margin:6px 0}
th,td{border:1px solid #ddd;padding:3px 6px;text-align:left;white-space:nowrap}
th{background:#f4f4f4;position:sticky;top:0}
td.ok{background:#dff3e4}td.blocked{background:#f8d7d7}td.down{background:#e3e4f5}
td.inconclusive{background:#eee;color:#666}
.scroll{overflow-x:auto;max-width:100%}
.legend span{display:inline-block;margin-right:14px;font-size:12px}
.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-2px}
svg text{font-family:system-ui,sans-serif;font-size:11px;fill:#333}
"""

esc = html.escape


def _head(report: Report, title: str) -> list[str]:
    """The document head, the title, the header lines, the change rule and the legend."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    bounds = report.connection.execute("SELECT min(time), max(time) FROM rows").fetchone()
    if bounds and bounds[0] is not None:
        out.append(
            f'<p class="meta">Runs from {fmt_time(bounds[0])} to {fmt_time(bounds[1])} UTC.</p>'
        )
    out += [f'<p class="meta">{esc(line)}</p>' for line in header_lines(report)]
    out.append(
        f'<p class="meta">Change rule: a new state counts after {report.rule.confirm_runs} '
        "consecutive conclusive runs; inconclusive runs are ignored; no conclusive run for more "
        f"than {report.rule.max_gap.total_seconds() / 3600:.0f} h is a gap.</p>"
    )
    legend = "".join(
        f'<span><i style="background:{COLOURS[c]}"></i>{CLASS_LABEL[c]}</span>' for c in COLOURS
    )
    out.append(
        f'<p class="legend">{legend}<span>▼ change event</span><span>(blank: no data)</span></p>'
    )
    return out


def _service(report: Report, service: str) -> list[str]:
    """One service: its timeline, its matrix of targets × networks across volunteers, and its
    series, one per target, volunteer and network."""
    out = [
        f'<h2 id="service-{esc(service)}">{esc(service)}</h2>',
        '<h3>Status over time per volunteer and network</h3><div class="scroll">'
        f"{timeline_svg(report, service)}</div>",
    ]
    out += _matrix(report, service)
    out += _series_table(report, service)
    return out


def _matrix(report: Report, service: str) -> list[str]:
    """Targets × networks (a VPN lane is a column of its own): per cell, how many volunteers'
    latest run found the target blocked."""
    views = [v for v in report.across if v.service == service]
    lanes = sorted(
        {(v.probe_asn, v.probe_cc, v.network_type) for v in views}, key=lambda n: (n[1], n[0], n[2])
    )
    targets = sorted({v.input for v in views})
    by_key = {(v.input, v.probe_asn, v.probe_cc, v.network_type): v for v in views}
    out = [
        "<h3>Latest status per network, across volunteers (the latest run of each)</h3>"
        '<div class="scroll"><table><tr><th>target</th>'
    ]
    out += [
        f"<th>{esc(a)}<br>{esc(c)}{'<br>via VPN' if t == 'vpn' else ''}</th>" for a, c, t in lanes
    ]
    out.append("</tr>")
    for target in targets:
        out.append(f"<tr><th>{esc(target)}</th>")
        for asn, cc, lane in lanes:
            v = by_key.get((target, asn, cc, lane))
            if v is None:
                out.append("<td></td>")
                continue
            cls = "blocked" if v.blocked else ("ok" if v.ok else ("down" if v.down else ""))
            cls = cls or "inconclusive"
            unknown = " (one is records without a probe id)" if v.unknown else ""
            out.append(
                f'<td class="{cls}" title="ok {v.ok}, blocked {v.blocked}, down {v.down}, '
                f'inconclusive {v.inconclusive}{unknown}">{esc(v.sentence())}</td>'
            )
        out.append("</tr>")
    out.append("</table></div>")
    return out


def _series_table(report: Report, service: str) -> list[str]:
    """One row per series: target, network, lane, volunteer, latest state, share blocked."""
    out = [
        "<h3>Per volunteer (latest status, share of conclusive runs blocked, most common "
        'method)</h3><div class="scroll"><table><tr><th>target</th><th>network</th>'
        "<th>via</th><th>volunteer</th><th>latest</th><th>at</th><th>blocked</th>"
        "<th>method</th><th>runs</th></tr>"
    ]
    for s in (s for s in report.series if s.service == service):
        out.append(
            f"<tr><td>{esc(s.input)}</td><td>{esc(s.network)}</td>"
            f"<td>{lane_label(s.network_type)}</td><td>{esc(s.volunteer)}</td>"
            f'<td class="{esc(s.latest_status)}">'
            f"{esc(state_label(s.latest_status, s.latest_blocking))}</td>"
            f"<td>{fmt_time(s.latest_time)}</td><td>{share_label(s)}</td>"
            f"<td>{esc(s.method or '-')}</td><td>{s.runs}</td></tr>"
        )
    out.append("</table></div>")
    return out


def _events(report: Report) -> list[str]:
    out = ["<h2>Change events</h2>"]
    if not report.events:
        return [*out, "<p>No change events.</p>"]
    out.append(
        '<div class="scroll"><table><tr><th>last seen in old state</th>'
        "<th>first seen in new state</th><th>service</th><th>target</th>"
        "<th>network</th><th>volunteer</th><th>event</th><th>from</th><th>to</th></tr>"
    )
    for e in report.events:
        gap = " (across a data gap)" if e.across_gap else ""
        out.append(
            f"<tr><td>{fmt_time(e.last_old)}</td><td>{fmt_time(e.first_new)}</td>"
            f"<td>{esc(e.service)}</td><td>{esc(e.input)}</td>"
            f"<td>{esc(network_lane(e.probe_asn, e.probe_cc, e.network_type))}</td>"
            f"<td>{esc(e.volunteer)}</td><td>{esc(event_label(e.kind))}{gap}</td>"
            f'<td class="{esc(e.old_status)}">{esc(state_label(e.old_status, e.old_blocking))}'
            "</td>"
            f'<td class="{esc(e.new_status)}">{esc(state_label(e.new_status, e.new_blocking))}'
            "</td></tr>"
        )
    out.append("</table></div>")
    return out


def _gaps(report: Report) -> list[str]:
    if not report.gaps:
        return []
    out = [
        "<h2>Gaps in data</h2><table><tr><th>network</th><th>last run before</th>"
        "<th>first run after</th><th>hours</th><th>series</th></tr>"
    ]
    for asn, cc, before, after, count in group_gaps(report.gaps):
        out.append(
            f"<tr><td>{esc(asn)} {esc(cc)}</td><td>{fmt_time(before)}</td>"
            f"<td>{fmt_time(after)}</td>"
            f"<td>{(after - before).total_seconds() / 3600:.0f}</td>"
            f"<td>{count}</td></tr>"
        )
    out.append("</table>")
    return out


def _problems(report: Report) -> list[str]:
    """Conflicting records and skipped lines (up to 200 of each)."""
    out = []
    if report.conflicts:
        out.append(
            "<h2>Conflicting records</h2><p>Records with the same report_id, target and time "
            "but different content: all are kept (column conflict is true in the CSV and "
            "Parquet rows); one of them may be forged.</p><table><tr><th>file:line</th>"
            "<th>report_id</th><th>target</th><th>time</th></tr>"
        )
        out += [
            f"<tr><td>{esc(c.where)}</td><td>{esc(c.report_id)}</td><td>{esc(c.input)}</td>"
            f"<td>{c.time:%Y-%m-%d %H:%M:%S}</td></tr>"
            for c in report.conflicts[:200]
        ]
        if report.conflicts_total > 200:
            out.append(f"<tr><td>… {report.conflicts_total - 200} more</td></tr>")
        out.append("</table>")
    if report.skipped:
        out.append("<h2>Skipped lines</h2><ul>")
        out += [f"<li>{esc(s.source)}:{s.line}: {esc(s.reason)}</li>" for s in report.skipped[:200]]
        out.append("</ul>")
    return out


def render_html(report: Report, title: str = "probe report") -> str:
    """One self-contained page: inline CSS and SVG, no script, no external reference."""
    out = _head(report, title)
    for service in report.services:
        out += _service(report, service)
    out += _events(report)
    out += _gaps(report)
    out += _problems(report)
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_html(report: Report, path: str | os.PathLike[str]) -> None:
    write_text_file(path, render_html(report))
