"""probe upload against a real collector on loopback (in-process): every record delivered
exactly once, a lost reply retried without a duplicate, the collector down (records pending
with their backoff, delivered by the next upload), 503/507/401, rejected records kept with
the reason, replies that do not match, and the spool's bound."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest
from aiohttp import web

from probe.upload import (
    DELIVERED,
    PENDING,
    REJECTED,
    Backoff,
    ClientSettings,
    Spool,
    queue_files,
    read_reply,
    record_line,
    upload_spool,
)
from tests.servers.proxies import ReplyDropper
from tests.upload_helpers import (
    collector,
    file_hashes,
    free_port,
    queued_spool,
    spool_in,
    stored_hashes,
    volunteer_files,
)


@pytest.fixture(scope="module")
def records_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return volunteer_files(tmp_path_factory.mktemp("volunteer"), seed=3)


async def test_upload_delivers_every_record_exactly_once(tmp_path: Path, records_dir: Path):
    expected = file_hashes(records_dir)
    spool = queued_spool(tmp_path / "data", records_dir)
    assert spool.status().pending == len(expected) == 72
    before = spool.status().file_bytes
    async with collector(tmp_path / "collector") as url:
        done = await upload_spool(spool, ClientSettings(url), batch_records=20)
        # delivered records' bytes are given back to the file system
        assert spool.status().file_bytes < before / 2
        assert (done.delivered, done.stored, done.duplicate, done.error) == (72, 72, 0, None)
        assert done.batches == 4
        # the same files queued again: nothing new, nothing sent
        again = queue_files(spool, [records_dir])
        assert (again.added, again.known) == (0, 72)
        second = await upload_spool(spool, ClientSettings(url), due_only=False)
        assert second.batches == 0
    assert stored_hashes(tmp_path / "collector") == expected
    status = spool.status()
    assert (status.pending, status.delivered, status.rejected) == (0, 72, 0)
    assert spool.hashes(DELIVERED) == set(expected)
    # a delivered record's bytes are gone from the spool, its hash stays
    assert spool.db.execute("SELECT COUNT(*) FROM bodies").fetchone() == (0,)


async def test_a_lost_reply_is_retried_and_stores_nothing_twice(tmp_path: Path, records_dir):
    expected = file_hashes(records_dir)
    spool = queued_spool(tmp_path / "data", records_dir)
    async with collector(tmp_path / "collector") as url:
        dropper = await ReplyDropper(upstream_port=int(url.rsplit(":", 1)[1]), drop=True).start()
        try:
            lost = await upload_spool(spool, ClientSettings(f"http://127.0.0.1:{dropper.port}"))
        finally:
            await dropper.close()
        assert dropper.replies_dropped == 1
        assert lost.delivered == 0 and lost.error is not None
        assert spool.status().pending == 72
        retry = await upload_spool(spool, ClientSettings(url), due_only=False)
        # the collector had stored the first batch: the retry is all duplicates
        assert (retry.delivered, retry.stored, retry.duplicate) == (72, 0, 72)
    assert stored_hashes(tmp_path / "collector") == expected


async def test_collector_down_keeps_records_pending_with_backoff(tmp_path: Path, records_dir):
    spool = queued_spool(tmp_path / "data", records_dir)
    down = ClientSettings(f"http://127.0.0.1:{free_port()}", timeout=10)
    now = time.time()
    backoff = Backoff(base=60, cap=3600, rng=random.Random(7))
    done = await upload_spool(spool, down, backoff=backoff, clock=lambda: now)
    assert done.delivered == 0 and done.kept == 72
    assert done.error is not None and "unreachable" in done.error
    status = spool.status()
    assert status.last_error == done.error
    # the first batch (every record here) waits for its backoff: at most 60 s after the try
    assert now < status.next_attempt <= now + 60
    rows = spool.db.execute("SELECT DISTINCT attempts FROM records").fetchall()
    assert rows == [(1,)]
    # the backoff persists: a new process opening the spool sees the same next attempt
    spool.close()
    spool = spool_in(tmp_path / "data")
    assert spool.due(now=now, max_records=500, max_bytes=1 << 30) == []
    async with collector(tmp_path / "collector") as url:
        early = await upload_spool(spool, ClientSettings(url), clock=lambda: now)
        assert early.batches == 0  # not due yet
        later = await upload_spool(spool, ClientSettings(url), clock=lambda: now + 61)
        assert later.delivered == 72 and later.error is None
    assert spool.status().last_error is None


def test_backoff_is_exponential_with_full_jitter_and_a_cap() -> None:
    backoff = Backoff(base=60, cap=6 * 3600, rng=random.Random(1))
    for attempts, ceiling in [(1, 60), (2, 120), (5, 960), (9, 6 * 3600), (500, 6 * 3600)]:
        delays = [backoff.delay(attempts) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2  # jitter spans the whole range


def _app(status: int, body: object, headers: dict[str, str] | None = None) -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response(body, status=status, headers=headers)

    app = web.Application()
    app.router.add_post("/v1/records", handler)
    return app


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(
    ("status", "headers", "words", "at_least"),
    [
        (503, {"Retry-After": "900"}, "busy", 900),
        (507, {}, "disk is full", 0),
        (500, {}, "HTTP 500", 0),
        (413, {}, "too large", 0),
    ],
)
async def test_http_errors_keep_the_batch_pending(
    tmp_path: Path, records_dir: Path, status: int, headers: dict[str, str], words: str, at_least
):
    spool = queued_spool(tmp_path / "data", records_dir)
    runner, url = await _serve(_app(status, {"error": "no"}, headers))
    now = time.time()
    try:
        done = await upload_spool(spool, ClientSettings(url), clock=lambda: now, batch_records=1)
    finally:
        await runner.cleanup()
    assert done.delivered == 0 and words in (done.error or "")
    assert spool.status().pending == 72
    (attempted,) = spool.db.execute("SELECT COUNT(*) FROM records WHERE attempts > 0").fetchone()
    assert attempted == 1  # the first failure ends the session
    assert spool.status().next_attempt is not None
    (next_attempt,) = spool.db.execute(
        "SELECT next_attempt FROM records WHERE attempts > 0"
    ).fetchone()
    assert next_attempt >= now + at_least


async def test_a_wrong_token_is_refused_then_the_right_one_delivers(tmp_path, records_dir):
    tokens = tmp_path / "tokens"
    tokens.write_text("volunteers " + "t" * 32 + "\n")
    spool = queued_spool(tmp_path / "data", records_dir)
    async with collector(tmp_path / "collector", tokens_file=tokens) as url:
        wrong = await upload_spool(spool, ClientSettings(url, token="x" * 32))
        assert wrong.delivered == 0 and "token" in (wrong.error or "")
        none = await upload_spool(spool, ClientSettings(url), due_only=False)
        assert none.delivered == 0 and "token" in (none.error or "")
        right = await upload_spool(spool, ClientSettings(url, token="t" * 32), due_only=False)
        assert right.delivered == 72


async def test_rejected_records_are_kept_with_the_reason_and_not_retried(tmp_path, records_dir):
    spool = queued_spool(tmp_path / "data", records_dir)
    bad = json.loads(next((records_dir).rglob("*.jsonl")).read_text().splitlines()[0])
    bad["probe_asn"] = "not an ASN"
    spool.enqueue([record_line(bad)])
    async with collector(tmp_path / "collector") as url:
        done = await upload_spool(spool, ClientSettings(url))
        assert (done.delivered, done.rejected, done.error) == (72, 1, None)
        again = await upload_spool(spool, ClientSettings(url), due_only=False)
        assert again.batches == 0
    status = spool.status()
    assert (status.pending, status.delivered, status.rejected) == (0, 72, 1)
    ((reason, count),) = status.rejected_reasons
    assert count == 1 and "probe_asn" in reason
    assert spool.hashes(REJECTED) == {record_line(bad).sha256}


async def test_a_reply_that_does_not_match_leaves_records_pending(tmp_path, records_dir):
    spool = queued_spool(tmp_path / "data", records_dir)
    wrong_hash = {"lines": [{"line": 1, "status": "stored", "sha256": "00" * 32}]}
    for body in (wrong_hash, {"stored": 1}, ["not", "a", "reply"]):
        runner, url = await _serve(_app(200, body))
        try:
            done = await upload_spool(spool, ClientSettings(url), due_only=False)
        finally:
            await runner.cleanup()
        assert done.delivered == 0 and done.error is not None
        assert spool.status().pending == 72


def test_read_reply_matches_lines_to_records_by_number_and_hash() -> None:
    hashes = [bytes([i]) * 32 for i in range(4)]
    reply = {
        "lines": [
            {"line": 1, "status": "stored", "sha256": hashes[0].hex()},
            {"line": 2, "status": "duplicate", "sha256": hashes[1].hex()},
            {"line": 3, "status": "rejected", "reason": "schema: x"},
            {"line": 4, "status": "stored", "sha256": hashes[0].hex()},  # not record 4's hash
            {"line": 9, "status": "stored", "sha256": hashes[0].hex()},  # no such line
            {"line": 1, "status": "rejected", "reason": "a second answer is ignored"},
        ]
    }
    result = read_reply(hashes, json.dumps(reply).encode())
    assert result.delivered == [0, 1]
    assert (result.stored, result.duplicate) == (1, 1)
    assert result.rejected == {2: "schema: x"}
    assert result.unmatched == [3]


def test_the_spool_bound_refuses_new_records_and_never_drops_pending(tmp_path, records_dir):
    # twelve distinct records of one size (a real record, numbered), so that room for five is
    # room for exactly five, whatever sizes the synthetic records happen to have
    base = json.loads(next(records_dir.rglob("*.jsonl")).read_text().splitlines()[0])
    lines = [record_line({**base, "x_test_number": f"{n:02d}"}) for n in range(12)]
    assert len({len(item.line) for item in lines}) == 1
    assert len({item.sha256 for item in lines}) == 12
    room = sum(len(item.line) for item in lines[:5])
    spool = Spool.open(tmp_path / "spool.sqlite3", max_bytes=room)
    found = spool.enqueue(lines)
    assert (found.added, found.refused) == (5, len(lines) - 5)
    status = spool.status()
    assert status.pending == 5 and status.refused == len(lines) - 5
    # once delivered, the bytes are freed and the rest finds room
    spool.mark_delivered([row for (row,) in spool.db.execute("SELECT id FROM records")])
    again = spool.enqueue(lines)
    assert (again.added, again.known, again.refused) == (5, 5, len(lines) - 10)
    assert spool.status().pending == 5


def test_enqueue_is_one_transaction(tmp_path: Path, records_dir: Path) -> None:
    lines = [
        record_line(json.loads(x))
        for x in next(records_dir.rglob("*.jsonl")).read_text().splitlines()
    ]

    def broken():  # a reader that fails midway (a file cut short, a crash)
        yield from lines[:3]
        raise OSError("cut short")

    spool = Spool.open(tmp_path / "spool.sqlite3")
    with pytest.raises(OSError):
        spool.enqueue(broken())
    assert spool.status().pending == 0
    assert spool.enqueue(lines).added == len(lines)
    assert {row for (row,) in spool.db.execute("SELECT state FROM records")} == {PENDING}


def test_only_one_upload_at_a_time_per_spool(tmp_path: Path) -> None:
    from probe.upload import UploadBusy, exclusive

    path = tmp_path / "spool.sqlite3"
    with exclusive(path), pytest.raises(UploadBusy), exclusive(path):
        pass
    with exclusive(path):  # released when the holder is done
        pass


async def test_run_upload_queues_each_round_and_uploads_in_its_own_thread(
    tmp_path: Path, records_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    """`probe run --upload`'s hook: each round's file queued as the round ends, the upload
    in a thread with its own loop (this test's loop keeps serving the collector meanwhile);
    a round ending while an upload runs is sent by the same session."""
    import asyncio
    from datetime import datetime

    from probe.cli.upload_run import BackgroundUpload
    from probe.round.runner import RoundResult

    monkeypatch.setenv("PROBE_DATA_DIR", str(tmp_path / "data"))
    files = sorted(records_dir.rglob("*.jsonl"))
    async with collector(tmp_path / "collector") as url:
        upload = BackgroundUpload(ClientSettings(url))
        for path in files:
            upload.after_round(RoundResult("id", datetime(2026, 11, 1), str(path)))
        await asyncio.to_thread(upload.wait)
    spool = spool_in(tmp_path / "data")
    assert (spool.status().pending, spool.status().delivered) == (0, 72)
    assert stored_hashes(tmp_path / "collector") == file_hashes(records_dir)
