"""Who may upload and when: bearer tokens per volunteer group (the group stored with each
record; rotation by reloading the file), the concurrency limit (503 with Retry-After), and the
disk: below the reserve, or a file system really full, an upload gets 507, nothing of it is
stored and every record acknowledged before stays."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from probe.collector import TokenFileError, load_tokens
from probe.collector.app import COLLECTOR, Collector
from tests.collector_helpers import (
    jsonl,
    lines_of,
    request,
    running,
    sha_of,
    stored_rows,
    synthetic_files,
    upload,
    with_report_id,
)

TOKEN_A = "a" * 20 + "-volunteers-in-iran"
TOKEN_B = "B" * 43
TOKEN_A2 = "second-token-of-group-a"


@pytest.fixture(scope="module")
def lines(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    return lines_of(synthetic_files(tmp_path_factory.mktemp("synthetic"), vantages=1))


def _groups(directory: Path) -> dict[str, str | None]:
    files = [str(p) for p in directory.rglob("*.parquet")]
    with duckdb.connect() as con:
        rows = con.execute(
            "SELECT record_sha256, upload_group FROM read_parquet($f)", {"f": files}
        ).fetchall()
    return dict(rows)


async def test_tokens_name_the_group_stored_with_each_record(
    tmp_path: Path, lines: list[bytes]
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# group token\niran-2026 {TOKEN_A}\n\nlab {TOKEN_B}  # the lab\n")
    async with running(tmp_path / "c", tokens_file=tokens) as c:
        for token in (None, "wrong-token-wrong-token", TOKEN_A[:-1]):
            reply = await upload(c.port, lines[:3], token=token)
            assert reply.status == 401, token
            assert reply.json() == {"error": "missing or wrong bearer token"}
            assert reply.headers["www-authenticate"].startswith("Bearer")
        basic = await request(
            c.port, "POST", "/v1/records", jsonl(lines[:3]), {"Authorization": f"Basic {TOKEN_A}"}
        )
        assert basic.status == 401
        assert (await upload(c.port, lines[:2], token=TOKEN_A)).json()["stored"] == 2
        assert (await upload(c.port, lines[2:3], token=TOKEN_B)).json()["stored"] == 1
        # health needs no token: a monitor checks it
        assert (await request(c.port, "GET", "/v1/health")).status == 200
    assert _groups(tmp_path / "c") == {
        sha_of(lines[0]): "iran-2026",
        sha_of(lines[1]): "iran-2026",
        sha_of(lines[2]): "lab",
    }


async def test_no_tokens_file_means_anyone_uploads_without_a_group(
    tmp_path: Path, lines: list[bytes]
) -> None:
    async with running(tmp_path / "c") as c:
        assert (await upload(c.port, lines[:1], token="anything-at-all-here")).status == 200
    assert _groups(tmp_path / "c") == {sha_of(lines[0]): None}


async def test_tokens_are_rotated_by_reloading_the_file(tmp_path: Path, lines: list[bytes]) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"iran {TOKEN_A}\n")
    async with running(tmp_path / "c", tokens_file=tokens) as c:
        collector = c.app[COLLECTOR]
        assert isinstance(collector, Collector)
        tokens.write_text(f"iran {TOKEN_A2}\nlab {TOKEN_B}\n")
        collector.reload_tokens()  # what SIGHUP does (tested on the CLI in test_collector_serve)
        assert (await upload(c.port, lines[:1], token=TOKEN_A)).status == 401
        assert (await upload(c.port, lines[:1], token=TOKEN_A2)).status == 200
        # a broken file is not taken: the tokens in use stay
        tokens.write_text("iran short\n")
        collector.reload_tokens()
        assert (await upload(c.port, lines[1:2], token=TOKEN_B)).status == 200


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "no tokens"),
        ("only-a-group\n", ":1: expected `GROUP TOKEN`"),
        (f"bad/group {TOKEN_A}\n", ":1: bad group name"),
        ("g short\n", ":1: a token is 16 to 512 printable characters"),
        (f"g {TOKEN_A}\nh {TOKEN_A}\n", ":2: the same token as line 1"),
    ],
)
def test_bad_tokens_files_name_the_line(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "tokens"
    path.write_text(text)
    with pytest.raises(TokenFileError) as caught:
        load_tokens(path)
    assert str(caught.value).startswith(str(path)) and problem in str(caught.value)


async def test_uploads_past_the_concurrency_limit_get_503(
    tmp_path: Path, lines: list[bytes]
) -> None:
    data = jsonl(lines[:40])
    async with running(tmp_path / "c", max_concurrent_requests=1) as c:
        # the first upload holds the only slot while its body trickles in
        slow = asyncio.create_task(
            request(c.port, "POST", "/v1/records", data, pieces=8, pause=0.25)
        )
        for _ in range(200):
            if c.app[COLLECTOR].busy.locked():  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0.01)
        busy = await upload(c.port, lines[50:51])
        assert busy.status == 503
        assert busy.headers["retry-after"] == "30"
        assert busy.json()["error"].startswith("busy")
        assert (await slow).json()["stored"] == 40
        assert (await upload(c.port, lines[50:51])).json()["stored"] == 1


async def test_below_the_disk_reserve_uploads_get_507_and_nothing_is_stored(
    tmp_path: Path, lines: list[bytes]
) -> None:
    async with running(tmp_path / "c", reserve_bytes=2**62) as c:
        reply = await upload(c.port, lines[:5])
        assert reply.status == 507
        assert reply.json()["error"] == "disk almost full: nothing of this request was stored"
        health = (await request(c.port, "GET", "/v1/health")).json()
        assert health["accepting"] is False and health["pending_records"] == 0
        # a request whose lines are all rejected stores nothing, and is answered
        assert (await upload(c.port, [b"{}"])).json()["rejected"] == 1
    assert stored_rows(tmp_path / "c") == []


@contextlib.contextmanager
def _tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a tmpfs (needs root): {exc}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


async def test_a_full_file_system_gets_507_and_keeps_what_it_acknowledged(
    tmp_path: Path, lines: list[bytes]
) -> None:
    """No reserve, a 3 MiB file system: uploads are acknowledged until SQLite finds no room,
    then refused whole with 507; with room again (the file system grown) every acknowledged
    record reaches Parquet, and nothing refused does."""
    with _tmpfs(tmp_path / "small", "3m") as mount:
        directory = mount / "c"
        acknowledged: set[str] = set()
        refused = 0
        async with running(directory, reserve_bytes=0, compact_interval=3600) as c:
            for round_ in range(400):
                # each round new records: the same lines with a distinct report id
                batch = [with_report_id(line, round_ * 100 + i) for i, line in enumerate(lines[:8])]
                reply = await upload(c.port, batch)
                if reply.status == 507:
                    refused += 1
                    assert "nothing of this request was stored" in reply.json()["error"]
                    if refused >= 3:
                        break
                    continue
                assert reply.status == 200, reply.body
                acknowledged |= {e["sha256"] for e in reply.json()["lines"]}
            assert refused >= 3, "the file system never filled"
            assert (await request(c.port, "GET", "/v1/health")).json()["accepting"] is False
            full_pending = c.storage.pending_records
            grow = ["mount", "-o", "remount,size=64m", str(mount)]
            await asyncio.to_thread(subprocess.run, grow, check=True)
        assert full_pending == len(acknowledged)
        stored = [r[0] for r in stored_rows(directory)]
    assert len(stored) == len(set(stored)) == len(acknowledged) > 0
    assert set(stored) == acknowledged
