"""The collector's API against a real collector on loopback: health, uploads (JSON Lines, gzip)
and the per-line reply, idempotency by content hash (within a request, across requests, after
compaction and across a restart), and what a researcher reads back: Parquet partitions by
date, country and network that DuckDB and `probe report DIR` read as the original files."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pytest

from probe import results
from tests.collector_helpers import (
    jsonl,
    lines_of,
    request,
    running,
    sha_of,
    stored_rows,
    synthetic_files,
    upload,
)
from tests.loopback_world import run_probe


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_files(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="module")
def lines(source: Path) -> list[bytes]:
    found = lines_of(source)
    assert 500 < len(found) <= 1000  # one request holds them all
    return found


async def test_health_says_ok_and_what_is_pending(tmp_path: Path, lines: list[bytes]) -> None:
    async with running(tmp_path / "c", compact_interval=3600) as c:
        reply = await request(c.port, "GET", "/v1/health")
        assert reply.status == 200
        body = reply.json()
        assert body["status"] == "ok" and body["accepting"] is True
        assert body["pending_records"] == 0 and body["compaction"] == "ok"
        assert body["software_version"]
        await upload(c.port, lines[:10])
        assert (await request(c.port, "GET", "/v1/health")).json()["pending_records"] == 10
        assert reply.headers["connection"] == "close"


async def test_upload_replies_per_line_with_the_content_hash(
    tmp_path: Path, lines: list[bytes]
) -> None:
    async with running(tmp_path / "c") as c:
        reply = await upload(c.port, lines)
        assert reply.status == 200, reply.body
        body = reply.json()
        assert body["stored"] == len(lines)
        assert body["duplicate"] == 0 and body["rejected"] == 0
        assert [entry["line"] for entry in body["lines"]] == list(range(1, len(lines) + 1))
        assert {entry["status"] for entry in body["lines"]} == {"stored"}
        assert [entry["sha256"] for entry in body["lines"]] == [sha_of(x) for x in lines]

        again = (await upload(c.port, lines)).json()
        assert again["stored"] == 0 and again["duplicate"] == len(lines)
        assert [entry["sha256"] for entry in again["lines"]] == [sha_of(x) for x in lines]


async def test_same_record_twice_in_one_request_is_stored_once(
    tmp_path: Path, lines: list[bytes]
) -> None:
    # the same record re-serialised (keys reordered, spaces): the same content hash
    reordered = json.dumps(dict(reversed(list(json.loads(lines[0]).items())))).encode()
    async with running(tmp_path / "c") as c:
        body = (await upload(c.port, [lines[0], reordered, lines[1]])).json()
    assert [e["status"] for e in body["lines"]] == ["stored", "duplicate", "stored"]
    assert body["lines"][0]["sha256"] == body["lines"][1]["sha256"]
    assert len(stored_rows(tmp_path / "c")) == 2


async def test_gzip_bodies_are_stored_like_plain_ones(tmp_path: Path, lines: list[bytes]) -> None:
    # two gzip members one after the other are one body (as `cat a.gz b.gz` makes)
    two_members = gzip.compress(jsonl(lines[:5])) + gzip.compress(jsonl(lines[5:20]))
    async with running(tmp_path / "c") as c:
        body = (await upload(c.port, lines[20:40], gzipped=True)).json()
        assert body["stored"] == 20
        reply = await request(
            c.port, "POST", "/v1/records", two_members, {"Content-Encoding": "gzip"}
        )
        assert reply.status == 200 and reply.json()["stored"] == 20
    assert sorted(r[0] for r in stored_rows(tmp_path / "c")) == sorted(
        sha_of(x) for x in lines[:40]
    )


async def test_a_bad_line_is_rejected_alone(tmp_path: Path, lines: list[bytes]) -> None:
    body = lines[0] + b"\n\n{not json\n" + lines[1] + b"\r\n" + b'{"a": 1}\n' + lines[2]
    async with running(tmp_path / "c") as c:
        reply = await request(c.port, "POST", "/v1/records", body)
    assert reply.status == 200
    got = reply.json()
    assert (got["stored"], got["duplicate"], got["rejected"]) == (3, 0, 2)
    # line numbers count blank lines: they are the lines of the file the client sent
    assert [(e["line"], e["status"]) for e in got["lines"]] == [
        (1, "stored"),
        (3, "rejected"),
        (4, "stored"),
        (5, "rejected"),
        (6, "stored"),
    ]
    assert got["lines"][1]["reason"].startswith("not JSON")
    assert got["lines"][3]["reason"].startswith("schema: record:")
    assert "sha256" not in got["lines"][1]
    assert sorted(r[0] for r in stored_rows(tmp_path / "c")) == sorted(sha_of(x) for x in lines[:3])


async def test_compaction_writes_partitions_by_date_country_and_network(
    tmp_path: Path, lines: list[bytes]
) -> None:
    async with running(tmp_path / "c") as c:
        assert (await upload(c.port, lines)).json()["stored"] == len(lines)
        assert c.storage.pending_records == len(lines)
        moved = await c.storage.compact(everything=True)
        assert moved == len(lines) and c.storage.pending_records == 0
        assert (await request(c.port, "GET", "/v1/health")).json()["pending_records"] == 0
    rows = stored_rows(tmp_path / "c")
    assert len(rows) == len(lines)
    by_hash = {sha_of(x): json.loads(x) for x in lines}
    partitions = set()
    for sha, date, cc, asn, record in rows:
        original = by_hash.pop(sha)
        assert json.loads(record) == original
        assert record == results.canonical_json(original)
        assert date == original["measurement_start_time"][:10]
        assert (cc, asn) == (original["probe_cc"], "AS" + str(int(original["probe_asn"][2:])))
        partitions.add((date, cc, asn))
    assert not by_hash
    assert len(partitions) >= 2  # two vantages: at least two networks
    for path in (tmp_path / "c").rglob("*.parquet"):
        relative = path.relative_to(tmp_path / "c").parts
        assert relative[0].startswith("date=") and relative[1].startswith("cc=")
        assert relative[2].startswith("asn=AS")


async def test_a_retry_after_compaction_and_restart_stores_nothing(
    tmp_path: Path, lines: list[bytes]
) -> None:
    directory = tmp_path / "c"
    async with running(directory) as c:
        await upload(c.port, lines[:100])
    assert len(stored_rows(directory)) == 100  # compacted when it stopped
    async with running(directory) as c:
        body = (await upload(c.port, lines[:150])).json()
    assert (body["stored"], body["duplicate"]) == (50, 100)
    assert len(stored_rows(directory)) == 150


async def test_rebuild_index_from_the_parquet_files(tmp_path: Path, lines: list[bytes]) -> None:
    directory = tmp_path / "c"
    async with running(directory) as c:
        await upload(c.port, lines[:60])
    # the ledger lost (a restore from a backup of the partitions alone): rebuilt at start
    for path in (directory / "_collector").glob("ledger.sqlite3*"):
        path.unlink()
    async with running(directory) as c:
        assert (await upload(c.port, lines[:60])).json()["duplicate"] == 60
    # a partition file deleted by hand: --rebuild-index forgets its records, they may come again
    victim = sorted(directory.rglob("*.parquet"))[0]
    gone = {r[0] for r in stored_rows(directory)}
    victim.unlink()
    gone -= {r[0] for r in stored_rows(directory)}
    assert gone
    async with running(directory) as c:
        assert (await upload(c.port, lines[:60])).json()["stored"] == 0  # the index remembers
    async with running(directory, rebuild_index=True) as c:
        body = (await upload(c.port, lines[:60])).json()
    assert body["stored"] == len(gone)
    assert {e["sha256"] for e in body["lines"] if e["status"] == "stored"} == gone
    assert len(stored_rows(directory)) == 60


async def test_probe_report_over_the_collector_equals_the_original_files(
    tmp_path: Path, source: Path, lines: list[bytes]
) -> None:
    directory = tmp_path / "c"
    async with running(directory, compact_bytes=64 * 1024) as c:  # several files per partition
        for start in range(0, len(lines), 97):
            assert (await upload(c.port, lines[start : start + 97])).status == 200
    rows = stored_rows(directory)
    assert len(rows) == len(lines)  # every record in Parquet once stopped, none left pending
    assert len(list(directory.rglob("*.parquet"))) > len({r[1:4] for r in rows})

    tables = []
    for name, where in (("original", source), ("collector", directory)):
        out = tmp_path / f"{name}.csv"
        run = await run_probe(["report", str(where), "--csv", str(out)])
        assert run.returncode == 0, run.stderr
        with out.open() as f:
            rows = list(csv.DictReader(f))
        # every column but `source` (the file a row came from)
        tables.append(sorted(tuple(v for k, v in row.items() if k != "source") for row in rows))
    assert len(tables[0]) > len(lines) // 2
    assert tables[0] == tables[1]


async def test_wrong_method_and_path_answer_json(tmp_path: Path) -> None:
    async with running(tmp_path / "c") as c:
        wrong_method = await request(c.port, "GET", "/v1/records")
        unknown = await request(c.port, "GET", "/v2/nothing")
    assert wrong_method.status == 405 and "POST" in wrong_method.headers["allow"]
    assert "error" in wrong_method.json()
    assert unknown.status == 404 and "error" in unknown.json()


async def test_small_files_are_merged_and_an_interrupted_merge_is_finished(
    tmp_path: Path, lines: list[bytes]
) -> None:
    from probe.collector import parquet
    from probe.collector.ledger import Ledger, Merge

    directory = tmp_path / "c"
    one_partition = [
        x for x in lines if json.loads(x)["probe_asn"] == json.loads(lines[0])["probe_asn"]
    ]
    day = json.loads(one_partition[0])["measurement_start_time"][:10]
    one_partition = [
        x for x in one_partition if json.loads(x)["measurement_start_time"][:10] == day
    ]
    async with running(directory, merge_min_files=3) as c:
        for start in range(0, 60, 10):  # six compactions of one partition: merged at three
            await upload(c.port, one_partition[start : start + 10])
            await c.storage.compact(everything=True)
    files = list(directory.rglob("*.parquet"))
    assert len(files) < 6
    assert len(stored_rows(directory)) == 60

    # a merge interrupted after its output was renamed into place, before its inputs went
    partition = str(files[0].parent.relative_to(directory))
    inputs = [p.name for p in parquet.partition_files(directory, partition)]
    merge_id = "f" * 32
    parquet.merge(directory, partition, inputs, merge_id, directory / "_collector" / "tmp")
    ledger = Ledger(directory / "_collector" / "ledger.sqlite3", 1 << 20)
    ledger.add_merge(Merge(merge_id, partition, tuple(inputs)))
    ledger.close()
    assert len(stored_rows(directory)) == 120  # the same records twice, until the restart
    async with running(directory) as c:
        assert (await upload(c.port, one_partition[:60])).json()["duplicate"] == 60
    assert [p.name for p in directory.rglob("*.parquet")] == [f"part-{merge_id}.parquet"]
    assert len(stored_rows(directory)) == 60
