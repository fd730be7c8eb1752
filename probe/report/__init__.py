"""Reports over time (`probe report`): many result files, ours and OONI's, → per-network tables,
timelines, change events and gaps, as text, rich tables, one self-contained HTML page, CSV and
Parquet. `build_report` (build.py) reads the files into DuckDB — our JSON Lines through the fast
path (read_fast.py), everything else through the tolerant Python reader (read_python.py) —,
drops identical records and keeps conflicting ones (dedup.py), applies the filters (filters.py),
summarises each series — one target seen by one volunteer (probe id) on one network, directly
or through a VPN — and finds its changes with the two-run and 24-hour-gap rules (changes.py),
counts volunteers together only in the explicit view across volunteers (across.py); the
values are in model.py. The outputs are text.py (plain and rich), html_page.py
with timeline.py (inline SVG), tabular.py (CSV with formula cells neutralised, Parquet) and
atomic.py (every file written atomically); presentation.py holds what they share and safe.py
makes record text harmless for a terminal. Every string from a record is hostile: HTML-escaped
wherever it lands, neutralised as a CSV formula, stripped of terminal control sequences.
"""

from probe.report.across import (
    ACROSS_COLUMNS,
    across_volunteers,
    write_across_csv,
    write_across_parquet,
)
from probe.report.atomic import write_text_file
from probe.report.build import build_report
from probe.report.changes import Change, detect_changes, event_kind, segments_of
from probe.report.filters import describe_filters, make_filters, parse_time
from probe.report.html_page import render_html, write_html
from probe.report.model import (
    NETWORK_TYPES,
    RECORD_FIELDS,
    ROW_COLUMNS,
    ROW_SCHEMA,
    STATUSES,
    TIME_FORMAT,
    UNKNOWN_VOLUNTEER,
    ChangeEvent,
    ChangeRule,
    ConflictingRecord,
    DataGap,
    Report,
    ReportFilters,
    ReportInputError,
    Segment,
    SeriesSummary,
    SkippedLine,
    UnmatchedFilter,
    VolunteerView,
)
from probe.report.read_fast import RECORD_COLUMNS, RECORD_STRUCTURE
from probe.report.safe import terminal_safe
from probe.report.tabular import FORMULA_STARTS, TEXT_COLUMNS, write_csv, write_parquet
from probe.report.text import print_rich, render_text
from probe.report.timeline import COLOURS as _COLOURS  # noqa: F401 (tests read the colours)

__all__ = [
    "ACROSS_COLUMNS",
    "FORMULA_STARTS",
    "NETWORK_TYPES",
    "RECORD_COLUMNS",
    "RECORD_FIELDS",
    "RECORD_STRUCTURE",
    "ROW_COLUMNS",
    "ROW_SCHEMA",
    "STATUSES",
    "TEXT_COLUMNS",
    "TIME_FORMAT",
    "UNKNOWN_VOLUNTEER",
    "Change",
    "ChangeEvent",
    "ChangeRule",
    "ConflictingRecord",
    "DataGap",
    "Report",
    "ReportFilters",
    "ReportInputError",
    "Segment",
    "SeriesSummary",
    "SkippedLine",
    "UnmatchedFilter",
    "VolunteerView",
    "across_volunteers",
    "build_report",
    "describe_filters",
    "detect_changes",
    "event_kind",
    "make_filters",
    "parse_time",
    "print_rich",
    "render_html",
    "render_text",
    "segments_of",
    "terminal_safe",
    "write_across_csv",
    "write_across_parquet",
    "write_csv",
    "write_html",
    "write_parquet",
    "write_text_file",
]
