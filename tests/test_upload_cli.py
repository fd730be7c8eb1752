"""The command line of uploads: `probe upload --status` (plain words and JSON), bad input
as one line and exit 2 (no collector, bad URLs and proxies, in options and in the config),
and `probe run --upload`: a real round over loopback, its records sent after it; with the
collector down the round's exit status is still 0 and one line says what was kept."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.test_local_data import probe_cli, quick_round, results_path
from tests.upload_helpers import (
    file_hashes,
    free_port,
    spool_in,
    start_collector_process,
    stop,
    stored_hashes,
    volunteer_files,
)


def _one_line_error(result, *words: str) -> None:  # type: ignore[no-untyped-def]
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_status_of_an_empty_spool(tmp_path: Path) -> None:
    result = probe_cli(["upload", "--status"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "waiting to be sent: nothing" in result.stdout
    assert "collector: none configured" in result.stdout
    shown = json.loads(probe_cli(["upload", "--status", "--json"], tmp_path).stdout)
    assert (shown["pending"], shown["delivered"], shown["rejected"]) == (0, 0, 0)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["upload"], ["no collector", "--to URL"]),
        (["upload", "--to", "ftp://127.0.0.1/"], ["--to ftp://127.0.0.1/", "http://"]),
        (["upload", "--to", "http://127.0.0.1:1", "--proxy", "socks4://127.0.0.1:1"], ["--proxy"]),
        (["upload", "--to", "http://127.0.0.1:1", "no-such-dir"], ["no-such-dir"]),
        (["upload", "--status", "somefile"], ["--status"]),
        (["run", "--upload", "collector.example.org", "--no-control"], ["--upload"]),
    ],
)
def test_bad_upload_input_is_one_line_and_exit_2(tmp_path: Path, args, words) -> None:
    _one_line_error(probe_cli(args, tmp_path), *words)


def test_a_bad_proxy_in_the_config_names_its_line(tmp_path: Path) -> None:
    config = tmp_path / "config" / "probe" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('[upload]\nurl = "http://127.0.0.1:1"\nproxy = "socks4://127.0.0.1:1080"\n')
    _one_line_error(probe_cli(["upload"], tmp_path), "config.toml:3: proxy", "socks5h://")


def test_run_upload_sends_the_round_after_it_is_written(tmp_path: Path) -> None:
    port = free_port()
    server = start_collector_process(tmp_path / "collector", port, tmp_path / "collector.log")
    try:
        result = quick_round(tmp_path, "--upload", f"http://127.0.0.1:{port}")
        count = len(results_path(result.stdout).read_text().splitlines())
        assert re.search(rf"probe: sent {count} records? to the collector", result.stderr)
        status = json.loads(probe_cli(["upload", "--status", "--json"], tmp_path).stdout)
        assert (status["pending"], status["delivered"]) == (0, count)
    finally:
        assert stop(server) == 0
    assert stored_hashes(tmp_path / "collector") == file_hashes(results_path(result.stdout))


def test_run_with_the_collector_down_exits_0_and_keeps_the_records(tmp_path: Path) -> None:
    config = tmp_path / "config" / "probe" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'[upload]\nurl = "http://127.0.0.1:{free_port()}"\n')
    result = quick_round(tmp_path)  # the configured url: no --upload needed
    count = len(results_path(result.stdout).read_text().splitlines())
    kept = [line for line in result.stderr.splitlines() if "kept for the next upload" in line]
    assert len(kept) == 1, result.stderr
    assert kept[0].startswith(
        f"probe: {count} records kept for the next upload: collector unreachable"
    )
    shown = probe_cli(["upload", "--status"], tmp_path).stdout
    assert f"waiting to be sent: {count} records" in shown
    assert "last error: collector unreachable" in shown
    assert "next attempt: in" in shown
    # --no-upload: queued nothing, sent nothing
    again = quick_round(tmp_path, "--no-upload")
    assert "upload" not in again.stderr
    spool = spool_in(tmp_path / "data")
    assert spool.status().pending == count


def test_purge_removes_the_upload_spool(tmp_path: Path) -> None:
    quick_round(tmp_path, "--upload", f"http://127.0.0.1:{free_port()}")  # the collector down
    spool_dir = tmp_path / "data" / "upload"
    assert (spool_dir / "spool.sqlite3").exists()
    result = probe_cli(["purge", "--yes"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"Removed {spool_dir / 'spool.sqlite3'}" in result.stdout
    assert not spool_dir.exists()


def test_the_proxy_of_the_environment_wins_over_the_config(tmp_path: Path) -> None:
    config = tmp_path / "config" / "probe" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('[upload]\nproxy = "socks4://127.0.0.1:1080"\n')  # bad: never read here
    proxy = f"socks5h://127.0.0.1:{free_port()}"  # nobody listens: the attempt fails there
    files = volunteer_files(tmp_path / "results", seed=51)
    args = ["upload", "--to", f"http://127.0.0.1:{free_port()}", str(files)]
    result = probe_cli(args, tmp_path, PROBE_UPLOAD_PROXY=proxy)
    assert result.returncode == 1, result.stderr
    assert f"72 records kept for the next upload: through the proxy {proxy}" in result.stderr
    # the command line wins over both
    result = probe_cli([*args, "--proxy", "http://127.0.0.1:1/x"], tmp_path)
    _one_line_error(result, "--proxy http://127.0.0.1:1/x")
