"""Past rounds read back from their result files, for `probe results`: per round its date,
report id, number of targets, counts per status and network, and the per-service tally the
end-of-run summary prints (`round.records.RecordTally`).

Files are read with the tolerant reader (`results.iter_json_objects`): a line that is not a
record of this probe is skipped and counted, and every value is checked for its type before it
is tallied, so a corrupt or hostile file gives a count of skipped lines, never a traceback.
Text from a file is shown without control characters.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from probe.analysis import VantageFacts
from probe.i18n import _
from probe.localdata.files import RoundFile, round_files
from probe.results import iter_json_objects
from probe.round.records import RecordTally

STATUSES = ("ok", "blocked", "down", "inconclusive")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_ASN = re.compile(r"AS\d{1,10}")
_CC = re.compile(r"[A-Z]{2}")
_ID = re.compile(r"[0-9a-f]{1,64}")


def plain_text(value: Any, limit: int = 500) -> str | None:
    """A string from a file, fit for a terminal: control and direction-override characters
    become spaces, at most `limit` characters; None for anything that is not a string."""
    if not isinstance(value, str):
        return None
    text = _CONTROL_CHARS.sub(" ", value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _strings(value: Any) -> list[str]:
    items = value if isinstance(value, list) else []
    return [t for t in (plain_text(v, 100) for v in items[:50]) if t]


def clean_record(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The fields of a stored record the tally reads, each of the right type; None when the
    object is not a record of this probe with a verdict."""
    if obj.get("software_name") != "probe":
        return None
    test_keys = obj.get("test_keys")
    verdict = test_keys.get("verdict") if isinstance(test_keys, dict) else None
    if not isinstance(verdict, dict) or verdict.get("status") not in STATUSES:
        return None
    assert isinstance(test_keys, dict)
    target = test_keys.get("target")
    target = target if isinstance(target, dict) else {}
    blocking = verdict.get("blocking")
    return {
        "test_name": plain_text(obj.get("test_name"), 60) or "unknown",
        "input": plain_text(obj.get("input"), 200) or "?",
        "test_keys": {
            "verdict": {
                "status": verdict["status"],
                "blocking": plain_text(blocking, 40) if blocking is not None else None,
                "fingerprints": _strings(verdict.get("fingerprints")),
                "reason": plain_text(verdict.get("reason")) or "",
            },
            "target": {
                "check": plain_text(target.get("check"), 20) or "",
                "tags": _strings(target.get("tags")),
            },
        },
    }


def _vantage_facts(value: Any) -> dict[str, Any]:
    """`x_vantage` with the types `VantageFacts` reads (anything else left out)."""
    facts: dict[str, Any] = {}
    if not isinstance(value, dict):
        return facts
    for key in ("baseline_ok", "baseline_total", "domestic_ok", "domestic_total"):
        number = value.get(key)
        if isinstance(number, int) and not isinstance(number, bool) and 0 <= number < 10**9:
            facts[key] = number
    for key in ("control_reachable", "ipv6_ok"):
        if isinstance(value.get(key), bool):
            facts[key] = value[key]
    return facts


def _time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


@dataclass(slots=True)
class RoundSummary:
    """What `probe results` says of one round, read back from its file."""

    file: RoundFile
    records: RecordTally = field(default_factory=RecordTally)
    probe_asn: str = "AS0"
    probe_cc: str = "ZZ"
    network_type: str | None = None
    x_vantage: dict[str, Any] = field(default_factory=dict)
    control_failure: str | None = None
    interrupted: int = 0
    #: from the round's start to the end of its last record, seconds
    runtime: float = 0.0
    #: lines that are not a record of this probe (and the first one's reason)
    skipped: int = 0
    problem: str | None = None

    @property
    def report_id(self) -> str:
        return self.file.report_id

    @property
    def path(self) -> str:
        return str(self.file.path)

    def counts(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for tally in self.records.services.values():
            total.update(tally.statuses)
        return {status: total.get(status, 0) for status in STATUSES}

    @property
    def offline(self) -> bool:
        return VantageFacts.from_wire(self.x_vantage).offline()

    @property
    def shutdown(self) -> bool:
        """International connectivity was down, domestic sites worked."""
        return VantageFacts.from_wire(self.x_vantage).shutdown()

    def add(self, obj: dict[str, Any]) -> bool:
        """Tally one object of the file; False when it is not a record of this probe."""
        record = clean_record(obj)
        if record is None:
            return False
        if not len(self.records):  # the round-level fields: the same in every record
            asn = obj.get("probe_asn")
            self.probe_asn = asn if isinstance(asn, str) and _ASN.fullmatch(asn) else "AS0"
            self.probe_cc, self.network_type = _country(obj)
            test_keys = obj["test_keys"]
            self.x_vantage = _vantage_facts(test_keys.get("x_vantage"))
            self.control_failure = plain_text(test_keys.get("control_failure"), 100)
        self.records.add(record)
        annotations = obj.get("annotations")
        if isinstance(annotations, dict) and annotations.get("interrupted") == "true":
            self.interrupted += 1
        started, runtime = _time(obj.get("measurement_start_time")), obj.get("test_runtime")
        if started is not None and isinstance(runtime, int | float) and 0 <= runtime < 86400:
            end = started + timedelta(seconds=float(runtime))
            begin = self.file.start.replace(tzinfo=None)  # records hold naive UTC times
            self.runtime = max(self.runtime, (end - begin).total_seconds())
        return True


def read_round(file: RoundFile) -> RoundSummary:
    """The summary of one round file (never raises for what the file holds)."""
    summary = RoundSummary(file)
    for item in iter_json_objects(file.path):
        if item.obj is None:
            if item.error == "empty file":  # a round still starting, or one that measured nothing
                continue
            reason = item.error or _("unreadable")
        elif summary.add(item.obj):
            continue
        else:
            reason = _("not a record of this probe")
        summary.skipped += 1
        if summary.problem is None:
            summary.problem = f"{item.source}:{item.line}: {plain_text(reason, 200)}"
    return summary


def _country(obj: dict[str, Any]) -> tuple[str, str | None]:
    """A record's `probe_cc` ("ZZ" unless two capitals) and its network type ("vpn" or None)."""
    cc = obj.get("probe_cc")
    annotations = obj.get("annotations")
    vpn = isinstance(annotations, dict) and annotations.get("network_type") == "vpn"
    return (cc if isinstance(cc, str) and _CC.fullmatch(cc) else "ZZ"), ("vpn" if vpn else None)


def round_countries(results_dir: str | Path, last: int) -> list[tuple[str, str | None]]:
    """`probe_cc` and network type of each of the `last` rounds, oldest first: what
    `list_rounds` says of them, from each file's first record of this probe (the round-level
    fields are the same in every record). `probe run` asks at every start, and reading every
    record of three rounds of thousands of targets cost more than loading the lists."""
    found: list[tuple[str, str | None]] = []
    for file in round_files(results_dir)[-last:] if last > 0 else []:
        country: tuple[str, str | None] = ("ZZ", None)
        for item in iter_json_objects(file.path):
            if item.obj is not None and clean_record(item.obj) is not None:
                country = _country(item.obj)
                break
        found.append(country)
    return found


def list_rounds(results_dir: str | Path, last: int | None = None) -> Iterator[RoundSummary]:
    """The rounds under `results_dir`, oldest first (only the `last` N when given)."""
    files = round_files(results_dir)
    if last is not None:
        files = files[-last:] if last > 0 else []
    for file in files:
        yield read_round(file)


class RoundNotFound(LookupError):
    """No round, or more than one, has the id asked for (the message says which)."""


def find_round(results_dir: str | Path, ident: str) -> RoundFile:
    """The round whose report id is `ident` or starts with it (at least 4 characters); the
    messages are in the volunteer's language."""
    wanted = ident.strip().lower()
    if not _ID.fullmatch(wanted) or len(wanted) < 4:
        raise RoundNotFound(
            _("{ident!r}: give a report id (hex digits, at least the first 4)").format(ident=ident)
        )
    matches = [f for f in round_files(results_dir) if f.report_id.startswith(wanted)]
    exact = [f for f in matches if f.report_id == wanted]
    if exact:
        return exact[-1]
    if not matches:
        raise RoundNotFound(
            _("{ident}: no round with this report id in {directory}").format(
                ident=ident, directory=results_dir
            )
        )
    ids = sorted({f.report_id for f in matches})
    if len(ids) > 1:
        shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
        raise RoundNotFound(
            _("{ident}: {count} rounds match ({ids}); give more characters").format(
                ident=ident, count=len(ids), ids=shown
            )
        )
    return matches[-1]
