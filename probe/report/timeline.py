"""The HTML page's timelines: per service, one inline SVG with one lane per volunteer and network
— records made through a VPN in a lane of their own, labelled "via VPN", and records without a
probe id in one `unknown` lane per network — and one cell per time bucket, coloured by what the
bucket's runs of that volunteer found; ▼ marks change events on the lane of their series.

Every string from a record (ASNs, countries, target ids, states) is HTML-escaped where it lands,
in `<text>`, in `<title>` tooltips and in attribute values (the `aria-label`)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from probe.report.model import UNKNOWN_VOLUNTEER, Report
from probe.report.presentation import event_label, fmt_time, network_lane, state_label

COLOURS = {
    "ok": "#2e9e4f",
    "partial": "#f0a030",
    "blocked": "#d62f2f",
    "down": "#6a6fbf",
    "inconclusive": "#c8c8c8",
}
CLASS_LABEL = {
    "ok": "ok",
    "partial": "some targets blocked",
    "blocked": "all targets blocked",
    "down": "down",
    "inconclusive": "inconclusive only",
}
_BUCKETS = (
    timedelta(hours=1),
    timedelta(hours=2),
    timedelta(hours=3),
    timedelta(hours=6),
    timedelta(hours=12),
    timedelta(days=1),
    timedelta(days=2),
    timedelta(days=7),
    timedelta(days=14),
    timedelta(days=30),
)

#: Per network, network type, volunteer and bucket of one service: runs ok, blocked, down and
#: conclusive.
_CELLS_SQL = """
        SELECT probe_asn, probe_cc, network_type, coalesce(probe_id, $unknown),
               (epoch(time) - epoch($origin))::BIGINT // $seconds AS slot,
               count(*) FILTER (WHERE status = 'ok'),
               count(*) FILTER (WHERE status = 'blocked'),
               count(*) FILTER (WHERE status = 'down'),
               count(*) FILTER (WHERE status <> 'inconclusive')
        FROM rows WHERE service = $service
        GROUP BY ALL ORDER BY ALL
        """

_LEFT, _TOP, _LANE_H, _RIGHT = 250, 8, 16, 10


def _bucket_width(start: datetime, end: datetime, columns: int = 360) -> timedelta:
    span = end - start
    for width in _BUCKETS:
        if span / width <= columns:
            return width
    return _BUCKETS[-1]


def _cell_class(ok: int, blocked: int, down: int, conclusive: int) -> str:
    if conclusive == 0:
        return "inconclusive"
    if blocked:
        return "blocked" if blocked == conclusive else "partial"
    return "down" if down > ok else "ok"


@dataclass(frozen=True, slots=True)
class _Frame:
    """A timeline's time axis (from midnight before the first run, in buckets) and pixel layout."""

    origin: datetime
    end: datetime
    bucket: timedelta
    lanes: int
    width: int

    @property
    def seconds(self) -> int:
        return int(self.bucket.total_seconds())

    @property
    def plot_w(self) -> int:
        return self.width - _LEFT - _RIGHT

    @property
    def cell_w(self) -> float:
        slots = int((self.end - self.origin).total_seconds() // self.seconds) + 1
        return self.plot_w / slots

    @property
    def height(self) -> int:
        return _TOP + _LANE_H * self.lanes + 28

    def x(self, when: datetime) -> float:
        return _LEFT + (when - self.origin).total_seconds() / self.seconds * self.cell_w


#: A lane: (ASN, country, network type, volunteer).
Lane = tuple[str, str, str, str]


def _lanes(lane_of: dict[Lane, int], frame: _Frame) -> list[str]:
    """Each lane's label and empty lane."""
    parts = []
    for network, lane in lane_of.items():
        y = _TOP + lane * _LANE_H
        parts.append(
            f'<text x="{_LEFT - 6}" y="{y + 12}" text-anchor="end">'
            f"{html.escape(network_lane(*network[:3]))} {html.escape(network[3])}</text>"
        )
        parts.append(
            f'<rect x="{_LEFT}" y="{y + 1}" width="{frame.plot_w}" height="{_LANE_H - 2}" '
            'fill="#f7f7f7"/>'
        )
    return parts


def _cells(cells: Sequence[tuple[Any, ...]], lane_of: dict[Lane, int], frame: _Frame) -> list[str]:
    """The coloured cells; consecutive cells of one class become one rectangle (a small page)."""
    runs: list[tuple[int, int, int, str]] = []  # lane, first slot, last slot, class
    for asn, cc, network_type, volunteer, slot, ok, blocked, down, conclusive in cells:
        lane = lane_of[(asn, cc, network_type, volunteer)]
        cls = _cell_class(ok, blocked, down, conclusive)
        if runs and runs[-1][0] == lane and runs[-1][3] == cls and runs[-1][2] == slot - 1:
            runs[-1] = (lane, runs[-1][1], slot, cls)
        else:
            runs.append((lane, slot, slot, cls))
    parts = []
    cell_w = frame.cell_w
    for lane, first, last, cls in runs:
        x = _LEFT + first * cell_w
        w = (last - first + 1) * cell_w
        t0 = frame.origin + first * frame.bucket
        t1 = frame.origin + (last + 1) * frame.bucket
        parts.append(
            f'<rect x="{x:.1f}" y="{_TOP + lane * _LANE_H + 1}" width="{w:.2f}" '
            f'height="{_LANE_H - 2}" fill="{COLOURS[cls]}"><title>{CLASS_LABEL[cls]}: '
            f"{fmt_time(t0)} – {fmt_time(t1)}</title></rect>"
        )
    return parts


def _event_marks(
    report: Report, service: str, lane_of: dict[Lane, int], frame: _Frame
) -> list[str]:
    """A ▼ per change event of the service, with its tooltip (naming the volunteer)."""
    parts = []
    for event in report.events:
        lane_index = lane_of.get(
            (event.probe_asn, event.probe_cc, event.network_type, event.volunteer)
        )
        if event.service != service or lane_index is None:
            continue
        x = frame.x(event.first_new)
        y = _TOP + lane_index * _LANE_H
        parts.append(
            f'<path d="M{x:.1f} {y + _LANE_H - 1} l-4 -6 h8 z" fill="#111">'
            f"<title>{html.escape(event.input)} ({html.escape(event.volunteer)}): "
            f"{event_label(event.kind)} "
            f"({html.escape(state_label(event.old_status, event.old_blocking))} → "
            f"{html.escape(state_label(event.new_status, event.new_blocking))}), first seen "
            f"{fmt_time(event.first_new)}</title></path>"
        )
    return parts


def _axis(frame: _Frame) -> list[str]:
    """The time axis: a tick and a date every 1, 2, 7, … days (at most about 12)."""
    axis_y = _TOP + _LANE_H * frame.lanes + 4
    end_x = _LEFT + frame.plot_w
    parts = [f'<line x1="{_LEFT}" y1="{axis_y}" x2="{end_x}" y2="{axis_y}" stroke="#999"/>']
    span_days = max(1, (frame.end - frame.origin).days + 1)
    step = next(d for d in (1, 2, 7, 14, 30, 61, 91, 182, 365, 10**6) if span_days / d <= 12)
    day = frame.origin
    while day <= frame.end:
        x = frame.x(day)
        parts.append(
            f'<line x1="{x:.1f}" y1="{axis_y}" x2="{x:.1f}" y2="{axis_y + 4}" stroke="#999"/>'
        )
        parts.append(
            f'<text x="{x:.1f}" y="{axis_y + 16}" text-anchor="middle">{day:%Y-%m-%d}</text>'
        )
        day += timedelta(days=step)
    return parts


def timeline_svg(report: Report, service: str, width: int = 1200) -> str:
    """Status over time for one service: one lane per volunteer and network (a VPN lane apart),
    one cell per bucket."""
    con = report.connection
    bounds = con.execute("SELECT min(time), max(time) FROM rows").fetchone()
    if not bounds or bounds[0] is None:
        return ""
    start, end = bounds[0], bounds[1] + timedelta(seconds=1)
    bucket = _bucket_width(start, end)
    origin = datetime(start.year, start.month, start.day)
    cells = con.execute(
        _CELLS_SQL,
        {
            "origin": origin,
            "seconds": int(bucket.total_seconds()),
            "service": service,
            "unknown": UNKNOWN_VOLUNTEER,
        },
    ).fetchall()
    networks = sorted({tuple(c[:4]) for c in cells}, key=lambda n: (n[1], n[0], n[2], n[3]))
    lane_of = {n: i for i, n in enumerate(networks)}
    frame = _Frame(origin, end, bucket, len(networks), width)
    height = frame.height
    return "".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{html.escape(service)} timeline">',
            *_lanes(lane_of, frame),
            *_cells(cells, lane_of, frame),
            *_event_marks(report, service, lane_of, frame),
            *_axis(frame),
            "</svg>",
        ]
    )
