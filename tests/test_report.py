"""`probe report`: reading ours and OONI's files, dedupe, filters, change detection, outputs."""

from __future__ import annotations

import csv
import dataclasses
import gzip
import html
import io
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest

from probe import report
from probe.cli import main
from probe.report import ChangeRule, ReportFilters, ReportInputError, build_report
from tests import synthetic

DATA = Path(__file__).parent / "data" / "report"
T0 = datetime(2024, 3, 1)
HOUR = timedelta(hours=1)


# --- change detection on hand-made series --------------------------------------------------


def series(*states: str, start: datetime = T0, step: timedelta = HOUR):
    """'ok', 'blocked:dns', 'down', 'inconclusive', or 'gap:<hours>' (no run for that long)."""
    found, when = [], start
    for state in states:
        if state.startswith("gap:"):
            when += timedelta(hours=int(state[4:]))
            continue
        status, _, method = state.partition(":")
        found.append((when, status, method or None))
        when += step
    return found


def changes(observations, rule: ChangeRule = ChangeRule()):
    return report.detect_changes(report.segments_of(observations, rule.max_gap), rule)


def test_steady_series_has_no_change() -> None:
    found, gaps = changes(series(*["ok"] * 50))
    assert found == [] and gaps == []
    found, gaps = changes(series(*["blocked:tcp"] * 50))
    assert found == [] and gaps == []


def test_single_failures_between_successes_are_noise() -> None:
    flapping = (["ok"] * 4 + ["blocked:tcp"]) * 10 + ["ok"] * 4
    assert changes(series(*flapping)) == ([], [])
    # strict alternation never holds a new state for two runs either
    assert changes(series(*(["ok", "blocked:dns"] * 20))) == ([], [])
    # a lucky success in a blocked period, and an odd method, are noise too
    assert changes(
        series(
            *(
                ["blocked:dns"] * 5
                + ["ok"]
                + ["blocked:dns"] * 5
                + ["blocked:tcp"]
                + ["blocked:dns"] * 5
            )
        )
    ) == ([], [])


def test_real_switch_is_one_event_with_both_observation_times() -> None:
    obs = series(*(["ok"] * 10 + ["blocked:dns"] * 10 + ["ok"] * 10))
    found, gaps = changes(obs)
    assert gaps == []
    assert found == [
        ("ok", None, "blocked", "dns", obs[9][0], obs[10][0], False),
        ("blocked", "dns", "ok", None, obs[19][0], obs[20][0], False),
    ]
    assert report.event_kind("ok", "blocked") == "blocking_started"
    assert report.event_kind("blocked", "ok") == "blocking_ended"


def test_switch_after_noise_dates_from_the_last_run_in_the_old_state() -> None:
    # ok ok ok B ok ok B B B: the first B is noise; the old state was last seen at index 5
    obs = series(
        "ok", "ok", "ok", "blocked:tcp", "ok", "ok", "blocked:tcp", "blocked:tcp", "blocked:tcp"
    )
    found, _ = changes(obs)
    assert found == [("ok", None, "blocked", "tcp", obs[5][0], obs[6][0], False)]


def test_inconclusive_runs_neither_confirm_nor_break() -> None:
    obs = series("ok", "ok", "blocked:tcp", "inconclusive", "blocked:tcp", "ok", "ok")
    found, _ = changes(obs)
    # B, (inconclusive), B is two consecutive conclusive runs: a change, then back to ok
    assert [c[:4] for c in found] == [
        ("ok", None, "blocked", "tcp"),
        ("blocked", "tcp", "ok", None),
    ]
    assert found[0][4:6] == (obs[1][0], obs[2][0])
    # many inconclusive runs inside a steady state change nothing
    assert changes(series(*(["ok"] * 3 + ["inconclusive"] * 10 + ["ok"] * 3))) == ([], [])


def test_method_change_needs_to_persist() -> None:
    obs = series(*(["blocked:dns"] * 6 + ["blocked:tls"] * 6))
    found, _ = changes(obs)
    assert found == [("blocked", "dns", "blocked", "tls", obs[5][0], obs[6][0], False)]
    assert report.event_kind("blocked", "blocked") == "method_changed"


def test_a_tie_between_methods_is_settled_by_the_next_runs_without_an_event() -> None:
    # the first state: dns once and tcp once (a tie), then dns: dns all along, no method change
    obs = series("blocked:dns", "blocked:tcp", *["blocked:dns"] * 6)
    assert changes(obs) == ([], [])
    # the same tie at the start of a blocking period: one event, with the method that lasted
    obs = series("ok", "ok", "blocked:dns", "blocked:tcp", *["blocked:dns"] * 6)
    found, _ = changes(obs)
    assert found == [("ok", None, "blocked", "dns", obs[1][0], obs[2][0], False)]
    # the tie broken by the later method: tcp stays, still no method change
    obs = series("blocked:dns", "blocked:tcp", *["blocked:tcp"] * 6)
    assert changes(obs) == ([], [])
    # once settled, a real change of method is an event again
    obs = series("blocked:dns", "blocked:tcp", *["blocked:dns"] * 4, *["blocked:tls"] * 4)
    found, _ = changes(obs)
    assert found == [("blocked", "dns", "blocked", "tls", obs[5][0], obs[6][0], False)]
    # a method seen more often than the other is no tie: tls then dns is a change
    obs = series(*["blocked:tls"] * 2, "blocked:dns", *["blocked:dns"] * 4)
    found, _ = changes(obs)
    assert found == [("blocked", "tls", "blocked", "dns", obs[1][0], obs[2][0], False)]


def test_gap_is_reported_and_is_not_a_change() -> None:
    obs = series(*(["ok"] * 5 + ["gap:48"] + ["ok"] * 5))
    found, gaps = changes(obs)
    assert found == []
    assert gaps == [(obs[4][0], obs[5][0])]
    # a stretch of inconclusive runs is no data either
    obs = series(*(["ok"] * 5 + ["inconclusive"] * 30 + ["ok"] * 5))
    found, gaps = changes(obs)
    assert found == [] and gaps == [(obs[4][0], obs[35][0])]


def test_change_inside_a_gap_is_marked() -> None:
    obs = series(*(["ok"] * 5 + ["gap:48"] + ["blocked:tcp"] * 5))
    found, gaps = changes(obs)
    assert gaps == [(obs[4][0], obs[5][0])]
    assert found == [("ok", None, "blocked", "tcp", obs[4][0], obs[5][0], True)]
    # one odd run right after a gap is not enough to change state either
    obs = series(*(["ok"] * 5 + ["gap:48"] + ["blocked:tcp"] + ["ok"] * 5))
    assert changes(obs)[0] == []


def test_confirm_runs_is_the_rule() -> None:
    obs = series(*(["ok"] * 5 + ["blocked:tcp"] * 2 + ["ok"] * 5))
    assert len(changes(obs, ChangeRule(confirm_runs=2))[0]) == 2
    assert changes(obs, ChangeRule(confirm_runs=3))[0] == []
    single = series(*(["ok"] * 5 + ["blocked:tcp"] + ["ok"] * 5))
    assert len(changes(single, ChangeRule(confirm_runs=1))[0]) == 2


# --- synthetic result sets: every injected change found, nothing else ----------------------


def _event_keys(events):
    return sorted(
        (e.kind, e.input, e.probe_asn, e.probe_cc, e.last_old, e.first_new) for e in events
    )


@pytest.mark.parametrize("seed", [1, 7])
def test_synthetic_events_and_gaps_are_exactly_the_injected_ones(tmp_path: Path, seed: int):
    truth = synthetic.generate(
        tmp_path / "results", vantages=5, days=10, seed=seed, noise=0.03, offline=0.01
    )
    built = build_report([tmp_path / "results"])
    assert built.rows == truth.records and built.skipped_total == 0 and built.duplicates == 0
    kinds = {e.kind for e in truth.events}
    assert {"blocking_started", "blocking_ended", "method_changed", "outage_started"} <= kinds
    assert _event_keys(built.events) == _event_keys(truth.events)
    assert all(not e.across_gap for e in built.events)
    assert sorted(
        (g.input, g.probe_asn, g.last_before, g.first_after) for g in built.gaps
    ) == sorted((g.input, g.probe_asn, g.last_before, g.first_after) for g in truth.gaps)
    assert truth.gaps, "the generator injected no gap"
    # the noise really is there: without the persistence rule it would be read as changes
    naive = build_report([tmp_path / "results"], rule=ChangeRule(confirm_runs=1))
    assert len(naive.events) > len(truth.events) + 20


def test_series_summary_latest_status_share_and_method(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    lines = [
        _record("telegram/dc2", "2024-03-01 00:00:00", "ok"),
        _record("telegram/dc2", "2024-03-01 01:00:00", "blocked", "tcp"),
        _record("telegram/dc2", "2024-03-01 02:00:00", "blocked", "tcp"),
        _record("telegram/dc2", "2024-03-01 03:00:00", "blocked", "protocol"),
        _record("telegram/dc2", "2024-03-01 04:00:00", "inconclusive"),
        _record("telegram/dc2", "2024-03-01 05:00:00", "ok"),
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    built = build_report([path])
    [summary] = built.series
    assert (summary.runs, summary.conclusive_runs, summary.blocked_runs) == (6, 5, 3)
    assert summary.share_blocked == pytest.approx(0.6)
    assert summary.method == "tcp"
    assert (summary.latest_status, summary.latest_blocking) == ("ok", None)
    assert summary.latest_time == datetime(2024, 3, 1, 5)
    # one ok run does not establish a state: the series starts blocked, and one ok is noise
    assert built.events == []


# --- reading: fast path, Python path, OONI, bad lines, dedupe --------------------------------


def _record(
    target: str,
    when: str,
    status: str,
    blocking: str | None = None,
    *,
    asn: str = "AS44244",
    cc: str = "IR",
    report_id: str = "rep-1",
) -> dict:
    return {
        "data_format_version": "0.2.0",
        "software_name": "probe",
        "software_version": "0.1.0",
        "test_name": target.split("/")[0],
        "test_version": "0.1.0",
        "input": target,
        "report_id": report_id,
        "measurement_start_time": when,
        "test_start_time": when,
        "test_runtime": 1.0,
        "probe_asn": asn,
        "probe_cc": cc,
        "probe_ip": "127.0.0.1",
        "resolver_ip": "10.0.0.1",
        "annotations": {},
        "test_keys": {
            "target": {"id": target, "service": target.split("/")[0]},
            "verdict": {
                "status": status,
                "blocking": blocking,
                "confirmed": blocking == "dns",
                "fingerprints": [],
                "reason": "test",
            },
        },
    }


def test_bad_lines_are_counted_and_the_rest_is_read(tmp_path: Path) -> None:
    good = [_record("signal/chat", f"2024-03-01 0{i}:00:00", "ok") for i in range(5)]
    text = "".join(json.dumps(r) + "\n" for r in good[:3])
    text += "this is not json\n[1, 2]\n" + json.dumps({"hello": "world"}) + "\n"
    text += json.dumps({**good[3], "measurement_start_time": "yesterday"}) + "\n"
    text += json.dumps(good[4])[:40] + "\n"  # a half-written line
    (tmp_path / "bad.jsonl").write_text(text)
    clean = tmp_path / "2024-03-02" / "clean.jsonl"
    clean.parent.mkdir()
    clean.write_text(json.dumps(_record("signal/chat", "2024-03-02 00:00:00", "ok")) + "\n")
    built = build_report([tmp_path])
    assert built.rows == 4  # three from the bad file, one from the clean one
    assert built.skipped_total == 5
    reasons = " ".join(s.reason for s in built.skipped)
    assert "not JSON" in reasons and "not a JSON object" in reasons
    assert "not a measurement record" in reasons and "bad measurement_start_time" in reasons
    summary = built.skipped_summary()
    assert summary is not None and summary.startswith("5 lines skipped in 1 file: ")
    assert f"{tmp_path / 'bad.jsonl'}:4" in summary


def test_unreadable_gzip_and_empty_files_do_not_abort(tmp_path: Path) -> None:
    (tmp_path / "broken.jsonl.gz").write_bytes(b"\x1f\x8b\x08 definitely not gzip")
    (tmp_path / "empty.json").write_text("")
    ok = tmp_path / "ok.jsonl.gz"
    with gzip.open(ok, "wt") as handle:
        handle.write(json.dumps(_record("telegram/web", "2024-03-01 00:00:00", "ok")) + "\n")
    built = build_report([tmp_path])
    assert built.rows == 1
    assert built.skipped_total == 1 and "cannot read" in built.skipped[0].reason


def test_duplicates_are_dropped_across_files_and_paths(tmp_path: Path) -> None:
    records = [_record("whatsapp/web", f"2024-03-01 0{i}:00:00", "ok") for i in range(4)]
    text = "".join(json.dumps(r) + "\n" for r in records)
    (tmp_path / "a.jsonl").write_text(text)
    (tmp_path / "copy.jsonl").write_text(text)
    (tmp_path / "copy-with-a-bad-line.jsonl").write_text(text + "garbage\n")  # Python path
    # same time and target but another run (report_id): not a duplicate
    other = _record("whatsapp/web", "2024-03-01 00:00:00", "ok", report_id="rep-2")
    (tmp_path / "other.jsonl").write_text(json.dumps(other) + "\n")
    built = build_report([tmp_path, tmp_path / "a.jsonl"])  # the same file named twice
    assert built.rows == 5
    assert built.duplicates == 8
    assert built.files == 4


def test_ooni_measurements_and_our_records_make_one_report(tmp_path: Path) -> None:
    pytest.importorskip("probe.report.ooni", reason="probe/report/ooni/ converts OONI measurements")
    synthetic.generate(tmp_path / "ours", vantages=2, days=2, seed=3, gaps_per_vantage=0)
    for sample in DATA.glob("*.json"):
        shutil.copy(sample, tmp_path / sample.name)
    with gzip.open(tmp_path / "telegram.jsonl.gz", "wt") as handle:  # OONI as gzipped JSONL
        sample = json.loads(
            (DATA / "telegram_IT_2022-12-07T105155_ts-020-telegram_93a455d627.json").read_text()
        )
        handle.write(json.dumps({**sample, "report_id": "another"}) + "\n")
    built = build_report([tmp_path])
    con = built.connection
    ooni_rows = con.execute(
        "SELECT input, status FROM rows WHERE probe_asn = 'AS30722' AND service = 'telegram' "
        "AND report_id LIKE '%epDRF015yWFhSlX4'"
    ).fetchall()
    assert {"telegram/web", "telegram/dc1", "telegram/dc2"} <= {r[0] for r in ooni_rows}
    assert con.execute("SELECT count(*) FROM rows WHERE report_id = 'another'").fetchone() == (
        len(ooni_rows),
    )
    signal = dict(
        con.execute(
            "SELECT input, status FROM rows WHERE probe_cc = 'IT' AND service = 'signal'"
        ).fetchall()
    )
    assert "signal/chat" in signal
    ours = con.execute("SELECT count(*) FROM rows WHERE source LIKE '%/ours/%'").fetchone()
    assert ours is not None and ours[0] > 500
    assert {"telegram", "whatsapp", "signal"} <= set(built.services)
    assert any(s.network == "AS30722 IT" for s in built.series)


def test_python_path_reads_our_records_in_a_pretty_printed_file(tmp_path: Path) -> None:
    # works without probe.report.ooni: our own records that DuckDB cannot read as JSON Lines
    records = [
        _record("telegram/dc1", "2024-03-01 00:00:00", "blocked", "tcp"),
        _record("telegram/dc1", "2024-03-01 01:00:00", "blocked", "tcp"),
    ]
    (tmp_path / "array.json").write_text(json.dumps(records, indent=2))
    (tmp_path / "single.json").write_text(
        json.dumps(_record("telegram/dc1", "2024-03-01 02:00:00", "ok"), indent=2)
    )
    built = build_report([tmp_path])
    assert built.rows == 3 and built.skipped_total == 0
    rows = built.connection.execute(
        "SELECT time, status, blocking, source FROM rows ORDER BY time"
    ).fetchall()
    assert rows[0][:3] == (datetime(2024, 3, 1), "blocked", "tcp")
    assert rows[2][3].endswith("single.json")


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ReportInputError, match="no such file or directory"):
        build_report([tmp_path / "nope"])


# --- filters -------------------------------------------------------------------------------


def _filter_fixture(tmp_path: Path) -> Path:
    records = [
        _record("telegram/dc1", "2024-03-01 00:00:00", "ok"),
        _record("telegram/dc1", "2024-03-02 00:00:00", "ok"),
        _record("telegram/dc1", "2024-03-02 23:59:59", "ok"),
        _record("telegram/dc1", "2024-03-03 00:00:00", "ok"),
        _record("signal/chat", "2024-03-02 12:00:00", "ok"),
        _record(
            "signal/chat", "2024-03-02 12:00:00", "ok", asn="AS12389", cc="RU", report_id="rep-ru"
        ),
    ]
    path = tmp_path / "f.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_filters_since_inclusive_until_exclusive(tmp_path: Path) -> None:
    path = _filter_fixture(tmp_path)
    built = build_report([path], report.make_filters(since="2024-03-02", until="2024-03-03"))
    times = [
        r[0] for r in built.connection.execute("SELECT time FROM rows ORDER BY time").fetchall()
    ]
    assert times == [
        datetime(2024, 3, 2),
        datetime(2024, 3, 2, 12),
        datetime(2024, 3, 2, 12),
        datetime(2024, 3, 2, 23, 59, 59),
    ]
    # an aware datetime is converted to UTC
    built = build_report([path], report.make_filters(since="2024-03-02T14:00:00+02:00"))
    assert built.rows == 4  # 12:00 UTC onwards


def test_filters_service_asn_cc(tmp_path: Path) -> None:
    path = _filter_fixture(tmp_path)
    assert build_report([path], report.make_filters(services=["signal"])).rows == 2
    assert build_report([path], report.make_filters(asns=["12389"])).rows == 1
    assert build_report([path], report.make_filters(asns=["AS44244,as12389"])).rows == 6
    assert build_report([path], report.make_filters(ccs=["ir"])).rows == 5
    both = report.make_filters(services=["signal"], ccs=["IR"])
    assert build_report([path], both).rows == 1
    assert build_report([path], ReportFilters(services=("nothing",))).rows == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"since": "March"}, "--since"),
        ({"since": "2024-03-02", "until": "2024-03-01"}, "--until"),
        ({"asns": ["ASX"]}, "--asn"),
        ({"ccs": ["IRN"]}, "--cc"),
    ],
)
def test_bad_filters_are_one_line_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ReportInputError, match=message):
        report.make_filters(**kwargs)


# --- outputs ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic_report(tmp_path_factory: pytest.TempPathFactory) -> report.Report:
    root = tmp_path_factory.mktemp("synthetic")
    synthetic.generate(root, vantages=4, days=6, seed=11)
    return build_report([root])


def test_csv_and_parquet_read_back_with_duckdb(
    synthetic_report: report.Report, tmp_path: Path
) -> None:
    report.write_csv(synthetic_report, tmp_path / "rows.csv")
    report.write_parquet(synthetic_report, tmp_path / "rows.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.csv", "rows.parquet"]  # no temp
    con = duckdb.connect()
    for name, reader in (("rows.csv", "read_csv"), ("rows.parquet", "read_parquet")):
        path = str(tmp_path / name)
        columns = [
            d[0] for d in con.execute(f"SELECT * FROM {reader}(?) LIMIT 1", [path]).description
        ]
        assert columns == list(report.ROW_COLUMNS)
        found = con.execute(
            f"SELECT count(*), count(DISTINCT input), min(time) FROM {reader}(?)", [path]
        ).fetchone()
        expected = synthetic_report.connection.execute(
            "SELECT count(*), count(DISTINCT input), min(time) FROM rows"
        ).fetchone()
        assert found == expected


def test_output_into_missing_directory_is_an_error(
    synthetic_report: report.Report, tmp_path: Path
) -> None:
    with pytest.raises(ReportInputError, match="does not exist"):
        report.write_csv(synthetic_report, tmp_path / "nope" / "rows.csv")


def test_html_is_one_self_contained_page_with_a_chart_per_service(
    synthetic_report: report.Report, tmp_path: Path
) -> None:
    path = tmp_path / "report.html"
    report.write_html(synthetic_report, path)
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
    page = path.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "<script" not in page.lower() and "@import" not in page and "url(" not in page
    services = synthetic_report.services
    assert len(services) == 4
    assert page.count("<svg") == len(services)
    for service in services:
        assert f'aria-label="{service} timeline"' in page
    assert "<h2>Change events</h2>" in page and "blocking started" in page


def test_html_and_text_escape_what_the_records_say(tmp_path: Path) -> None:
    hostile = _record(
        "telegram/<script>alert(1)</script>", "2024-03-01 00:00:00", "ok", asn="AS1", cc="<b"
    )
    (tmp_path / "r.jsonl").write_text(json.dumps(hostile) + "\n")
    page = report.render_html(build_report([tmp_path]))
    assert "<script" not in page and "&lt;script&gt;" in page


def test_text_summary_names_targets_networks_and_events(synthetic_report: report.Report) -> None:
    text = report.render_text(synthetic_report)
    assert text.splitlines()[0].startswith(f"{synthetic_report.rows} records from ")
    assert "== telegram ==" in text and "telegram/dc2" in text
    assert "change events" in text and "blocking" in text
    first = synthetic_report.events[0]
    assert f"{first.first_new:%Y-%m-%d %H:%M}" in text


# --- the command line ----------------------------------------------------------------------


def _run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def test_cli_report_writes_every_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    synthetic.generate(tmp_path / "results", vantages=2, days=3, seed=5)
    code, out, err = _run_cli(
        [
            "report",
            str(tmp_path / "results"),
            "--html",
            str(tmp_path / "r.html"),
            "--csv",
            str(tmp_path / "r.csv"),
            "--parquet",
            str(tmp_path / "r.parquet"),
            "--since",
            "2024-03-02",
            "--service",
            "telegram",
            "--cc",
            "ir",
        ],
        capsys,
    )
    assert code == 0, err
    assert "filters: since 2024-03-02 00:00:00; service telegram; cc IR" in out
    assert "== telegram ==" in out and "== signal ==" not in out
    for name in ("r.html", "r.csv", "r.parquet"):
        assert (tmp_path / name).stat().st_size > 0
    count = (
        duckdb.connect()
        .execute(
            "SELECT count(*), min(time) >= TIMESTAMP '2024-03-02' FROM read_parquet(?)",
            [str(tmp_path / "r.parquet")],
        )
        .fetchone()
    )
    assert count is not None and count[0] > 0 and count[1] is True


def test_cli_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run_cli(["report", str(tmp_path / "missing")], capsys)
    assert code == 2 and err.count("\n") == 1 and "no such file or directory" in err
    code, _, err = _run_cli(["report", str(tmp_path), "--until", "soon"], capsys)
    assert code == 2 and err.count("\n") == 1 and "--until" in err


# --- the page in a real headless browser ----------------------------------------------------


def _png_pixels(data: bytes) -> tuple[int, int, int, bytes]:
    """(width, height, bytes per pixel, raw rows without filter bytes) of an 8-bit PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and interlace == 0 and colour in (2, 6)
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    out, previous = bytearray(), bytearray(stride)
    for row in range(height):
        kind = raw[row * (stride + 1)]
        line = bytearray(raw[row * (stride + 1) + 1 : (row + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up = previous[i]
            corner = previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + pred) & 0xFF
        out += line
        previous = line
    return width, height, bpp, bytes(out)


def _chromium() -> str:
    """The Chromium binary; skips with a reason when there is none, fails when CI=true (the CI
    image installs it, see .ci/run)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        reason = "chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the browser test cannot run: {reason}")
        pytest.skip(reason)
    return browser


def _run_chromium(browser: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium on a local file. No network for the browser: an empty network namespace
    when we may make one (the page must need none), and Chromium's own background traffic
    switched off in any case."""
    isolate = ["unshare", "--net"] if os.geteuid() == 0 and shutil.which("unshare") else []
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [
                *isolate,
                browser,
                "--disable-quic",
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                *args,
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.mark.timeout(180)
def test_html_renders_charts_in_headless_chromium(
    synthetic_report: report.Report, tmp_path: Path
) -> None:
    browser = _chromium()
    page, shot = tmp_path / "report.html", tmp_path / "report.png"
    report.write_html(synthetic_report, page)
    _run_chromium(browser, f"--screenshot={shot}", "--window-size=1280,1400", page.as_uri())
    assert shot.exists(), "chromium wrote no screenshot"
    width, height, bpp, pixels = _png_pixels(shot.read_bytes())
    assert (width, height) == (1280, 1400)
    colours: dict[tuple[int, int, int], int] = {}
    for i in range(0, len(pixels), bpp * 3):  # every third pixel is plenty
        key = (pixels[i], pixels[i + 1], pixels[i + 2])
        colours[key] = colours.get(key, 0) + 1
    # the timeline cells are drawn in these exact colours: the SVG really rendered
    for hex_colour in (report._COLOURS["ok"], report._COLOURS["blocked"]):
        rgb = tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
        assert colours.get(rgb, 0) > 500, f"{hex_colour} is not on the screenshot"


def test_rich_tables_for_a_terminal(synthetic_report: report.Report) -> None:
    from rich.console import Console

    console = Console(record=True, width=200, force_terminal=True, color_system="standard")
    report.print_rich(synthetic_report, console)
    styled = console.export_text(styles=True, clear=False)
    text = console.export_text()
    assert "telegram/dc2" in text and "change events" in text and "AS44244 IR" in text
    assert "\x1b[" in styled  # coloured on a terminal


# --- issue 13: OONI measurements without a report_id, and honest skip reasons ----------------

OONI_DATA = Path(__file__).parent / "data" / "ooni"


def test_ooni_measurements_with_an_empty_report_id_are_read(tmp_path: Path) -> None:
    """OONI's simulated-censorship measurements have report_id "": `probe analyze` reads them,
    so `probe report` must too (with an id derived from the measurement's content)."""
    pytest.importorskip("probe.report.ooni", reason="probe/report/ooni/ converts OONI measurements")
    for case in ("dnsBlockingBOGON", "successWithHTTP"):
        shutil.copy(OONI_DATA / "netem_qa" / case / "measurement.json", tmp_path / f"{case}.json")
    # the same measurement again as JSON Lines: the same derived id, so a duplicate
    bogon = json.loads((tmp_path / "dnsBlockingBOGON.json").read_text(encoding="utf-8"))
    (tmp_path / "again.jsonl").write_text(json.dumps(bogon) + "\n", encoding="utf-8")
    built = build_report([tmp_path])
    assert built.skipped_total == 0, built.skipped_summary()
    assert built.rows == 2 and built.duplicates == 1
    ids = {r[0] for r in built.connection.execute("SELECT report_id FROM rows").fetchall()}
    assert len(ids) == 2 and all(i.startswith("x-ooni-") for i in ids)
    rebuilt = build_report([tmp_path])
    assert {
        r[0] for r in rebuilt.connection.execute("SELECT report_id FROM rows").fetchall()
    } == ids


def test_skip_reasons_name_what_is_missing(tmp_path: Path) -> None:
    no_report = _record("signal/chat", "2024-03-01 00:00:00", "ok", report_id="")
    no_service = _record("signal/chat", "2024-03-01 01:00:00", "ok")
    del no_service["test_name"]
    no_service["test_keys"]["target"] = {"id": "signal/chat"}
    no_time = _record("signal/chat", "2024-03-01 02:00:00", "ok")
    del no_time["measurement_start_time"]
    lines = [no_report, no_service, no_time, {"hello": "world"}]
    (tmp_path / "odd.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    built = build_report([tmp_path])
    reasons = [s.reason for s in built.skipped]
    assert built.rows == 0 and built.skipped_total == 4
    assert reasons == [
        "record without report_id",
        "record without test_name (service)",
        "not a measurement record (no measurement_start_time)",
        "not a measurement record (no test_keys object)",
    ]


def test_our_record_with_an_empty_report_id_is_skipped_on_the_fast_path_too(
    tmp_path: Path,
) -> None:
    """A file DuckDB reads cleanly takes the fast path: "" is as missing there as in Python."""
    lines = [
        _record("signal/chat", "2024-03-01 00:00:00", "ok", report_id=""),
        _record("signal/chat", "2024-03-01 01:00:00", "ok"),
    ]
    (tmp_path / "clean.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    built = build_report([tmp_path])
    assert built.rows == 1 and [s.reason for s in built.skipped] == ["record without report_id"]


# --- issue 14: hostile records in the HTML, CSV and terminal outputs -------------------------

# Each would run script if it reached the page unescaped: a script element, an event handler
# (in an attribute or a new element), a breakout from an SVG <title>, a javascript: URL.
XSS_SCRIPT = "<script>document.title='PWNED'</script>"
XSS_ATTR = '"><img src=x onerror="document.documentElement.dataset.pwned=\'1\'">'
XSS_TITLE = "</title><script>document.title='PWNED'</script>"
XSS_SVG = "'><svg onload=\"document.documentElement.dataset.pwned='1'\">"
XSS_JS = "javascript:document.title='PWNED'"
XSS_PAYLOADS = (XSS_SCRIPT, XSS_ATTR, XSS_TITLE, XSS_SVG, XSS_JS)

#: The elements and attributes the page is made of; anything else came from a record.
PAGE_TAGS = {
    "html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "span", "i",
    "div", "svg", "text", "rect", "path", "line", "table", "tr", "th", "td", "br", "small",
    "ul", "li",
}  # fmt: skip
PAGE_ATTRIBUTES = {
    "lang", "charset", "name", "content", "class", "id", "style", "title", "xmlns", "width",
    "height", "viewbox", "role", "aria-label", "x", "y", "x1", "y1", "x2", "y2", "text-anchor",
    "fill", "d", "stroke",
}  # fmt: skip


def _hostile_series(
    tmp_path: Path,
    *,
    target: str,
    service: str,
    asn: str,
    cc: str,
    method: str,
    bad_file: str,
    bad_time: str,
    forged_file: str,
) -> Path:
    """One series with a change event and a gap, every record-borne field set by the caller,
    plus a file named `bad_file` whose one line is skipped (reason quoting `bad_time`) and a
    file named `forged_file` holding a record in conflict with the first (same keys, another
    test_runtime)."""
    root = tmp_path / "hostile"
    root.mkdir()
    states = ["ok"] * 3 + ["blocked"] * 3 + ["gap"] + ["ok"] * 3
    records, when = [], datetime(2024, 3, 1)
    for state in states:
        if state == "gap":
            when += timedelta(hours=48)
            continue
        record = _record(
            "x/y",
            f"{when:%Y-%m-%d %H:%M:%S}",
            state,
            method if state == "blocked" else None,
            asn=asn,
            cc=cc,
        )
        record["input"] = target
        record["test_name"] = service
        record["test_keys"]["target"] = {"id": target, "service": service}
        records.append(record)
        when += HOUR
    (root / "r.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    bad = _record("x/y", "2024-03-01 00:00:00", "ok")
    bad["measurement_start_time"] = bad_time
    (root / bad_file).write_text(json.dumps(bad) + "\n")
    (root / forged_file).write_text(json.dumps({**records[0], "test_runtime": 2.0}) + "\n")
    return root


def _xss_report(tmp_path: Path) -> report.Report:
    root = _hostile_series(
        tmp_path,
        target="telegram/" + XSS_SCRIPT + XSS_JS,
        service="tele" + XSS_TITLE,
        asn="AS1" + XSS_ATTR,
        cc=XSS_SVG,
        method=XSS_TITLE,
        bad_file="<img src=x onerror=document.title=1>.jsonl",
        bad_time=XSS_ATTR,
        forged_file="<svg onload=document.title=1>.jsonl",
    )
    built = build_report([root])
    assert built.rows == 10 and built.skipped_total == 1 and built.conflicts_total == 2
    assert built.events and built.gaps  # every section of the page is filled
    return built


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes += attrs


def test_html_escapes_hostile_records_everywhere_including_svg(tmp_path: Path) -> None:
    built = _xss_report(tmp_path)
    page = report.render_html(built)
    for payload in XSS_PAYLOADS:
        assert payload not in page
    assert html.escape(XSS_TITLE) in page  # the method, in the SVG <title> of an event
    assert html.escape("AS1" + XSS_ATTR) in page and html.escape(XSS_SVG) in page
    parser = _PageParser()
    parser.feed(page)
    parser.close()
    assert parser.tags <= PAGE_TAGS, parser.tags - PAGE_TAGS
    names = {name for name, _ in parser.attributes}
    assert names <= PAGE_ATTRIBUTES, names - PAGE_ATTRIBUTES
    assert not re.search(r"<\s*/?\s*script", page, re.I)
    for name, value in parser.attributes:
        assert not (value or "").strip().lower().startswith("javascript:"), (name, value)


@pytest.mark.timeout(240)
def test_hostile_records_run_no_script_in_headless_chromium(tmp_path: Path) -> None:
    browser = _chromium()
    # the harness sees script that runs: a page that does what the payloads try to do
    control = tmp_path / "control.html"
    control.write_text(
        "<!DOCTYPE html><html><head><title>probe report</title></head><body>"
        + XSS_SCRIPT
        + XSS_ATTR[2:]
        + "</body></html>"
    )
    dom = _run_chromium(browser, "--dump-dom", control.as_uri()).stdout
    assert "<title>PWNED</title>" in dom and 'data-pwned="1"' in dom, dom[:2000]
    page = tmp_path / "hostile.html"
    report.write_html(_xss_report(tmp_path), page)
    dom = _run_chromium(browser, "--dump-dom", page.as_uri()).stdout
    assert "<h2>Change events</h2>" in dom, dom[:2000]  # the page was loaded and dumped
    assert "<h2>Conflicting records</h2>" in dom
    titles = re.findall(r"<title>(.*?)</title>", dom, re.S)
    assert titles[0] == "probe report"
    assert "PWNED</title>" not in dom and 'data-pwned="1"' not in dom
    lowered = dom.lower()
    assert "<script" not in lowered and "<img" not in lowered and "<svg onload" not in lowered
    assert not re.search(r"<[^>]*\son[a-z]+\s*=", dom)
    # the hostile text is shown as text
    assert "&lt;script&gt;document.title='PWNED'&lt;/script&gt;" in dom


def test_csv_neutralises_formula_cells(tmp_path: Path) -> None:
    formulas = {
        "input": '=HYPERLINK("http://example.invalid/?"&A1,"click")',
        "probe_asn": "+1+cmd|' /C calc'!A0",
        "probe_cc": "-2+3",
        "service": "@SUM(1+1)*cmd|' /C calc'!A0",
        "blocking": "\t=1+1",
        "report_id": "\r=1+1",
    }
    record = _record("x/y", "2024-03-01 00:00:00", "blocked", formulas["blocking"])
    record.update(
        input=formulas["input"],
        test_name=formulas["service"],
        probe_asn=formulas["probe_asn"],
        probe_cc=formulas["probe_cc"],
        report_id=formulas["report_id"],
    )
    record["test_keys"]["target"] = {"id": formulas["input"], "service": formulas["service"]}
    plain = _record("signal/chat", "2024-03-01 01:00:00", "ok", report_id="safe-id")
    source = tmp_path / "in" / "r.jsonl"
    source.parent.mkdir()
    source.write_text(json.dumps(record) + "\n" + json.dumps(plain) + "\n")
    built = build_report([source])
    report.write_csv(built, tmp_path / "rows.csv")
    with open(tmp_path / "rows.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["time"] for r in rows] == ["2024-03-01 00:00:00", "2024-03-01 01:00:00"]
    hostile, safe = rows
    for column, value in formulas.items():
        assert hostile[column] == "'" + value, column
    assert hostile["status"] == "blocked" and hostile["confirmed"] == "false"
    assert hostile["source"] == str(source)
    # text that is no formula, and the values we write ourselves, are left alone
    assert safe["input"] == "signal/chat" and safe["report_id"] == "safe-id"
    assert safe["probe_asn"] == "AS44244" and safe["blocking"] == ""
    # Parquet is typed data, not a spreadsheet: values as they were
    report.write_parquet(built, tmp_path / "rows.parquet")
    found = (
        duckdb.connect()
        .execute(
            "SELECT input, probe_asn, report_id FROM read_parquet(?) ORDER BY time",
            [str(tmp_path / "rows.parquet")],
        )
        .fetchone()
    )
    assert found == (formulas["input"], formulas["probe_asn"], formulas["report_id"])


OSC52 = "\x1b]52;c;cm0gLXJmIH4K\x07"  # writes "rm -rf ~" to the clipboard
CONTROLS = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")  # C0 except newline, DEL, C1


def _terminal_report(tmp_path: Path) -> Path:
    return _hostile_series(
        tmp_path,
        target="telegram/dc" + OSC52 + "one",
        service="tele\x9d0;owned\x9cgram",  # C1 OSC: sets the window title
        asn="AS1\x1b[2J\x1b[H",  # clears the screen
        cc="I\x9b31mR\x1b[8m",  # C1 CSI, SGR "concealed"
        method="tcp\r\x1b[32mok\x1b[0m\x00\x7f\x08\x07[/]",  # overwrite the line, rich markup
        bad_file="f\x1b]0;title\x07.jsonl",
        bad_time="\x1bP+q\x1b\\yesterday",  # a DCS string
        forged_file="g\x1b]0;title\x07\x1b[2J.jsonl",
    )


def _assert_no_controls(text: str) -> None:
    assert not CONTROLS.search(text), repr(CONTROLS.findall(text))
    for leftover in ("cm0gLXJmIH4K", "[2J", "0;owned", "]0;title"):
        assert leftover not in text  # whole sequences are removed, not just their ESC
    # a skip reason quotes the bad value with repr(): ESC shows as the four characters \x1b
    assert "'\\x1bP+q\\x1b\\\\yesterday'" in text


def test_text_output_strips_terminal_control_sequences(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _terminal_report(tmp_path)
    text = report.render_text(build_report([root]))
    _assert_no_controls(text)
    assert "telegram/dcone" in text and "AS1 IR" in text and "blocked/tcp ok[/]" in text
    assert "telegram" in text and "skipped in 1 file" in text
    assert "2 conflicting records" in text and "g.jsonl:1" in text
    code, out, err = _run_cli(["report", str(root)], capsys)  # stdout is not a terminal here
    assert code == 0, err
    _assert_no_controls(out)
    assert out == text


def test_rich_output_strips_terminal_control_sequences_and_markup(tmp_path: Path) -> None:
    from rich.console import Console

    built = build_report([_terminal_report(tmp_path)])
    built.series[0] = dataclasses.replace(
        built.series[0], input="[link=https://example.invalid]click[/link]"
    )
    stream = io.StringIO()
    console = Console(
        file=stream, record=True, width=250, force_terminal=True, color_system="truecolor"
    )
    report.print_rich(built, console)
    plain = console.export_text(clear=False)
    _assert_no_controls(plain)
    assert "telegram/dcone" in plain and "AS1 IR" in plain and "blocked/tcp ok[/]" in plain
    assert "[link=https://example.invalid]click[/link]" in plain  # text, not rich markup
    # what reaches the terminal: rich's own colours (SGR) and nothing else
    written = stream.getvalue()
    assert "\x1b]8;" not in written  # no hyperlink made from a record
    _assert_no_controls(re.sub(r"\x1b\[[0-9;]*m", "", written))
