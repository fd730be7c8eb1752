"""`probe report --ooni-archive`: OONI's date-partitioned gzipped JSON Lines archive (the S3
`raw/` and `jsonl/` layouts, or a plain directory) read beside our records, pruned by path,
damaged files counted, never a traceback."""

from __future__ import annotations

import gzip
import json
import os
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from probe.cli import main
from probe.report import build_report
from probe.report.ooni_archive import (
    ArchiveSelection,
    OoniArchive,
    Partition,
    directory_partition,
    file_partition,
    make_selection,
    unwrap,
)
from tests import synthetic

SAMPLES = Path(__file__).parent / "data" / "ooni" / "spec_examples"

pytest.importorskip("probe.report.ooni", reason="probe/report/ooni/ converts OONI measurements")


def _samples() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(SAMPLES.glob("*.json"))]


def _raw_path(root: Path, m: dict[str, Any], when: str | None = None) -> Path:
    """Where OONI's uploader puts a measurement received at `when` (default: when it was made)."""
    when = when or m["measurement_start_time"]
    day, hour = when[:10].replace("-", ""), when[11:13]
    test, cc = m["test_name"].replace("_", ""), m["probe_cc"]
    return root / "raw" / day / hour / cc / test / f"{day}{hour}_{cc}_{test}.n0.0.jsonl.gz"


def _write_gz(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "ab") as handle:  # appending: several gzip members, as gzip reads them
        handle.write("".join(line + "\n" for line in lines).encode())


def _raw_archive(root: Path) -> None:
    for m in _samples():
        _write_gz(_raw_path(root, m), [json.dumps(m), "{}"])


def test_paths_of_both_layouts_and_file_names_say_what_they_hold() -> None:
    raw = ("raw", "20210817", "15", "US", "webconnectivity")
    assert directory_partition(raw) == Partition(date(2021, 8, 17), 15, "US", "webconnectivity")
    assert directory_partition(raw[:3]) == Partition(date(2021, 8, 17), 15)
    old = ("jsonl", "facebookmessenger", "IT", "20200921", "00")
    assert directory_partition(old) == Partition(date(2020, 9, 21), 0, "IT", "facebookmessenger")
    assert directory_partition(old[:3]) == Partition(cc="IT", test="facebookmessenger")
    assert directory_partition(("mirror", "misc")) == Partition()
    # only below raw/ or jsonl/: a researcher's own dated directory says nothing
    assert directory_partition(("downloads", "20260301", "IR")) == Partition()
    assert directory_partition(("raw", "2026")) == Partition()
    assert file_partition("2021081715_US_webconnectivity.n0.0.jsonl.gz") == Partition(
        date(2021, 8, 17), 15, "US", "webconnectivity"
    )
    assert file_partition("20200921_IT_telegram.l.0.jsonl.gz") == Partition(
        date(2020, 9, 21), None, "IT", "telegram"
    )
    assert file_partition("measurements.jsonl") == Partition()


def test_selection_prunes_by_receipt_time_with_room_for_late_uploads() -> None:
    since, until = datetime(2024, 3, 1), datetime(2024, 3, 10)
    sel = make_selection(since, until, ["ir"], ["facebook_messenger"])
    assert sel.ccs == {"IR"} and sel.tests == {"facebookmessenger"}
    keep = Partition(date(2024, 3, 5), 10, "IR", "facebookmessenger")
    assert sel.keeps(keep)
    assert not sel.keeps(Partition(date(2024, 3, 5), 10, "IT", "facebookmessenger"))
    assert not sel.keeps(Partition(date(2024, 3, 5), 10, "IR", "telegram"))
    # received long before --since: pruned; the day before: kept (a fast clock)
    assert not sel.keeps(Partition(date(2024, 2, 20)))
    assert sel.keeps(Partition(date(2024, 2, 28)))
    # received after --until: kept for a week (a probe that uploads late), then pruned
    assert sel.keeps(Partition(date(2024, 3, 14)))
    assert not sel.keeps(Partition(date(2024, 3, 18)))
    assert make_selection(None, None, [], ["all"]).tests == frozenset()
    assert make_selection(None, None, [], []) == ArchiveSelection()


def test_measurement_meta_answers_are_unwrapped() -> None:
    m = _samples()[0]
    meta = {"measurement_uid": "20240101_x", "anomaly": False, "raw_measurement": json.dumps(m)}
    assert unwrap(meta) == (m, None)
    assert unwrap({**meta, "raw_measurement": m}) == (m, None)
    assert unwrap(m) == (m, None)
    obj, problem = unwrap({**meta, "raw_measurement": "{not json"})
    assert obj is None and problem is not None and "raw_measurement" in problem
    assert unwrap({**meta, "raw_measurement": None})[0] is None


def test_raw_archive_beside_our_records_with_damaged_files(tmp_path: Path) -> None:
    archive_root = tmp_path / "ooni"
    _raw_archive(archive_root)
    day = archive_root / "raw" / "20221207" / "10" / "IT" / "telegram"
    # a truncated .gz (the first half of a good one), a garbage line, a postcan
    good = gzip.compress((json.dumps(_samples()[0]) + "\n").encode() * 3)
    (day / "2022120710_IT_telegram.n1.0.jsonl.gz").write_bytes(good[: len(good) // 2])
    _write_gz(day / "2022120710_IT_telegram.n2.0.jsonl.gz", ["garbage {", "[1, 2]"])
    (day / "2022120710_IT_telegram.n0.0.tar.gz").write_bytes(b"not read")
    synthetic.generate(tmp_path / "ours", vantages=1, days=1, seed=4, gaps_per_vantage=0)

    archive = OoniArchive.open([archive_root], make_selection(None, None, [], []))
    built = build_report([tmp_path / "ours"], archive=archive)
    stats = archive.stats
    assert stats.postcans == 1 and stats.placeholders == 12
    assert stats.pruned_dirs == 5  # web_connectivity (3 days), urlgetter, dnscheck
    assert len(stats.corrupt_files) == 1 and stats.corrupt_files[0].endswith("n1.0.jsonl.gz")
    assert stats.unreadable_lines == 2 and stats.measurements == 12
    summary = stats.summary()
    assert "1 corrupt or truncated files, 2 unreadable lines" in summary
    assert "12 measurements used" in summary
    reasons = {(Path(s.source).name, s.reason.split(":")[0]) for s in built.skipped}
    assert ("2022120710_IT_telegram.n1.0.jsonl.gz", "cannot read") in reasons
    assert ("2022120710_IT_telegram.n2.0.jsonl.gz", "not JSON") in reasons
    con = built.connection
    ooni = con.execute(
        "SELECT DISTINCT service, probe_cc FROM rows WHERE probe_id = 'ooni'"
    ).fetchall()
    assert {("telegram", "IT"), ("signal", "DE"), ("whatsapp", "IT")} <= set(ooni)
    assert ("facebook_messenger", "IT") in ooni
    assert all(s.service != "web_connectivity" for s in built.series)
    ours = con.execute(
        "SELECT count(*), count(probe_id) FROM rows WHERE source LIKE '%/ours/%'"
    ).fetchone()
    assert ours is not None and ours[0] > 100 and ours[1] == 0  # synthetic: no probe ids
    # OONI's probes are one volunteer per network, apart from our records without a probe id
    assert {s.probe_id for s in built.series if s.network == "AS30722 IT"} == {"ooni"}
    assert {s.probe_id for s in built.series if s.probe_cc == "IR"} == {None}


def test_pruning_happens_before_files_are_opened(tmp_path: Path) -> None:
    _raw_archive(tmp_path)
    # the old layout, for one country and test only
    for m in _samples():
        if m["test_name"] == "telegram" and m["probe_cc"] == "DE":
            _write_gz(
                tmp_path / "jsonl" / "telegram" / "DE" / "20170407" / "00" / "x.jsonl.gz",
                [json.dumps(m)],
            )
    selection = make_selection(datetime(2020, 1, 1), datetime(2021, 1, 1), ["it"], ["telegram"])
    listing = OoniArchive.open([tmp_path], selection)
    names = sorted(p.name for p in listing.files())
    assert names == ["2020010910_IT_telegram.n0.0.jsonl.gz", "2020011117_IT_telegram.n0.0.jsonl.gz"]
    assert listing.stats.pruned_dirs > 5
    # the same tree given twice, and a part of it: walked once
    archive = OoniArchive.open([tmp_path, tmp_path / "raw", tmp_path], selection)
    assert archive.roots == [tmp_path]
    built = build_report([], archive=archive)
    assert archive.stats.files == 2 and built.files == 2
    services = built.connection.execute("SELECT DISTINCT service FROM rows").fetchall()
    assert services == [("telegram",)]
    # a root inside the layout: the day in its own path prunes too
    inside = OoniArchive.open([tmp_path / "raw" / "20221207"], selection)
    assert list(inside.files()) == []


def test_plain_directory_with_measurement_meta_and_other_tests(tmp_path: Path) -> None:
    lines = []
    for m in _samples():
        lines.append(json.dumps({"measurement_uid": "u", "raw_measurement": json.dumps(m)}))
    _write_gz(tmp_path / "api-download.jsonl.gz", lines)
    (tmp_path / "notes.txt").write_text("not read")
    os.mkfifo(tmp_path / "fifo.jsonl.gz")  # opening it would block forever
    archive = OoniArchive.open([tmp_path], make_selection(None, None, [], ["signal"]))
    built = build_report([], archive=archive)
    assert archive.stats.measurements == 4 and archive.stats.other_tests == 13
    assert archive.stats.special_files == 1 and "1 special files" in archive.stats.summary()
    assert set(built.services) == {"signal"}


def _run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def test_cli_reads_the_archive_and_refuses_bad_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _raw_archive(tmp_path / "ooni")
    (tmp_path / "ooni" / "raw" / "20221207" / "10" / "IT" / "telegram" / "x.jsonl.gz").write_bytes(
        b"\x1f\x8b\x08\x00garbage"
    )
    code, out, err = _run_cli(
        ["report", "--ooni-archive", str(tmp_path / "ooni"), "--csv", str(tmp_path / "r.csv")],
        capsys,
    )
    assert code == 0, err
    assert "telegram/dc2" in out and "ooni" in out
    summary = [line for line in err.splitlines() if "OONI archive:" in line]
    assert len(summary) == 1 and "1 corrupt or truncated files" in summary[0]
    assert "Traceback" not in err
    for args, message in (
        (["--ooni-archive", str(tmp_path / "missing")], "no such file or directory"),
        (["--ooni-archive", str(tmp_path / "ooni"), "--test-name", "tele gram"], "--test-name"),
        (["--test-name", "telegram", str(tmp_path / "ooni")], "--ooni-archive"),
        (["--ooni-archive", str(tmp_path / "ooni"), "--cc", "IRN"], "--cc"),
        (["--ooni-archive", str(tmp_path / "ooni"), "--cc", "IR"], "matched no record"),
    ):
        code, out, err = _run_cli(["report", *args], capsys)
        assert code == 2, (args, err)
        assert len(err.strip().splitlines()) == 1 and message in err, err
