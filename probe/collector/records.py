"""One uploaded line → a record ready to store (`Accepted`), or the reason it is rejected.

A line is accepted when it is UTF-8 JSON (no NaN or Infinity, no number out of range, no
duplicate key: a record two parsers could read differently is refused), an object nested at
most `max_depth` levels, valid against the record schema (`probe.collector.schema`), with
believable times (`results.time_problem`: 2000 to two days ahead) and an ASN that fits in 32
bits. It is stored as its canonical JSON (`results.canonical_json`), whose SHA-256 is its
content hash (`results.content_hash`: the identity `probe report` deduplicates by), with the
few columns researchers filter on and the partition it belongs to."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from probe import results
from probe.collector.schema import record_check

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
MAX_ASN = 2**32 - 1


@dataclass(frozen=True, slots=True)
class Accepted:
    """A valid record: its canonical JSON and content hash, its partition
    (`date=YYYY-MM-DD/cc=XX/asn=ASn`) and the columns stored beside it."""

    sha256: bytes
    text: str
    partition: str
    time: datetime
    report_id: str
    input: str
    test_name: str
    service: str
    probe_asn: str
    probe_cc: str
    probe_network_name: str | None
    network_type: str | None
    software_version: str
    status: str
    blocking: str | None
    confirmed: bool


class _Refused(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"number out of range: {text[:40]}")
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refused(f"duplicate key {key[:60]!r}")
            seen.add(key)
    return found


def _within(value: Any, budget: int) -> bool:
    """Whether `value` (an object or an array) nests objects and arrays at most `budget`
    levels, itself included. Recursive, but never deeper than `budget` calls."""
    if budget <= 0:
        return False
    budget -= 1
    for item in value.values() if type(value) is dict else value:
        kind = type(item)
        if (kind is dict or kind is list) and not _within(item, budget):
            return False
    return True


def parse_line(raw: bytes, max_depth: int) -> dict[str, Any]:
    """The line as a JSON object; raises ValueError with a short reason."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _Refused("invalid UTF-8") from None
    try:
        obj = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constant,
            parse_float=_finite,
        )
    except json.JSONDecodeError as exc:
        raise _Refused(f"not JSON: {exc.msg} (column {exc.colno})") from None
    except RecursionError:
        raise _Refused(f"nested deeper than {max_depth} levels") from None
    except _Refused:
        raise
    except ValueError as exc:  # an integer of more than 4300 digits
        raise _Refused(f"not JSON: {str(exc)[:80]}") from None
    if not isinstance(obj, dict):
        raise _Refused("not a JSON object")
    if not _within(obj, max_depth):
        raise _Refused(f"nested deeper than {max_depth} levels")
    return obj


class LineChecker:
    """Checks uploaded lines against the schema and the collector's own rules."""

    def __init__(self, max_depth: int, check: Callable[[Any], str | None] | None = None) -> None:
        self.max_depth = max_depth
        self.schema_check = check or record_check()

    def check(self, raw: bytes, latest: datetime) -> Accepted | str:
        """The record ready to store, or why the line is rejected (one line)."""
        try:
            obj = parse_line(raw, self.max_depth)
        except ValueError as exc:
            return str(exc)
        problem = self.schema_check(obj)
        if problem is not None:
            return f"schema: {problem}"
        problem = results.time_problem(obj, latest)
        if problem is not None:
            return problem
        asn = obj["probe_asn"]
        if int(asn[2:]) > MAX_ASN:
            return f"probe_asn {asn[:40]!r} is not a 32-bit AS number"
        text = results.canonical_json(obj)
        return _accepted(obj, text)


def _accepted(obj: dict[str, Any], text: str) -> Accepted:
    when = datetime.strptime(obj["measurement_start_time"], TIME_FORMAT)
    test_keys = obj["test_keys"]
    verdict = test_keys["verdict"]
    service = test_keys["target"].get("service")
    annotations = obj["annotations"]
    asn = "AS" + str(int(obj["probe_asn"][2:]))  # AS007 and AS7 are one partition
    cc = obj["probe_cc"]
    return Accepted(
        sha256=hashlib.sha256(text.encode("ascii")).digest(),
        text=text,
        partition=f"date={when:%Y-%m-%d}/cc={cc}/asn={asn}",
        time=when,
        report_id=obj["report_id"],
        input=obj["input"],
        test_name=obj["test_name"],
        service=service if isinstance(service, str) and service else obj["test_name"],
        probe_asn=obj["probe_asn"],
        probe_cc=cc,
        probe_network_name=obj.get("probe_network_name"),
        network_type=annotations.get("network_type"),
        software_version=obj["software_version"],
        status=verdict["status"],
        blocking=verdict["blocking"],
        confirmed=verdict["confirmed"],
    )
