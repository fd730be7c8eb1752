"""The probe id (probe/identity.py, `probe id show|rotate`): random, stored once with mode 0600,
written in every record `probe run` makes, accepted by the record schema and its compiled
check (and a malformed one refused), left alone by scrubbing, removed by `probe purge`."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from probe import identity
from probe.collector.schema import record_check
from probe.localdata import ResultsDir, execute, plan_purge
from tests.loopback_world import REPO, probe_env, schema_validator

LIST = """[list]
name = "t"
updated = 2026-01-01

[[targets]]
id = "t/a"
service = "t"
check = "tcp"
host = "127.0.0.1"
ports = [9]
"""


def _probe(args: list[str], data_dir: Path, *, lang: str = "en") -> subprocess.CompletedProcess:
    env = probe_env()
    env["PROBE_DATA_DIR"] = str(data_dir)
    env["LANGUAGE"] = lang
    return subprocess.run(
        [sys.executable, "-m", "probe", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(REPO),
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def test_new_ids_are_well_formed_and_random() -> None:
    ids = {identity.new_probe_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(identity.is_probe_id(i) for i in ids)
    assert not identity.is_probe_id("p-ABCDEFGHIJKLMNOP")
    assert not identity.is_probe_id("p-abcdefghijklmnop\n")
    assert not identity.is_probe_id("p-abcdefghijklmno1")  # 1 is not base32
    assert not identity.is_probe_id(12)


def test_made_once_stored_0600_and_kept(tmp_path: Path) -> None:
    path = identity.id_path(tmp_path / "data")
    first = identity.load_or_create(path)
    assert identity.is_probe_id(first)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == first + "\n"
    assert identity.load_or_create(path) == first
    assert sorted(p.name for p in path.parent.iterdir()) == ["probe_id"]  # no temp file left
    second = identity.rotate(path)
    assert second != first and identity.load_or_create(path) == second
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_two_first_uses_at_once_agree_on_one_id(tmp_path: Path) -> None:
    path = identity.id_path(tmp_path)
    found: list[str] = []
    barrier = threading.Barrier(16)

    def make() -> None:
        barrier.wait()
        found.append(identity.load_or_create(path))

    threads = [threading.Thread(target=make) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 16 and len(set(found)) == 1
    assert path.read_text().strip() == found[0]


def test_a_broken_id_file_is_named_with_its_line(tmp_path: Path) -> None:
    path = identity.id_path(tmp_path)
    path.write_text("192.0.2.7 my-laptop\n")
    with pytest.raises(identity.ProbeIdError, match=r"probe_id:1: probe_id: '192\.0\.2\.7"):
        identity.load_or_create(path)
    assert identity.is_probe_id(identity.rotate(path))  # rotate repairs it


def test_cli_show_and_rotate(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shown = _probe(["id", "show"], data)
    assert shown.returncode == 0, shown.stderr
    first = shown.stdout.strip()
    assert identity.is_probe_id(first)
    assert str(data / "probe_id") in shown.stderr
    assert _probe(["id", "show"], data).stdout.strip() == first
    rotated = _probe(["id", "rotate"], data)
    assert rotated.returncode == 0, rotated.stderr
    second = rotated.stdout.strip()
    assert identity.is_probe_id(second) and second != first
    assert "can no longer be linked to past ones" in rotated.stderr
    assert first in rotated.stderr
    persian = _probe(["--lang", "fa", "id", "rotate"], data)
    assert persian.returncode == 0, persian.stderr
    assert "شناسهٔ تازهٔ probe" in persian.stderr and "پیوند" in persian.stderr
    (data / "probe_id").write_text("nonsense\n")
    broken = _probe(["id", "show"], data)
    assert broken.returncode == 2
    [line] = broken.stderr.strip().splitlines()
    assert f"{data / 'probe_id'}:1: probe_id: 'nonsense'" in line


def _run_records(tmp_path: Path, data: Path) -> tuple[subprocess.CompletedProcess, list[Any]]:
    lst = tmp_path / "t.toml"
    lst.write_text(LIST)
    out = tmp_path / "results"
    args = ["run", str(lst), "--resolver", "127.0.0.1:9", "--no-ip-discovery", "--no-control"]
    result = _probe([*args, "--timeout", "1", "--out", str(out)], data)
    records = [json.loads(line) for p in sorted(out.rglob("*.jsonl")) for line in p.open()]
    return result, records


def test_every_record_of_a_run_carries_the_installations_id(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result, records = _run_records(tmp_path, data)
    assert result.returncode == 0, result.stderr
    stored = (data / "probe_id").read_text().strip()
    assert identity.is_probe_id(stored)
    assert records and all(r["probe_id"] == stored for r in records)
    validator = schema_validator()
    check = record_check()
    for record in records:
        assert not list(validator.iter_errors(record))
        assert check(record) is None


def test_an_unwritable_data_directory_costs_the_id_not_the_run(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result, records = _run_records(tmp_path, blocker / "data")  # a file is not a directory
    assert result.returncode == 0, result.stderr
    assert "these records carry no probe id" in result.stderr
    assert records and all("probe_id" not in r for r in records)


def _valid_record() -> dict[str, Any]:
    path = REPO / "tests" / "data" / "probe_record.json"
    record: dict[str, Any] = json.loads(path.read_text())
    return record


@pytest.mark.parametrize("with_id", [False, True])
def test_schema_and_its_compiled_check_accept_a_record_with_or_without_an_id(
    with_id: bool,
) -> None:
    record = _valid_record()
    record.pop("probe_id", None)
    if with_id:
        record["probe_id"] = identity.new_probe_id()
    assert not list(schema_validator().iter_errors(record))
    assert record_check()(record) is None


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "p-",
        "p-abc",
        "p-ABCDEFGHIJKLMNOP",
        "p-abcdefghijklmnop\n",
        "x-abcdefghijklmnop",
        "p-abcdefghijklmnopq",
        "p-abcdefgh1jklmnop",
        42,
        None,
    ],
)
def test_schema_and_its_compiled_check_refuse_a_malformed_id(bad: object) -> None:
    record = _valid_record()
    record["probe_id"] = bad
    if bad != "p-abcdefghijklmnop\n":  # Python's `$` (jsonschema) allows a final newline
        assert list(schema_validator().iter_errors(record))
    problem = record_check()(record)
    assert problem is not None and problem.startswith("probe_id:")


def test_bundled_schema_is_the_documented_one() -> None:
    docs = json.loads((REPO / "docs" / "record.schema.json").read_text())
    bundled = json.loads((REPO / "probe" / "data" / "record.schema.json").read_text())
    assert docs == bundled
    assert docs["properties"]["probe_id"]["pattern"] == identity.PATTERN


def test_scrubbing_leaves_the_id_alone() -> None:
    from probe.vantage.scrub import Scrubber

    record = _valid_record()
    record["probe_id"] = "p-" + "2" * 16  # digits only: the likeliest to look like a number
    known = Scrubber()
    known.add("198.51.100.23")
    for scrubber in (known, Scrubber(redact_unknown=True)):
        scrubbed, _ = scrubber.scrub_record(record)
        assert scrubbed["probe_id"] == record["probe_id"]


def test_purge_removes_the_id(tmp_path: Path) -> None:
    data = tmp_path / "data"
    identity.load_or_create(identity.id_path(data))
    plan = plan_purge([ResultsDir(data / "results", own=True)], None, data)
    assert plan.probe_id == data / "probe_id"
    assert any("probe id" in line for line in plan.describe())
    done = execute(plan)
    assert data / "probe_id" in done.removed
    assert not data.exists()


def test_purge_without_an_id_plans_nothing_for_it(tmp_path: Path) -> None:
    plan = plan_purge([ResultsDir(tmp_path / "results", own=True)], None, tmp_path)
    assert plan.probe_id is None and plan.empty


async def test_ids_are_never_shared_between_installations(tmp_path: Path) -> None:
    """Two data directories on one machine (same host name, address, MAC): two ids."""
    loop = asyncio.get_running_loop()
    first, second = await asyncio.gather(
        loop.run_in_executor(None, _probe, ["id", "show"], tmp_path / "a"),
        loop.run_in_executor(None, _probe, ["id", "show"], tmp_path / "b"),
    )
    assert first.stdout.strip() != second.stdout.strip()
    assert os.path.exists(tmp_path / "a" / "probe_id")
