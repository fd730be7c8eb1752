"""The synthetic result-set generator: layout, record shape, size, determinism, ground truth."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests import synthetic
from tests.record_contract import REQUIRED_KEYS, REQUIRED_TEST_KEYS


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("synthetic")
    truth = synthetic.generate(root, vantages=3, days=5, seed=2, noise=0.02)
    return root, truth


def test_files_are_laid_out_like_probe_run(generated) -> None:
    root, truth = generated
    files = sorted(root.rglob("*"))
    data = [f for f in files if f.is_file()]
    assert len(data) == truth.files
    for path in data:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", path.parent.name)
        start, _, report_id = path.stem.partition("_")
        assert re.fullmatch(r"\d{8}T\d{6}Z", start)
        assert path.parent.name == datetime.strptime(start, "%Y%m%dT%H%M%SZ").strftime("%Y-%m-%d")
        first = json.loads(path.read_text().splitlines()[0])
        assert first["report_id"] == report_id


def test_records_have_the_contract_shape_and_realistic_size(generated) -> None:
    root, truth = generated
    records = [
        json.loads(line) for f in root.rglob("*.jsonl") for line in f.read_text().splitlines()
    ]
    assert len(records) == truth.records == truth.files * len(synthetic.TARGETS)
    # 3 vantages, 5 days of hourly runs, each vantage with at most one 40-hour gap
    assert 3 * (5 * 24 - 41) <= truth.files <= 3 * 5 * 24
    assert truth.bytes_written == sum(f.stat().st_size for f in root.rglob("*.jsonl"))
    assert truth.bytes_written / truth.records > 1500
    statuses, methods = set(), set()
    for record in records:
        assert REQUIRED_KEYS <= record.keys()
        assert REQUIRED_TEST_KEYS <= record["test_keys"].keys()
        assert record["software_name"] == "probe" and record["probe_ip"] == "127.0.0.1"
        assert re.fullmatch(r"AS\d+", record["probe_asn"]) and len(record["probe_cc"]) == 2
        assert record["test_keys"]["target"]["id"] == record["input"]
        assert record["input"].startswith(record["test_name"] + "/")
        datetime.strptime(record["measurement_start_time"], "%Y-%m-%d %H:%M:%S")
        verdict = record["test_keys"]["verdict"]
        statuses.add(verdict["status"])
        methods.add(verdict["blocking"])
        assert (verdict["blocking"] is None) == (verdict["status"] != "blocked")
    assert statuses == {"ok", "blocked", "down", "inconclusive"}
    assert {"dns", "tcp", "tls"} <= methods
    ids = {r["input"] for r in records}
    assert {"telegram/dc1", "telegram/dc5", "telegram/web", "whatsapp/e1", "signal/chat"} <= ids


def test_ground_truth_events_are_consistent_with_the_records(generated) -> None:
    root, truth = generated
    by_key = {}
    for f in root.rglob("*.jsonl"):
        for line in f.read_text().splitlines():
            r = json.loads(line)
            v = r["test_keys"]["verdict"]
            by_key[(r["input"], r["probe_asn"], r["measurement_start_time"])] = (
                v["status"],
                v["blocking"],
            )
    assert truth.events
    for event in truth.events:
        old = by_key[(event.input, event.probe_asn, f"{event.last_old:%Y-%m-%d %H:%M:%S}")]
        new = by_key[(event.input, event.probe_asn, f"{event.first_new:%Y-%m-%d %H:%M:%S}")]
        assert old == event.old and new == event.new
        assert event.last_old < event.first_new
    for gap in truth.gaps:
        assert gap.first_after - gap.last_before > timedelta(hours=24)


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a = synthetic.generate(tmp_path / "a", vantages=2, days=2, seed=9)
    b = synthetic.generate(tmp_path / "b", vantages=2, days=2, seed=9)
    assert a.events == b.events
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.jsonl"))
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.jsonl"))
    assert files_a == files_b
    assert all(
        (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files_a
    )


def test_command_line_writes_and_prints_the_truth(tmp_path: Path, capsys) -> None:
    code = synthetic.main(
        [str(tmp_path / "out"), "--vantages", "2", "--days", "2", "--interval", "2h", "--seed", "4"]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["files"] == len(list((tmp_path / "out").rglob("*.jsonl")))
    assert summary["records"] == summary["files"] * len(synthetic.TARGETS)
    assert summary["files"] <= 2 * 2 * 12  # two vantages, two days, every two hours
    with pytest.raises(SystemExit):
        synthetic.main([str(tmp_path / "x"), "--interval", "soon"])
    assert synthetic.main([str(tmp_path / "x"), "--start", "March"]) == 2


def test_every_record_is_valid_against_the_record_schema(generated) -> None:
    """Synthetic records stand in for real ones (the collector takes them as uploads): each
    must pass docs/record.schema.json, as the probe's own records do."""
    from tests.loopback_world import schema_validator

    root, _ = generated
    validator = schema_validator()
    checked = 0
    for path in sorted(root.rglob("*.jsonl")):
        for line in path.read_text().splitlines():
            error = next(iter(validator.iter_errors(json.loads(line))), None)
            assert error is None, f"{path.name}: {error.json_path}: {error.message}"
            checked += 1
    assert checked > 100
