"""Putting records into the spool: those of a round just written (`probe run --upload`) and
those of existing result files (`probe upload FILES/DIRS`, read with
`results.iter_json_objects`). Each file is one transaction: a process killed while queueing
leaves every file either queued whole or not at all. Only the probe's own records are queued
(software_name "probe"): the collector takes nothing else."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from probe import results
from probe.upload.spool import Queued, Spool


@dataclass(slots=True)
class QueueReport:
    added: int = 0
    known: int = 0
    refused: int = 0
    #: records that are not the probe's (OONI measurements, other JSON)
    skipped: int = 0
    #: "file:line: reason" of lines that could not be read
    unreadable: list[str] = field(default_factory=list)
    files: int = 0


def record_line(obj: dict[str, Any]) -> Queued:
    """The record as the probe writes it (one JSON line, UTF-8) and its content hash."""
    line = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Queued(results.content_hash(obj), line)


def is_probe_record(obj: dict[str, Any]) -> bool:
    return obj.get("software_name") == "probe" and isinstance(obj.get("test_keys"), dict)


def queue_files(spool: Spool, paths: Iterable[str | os.PathLike[str]]) -> QueueReport:
    """Queue the probe records of every result file in `paths` (files, or directories
    searched recursively)."""
    report = QueueReport()
    for path in results.iter_result_files([str(p) for p in paths]):
        report.files += 1
        found = spool.enqueue(_records_of(str(path), report))
        report.added += found.added
        report.known += found.known
        report.refused += found.refused
    return report


def _records_of(path: str, report: QueueReport) -> Iterator[Queued]:
    for item in results.iter_json_objects(path):
        if item.obj is None:
            report.unreadable.append(f"{item.source}:{item.line}: {item.error}")
            continue
        if not is_probe_record(item.obj):
            report.skipped += 1
            continue
        try:
            yield record_line(item.obj)
        except ValueError as exc:
            report.unreadable.append(f"{item.source}:{item.line}: {exc}")
