"""Change detection: per series (one target seen by one volunteer — probe id — on one network,
ASN and country, directly or through a VPN) in time order, accepted changes of state and gaps
in data. Volunteers on one network are separate series: merging their runs would read one
volunteer's blocked run and another's ok run as flapping.

Inconclusive runs are ignored (they neither confirm nor break a state). A new status is accepted
when it is seen in `ChangeRule.confirm_runs` consecutive conclusive runs (default 2), so one odd
run between agreeing runs is noise; a new blocking method inside an accepted blocking period
likewise. A time without any conclusive run longer than `ChangeRule.max_gap` (default 24 h) is
reported as a gap, and a candidate state never spans a gap; if the state after a gap differs from
the one before, the event is marked `across_gap` (it happened somewhere inside the gap). The first
accepted state of a series is where it starts, not an event.

The engine cuts each series into segments (consecutive conclusive runs in one state,
`shared_sql.segments_sql`: the same SQL on DuckDB and Spark); `series_changes` walks the
segments of one series (`detect_changes`) — in this process for DuckDB, a part of the series at
a time, and on Spark's workers once per series (probe/report/spark.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb

from probe.report.model import ChangeEvent, ChangeRule, DataGap, Segment
from probe.report.shared_sql import segments_sql

#: Where both engines count time from (their timestamps are naive UTC).
EPOCH = datetime(1970, 1, 1)


def event_kind(old_status: str, new_status: str) -> str:
    """The name of a change between two conclusive statuses (method changes: both blocked)."""
    if old_status == "blocked" and new_status == "blocked":
        return "method_changed"
    if new_status == "blocked":
        return "blocking_started"
    if old_status == "blocked":
        return "blocking_ended"
    if new_status == "down":
        return "outage_started"
    if old_status == "down":
        return "outage_ended"
    return "status_changed"


def segments_of(
    observations: Iterable[tuple[datetime, str, str | None]], max_gap: timedelta
) -> list[Segment]:
    """(time, status, blocking) observations of one series → segments (inconclusive dropped)."""
    found: list[Segment] = []
    for time, status, blocking in sorted(observations, key=lambda o: o[0]):
        if status == "inconclusive":
            continue
        method = blocking if status == "blocked" else None
        previous = found[-1] if found else None
        gap = previous is not None and time - previous.last > max_gap
        if previous and not gap and (previous.status, previous.blocking) == (status, method):
            found[-1] = Segment(
                status, method, previous.runs + 1, previous.first, time, previous.gap_before
            )
        else:
            found.append(Segment(status, method, 1, time, time, gap))
    return found


@dataclass(slots=True)
class _Candidate:
    """A state seen lately that is not (yet) the accepted one."""

    key: str | None  # the status (status level) or the blocking method (method level)
    runs: int
    first: datetime
    methods: Counter[str | None] = field(default_factory=Counter)


Change = tuple[str, str | None, str, str | None, datetime, datetime, bool]


@dataclass(slots=True)
class _Tracker:
    """Change detection along one series: the accepted state, the candidates, what was found."""

    rule: ChangeRule
    changes: list[Change] = field(default_factory=list)
    gaps: list[tuple[datetime, datetime]] = field(default_factory=list)
    status: str | None = None  # the accepted state
    method: str | None = None
    last_in_state: datetime | None = None  # last run in the accepted status
    last_in_method: datetime | None = None  # last run in the accepted blocking method
    candidate: _Candidate | None = None
    method_candidate: _Candidate | None = None
    previous_last: datetime | None = None
    across_gap: bool = False  # a gap came after the last run in the accepted state
    #: the accepted method was a tie between methods seen as often (dns, tcp): no method has
    #: been confirmed yet, so the next confirmed one replaces it without an event
    method_tentative: bool = False
    #: the change that accepted the tentative method (its new method is settled with it)
    tentative_change: int | None = None

    def add(self, seg: Segment) -> None:
        if seg.gap_before and self.previous_last is not None:
            self.gaps.append((self.previous_last, seg.first))
            self.candidate = self.method_candidate = None
            self.across_gap = True
        self.previous_last = seg.last
        if seg.status == self.status:
            self._same_status(seg)
        else:
            self._new_status(seg)

    def _same_status(self, seg: Segment) -> None:
        """A segment in the accepted status: in its method, or a candidate for a new method."""
        self.candidate = None
        self.last_in_state = seg.last
        if self.status != "blocked" or seg.blocking == self.method:
            self.method_candidate = None
            self.last_in_method = seg.last
            self.across_gap = False
            self.method_tentative = False  # the tie is broken: this method was seen again
            return
        candidate = self.method_candidate
        if candidate is None or candidate.key != seg.blocking:
            candidate = self.method_candidate = _Candidate(seg.blocking, 0, seg.first)
        candidate.runs += seg.runs
        if candidate.runs >= self.rule.confirm_runs and self.method_tentative:
            # blocked:dns, blocked:tcp, then tcp twice: dns was never confirmed, so this is
            # the method the blocking had all along, not a change of method
            if self.tentative_change is not None:
                old = self.changes[self.tentative_change]
                self.changes[self.tentative_change] = (*old[:3], seg.blocking, *old[4:])
            self.method, self.last_in_method = seg.blocking, seg.last
            self.method_candidate = None
            self.method_tentative = False
            return
        if candidate.runs >= self.rule.confirm_runs and self.last_in_method is not None:
            self.changes.append(
                (
                    "blocked",
                    self.method,
                    "blocked",
                    seg.blocking,
                    self.last_in_method,
                    candidate.first,
                    self.across_gap,
                )
            )
            self.method, self.last_in_method = seg.blocking, seg.last
            self.method_candidate = None
            self.across_gap = False

    def _new_status(self, seg: Segment) -> None:
        """A segment in another status: a candidate, accepted after `confirm_runs` runs."""
        self.method_candidate = None
        candidate = self.candidate
        if candidate is None or candidate.key != seg.status:
            candidate = self.candidate = _Candidate(seg.status, 0, seg.first)
        candidate.runs += seg.runs
        candidate.methods[seg.blocking] += seg.runs
        if candidate.runs < self.rule.confirm_runs:
            return
        # the method of the new state: the one with most runs; a tie goes to the latest seen,
        # tentatively (`method_tentative`): the next confirmed method replaces it
        most = max(candidate.methods.values())
        tied = [m for m, n in candidate.methods.items() if n == most]
        new_method = tied[-1]
        emitted = False
        if self.status is not None and self.last_in_state is not None:
            emitted = True
            self.changes.append(
                (
                    self.status,
                    self.method,
                    seg.status,
                    new_method,
                    self.last_in_state,
                    candidate.first,
                    self.across_gap,
                )
            )
        self.status, self.method = seg.status, new_method
        self.method_tentative = len(tied) > 1
        self.tentative_change = len(self.changes) - 1 if self.changes and emitted else None
        self.last_in_state = self.last_in_method = seg.last
        self.candidate = None
        self.across_gap = False


def detect_changes(
    segments: Iterable[Segment], rule: ChangeRule
) -> tuple[list[Change], list[tuple[datetime, datetime]]]:
    """Accepted changes and gaps of one series, from its segments in time order.

    Returns (changes, gaps): a change is (old_status, old_blocking, new_status, new_blocking,
    last_old, first_new, across_gap); a gap is (last_before, first_after). The first accepted
    state of a series is where it starts, not a change."""
    tracker = _Tracker(rule)
    for seg in segments:
        tracker.add(seg)
    return tracker.changes, tracker.gaps


#: Conclusive runs per segments query, about: the memory of its sort, not of all the runs.
_PART_ROWS = 250_000


def _parts(con: duckdb.DuckDBPyConnection) -> list[tuple[int, int]]:
    """Ranges of series ids, (low, high], one per segments query: as many equal ranges as
    there are `_PART_ROWS` conclusive runs (series of like lengths share the load alike)."""
    found = con.execute(
        "SELECT count(*) FILTER (WHERE status <> 'inconclusive'), count(DISTINCT "
        "(service, input, probe_asn, probe_cc, probe_id, network_type)) FROM rows"
    ).fetchone()
    runs, series = (int(found[0]), int(found[1])) if found else (0, 0)
    parts = max(1, min(series, -(-runs // _PART_ROWS)))
    return [(series * k // parts, series * (k + 1) // parts) for k in range(parts)]


def micros_time(value: int) -> datetime:
    """Microseconds since 1970 (how both engines hand over times) → naive UTC datetime."""
    return EPOCH + timedelta(microseconds=int(value))


def series_changes(
    key: tuple[Any, ...], segments: Sequence[Segment], rule: ChangeRule
) -> tuple[list[ChangeEvent], list[DataGap]]:
    """The change events and gaps of one series (key: shared_sql.SERIES_KEY) from its segments
    in time order. Both engines call this: DuckDB's in this process, Spark's once per series."""
    service, target, asn, cc, probe_id, lane = key
    changes, series_gaps = detect_changes(segments, rule)
    events = [
        ChangeEvent(
            event_kind(old_s, new_s),
            service,
            target,
            asn,
            cc,
            old_s,
            old_m,
            new_s,
            new_m,
            last_old,
            first_new,
            across,
            probe_id,
            lane,
        )
        for old_s, old_m, new_s, new_m, last_old, first_new, across in changes
    ]
    gaps = [DataGap(service, target, asn, cc, a, b, probe_id, lane) for a, b in series_gaps]
    return events, gaps


def sort_events(events: list[ChangeEvent], gaps: list[DataGap]) -> None:
    """The report's order of events and gaps (the same whichever engine found them)."""
    events.sort(
        key=lambda e: (
            e.first_new,
            e.service,
            e.input,
            e.probe_asn,
            e.network_type,
            e.volunteer,
            e.probe_cc,
            e.last_old,
            e.kind,
            e.new_blocking or "",
        )
    )
    gaps.sort(
        key=lambda g: (
            g.last_before,
            g.probe_asn,
            g.input,
            g.network_type,
            g.probe_id or "",
            g.probe_cc,
            g.service,
        )
    )


def changes_and_gaps(
    con: duckdb.DuckDBPyConnection, rule: ChangeRule
) -> tuple[list[ChangeEvent], list[DataGap]]:
    """Every series' change events and gaps on DuckDB: a series is one target seen by one
    volunteer (probe id) on one network, directly or through a VPN; volunteers are never
    merged. The segments come from shared_sql.SEGMENTS_SQL, a part of the series at a time."""
    events: list[ChangeEvent] = []
    gaps: list[DataGap] = []
    max_gap_us = rule.max_gap // timedelta(microseconds=1)
    for low, high in _parts(con):
        found = con.execute(segments_sql("duckdb", max_gap_us, low, high)).fetchall()
        index = 0
        while index < len(found):
            series_id = found[index][12]
            end = index
            while end < len(found) and found[end][12] == series_id:
                end += 1
            segments = [
                Segment(r[6], r[7], r[8], micros_time(r[9]), micros_time(r[10]), bool(r[11]))
                for r in found[index:end]
            ]
            more_events, more_gaps = series_changes(found[index][:6], segments, rule)
            events += more_events
            gaps += more_gaps
            index = end
    sort_events(events, gaps)
    return events, gaps
