"""Uploads interrupted for real, with `probe upload` and `probe collector serve` as
subprocesses on loopback: the client killed (SIGKILL) mid-batch while the collector's reply
is held, then a re-run delivers every record exactly once; and the two-volunteer test of
issue 17 — two installations (separate data directories), one collector killed mid-upload
and restarted, one client killed while spooling — ending with every record of both stored
exactly once (by content hash, read back from the collector's Parquet files), and
`probe report COLLECTOR_DIR` giving each volunteer's change events and gaps equal to that
volunteer's ground truth (tests/synthetic.py), though both share one network."""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import timedelta
from pathlib import Path

from probe.report import build_report
from tests import synthetic
from tests.report_keys import event_keys, gap_keys
from tests.servers.proxies import ReplyDropper
from tests.upload_helpers import (
    file_hashes,
    free_port,
    probe_command,
    spool_in,
    start_collector_process,
    stop,
    stored_hashes,
    volunteer_files,
    volunteer_series,
)


def _env(data_dir: Path) -> dict[str, str]:
    env = dict(os.environ, PROBE_DATA_DIR=str(data_dir), LANG="C.UTF-8", LANGUAGE="")
    env.pop("PROBE_UPLOAD_PROXY", None)
    env.pop("PROBE_CONFIG", None)
    env["XDG_CONFIG_HOME"] = str(data_dir / "config")  # no config file: defaults only
    return env


async def _probe(data_dir: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *probe_command(*args),
        env=_env(data_dir),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _until_holding(dropper: ReplyDropper, client: asyncio.subprocess.Process) -> None:
    """Wait until the dropper holds a request or reply; fail (not hang) if the client ends."""
    holding = asyncio.ensure_future(dropper.holding.wait())
    ended = asyncio.ensure_future(client.wait())
    await asyncio.wait({holding, ended}, timeout=120, return_when=asyncio.FIRST_COMPLETED)
    if not holding.done():
        holding.cancel()
        out, err = await client.communicate() if ended.done() else (b"", b"")
        raise AssertionError(f"the client ended first: {(out + err).decode()[-2000:]}")
    ended.cancel()


async def _finish(process: asyncio.subprocess.Process) -> tuple[int, str]:
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, (out + err).decode()


async def test_client_killed_mid_batch_then_a_rerun_delivers_each_record_once(tmp_path: Path):
    files = volunteer_files(tmp_path / "results", seed=21, days=8)  # 576 records: 2 batches
    expected = file_hashes(files)
    assert len(expected) == 576
    port = free_port()
    server = start_collector_process(tmp_path / "collector", port, tmp_path / "collector.log")
    try:
        # the second batch's reply (the collector stored it) is held: the client waits on it
        dropper = await ReplyDropper(upstream_port=port, hold_from=2).start()
        data = tmp_path / "data"
        client = await _probe(
            data, "upload", "--to", f"http://127.0.0.1:{dropper.port}", str(files)
        )
        await _until_holding(dropper, client)
        client.kill()
        await client.wait()
        assert client.returncode == -signal.SIGKILL
        await dropper.close()
        spool = spool_in(data)
        status = spool.status()
        assert (status.delivered, status.pending) == (500, 76)  # the held batch is pending
        spool.close()
        code, said = await _finish(await _probe(data, "upload", "--to", f"http://127.0.0.1:{port}"))
        assert code == 0, said
        assert "sent 76 records to the collector" in said
    finally:
        assert stop(server) == 0
    stored = stored_hashes(tmp_path / "collector")
    assert stored == expected  # every record, each exactly once


async def test_two_volunteers_a_killed_collector_and_a_killed_client(tmp_path: Path):
    # two volunteers (two probe ids) on one network: their series must stay apart
    pair = [v for v in synthetic.volunteer_set(7, timedelta(hours=6)) if v.asn == "AS44244"]
    pair = [v for v in pair if not v.vpn]
    assert len(pair) == 2 and pair[0].probe_id != pair[1].probe_id
    files_a, files_b = tmp_path / "a-results", tmp_path / "b-results"
    truth_a = volunteer_series(files_a, pair[0], seed=31)
    truth_b = volunteer_series(files_b, pair[1], seed=32)
    assert truth_a.events and truth_b.events
    expected = file_hashes(files_a) + file_hashes(files_b)
    assert len(expected) == truth_a.records + truth_b.records and max(expected.values()) == 1
    per_volunteer = len(file_hashes(files_b))
    data_a, data_b = tmp_path / "a-data", tmp_path / "b-data"
    collector_dir, port = tmp_path / "collector", free_port()
    log = tmp_path / "collector.log"
    url = f"http://127.0.0.1:{port}"

    # Volunteer A uploads; the collector is killed while A's second batch is half sent.
    server = start_collector_process(collector_dir, port, log)
    dropper = await ReplyDropper(upstream_port=port, cut_request_from=2).start()
    client_a = await _probe(
        data_a, "upload", "--to", f"http://127.0.0.1:{dropper.port}", str(files_a)
    )
    await _until_holding(dropper, client_a)
    assert stop(server, signal.SIGKILL) == -signal.SIGKILL
    code, said = await _finish(client_a)
    await dropper.close()
    assert code == 1 and "76 records kept for the next upload" in said, said

    # Volunteer B starts spooling while the collector is down, and is killed doing it.
    client_b = await _probe(data_b, "upload", "--to", url, str(files_b))
    spool_file = data_b / "upload" / "spool.sqlite3"
    for _ in range(1200):
        if spool_file.exists() or client_b.returncode is not None:
            break
        await asyncio.sleep(0.01)
    if client_b.returncode is None:
        client_b.kill()
    await client_b.wait()

    # The collector comes back; both volunteers upload again (B names its files again: a
    # client killed while spooling may not have queued them all).
    server = start_collector_process(collector_dir, port, log)
    try:
        code, said = await _finish(await _probe(data_a, "upload", "--to", url))
        assert code == 0, said
        code, said = await _finish(await _probe(data_b, "upload", "--to", url, str(files_b)))
        assert code == 0, said
        code, said = await _finish(await _probe(data_b, "upload", "--status", "--json"))
        assert code == 0 and '"pending": 0' in said, said
        assert f'"delivered": {per_volunteer}' in said, said
    finally:
        assert stop(server) == 0  # SIGTERM: every acknowledged record compacted into Parquet
    assert stored_hashes(collector_dir) == expected

    code, said = await _finish(
        await _probe(
            tmp_path / "researcher",
            "report",
            str(collector_dir),
            "--csv",
            str(tmp_path / "report.csv"),
        )
    )
    assert code == 0, said
    assert (tmp_path / "report.csv").stat().st_size > 0
    assert "telegram" in said
    # each volunteer's change events and gaps, read from the collector, are their ground truth
    built = build_report([collector_dir])
    assert built.rows == len(expected) and built.skipped_total == 0
    for truth, volunteer in ((truth_a, pair[0]), (truth_b, pair[1])):
        mine = [e for e in built.events if e.probe_id == volunteer.probe_id]
        assert event_keys(mine) == event_keys(truth.events)
        gaps = [g for g in built.gaps if g.probe_id == volunteer.probe_id]
        assert gap_keys(gaps) == gap_keys(truth.gaps)
    assert {e.probe_id for e in built.events} == {v.probe_id for v in pair}


async def test_sigterm_and_sigint_stop_an_upload_and_keep_what_was_not_acknowledged(
    tmp_path: Path,
):
    files = volunteer_files(tmp_path / "results", seed=41, days=8)
    port = free_port()
    server = start_collector_process(tmp_path / "collector", port, tmp_path / "collector.log")
    try:
        for number, (sig, status) in enumerate([(signal.SIGTERM, 143), (signal.SIGINT, 130)]):
            data = tmp_path / f"data-{number}"
            dropper = await ReplyDropper(upstream_port=port, hold_from=1).start()
            url = f"http://127.0.0.1:{dropper.port}"
            client = await _probe(data, "upload", "--to", url, str(files))
            await _until_holding(dropper, client)
            client.send_signal(sig)
            code, said = await _finish(client)
            await dropper.close()
            assert code == status, said
            assert "stopped: 576 records kept for the next upload" in said
            spool = spool_in(data)
            assert (spool.status().pending, spool.status().delivered) == (576, 0)
            spool.close()
    finally:
        assert stop(server) == 0
