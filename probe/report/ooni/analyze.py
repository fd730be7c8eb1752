"""Re-analysis of stored files (`probe analyze`): every record in them, ours or converted from
OONI's, with its verdict, and a note for each file or line skipped."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from probe.analysis.fingerprints import FingerprintDB
from probe.report.ooni.records import measurement_problem, records_from_measurement


@dataclass(slots=True)
class AnalyzedRecord:
    """One record's verdict, with where it came from (the `probe analyze --json` object)."""

    source: str
    line: int
    record: dict[str, Any]
    verdict: dict[str, Any]
    endpoints: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "line": self.line,
            "report_id": self.record.get("report_id"),
            "input": self.record.get("input"),
            "test_name": self.record.get("test_name"),
            "measurement_start_time": self.record.get("measurement_start_time"),
            "probe_asn": self.record.get("probe_asn"),
            "probe_cc": self.record.get("probe_cc"),
            "verdict": self.verdict,
        }

    def text_line(self) -> str:
        status = self.verdict.get("status", "")
        blocking = self.verdict.get("blocking")
        shown = f"{status}/{blocking}" if blocking else str(status)
        return f"{self.record.get('input')}  {shown}  {self.verdict.get('reason', '')}"


@dataclass(slots=True)
class AnalyzeNote:
    """Something that was skipped, as one `file[:line]: message` line."""

    message: str


def analyze_paths(
    paths: Iterable[str], fingerprints: FingerprintDB | None = None
) -> Iterator[AnalyzedRecord | AnalyzeNote]:
    """Every record in the files (directories: their result files), analysed again, in order;
    a note for each file or line that was skipped, naming why. Never raises for file content."""
    from probe.analysis import analyze
    from probe.results import iter_json_objects, iter_result_files

    for path in iter_result_files(list(paths)):
        found = 0
        measurements = 0
        skipped: list[tuple[str, str]] = []  # (file:line, why)
        for item in iter_json_objects(path):
            where = f"{item.source}:{item.line}"
            if item.obj is None:
                skipped.append((where, item.error or "unreadable"))
                continue
            problem = measurement_problem(item.obj)
            if problem is not None:
                skipped.append((where, f"not a measurement ({problem})"))
                continue
            measurements += 1
            records = records_from_measurement(item.obj)
            if not records:
                test_name = item.obj.get("test_name")
                skipped.append((where, f"OONI {test_name} measurement holds no observations"))
                continue
            for record in records:
                found += 1
                result = analyze(record, fingerprints)
                yield AnalyzedRecord(
                    item.source,
                    item.line,
                    record,
                    result.verdict.to_dict(),
                    [e.to_dict() for e in result.endpoints],
                )
        if not measurements:
            first = skipped[0][1] if skipped else ""
            why = first.removeprefix("not a measurement (").removesuffix(")") if first else ""
            yield AnalyzeNote(f"{path}: not a measurement file ({why or 'no records'}), skipped")
            continue
        for where, why in skipped[:20]:
            yield AnalyzeNote(f"{where}: {why}, skipped")
        if len(skipped) > 20:
            yield AnalyzeNote(f"{path}: {len(skipped) - 20} more lines skipped")
