"""Reading, the Python path: the files DuckDB's fast path could not take as our records.

Objects come from `results.iter_json_objects` (the tolerant reader shared with `probe analyze`:
a hostile line is skipped with its reason, never fatal); OONI measurements are converted with
`ooni.records_from_measurement`, records without a verdict analysed with `analysis.analyze`
(both imported lazily: the report works without them). Every line that cannot become a row is
reported through the `skipped` callback with its reason. Rows carry the content hash of the
object read (`results.content_hash`) and its line number, and go into table `staged` in batches
(`insert_rows`).
"""

from __future__ import annotations

import importlib
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from probe import results
from probe.identity import is_probe_id
from probe.report.model import RECORD_FIELDS, STATUSES, TIME_FORMAT, SkippedLine


def _optional(module: str) -> Any | None:
    """probe.report.ooni / probe.analysis, imported lazily: the report works without them."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _verdict_of(record: dict[str, Any], analysis: Any | None) -> tuple[Any, str | None]:
    """(verdict, None) from the record, or from re-analysis; (None, reason) when neither works."""
    test_keys = record.get("test_keys")
    verdict = test_keys.get("verdict") if isinstance(test_keys, dict) else None
    if isinstance(verdict, dict) and verdict.get("status") in STATUSES:
        return verdict, None
    if analysis is None:
        return None, "record without a verdict (probe.analysis not available)"
    try:
        return analysis.analyze(record).verdict, None
    except Exception as exc:  # a record the analyser cannot handle must not end the report
        return None, f"cannot analyse: {type(exc).__name__}: {exc}"


def _row(record: dict[str, Any], verdict: Any, source: str) -> tuple[Any, ...] | str:
    """One flattened row, or the reason the record cannot become one."""
    status = _field(verdict, "status")
    if status not in STATUSES:
        return f"unknown verdict status {status!r}"
    when = record.get("measurement_start_time")
    try:
        time = datetime.strptime(str(when), TIME_FORMAT)
    except ValueError:
        return f"bad measurement_start_time {when!r}"
    test_keys = record.get("test_keys")
    if not isinstance(test_keys, dict):
        test_keys = {}
    target = test_keys.get("target")
    if not isinstance(target, dict):
        target = {}
    service = target.get("service") or record.get("test_name")
    target_id, report_id = record.get("input"), record.get("report_id")
    if not isinstance(target_id, str) or not target_id:
        return "record without input (target id)"
    if not isinstance(report_id, str) or not report_id:
        return "record without report_id"
    if not isinstance(service, str) or not service:
        return "record without test_name (service)"
    blocking = _field(verdict, "blocking")
    return (
        time,
        str(record.get("probe_asn") or "AS0"),
        str(record.get("probe_cc") or "ZZ"),
        *volunteer_of(record),
        target_id,
        service,
        status,
        None if blocking is None else str(blocking),
        bool(_field(verdict, "confirmed")),
        report_id,
        source,
    )


#: The volunteer of every OONI measurement: OONI's probes on one network are one series, apart
#: from our volunteers and from our records without a probe id (docs/report.md).
OONI_VOLUNTEER = "ooni"


def volunteer_of(record: dict[str, Any]) -> tuple[str | None, str]:
    """(probe_id, network_type) of a record, as the fast path reads them: the id only when it
    is well formed (else None: the unknown volunteer; OONI_VOLUNTEER for a record converted from
    an OONI measurement, which carries `x_ooni`), `vpn` only when the annotations say so (else
    `direct`)."""
    probe_id = record.get("probe_id")
    if "x_ooni" in record and record.get("software_name") != "probe":
        probe_id = OONI_VOLUNTEER
    elif not is_probe_id(probe_id):
        probe_id = None
    annotations = record.get("annotations")
    vpn = isinstance(annotations, dict) and annotations.get("network_type") == "vpn"
    return probe_id, ("vpn" if vpn else "direct")


@dataclass(slots=True)
class _Modules:
    """probe.report.ooni and probe.analysis for one file, imported when first needed."""

    _ooni: Any | None = None
    _analysis: Any | None = None

    def ooni(self) -> Any | None:
        self._ooni = self._ooni or _optional("probe.report.ooni")
        return self._ooni

    def analysis(self) -> Any | None:
        self._analysis = self._analysis or _optional("probe.analysis")
        return self._analysis


def _ooni_records(obj: dict[str, Any], modules: _Modules) -> list[dict[str, Any]] | str:
    """Our records from an OONI measurement, or the reason there are none."""
    ooni = modules.ooni()
    if ooni is None:
        return "OONI measurement (probe.report.ooni not available)"
    try:
        records = list(ooni.records_from_measurement(obj))
    except Exception as exc:  # bad measurement content: count it, keep going
        return f"cannot convert OONI measurement: {exc}"
    if not records:
        problem = ooni.measurement_problem(obj)
        return (
            f"not a measurement record ({problem})"
            if problem
            else f"OONI {obj.get('test_name')} measurement holds no observations"
        )
    return records


def _records_of(obj: dict[str, Any], modules: _Modules) -> tuple[list[dict[str, Any]], bytes] | str:
    """The records one object read holds and its content hash, or why it is skipped."""
    if not isinstance(obj.get("test_keys"), dict):
        return "not a measurement record (no test_keys object)"
    if "measurement_start_time" not in obj:
        return "not a measurement record (no measurement_start_time)"
    records = [obj] if obj.get("software_name") == "probe" else _ooni_records(obj, modules)
    if isinstance(records, str):
        return records
    try:
        digest = results.content_hash(obj)
    except ValueError as exc:  # nested just deep enough to parse but not to serialise
        return str(exc)
    return records, digest


def python_rows(path: str, skipped: Callable[[SkippedLine], None]) -> Iterator[tuple[Any, ...]]:
    """Rows of a file DuckDB could not take: our records line by line, OONI measurements. Each
    is RECORD_FIELDS followed by the content hash of the object read (`results.content_hash`;
    an OONI measurement's records share it) and its line number."""
    return rows_of_objects(results.iter_json_objects(path), path, skipped)


def rows_of_objects(
    items: Iterator[results.SourcedObject], path: str, skipped: Callable[[SkippedLine], None]
) -> Iterator[tuple[Any, ...]]:
    """`python_rows` over objects already read (probe.report.ooni_archive passes them filtered
    and unwrapped)."""
    modules = _Modules()
    while True:
        try:
            item = next(items)
        except StopIteration:
            return
        except (OSError, EOFError, zlib.error) as exc:  # a corrupt .gz stream
            skipped(SkippedLine(path, 0, f"cannot read: {exc}"))
            return
        if item.obj is None:
            skipped(SkippedLine(item.source, item.line, item.error or "unreadable"))
            continue
        found = _records_of(item.obj, modules)
        if isinstance(found, str):
            skipped(SkippedLine(item.source, item.line, found))
            continue
        records, digest = found
        for record in records:
            verdict, reason = _verdict_of(record, modules.analysis())
            row = reason or _row(record, verdict, item.source)
            if isinstance(row, str):
                skipped(SkippedLine(item.source, item.line, row))
            else:
                yield (*row, digest, item.line)


def insert_rows(con: duckdb.DuckDBPyConnection, rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    names = (*RECORD_FIELDS, "content_hash", "line")
    columns = list(zip(*rows, strict=True))
    params = {name: list(values) for name, values in zip(names, columns, strict=True)}
    fields = ", ".join(f"unnest(${name})" for name in RECORD_FIELDS)
    con.execute(
        f"INSERT INTO staged SELECT {fields}, true, NULL, unnest($content_hash), unnest($line)",
        params,
    )
