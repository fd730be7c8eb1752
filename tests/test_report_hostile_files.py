"""Issue 14, readers and reports: hostile result files through the real `probe report` and
`probe analyze` — absurd dates (item 8), deduplication that cannot be spoofed (item 11), filters
that match nothing (item 15)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from probe.report import build_report, make_filters
from tests.test_report import _record

REPO = Path(__file__).resolve().parent.parent


def probe_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed command line in a child process, as a researcher runs it."""
    env = {**os.environ, "PROBE_ACCEPT_RISKS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "probe", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def lines_of(*records: dict) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


# --- item 8: absurd dates --------------------------------------------------------------------


def _absurd_dates(root: Path) -> dict[str, str]:
    """Two files mixing good records with records whose times cannot be believed: `clean.jsonl`
    is valid JSON Lines of our records (DuckDB's fast path took it whole before), `mixed.jsonl`
    also has a line that is not JSON. Returns what each skipped line is about."""
    far_future = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%d %H:%M:%S")
    near_future = (datetime.now(UTC) + timedelta(hours=20)).strftime("%Y-%m-%d %H:%M:%S")
    good = [_record("signal/chat", f"2024-03-01 0{i}:00:00", "ok") for i in range(4)]
    year_9999 = _record("signal/chat", "9999-12-31 23:59:59", "blocked", "dns", report_id="r2")
    year_1 = _record("signal/chat", "0001-01-01 00:00:00", "blocked", "dns", report_id="r3")
    start_9999 = _record("signal/chat", "2024-03-01 05:00:00", "ok", report_id="r4")
    start_9999["test_start_time"] = "9999-12-31 23:59:59"
    ahead = _record("signal/chat", far_future, "blocked", "tcp", report_id="r5")
    # a vantage whose clock runs a day fast is believed
    slightly_ahead = _record("signal/chat", near_future, "ok", report_id="r6")
    unparsable = _record("signal/chat", "2024-13-45 25:61:61", "ok", report_id="r7")
    overflow = _record("signal/chat", "2024-03-01 06:00:00", "ok", report_id="r8")
    overflow["test_start_time"] = "0001-01-01T00:00:00+05:00"  # year 0 in UTC
    (root / "clean.jsonl").write_text(
        lines_of(good[0], year_9999, good[1], year_1, start_9999, ahead, slightly_ahead)
    )
    (root / "mixed.jsonl").write_text(
        lines_of(good[2], unparsable, overflow) + "not json\n" + lines_of(good[3])
    )
    return {
        "clean.jsonl:2": "absurd measurement_start_time '9999-12-31 23:59:59'",
        "clean.jsonl:4": "absurd measurement_start_time '0001-01-01 00:00:00'",
        "clean.jsonl:5": "absurd test_start_time '9999-12-31 23:59:59'",
        "clean.jsonl:6": f"absurd measurement_start_time '{far_future}'",
        "mixed.jsonl:2": "bad measurement_start_time '2024-13-45 25:61:61'",
        "mixed.jsonl:3": "bad test_start_time '0001-01-01T00:00:00+05:00'",
        "mixed.jsonl:4": "not JSON",
    }


def test_cli_report_skips_absurd_dates_and_writes_every_output(tmp_path: Path) -> None:
    """Before: the year-9999 record was a row (DuckDB read it), the text showed a gap of 69
    million hours and --html died with OverflowError (exit 1, a traceback)."""
    root = tmp_path / "results"
    root.mkdir()
    expected = _absurd_dates(root)
    done = probe_cli(
        "report", "results", "--html", "r.html", "--csv", "r.csv", "--parquet", "r.parquet",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and done.stderr == ""
    assert done.stdout.startswith("5 records from 2 files")
    summary = done.stdout.splitlines()[1]
    assert summary.startswith("7 lines skipped in 2 files: ")
    for where, why in list(expected.items())[:5]:  # the summary names the first five
        assert f"results/{where} ({why}" in summary, (where, summary)
    page = (tmp_path / "r.html").read_text()
    for where, why in expected.items():
        assert f"results/{where}: {why}".replace("'", "&#x27;") in page
    con = duckdb.connect()
    for name, reader in (("r.csv", "read_csv"), ("r.parquet", "read_parquet")):
        found = con.execute(
            f"SELECT count(*), min(time), max(time) FROM {reader}(?)", [str(tmp_path / name)]
        ).fetchone()
        assert found is not None and found[0] == 5
        assert found[1] == datetime(2024, 3, 1)
        assert found[2] < datetime.now(UTC).replace(tzinfo=None) + timedelta(days=2)


def test_cli_analyze_skips_absurd_dates(tmp_path: Path) -> None:
    """Before: `probe analyze` analysed the year-9999 and year-1 records like any other."""
    expected = _absurd_dates(tmp_path)
    done = probe_cli("analyze", "--json", "clean.jsonl", "mixed.jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    analysed = [json.loads(line) for line in done.stdout.splitlines()]
    times = sorted(a["measurement_start_time"] for a in analysed)
    assert len(times) == 5 and times[0].startswith("2024-03-01 00:00")
    assert all(t < "2100" for t in times)
    for where, why in expected.items():
        assert f"probe: {where}: {why}" in done.stderr, (where, done.stderr)


def test_nan_and_deep_nesting_in_a_clean_file_are_skipped_on_the_fast_path_too(
    tmp_path: Path,
) -> None:
    """DuckDB reads NaN, Infinity and 5,000 levels of nesting where Python refuses them: a file
    DuckDB took whole counted records the Python path skips. Such a file is now left to Python,
    and a record merely holding many brackets in a string is still read."""
    records = [_record("signal/chat", f"2024-03-01 0{i}:00:00", "ok") for i in range(5)]
    runtime = '"test_runtime": 1.0'
    text = lines_of(records[0])
    text += lines_of(records[1]).replace(runtime, '"test_runtime": NaN')
    text += lines_of(records[2]).replace(runtime, '"test_runtime": -Infinity')
    text += lines_of(records[3]).replace(runtime, '"x": ' + "[" * 5000 + "]" * 5000)
    text += lines_of({**records[4], "annotations": {"body": "{[" * 1000}})
    (tmp_path / "clean.jsonl").write_text(text)
    built = build_report([tmp_path])
    assert built.rows == 2
    assert [(s.line, s.reason) for s in built.skipped] == [
        (2, "NaN is not JSON"),
        (3, "-Infinity is not JSON"),
        (4, "nested too deeply"),
    ]


# --- item 11: deduplication by content --------------------------------------------------------


def _real_run(root: Path) -> list[dict]:
    records = [
        _record("telegram/web", f"2024-03-01 0{i}:00:00", "blocked", "dns") for i in range(6)
    ]
    (root / "real.jsonl").write_text(lines_of(*records))
    return records


def test_identical_records_collapse_however_they_are_written(tmp_path: Path) -> None:
    records = _real_run(tmp_path)
    (tmp_path / "copy.jsonl").write_text(lines_of(*records))  # byte for byte (fast path)
    # the same records with their keys in another order, pretty-printed (Python path)
    reordered = [dict(reversed(list(r.items()))) for r in records[:3]]
    (tmp_path / "pretty.json").write_text(json.dumps(reordered, indent=2))
    # one line twice in one file, in a file with a broken line (Python path)
    (tmp_path / "twice.jsonl").write_text(lines_of(records[4], records[4]) + "{half a line\n")
    built = build_report([tmp_path])
    assert built.rows == 6
    assert built.duplicates == 6 + 3 + 2
    assert built.conflicts_total == 0 and built.conflicts_summary() is None


def test_spoofed_record_with_the_same_keys_is_kept_and_reported_as_a_conflict(
    tmp_path: Path,
) -> None:
    """Before: rows were deduplicated by (report_id, input, time) alone, so a record copying a
    real one's keys with another verdict replaced it or was replaced, at DuckDB's whim, and
    nothing said so."""
    records = _real_run(tmp_path)
    (tmp_path / "copy.jsonl").write_text(lines_of(*records))
    spoof = _record("telegram/web", "2024-03-01 03:00:00", "ok")  # same report_id and time
    (tmp_path / "zz-forged.jsonl").write_text(lines_of(spoof))
    built = build_report([tmp_path])
    assert built.rows == 7 and built.duplicates == 6
    at_three = built.connection.execute(
        "SELECT status, conflict FROM rows WHERE time = TIMESTAMP '2024-03-01 03:00:00' "
        "ORDER BY status"
    ).fetchall()
    assert at_three == [("blocked", True), ("ok", True)]  # the real record is still there
    assert built.connection.execute("SELECT count(*) FROM rows WHERE conflict").fetchone() == (2,)
    assert built.conflicts_total == 2
    assert [c.where for c in built.conflicts] == [
        f"{tmp_path / 'copy.jsonl'}:4",  # the first copy of the real record, by file name
        f"{tmp_path / 'zz-forged.jsonl'}:1",
    ]
    # the command line says so, the HTML lists them, the CSV marks them
    done = probe_cli("report", ".", "--csv", "rows.csv", "--html", "r.html", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (
        "2 conflicting records (same report_id, input and time, different content; all kept): "
        "copy.jsonl:4, zz-forged.jsonl:1"
    ) in done.stdout
    page = (tmp_path / "r.html").read_text()
    assert "<h2>Conflicting records</h2>" in page and "<td>zz-forged.jsonl:1</td>" in page
    with open(tmp_path / "rows.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 7
    assert sorted(r["status"] for r in rows if r["conflict"] == "true") == ["blocked", "ok"]


def test_conflicts_on_the_python_path_name_their_lines(tmp_path: Path) -> None:
    records = _real_run(tmp_path)
    forged = _record("telegram/web", "2024-03-01 02:00:00", "blocked", "dns")
    forged["test_keys"]["verdict"]["confirmed"] = False  # the same row, another record
    (tmp_path / "pretty.json").write_text(json.dumps([records[2], forged], indent=1))
    built = build_report([tmp_path])
    assert built.rows == 7 and built.duplicates == 1 and built.conflicts_total == 2
    # each content once, at its first copy by file name: the real record's is pretty.json:1
    assert [c.where for c in built.conflicts] == [
        f"{tmp_path / 'pretty.json'}:1",
        f"{tmp_path / 'pretty.json'}:2",
    ]


# --- item 15: filters that match nothing ----------------------------------------------------


def _two_networks(root: Path) -> None:
    (root / "r.jsonl").write_text(
        lines_of(
            _record("telegram/web", "2024-03-01 00:00:00", "ok"),
            _record("signal/chat", "2024-03-01 00:00:00", "ok", asn="AS12389", cc="RU"),
        )
    )


def test_cli_unknown_service_or_asn_says_nothing_matched_and_lists_what_exists(
    tmp_path: Path,
) -> None:
    """Before: exit 0, an empty report, and --html replaced the previous page with an empty
    one."""
    _two_networks(tmp_path)
    (tmp_path / "r.html").write_text("yesterday's page")
    done = probe_cli("report", "r.jsonl", "--service", "telegarm", "--html", "r.html", cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        "probe: error: --service telegarm matched no record "
        "(services in the data: signal, telegram)\n"
    )
    assert (tmp_path / "r.html").read_text() == "yesterday's page"
    done = probe_cli("report", "r.jsonl", "--asn", "AS44244,1", "--cc", "ir", cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        "probe: error: --asn AS1 matched no record (ASNs in the data: AS12389, AS44244)\n"
    )
    both = probe_cli("report", "r.jsonl", "--service", "x", "--cc", "DE", cwd=tmp_path)
    assert both.returncode == 2 and both.stderr.count("\n") == 1
    assert "--service x matched no record" in both.stderr
    assert "--cc DE matched no record (countries in the data: IR, RU)" in both.stderr


def test_filters_that_exist_but_select_nothing_still_make_a_report(tmp_path: Path) -> None:
    """Every value is in the data, only not together (or not in that time): an empty report is
    the answer, exit 0."""
    _two_networks(tmp_path)
    done = probe_cli("report", "r.jsonl", "--service", "signal", "--cc", "IR", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("0 records from 1 files")
    built = build_report([tmp_path], make_filters(services=["signal"], since="2025-01-01"))
    assert built.rows == 0 and built.unmatched == []


def test_the_list_of_what_exists_is_terminal_safe_and_bounded(tmp_path: Path) -> None:
    records = [
        _record(f"svc{i:02d}/x", "2024-03-01 00:00:00", "ok", report_id=f"r{i}") for i in range(30)
    ]
    records[0]["test_keys"]["target"]["service"] = (
        "evil\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J" + "x" * 80
    )
    (tmp_path / "r.jsonl").write_text(lines_of(*records))
    built = build_report([tmp_path], make_filters(services=["nope"]))
    line = built.unmatched_summary()
    assert line is not None and "\x1b" not in line and "\x07" not in line and "\n" not in line
    assert line.startswith("--service nope matched no record (services in the data: evilx")
    assert line.endswith(", svc19, … 10 more)") and len(line) < 400
