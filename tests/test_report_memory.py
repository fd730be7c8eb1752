"""`probe report` within bounded memory (issue 18, item 5): the segments query cut into parts of
series gives what one query gives, the rows deduplicated in place are those a copy would keep,
and the most common blocking method of a series no longer depends on the order rows are stored
in (a tie goes to the method seen last)."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest

from probe.report import ROW_COLUMNS, build_report, changes
from tests import synthetic
from tests.test_report import _record


def test_segments_in_parts_equal_segments_in_one_query(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    truth = synthetic.generate(tmp_path, vantages=3, days=10, seed=5)
    whole = build_report([tmp_path])
    assert whole.events and whole.gaps, "the corpus must hold events and gaps to compare"
    parts = changes._parts(whole.connection)
    assert len(parts) == 1
    monkeypatch.setattr(changes, "_PART_ROWS", 40)
    cut = build_report([tmp_path])
    parts = changes._parts(cut.connection)
    assert len(parts) > 5  # many parts, each a range of series
    assert parts[0][0] == 0 and parts[-1][1] == len(cut.series)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(parts))
    assert cut.events == whole.events
    assert cut.gaps == whole.gaps
    assert len(cut.events) == len(truth.events)


def test_copies_are_dropped_in_place_and_conflicts_kept(tmp_path: Path) -> None:
    records = [_record("signal/chat", f"2024-03-01 0{i}:00:00", "ok") for i in range(6)]
    text = "".join(json.dumps(r) + "\n" for r in records)
    (tmp_path / "a.jsonl").write_text(text)
    shutil.copy(tmp_path / "a.jsonl", tmp_path / "b.jsonl")  # sent twice
    crafted = dict(records[2], probe_asn="AS1")  # same keys, other content
    (tmp_path / "c.jsonl").write_text(json.dumps(crafted) + "\n")
    built = build_report([tmp_path])
    assert built.records_read == 13
    assert built.rows == 7 and built.duplicates == 6
    columns = [r[0] for r in built.connection.execute("DESCRIBE rows").fetchall()]
    assert columns == list(ROW_COLUMNS)  # the staging columns are gone, `conflict` is last
    flagged = built.connection.execute(
        "SELECT probe_asn, source FROM rows WHERE conflict ORDER BY probe_asn"
    ).fetchall()
    assert [asn for asn, _ in flagged] == ["AS1", "AS44244"]
    assert built.conflicts_total == 2
    assert {Path(c.source).name for c in built.conflicts} == {"a.jsonl", "c.jsonl"}


@pytest.mark.parametrize(("last", "expected"), [("tcp", "tcp"), ("dns", "dns")])
def test_a_tie_between_methods_goes_to_the_one_seen_last(
    tmp_path: Path, last: str, expected: str
) -> None:
    first = "dns" if last == "tcp" else "tcp"
    methods = [first, last, first, last]
    lines = [
        json.dumps(_record("telegram/dc2", f"2024-03-01 0{i}:00:00", "blocked", method))
        for i, method in enumerate(methods)
    ]
    # stored newest first: the order of the rows must not matter
    (tmp_path / "a.jsonl").write_text("\n".join(reversed(lines)) + "\n")
    built = build_report([tmp_path])
    assert [s.method for s in built.series] == [expected]
