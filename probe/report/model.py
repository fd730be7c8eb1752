"""The report's data model: the row columns, the options (`ReportFilters`, `ChangeRule`), what the
readers found (`SkippedLine`, `ConflictingRecord`, `UnmatchedFilter`), the change-detection values
(`Segment`, `ChangeEvent`, `DataGap`), the per-series summary and `Report` itself, whose one-line
summaries of skipped lines, conflicts and unmatched filters every output shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import duckdb

from probe.report.safe import clip, terminal_safe

STATUSES = ("ok", "blocked", "down", "inconclusive")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

#: How a record reached the network: `vpn` when its annotations say the traffic went through a
#: VPN (`annotations.network_type = "vpn"`, probe/vantage/facts.py), else `direct`.
NETWORK_TYPES = ("direct", "vpn")
#: A volunteer whose records carry no (well-formed) probe id: records of versions before the
#: probe id, and OONI measurements. One such lane per network (see docs/report.md).
UNKNOWN_VOLUNTEER = "unknown"

ROW_SCHEMA = (
    "time TIMESTAMP, probe_asn VARCHAR, probe_cc VARCHAR, probe_id VARCHAR, "
    "network_type VARCHAR, input VARCHAR, service VARCHAR, status VARCHAR, blocking VARCHAR, "
    "confirmed BOOLEAN, report_id VARCHAR, source VARCHAR"
)
#: The columns of table `rows` and of the CSV and Parquet files. `probe_id`: the volunteer's
#: pseudonymous id, NULL when the record has none; `network_type`: NETWORK_TYPES. `conflict`:
#: another record with the same report_id, input and time but different content was read (both
#: are kept).
ROW_COLUMNS = (
    "time",
    "probe_asn",
    "probe_cc",
    "probe_id",
    "network_type",
    "input",
    "service",
    "status",
    "blocking",
    "confirmed",
    "report_id",
    "source",
    "conflict",
)
#: What one record yields (ROW_SCHEMA); `conflict` is known once every file has been read.
RECORD_FIELDS = ROW_COLUMNS[:-1]


class ReportInputError(ValueError):
    """A path or option the report cannot use (one line, for the command line)."""


@dataclass(frozen=True, slots=True)
class ReportFilters:
    """Which rows the report keeps. Times are naive UTC; since inclusive, until exclusive."""

    since: datetime | None = None
    until: datetime | None = None
    services: tuple[str, ...] = ()
    asns: tuple[str, ...] = ()
    ccs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ChangeRule:
    """The noise-robust change rule (`probe.report.changes`)."""

    confirm_runs: int = 2
    max_gap: timedelta = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class SkippedLine:
    source: str
    line: int
    reason: str


@dataclass(frozen=True, slots=True)
class ConflictingRecord:
    """A record that shares report_id, input and time with another of different content (both
    are kept): where its first copy is (line None when not known) and its content identity."""

    source: str
    line: int | None
    report_id: str
    input: str
    time: datetime
    identity: bytes

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}" if self.line else self.source


@dataclass(frozen=True, slots=True)
class UnmatchedFilter:
    """A --service/--asn/--cc option whose values `missing` no record read has; `present`: the
    values the records have."""

    option: str
    missing: tuple[str, ...]
    present: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Segment:
    """Consecutive conclusive runs of one series in one state (status, blocking)."""

    status: str
    blocking: str | None
    runs: int
    first: datetime
    last: datetime
    gap_before: bool = False


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    kind: str  # blocking_started | blocking_ended | method_changed | outage_started | ...
    service: str
    input: str
    probe_asn: str
    probe_cc: str
    old_status: str
    old_blocking: str | None
    new_status: str
    new_blocking: str | None
    last_old: datetime  # last observation in the old state
    first_new: datetime  # first observation in the new state
    across_gap: bool = False
    probe_id: str | None = None  # the volunteer (None: records without a probe id)
    network_type: str = "direct"

    @property
    def volunteer(self) -> str:
        return self.probe_id or UNKNOWN_VOLUNTEER


@dataclass(frozen=True, slots=True)
class DataGap:
    service: str
    input: str
    probe_asn: str
    probe_cc: str
    last_before: datetime
    first_after: datetime
    probe_id: str | None = None
    network_type: str = "direct"


@dataclass(frozen=True, slots=True)
class SeriesSummary:
    """One target seen by one volunteer (probe id) on one network, directly or through a VPN:
    latest status, share of runs blocked, most common method."""

    service: str
    input: str
    probe_asn: str
    probe_cc: str
    runs: int
    conclusive_runs: int
    blocked_runs: int
    confirmed_runs: int
    method: str | None
    first_time: datetime
    latest_time: datetime
    latest_status: str
    latest_blocking: str | None
    probe_id: str | None = None
    network_type: str = "direct"

    @property
    def network(self) -> str:
        return f"{self.probe_asn} {self.probe_cc}"

    @property
    def volunteer(self) -> str:
        return self.probe_id or UNKNOWN_VOLUNTEER

    @property
    def share_blocked(self) -> float | None:
        return self.blocked_runs / self.conclusive_runs if self.conclusive_runs else None


@dataclass(frozen=True, slots=True)
class VolunteerView:
    """One target on one network (and lane: direct or VPN) across volunteers: how many
    volunteers' latest run has each status ("2 of 3 volunteers in AS44244 see
    blocking"). Records without a probe id count as one volunteer (`UNKNOWN_VOLUNTEER`)."""

    service: str
    input: str
    probe_asn: str
    probe_cc: str
    network_type: str
    volunteers: int
    blocked: int
    ok: int
    down: int
    inconclusive: int
    #: the blocking methods of the volunteers who see blocking, most common first
    methods: tuple[str, ...] = ()
    #: whether one of the volunteers is records without a probe id
    unknown: bool = False

    @property
    def network(self) -> str:
        return f"{self.probe_asn} {self.probe_cc}"

    def sentence(self) -> str:
        """'2 of 3 volunteers see blocking (dns, tcp)'."""
        word = "volunteer" if self.volunteers == 1 else "volunteers"
        how = f" ({', '.join(self.methods)})" if self.methods else ""
        see = "sees" if self.volunteers == 1 else "see"
        return f"{self.blocked} of {self.volunteers} {word} {see} blocking{how}"


@dataclass
class Report:
    """The flattened rows live in DuckDB table `rows` of `connection`; the rest is summarised."""

    connection: duckdb.DuckDBPyConnection
    filters: ReportFilters
    rule: ChangeRule
    files: int
    records_read: int
    duplicates: int
    skipped: list[SkippedLine]
    skipped_total: int
    series: list[SeriesSummary] = field(default_factory=list)
    #: per target, network and lane: the volunteers' latest states side by side
    across: list[VolunteerView] = field(default_factory=list)
    events: list[ChangeEvent] = field(default_factory=list)
    gaps: list[DataGap] = field(default_factory=list)
    #: records kept side by side because they share their keys but not their content
    conflicts: list[ConflictingRecord] = field(default_factory=list)
    conflicts_total: int = 0
    #: filter values that match no record read (the command line refuses them, exit 2)
    unmatched: list[UnmatchedFilter] = field(default_factory=list)

    @property
    def rows(self) -> int:
        found = self.connection.execute("SELECT count(*) FROM rows").fetchone()
        return int(found[0]) if found else 0

    @property
    def services(self) -> list[str]:
        return sorted({s.service for s in self.series})

    def skipped_summary(self, limit: int = 5) -> str | None:
        """'3 lines skipped in 2 files: a.jsonl:4 (not JSON: …), …' or None."""
        if not self.skipped_total:
            return None
        files = len({s.source for s in self.skipped})
        examples = ", ".join(f"{s.source}:{s.line} ({s.reason})" for s in self.skipped[:limit])
        more = " …" if self.skipped_total > limit else ""
        lines = "line" if self.skipped_total == 1 else "lines"
        in_files = "file" if files == 1 else "files"
        return f"{self.skipped_total} {lines} skipped in {files} {in_files}: {examples}{more}"

    def conflicts_summary(self, limit: int = 5) -> str | None:
        """'2 conflicting records (same report_id, input and time, different content; both
        kept): a.jsonl:3, evil.jsonl:1' or None."""
        if not self.conflicts_total:
            return None
        examples = ", ".join(c.where for c in self.conflicts[:limit])
        more = " …" if self.conflicts_total > limit else ""
        records = "record" if self.conflicts_total == 1 else "records"
        return (
            f"{self.conflicts_total} conflicting {records} (same report_id, input and time, "
            f"different content; all kept): {examples}{more}"
        )

    def unmatched_summary(self, limit: int = 20) -> str | None:
        """'--service telegarm matched no record (services in the data: signal, telegram)' for
        each filter that matched nothing, on one line; None when every value matched."""
        if not self.unmatched:
            return None
        what = {"--service": "services", "--asn": "ASNs", "--cc": "countries"}
        parts = []
        for u in self.unmatched:
            shown = [clip(v) for v in u.present[:limit]]
            if len(u.present) > limit:
                shown.append(f"… {len(u.present) - limit} more")
            there = (
                f"{what.get(u.option, 'values')} in the data: {', '.join(shown)}"
                if shown
                else "no records were read"
            )
            missing = ",".join(clip(v) for v in u.missing)
            parts.append(f"{u.option} {missing} matched no record ({there})")
        return terminal_safe("; ".join(parts))
