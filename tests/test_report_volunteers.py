"""`probe report` per volunteer: series, change events and gaps per (probe id, network, lane,
target) equal to each volunteer's ground truth (tests/synthetic.py `volunteer_set`), the view
across volunteers, VPN records in their own lane, records without a probe id, and the fast
(DuckDB) and Python readers giving identical results."""

from __future__ import annotations

import csv
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from probe import report, results
from probe.cli import main
from probe.report import build_report
from tests import synthetic
from tests.report_keys import event_keys, gap_keys

DAYS = 10


@pytest.fixture(scope="module")
def volunteers(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, synthetic.GroundTruth]:
    root = tmp_path_factory.mktemp("volunteers") / "results"
    truth = synthetic.generate(
        root, days=DAYS, seed=3, noise=0.03, volunteers=synthetic.volunteer_set(3)
    )
    return root, truth


@pytest.fixture(scope="module")
def built(volunteers: tuple[Path, synthetic.GroundTruth]) -> report.Report:
    return build_report([volunteers[0]])


def test_each_volunteers_change_events_are_exactly_their_ground_truth(
    volunteers: tuple[Path, synthetic.GroundTruth], built: report.Report
) -> None:
    _, truth = volunteers
    assert built.rows == truth.records and built.skipped_total == 0
    assert event_keys(built.events) == event_keys(truth.events)
    assert gap_keys(built.gaps) == gap_keys(truth.gaps)
    # every volunteer of the set has events of their own, and so do the shared networks
    per_volunteer = {(e.probe_id, e.network_type) for e in truth.events}
    assert len(per_volunteer) == len(synthetic.volunteer_set(3))
    assert (None, "direct") in per_volunteer and any(t == "vpn" for _, t in per_volunteer)


@pytest.mark.parametrize("seed", [5, 11])
def test_two_volunteers_on_one_network_are_no_longer_merged(tmp_path: Path, seed: int) -> None:
    """The bug of issue 17: two volunteers' correct timelines (there 220 and 40 change events)
    became one of 356 when their runs were merged. Per volunteer they stay exact; the same
    records without their ids (the old reading) still show the merged, inflated count."""
    pair = [v for v in synthetic.volunteer_set(seed) if v.asn == "AS44244" and not v.vpn]
    assert len(pair) == 2 and pair[0].probe_id != pair[1].probe_id
    root = tmp_path / "results"
    truth = synthetic.generate(root, days=DAYS, seed=seed, noise=0.03, volunteers=pair)
    built = build_report([root])
    assert event_keys(built.events) == event_keys(truth.events)
    counts = {v.probe_id: sum(e.probe_id == v.probe_id for e in built.events) for v in pair}
    assert all(counts.values())
    anonymous = tmp_path / "anonymous"
    for path in root.rglob("*.jsonl"):
        target = anonymous / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(re.sub(r'"probe_id":"p-[a-z2-7]{16}",', "", path.read_text()))
    merged = build_report([anonymous])
    assert {e.probe_id for e in merged.events} == {None}
    assert len(merged.events) > sum(counts.values())


def test_vpn_records_are_a_lane_of_their_own(
    volunteers: tuple[Path, synthetic.GroundTruth], built: report.Report, tmp_path: Path
) -> None:
    [vpn] = [v for v in synthetic.volunteer_set(3) if v.vpn]
    lanes = built.connection.execute(
        "SELECT network_type, count(*), count(DISTINCT probe_id) FROM rows "
        "WHERE probe_asn = 'AS44244' GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert [(t, n) for t, _, n in lanes] == [("direct", 2), ("vpn", 1)]
    assert {s.network_type for s in built.series if s.probe_id == vpn.probe_id} == {"vpn"}
    text = report.render_text(built)
    assert f"AS44244 IR via VPN  {vpn.probe_id}" in text
    page = report.render_html(built)
    assert f">AS44244 IR via VPN {vpn.probe_id}</text>" in page  # the timeline's lane
    report.write_csv(built, tmp_path / "rows.csv")
    report.write_parquet(built, tmp_path / "rows.parquet")
    con = duckdb.connect()
    for reader, name in (("read_csv", "rows.csv"), ("read_parquet", "rows.parquet")):
        found = con.execute(
            f"SELECT network_type, count(*) FROM {reader}(?) GROUP BY 1 ORDER BY 1",
            [str(tmp_path / name)],
        ).fetchall()
        expected = built.connection.execute(
            "SELECT network_type, count(*) FROM rows GROUP BY 1 ORDER BY 1"
        ).fetchall()
        assert found == expected and [t for t, _ in found] == ["direct", "vpn"]


def test_records_without_a_probe_id_are_one_unknown_volunteer_per_network(
    built: report.Report,
) -> None:
    unknown = [s for s in built.series if s.probe_id is None]
    assert unknown and {s.network for s in unknown} == {"AS16322 IR"}
    assert {s.volunteer for s in unknown} == {report.UNKNOWN_VOLUNTEER}
    text = report.render_text(built)
    assert "6 volunteers (1 through a VPN), " in text.splitlines()[0]
    assert f"{len(unknown)} series without a probe id" in text.splitlines()[0]


def test_the_view_across_volunteers_counts_each_volunteers_latest_run(
    built: report.Report, tmp_path: Path
) -> None:
    latest = built.connection.execute(
        "SELECT input, probe_asn, network_type, probe_id, arg_max(status, time) FROM rows "
        "GROUP BY ALL"
    ).fetchall()
    for view in built.across:
        mine = [
            r[4]
            for r in latest
            if (r[0], r[1], r[2]) == (view.input, view.probe_asn, view.network_type)
        ]
        assert view.volunteers == len(mine)
        assert view.blocked == mine.count("blocked") and view.ok == mine.count("ok")
        assert view.down == mine.count("down")
    shared = [v for v in built.across if v.probe_asn == "AS44244" and v.network_type == "direct"]
    assert shared and all(v.volunteers == 2 for v in shared)
    text = report.render_text(built)
    blocked = next(v for v in shared if v.blocked)
    assert re.search(
        rf"{re.escape(blocked.input)}\s+AS44244 IR\s+{blocked.blocked} of 2 volunteers see "
        "blocking",
        text,
    )
    page = report.render_html(built)
    assert "volunteers see blocking" in page and "Per volunteer" in page
    report.write_across_csv(built, tmp_path / "across.csv")
    report.write_across_parquet(built, tmp_path / "across.parquet")
    with (tmp_path / "across.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == list(report.ACROSS_COLUMNS)
    assert len(rows) == len(built.across)
    parquet = (
        duckdb.connect()
        .execute(
            "SELECT sum(volunteers), sum(blocked) FROM read_parquet(?)",
            [str(tmp_path / "across.parquet")],
        )
        .fetchone()
    )
    assert parquet == (
        sum(v.volunteers for v in built.across),
        sum(v.blocked for v in built.across),
    )


def test_across_sentence() -> None:
    view = report.VolunteerView(
        "telegram", "telegram/dc2", "AS44244", "IR", "direct", 3, 2, 1, 0, 0, ("dns", "tcp")
    )
    assert view.sentence() == "2 of 3 volunteers see blocking (dns, tcp)"
    one = report.VolunteerView("telegram", "telegram/dc2", "AS1", "IR", "vpn", 1, 0, 1, 0, 0)
    assert one.sentence() == "0 of 1 volunteer sees blocking"


def test_cli_writes_the_view_across_volunteers(
    volunteers: tuple[Path, synthetic.GroundTruth],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["report", str(volunteers[0]), "--across-csv", str(tmp_path / "a.csv")]
    args += ["--across-parquet", str(tmp_path / "a.parquet"), "--service", "telegram"]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out, err = capsys.readouterr()
    assert exit_info.value.code == 0, err
    assert "telegram across volunteers" in out
    with (tmp_path / "a.csv").open() as handle:
        services = {row["service"] for row in csv.DictReader(handle)}
    assert services == {"telegram"}
    assert (tmp_path / "a.parquet").stat().st_size > 0


# --- the two readers agree ----------------------------------------------------------------


def _everything(built: report.Report) -> dict[str, Any]:
    rows = built.connection.execute("SELECT * EXCLUDE (source) FROM rows ORDER BY ALL").fetchall()
    return {
        "rows": rows,
        "series": built.series,
        "events": built.events,
        "gaps": built.gaps,
        "across": built.across,
    }


def _odd_volunteer_records(root: Path) -> list[dict[str, Any]]:
    """Our records whose probe id or network type is odd in every way a reader may differ."""
    line = next(root.rglob("*.jsonl")).read_text().splitlines()[0]
    base = json.loads(line)
    base.pop("probe_id", None)
    found = []
    odd: list[tuple[Any, Any]] = [
        ("p-ABCDEFGHIJKLMNOP", {"network_type": "vpn"}),
        ("p-abcdefghijklmnop\n", {"network_type": "VPN"}),
        (12345, {"network_type": ["vpn"]}),
        (["p-abcdefghijklmnop"], "vpn"),
        (None, None),
        ("p-abcdefghijklmnop", {"network_type": "vpn", "platform": "linux"}),
        ("p-\u0061bcdefghijklmnop", {}),
    ]
    for index, (probe_id, notes) in enumerate(odd):
        record = dict(base, report_id=f"odd-{index}", annotations=notes)
        record["measurement_start_time"] = f"2024-03-02 0{index}:00:00"
        if probe_id is not None:
            record["probe_id"] = probe_id
        found.append(record)
    return found


def test_fast_and_python_paths_give_identical_reports(
    volunteers: tuple[Path, synthetic.GroundTruth], tmp_path: Path
) -> None:
    root, truth = volunteers
    odd = _odd_volunteer_records(root)
    fast_dir, python_dir = tmp_path / "fast", tmp_path / "python"
    fast_dir.mkdir()
    python_dir.mkdir()
    for index, path in enumerate(sorted(root.rglob("*.jsonl"))):
        records = [json.loads(line) for line in path.read_text().splitlines()]
        # as written by probe run (fast path), and as pretty-printed arrays (Python path)
        (fast_dir / f"{index}.jsonl").write_text(path.read_text())
        (python_dir / f"{index}.json").write_text(json.dumps(records, indent=1))
    (fast_dir / "odd.jsonl").write_text("".join(json.dumps(r) + "\n" for r in odd))
    (python_dir / "odd.json").write_text(json.dumps(odd, indent=1))
    fast, python = build_report([fast_dir]), build_report([python_dir])
    assert fast.rows == python.rows == truth.records + len(odd)
    # the clean files really took the fast path, and the arrays the Python one
    assert fast.connection.execute(
        "SELECT count(*) FROM rows WHERE source LIKE '%.jsonl'"
    ).fetchone() == (fast.rows,)
    assert _everything(fast) == _everything(python)
    ids = dict(
        fast.connection.execute(
            "SELECT report_id, coalesce(probe_id, '-') || ' ' || network_type FROM rows "
            "WHERE report_id LIKE 'odd-%'"
        ).fetchall()
    )
    assert ids == {
        "odd-0": "- vpn",
        "odd-1": "- direct",
        "odd-2": "- direct",
        "odd-3": "- direct",
        "odd-4": "- direct",
        "odd-5": "p-abcdefghijklmnop vpn",
        "odd-6": "p-abcdefghijklmnop direct",
    }


def test_a_line_naming_the_probe_id_twice_is_read_as_python_reads_it(tmp_path: Path) -> None:
    line = (
        '{"software_name":"probe","test_name":"t","input":"t/a","report_id":"r1",'
        '"measurement_start_time":"2024-03-01 00:00:00","test_start_time":"2024-03-01 00:00:00",'
        '"probe_asn":"AS1","probe_cc":"IR","annotations":{"network_type":"direct",'
        '"network_type":"vpn"},"probe_id":"p-aaaaaaaaaaaaaaaa","probe_id":"p-bbbbbbbbbbbbbbbb",'
        '"test_keys":{"target":{"service":"t"},"verdict":{"status":"ok","blocking":null,'
        '"confirmed":false}}}\n'
    )
    (tmp_path / "dup.jsonl").write_text(line)
    built = build_report([tmp_path])
    assert built.connection.execute("SELECT probe_id, network_type FROM rows").fetchall() == [
        ("p-bbbbbbbbbbbbbbbb", "vpn")
    ]


def test_collector_parquet_gives_the_same_per_volunteer_events(
    volunteers: tuple[Path, synthetic.GroundTruth], built: report.Report, tmp_path: Path
) -> None:
    """The collector keeps each record's canonical JSON in column `record` of Parquet files;
    `probe report COLLECTOR_DIR` reads the probe ids from there too."""
    root, truth = volunteers
    texts = [
        results.canonical_json(json.loads(line))
        for path in sorted(root.rglob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t ({results.PARQUET_RECORD_COLUMN} VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?)", [(t,) for t in texts])
    target = tmp_path / "collector" / "date=2024-03-01" / "part-0.parquet"
    target.parent.mkdir(parents=True)
    con.execute(f"COPY t TO '{target}' (FORMAT parquet)")
    collected = build_report([tmp_path / "collector"])
    assert collected.rows == truth.records and collected.skipped_total == 0
    assert event_keys(collected.events) == event_keys(truth.events)
    assert collected.across == built.across


def test_events_name_their_volunteer_in_every_output(built: report.Report) -> None:
    event = next(e for e in built.events if e.probe_id is not None)
    text = report.render_text(built, max_events=10_000)
    when = f"{event.first_new:%Y-%m-%d %H:%M}"
    assert any(event.probe_id in line and when in line for line in text.splitlines())
    page = report.render_html(built)
    assert f"{event.input} ({event.probe_id}): " in page  # the timeline's tooltip
    # every volunteer has a lane of their own, and records without an id one per network
    for s in built.series:
        lane = f"{s.network}{' via VPN' if s.network_type == 'vpn' else ''} {s.volunteer}</text>"
        assert lane in page
    assert isinstance(event.first_new, datetime)
