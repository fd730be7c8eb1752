"""`probe report --engine spark`: Apache Spark (local mode) gives the report DuckDB gives — the
same rows, series, change events, gaps, view across volunteers, duplicates and conflicts — on a
synthetic volunteer set with a copied file (duplicates), a forged copy of a record (a
conflict), a file with a bad line (the Python path), a Parquet partition of the collector's
layout, and runs of one series in the same second (ties). One SparkSession for the module.

Skips with a reason when PySpark or Java is missing; fails instead when CI=true (.ci/run
installs both)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from probe import report, results
from probe.cli import main
from probe.report import ROW_COLUMNS, build_report
from tests import synthetic
from tests.report_keys import event_keys, gap_keys

#: Spark in local mode on a busy 2-CPU machine takes minutes for this module (not a timing
#: assertion: a bound against a hang)
pytestmark = pytest.mark.timeout(1800)


def _spark_or_skip() -> None:
    reason = None
    try:
        import pyspark  # noqa: F401
    except ImportError:
        reason = "PySpark is not installed (pip install '.[spark]')"
    if reason is None and not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        reason = "Java is not installed (apt-get install default-jre-headless)"
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the Spark tests cannot run: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    _spark_or_skip()
    from probe.report.spark import spark_session

    session = spark_session()
    yield session
    session.stop()


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _corpus(root: Path) -> synthetic.GroundTruth:
    """The volunteer set, plus the cases where reading and deduplication differ."""
    truth = synthetic.generate(
        root / "results", days=3, seed=5, noise=0.03, volunteers=synthetic.volunteer_set(5)
    )
    files = sorted((root / "results").rglob("*.jsonl"))
    # a file sent twice: duplicates, dropped on both engines
    shutil.copy(files[0], root / "copy.jsonl")
    # a forged record: another's keys, other content (a conflict: both kept)
    forged = json.loads(_lines(files[1])[0])
    verdict = forged["test_keys"]["verdict"]
    verdict["status"] = "down" if verdict["status"] != "down" else "ok"
    verdict["blocking"] = None
    (root / "forged.jsonl").write_text(json.dumps(forged) + "\n", encoding="utf-8")
    # a bad line: the whole file takes the Python path, the line is skipped with its reason
    mixed = _lines(files[2])
    (root / "mixed.jsonl").write_text("\n".join([*mixed, "{not json"]) + "\n", encoding="utf-8")
    files[2].unlink()
    # runs of one series in the same second: the latest status must not depend on the engine
    tied = [json.loads(line) for line in _lines(files[3])[:1]] * 3
    for index, (status, blocking) in enumerate((("ok", None), ("blocked", "dns"), ("down", None))):
        record = json.loads(json.dumps(tied[index]))
        record["report_id"] += f"-tie{index}"
        record["measurement_start_time"] = "2024-03-03 23:59:59"
        record["test_keys"]["verdict"].update(status=status, blocking=blocking)
        tied[index] = record
    (root / "tied.jsonl").write_text("".join(json.dumps(r) + "\n" for r in tied), "utf-8")
    # a Parquet partition in the collector's layout (one record per row, canonical JSON)
    partition = root / "collector" / "date=2024-03-02" / "cc=IR" / "asn=AS44244"
    partition.mkdir(parents=True)
    moved = [json.loads(line) for line in _lines(files[4])]
    files[4].unlink()
    con = duckdb.connect()
    con.execute(
        "COPY (SELECT unnest($records) AS record) TO '"
        + str(partition / ("part-" + "0" * 32 + ".parquet"))
        + "' (FORMAT parquet)",
        {"records": [results.canonical_json(r) for r in moved]},
    )
    return truth


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("spark-corpus")
    _corpus(root)
    return root


@pytest.fixture(scope="module")
def both(corpus: Path, spark: Any) -> tuple[report.Report, report.Report]:
    from probe.report.spark import build_report_spark

    return build_report([corpus]), build_report_spark([corpus], spark=spark)


def _rows(built: report.Report) -> list[tuple[Any, ...]]:
    columns = ", ".join(ROW_COLUMNS)
    return built.connection.execute(f"SELECT {columns} FROM rows ORDER BY ALL").fetchall()


def test_spark_gives_duckdbs_rows(both: tuple[report.Report, report.Report]) -> None:
    duck, spark = both
    rows = _rows(duck)
    assert len(rows) > 2000
    # the duplicates' kept copy may be either file: compare without `source` for them
    assert _rows(spark) == rows or [r[:-2] + r[-1:] for r in _rows(spark)] == [
        r[:-2] + r[-1:] for r in rows
    ]
    assert (spark.records_read, spark.duplicates, spark.files) == (
        duck.records_read,
        duck.duplicates,
        duck.files,
    )
    assert duck.duplicates > 0
    assert sum(1 for r in rows if r[-1]) == 2  # the forged record and its original


def test_spark_gives_duckdbs_series_events_and_gaps(
    both: tuple[report.Report, report.Report],
) -> None:
    duck, spark = both
    assert duck.events and duck.gaps is not None
    assert spark.series == duck.series
    assert spark.events == duck.events
    assert spark.gaps == duck.gaps
    assert spark.across == duck.across
    assert event_keys(spark.events) == event_keys(duck.events)
    assert gap_keys(spark.gaps) == gap_keys(duck.gaps)


def test_spark_gives_duckdbs_conflicts_and_skipped_lines(
    both: tuple[report.Report, report.Report],
) -> None:
    duck, spark = both
    assert duck.conflicts_total == 2
    assert (spark.conflicts_total, spark.conflicts) == (duck.conflicts_total, duck.conflicts)
    assert spark.skipped_total == duck.skipped_total == 1
    assert spark.skipped == duck.skipped


def test_same_second_ties_go_the_same_way(both: tuple[report.Report, report.Report]) -> None:
    duck, spark = both
    tied = [s for s in duck.series if s.latest_time.strftime("%H:%M:%S") == "23:59:59"]
    assert tied and all(s.latest_status == "ok" for s in tied)  # the greatest status wins
    assert [s for s in spark.series if s in tied] == tied


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def test_cli_engine_spark_writes_what_duckdb_writes(
    corpus: Path, spark: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    out = corpus.parent / "out"
    out.mkdir(exist_ok=True)
    texts = {}
    for engine in ("duckdb", "spark"):
        args = ["report", str(corpus / "results"), "--engine", engine]
        args += ["--csv", str(out / f"{engine}.csv"), "--since", "2024-03-02"]
        status, texts[engine], err = _cli(args, capsys)
        assert status == 0, err
    assert texts["spark"] == texts["duckdb"]
    assert (out / "spark.csv").read_bytes() == (out / "duckdb.csv").read_bytes()


def test_spark_options_need_the_spark_engine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = _cli(["report", str(tmp_path), "--spark-master", "local[1]"], capsys)
    assert status == 2
    assert "need --engine spark" in err


def test_spark_reads_the_ooni_archive_as_duckdb_does(tmp_path: Path, spark: Any) -> None:
    pytest.importorskip("probe.report.ooni", reason="probe/report/ooni/ converts OONI measurements")
    from probe.report.ooni_archive import OoniArchive, make_selection
    from probe.report.spark import build_report_spark
    from tests.test_report_ooni_archive import _raw_archive

    _raw_archive(tmp_path / "ooni")
    synthetic.generate(tmp_path / "ours", vantages=1, days=1, seed=4, gaps_per_vantage=0)
    built = {}
    for engine in ("duckdb", "spark"):
        archive = OoniArchive.open([tmp_path / "ooni"], make_selection(None, None, [], []))
        if engine == "spark":
            built[engine] = build_report_spark([tmp_path / "ours"], spark=spark, archive=archive)
        else:
            built[engine] = build_report([tmp_path / "ours"], archive=archive)
        assert archive.stats.measurements == 12
    duck, on_spark = built["duckdb"], built["spark"]
    assert any(s.probe_cc == "IT" for s in duck.series)  # OONI's measurements are in
    assert _rows(on_spark) == _rows(duck)
    assert (on_spark.series, on_spark.events) == (duck.series, duck.events)
    assert on_spark.gaps == duck.gaps
    assert (on_spark.files, on_spark.skipped) == (duck.files, duck.skipped)
