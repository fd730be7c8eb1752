"""What the probe keeps on the device and how a volunteer sees and removes it: the default
results directory, `probe results` (list and show) over real rounds and over corrupt or hostile
files, retention (`--keep-days`, `keep_days`), `probe purge`, and the help (`--version`, an
example in every command's help, shell completion).

Rounds are real: `probe run` in a subprocess over loopback lists (tests/loopback_world.py)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

import probe
from probe.cli import cli
from probe.cli.examples import commands
from probe.localdata import expire_rounds, parse_round_file, round_files
from tests.loopback_world import GUARD_MARK, PROBE, loopback_world, probe_env, run_probe

LIST = """[list]
name = "local"
updated = 2026-11-28

[[targets]]
id = "baseline/local"
service = "baseline"
check = "tcp"
host = "127.0.0.1"
ports = [9]

[[targets]]
id = "telegram/dc-local"
service = "telegram"
check = "mtproto"
host = "127.0.0.1"
ports = [9]
"""


def write_list(tmp_path: Path) -> Path:
    path = tmp_path / "local.toml"
    path.write_text(LIST)
    return path


def home_env(home: Path, **extra: str) -> dict[str, str]:
    """probe_env() with this test's own data and config directories, and no systemctl on
    PATH (purge must never touch the machine's own systemd)."""
    env = probe_env()
    env["PROBE_DATA_DIR"] = str(home / "data")
    env["PROBE_CACHE_DIR"] = str(home / "cache")
    env["XDG_CONFIG_HOME"] = str(home / "config")
    bin_dir = home / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    env["PATH"] = os.pathsep.join([str(bin_dir), os.path.dirname(sys.executable)])
    env.update(extra)
    return env


def probe_cli(
    args: list[str], home: Path, *, cwd: Path | None = None, timeout: float = 60, **extra: str
) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess (no terminal), under the network guard."""
    result = subprocess.run(
        [sys.executable, "-m", "probe", *args],
        env=home_env(home, **extra),
        cwd=str(cwd or home),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert GUARD_MARK not in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result


def quick_round(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """One real round over two closed loopback ports (about a second)."""
    args = ["run", str(write_list(tmp_path)), "--no-control", "--resolver", "127.0.0.1:9"]
    result = probe_cli([*args, "--timeout", "1", *extra], tmp_path)
    assert result.returncode == 0, result.stderr
    return result


def results_path(output: str) -> Path:
    match = re.search(r"Results: (\S+\.jsonl)", output)
    assert match, output
    return Path(match.group(1))


def copy_round(source: Path, out_dir: Path, start: datetime, report_id: str) -> Path:
    """A copy of a real round file as if it had been measured at `start`."""
    stamp = start.strftime("%Y%m%dT%H%M%SZ")
    path = out_dir / start.strftime("%Y-%m-%d") / f"{stamp}_{report_id}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for line in source.read_text().splitlines():
        record = json.loads(line)
        record["report_id"] = report_id
        record["measurement_start_time"] = start.strftime("%Y-%m-%d %H:%M:%S")
        record["test_start_time"] = start.strftime("%Y-%m-%d %H:%M:%S")
        lines.append(json.dumps(record))
    path.write_text("\n".join(lines) + "\n")
    return path


# --- the default results directory -------------------------------------------------------


def test_results_go_to_the_data_directory_and_the_summary_says_where(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    args = ["run", str(write_list(tmp_path)), "--no-control", "--resolver", "127.0.0.1:9"]
    result = probe_cli([*args, "--timeout", "1"], tmp_path, cwd=work)
    assert result.returncode == 0, result.stderr
    path = results_path(result.stdout)
    assert path.is_absolute() and path.is_file()
    assert path.is_relative_to(tmp_path / "data" / "results")
    assert list(work.iterdir()) == []  # nothing in the working directory
    # --out, relative to the working directory, still wins; the summary prints it absolute
    result = probe_cli([*args, "--timeout", "1", "--out", "mine", "--json"], tmp_path, cwd=work)
    assert result.returncode == 0, result.stderr
    written = Path(json.loads(result.stdout)["results_file"])
    assert written.is_absolute() and written.is_relative_to(work / "mine")


# --- probe results ---------------------------------------------------------------------


def _table_and_reasons(output: str) -> list[str]:
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("┏"))
    end = next(i for i, line in enumerate(lines) if line.startswith("└"))
    return lines[start : end + 1] + [line for line in lines if line.startswith("  - ")]


async def test_results_list_and_show_over_real_rounds(tmp_path: Path) -> None:
    out = tmp_path / "results"
    async with loopback_world(tmp_path) as world:
        run = await run_probe(
            [
                *("run", str(world.list_path), "--resolver", world.resolver),
                *("--source-address", PROBE, "--ca-file", world.ca_file, "--timeout", "1.5"),
                *("--out", str(out), "--control", world.control_url),
            ]
        )
    assert run.returncode == 0, run.stderr
    quick_round(tmp_path, "--out", str(out))
    first = parse_round_file(results_path(run.stdout))
    assert first is not None

    listed = probe_cli(["results", "--out", str(out)], tmp_path)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:4] == ["date", "(UTC)", "report", "id"]
    assert len(lines) == 4 and lines[-1] == f"2 rounds in {out}"
    expected = [s for s, _ in world.expected.values()]
    counts = [expected.count(s) for s in ("ok", "blocked", "down", "inconclusive")]
    fields = lines[1].split()
    assert fields[2] == first.report_id
    assert [int(n) for n in fields[3:8]] == [len(world.expected), *counts]
    assert lines[2].split()[3:8] == ["2", "0", "0", "0", "2"]

    as_json = probe_cli(["results", "list", "--json", "--last", "1", "--out", str(out)], tmp_path)
    [latest] = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert latest["targets"] == 2 and latest["counts"]["inconclusive"] == 2
    assert latest["probe_asn"] == "AS0" and latest["probe_cc"] == "ZZ"
    assert latest["offline"] is True

    shown = probe_cli(["results", "show", first.report_id[:6], "--out", str(out)], tmp_path)
    assert shown.returncode == 0, shown.stderr
    # the same table and sentences as at the end of the run
    assert _table_and_reasons(shown.stdout) == _table_and_reasons(run.stdout)
    assert f"Round {first.report_id}: {len(world.expected)} targets" in shown.stdout
    assert str(first.path) in shown.stdout
    shown_json = json.loads(
        probe_cli(
            ["results", "show", first.report_id, "--json", "--out", str(out)], tmp_path
        ).stdout
    )
    blocked = {r["service"]: r["counts"]["blocked"] for r in shown_json["services"]}
    assert blocked == {"itest": 5, "telegram": 1, "baseline": 0}

    # the config's `out` is where `probe results` looks by default
    config = tmp_path / "config" / "probe" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'[run]\nout = "{out}"\n')
    assert f"2 rounds in {out}" in probe_cli(["results"], tmp_path).stdout


@pytest.mark.parametrize(
    ("ident", "message"),
    [
        ("zz", "give a report id"),
        ("abcd", "no round with this report id"),
        ("0", "give a report id"),
    ],
)
def test_results_show_of_an_unknown_round_is_one_line(
    tmp_path: Path, ident: str, message: str
) -> None:
    result = probe_cli(["results", "show", ident, "--out", str(tmp_path / "none")], tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_results_of_an_empty_directory(tmp_path: Path) -> None:
    result = probe_cli(["results"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"No rounds in {tmp_path / 'data' / 'results'} yet")


def test_results_skip_corrupt_and_hostile_files_with_a_count(tmp_path: Path) -> None:
    out = tmp_path / "results"
    good = results_path(quick_round(tmp_path, "--out", str(out)).stdout)
    day = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    record = json.loads(good.read_text().splitlines()[0])
    # a round whose records carry the wrong types everywhere, and terminal escapes
    hostile = dict(record, report_id="a" * 16, probe_asn=["AS1"], probe_cc=5, test_runtime="x")
    hostile["test_keys"] = dict(
        record["test_keys"],
        verdict={
            "status": "blocked",
            "blocking": ["dns"],
            "fingerprints": [{"x": 1}, "fp\x1b[31m"],
            "reason": "evil \x1b]0;title\x07 [red]markup[/red] [scrubbed] \u202e",
        },
        target="not a table",
        x_vantage={"baseline_ok": "many", "baseline_total": 1e308},
    )
    weird = [
        hostile,
        dict(record, test_keys="text"),
        dict(record, software_name="other"),
        dict(record, test_keys={"verdict": {"status": ["ok"]}}),
    ]
    path = out / "2026-11-01" / f"20261101T120000Z_{'a' * 16}.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text(
        "\n".join(json.dumps(r) for r in weird)
        + '\n{"deep": '
        + "[" * 100_000
        + "\nnot json\n"
        + '{"software_name": "probe", "x": NaN}\n'
        + "\n"
    )
    # a file with nothing readable, a FIFO and a link named like round files, a linked day
    nothing = out / "2026-11-01" / f"20261101T130000Z_{'b' * 16}.jsonl"
    nothing.write_bytes(b"\xff\xfe garbage\n")
    os.mkfifo(out / "2026-11-01" / f"20261101T140000Z_{'c' * 16}.jsonl")
    (out / "2026-11-01" / f"20261101T150000Z_{'d' * 16}.jsonl").symlink_to(good)
    elsewhere = tmp_path / "elsewhere" / "2026-10-01"
    elsewhere.mkdir(parents=True)
    copy_round(good, tmp_path / "elsewhere", datetime(2026, 10, 1, tzinfo=UTC), "e" * 16)
    (out / "2026-10-01").symlink_to(elsewhere)

    listed = probe_cli(["results", "--out", str(out)], tmp_path, timeout=30)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == 4, listed.stdout  # header, the hostile round, the good one, total
    assert lines[1].startswith(f"{day:%Y-%m-%d %H:%M:%S}  {'a' * 16}")
    assert lines[1].split()[3:8] == ["1", "0", "1", "0", "0"]
    assert "AS0 ZZ" in lines[1] and "unreadable lines" in lines[1]
    assert "\x1b" not in listed.stdout
    [note] = listed.stderr.strip().splitlines()
    assert note.startswith("probe: skipped 7 unreadable lines in 2 files (first: ")

    shown = probe_cli(["results", "show", "a" * 16, "--out", str(out)], tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "\x1b" not in shown.stdout and "\u202e" not in shown.stdout
    assert "[red]markup[/red] [scrubbed]" in shown.stdout  # shown as written, not as styles
    empty = probe_cli(["results", "show", "b" * 16, "--out", str(out)], tmp_path)
    assert empty.returncode == 2 and "no records of this probe" in empty.stderr


# --- retention ---------------------------------------------------------------------------


def test_keep_days_deletes_old_rounds_only(tmp_path: Path) -> None:
    out = tmp_path / "custom"
    source = results_path(quick_round(tmp_path, "--out", str(tmp_path / "first")).stdout)
    now = datetime.now(UTC).replace(microsecond=0)
    old = copy_round(source, out, now - timedelta(days=10), "0" * 16)
    recent = copy_round(source, out, now - timedelta(days=2), "1" * 16)
    # in a directory of the user's: an old file named like a round but not this probe's,
    # and files that are not round files at all
    foreign = out / (now - timedelta(days=20)).strftime("%Y-%m-%d")
    foreign.mkdir()
    stranger = foreign / f"{(now - timedelta(days=20)):%Y%m%dT%H%M%SZ}_{'2' * 16}.jsonl"
    stranger.write_text('{"software_name": "other"}\n')
    notes = out / "notes.txt"
    notes.write_text("mine")
    old_other = old.parent / "copy.jsonl"
    old_other.write_text("{}\n")

    result = quick_round(tmp_path, "--out", str(out), "--keep-days", "7")
    current = results_path(result.stdout)
    assert "deleted 1 result file older than 7 days" in result.stderr
    assert not old.exists()
    assert recent.exists() and current.exists()
    assert stranger.exists() and notes.exists() and old_other.exists()

    # keep_days = 0 from the config keeps only the round just written, whatever its age
    config = tmp_path / "config" / "probe" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'[run]\nout = "{out}"\nkeep_days = 0\n')
    newest = results_path(quick_round(tmp_path).stdout)
    assert newest.exists() and not recent.exists() and not current.exists()
    assert [f.path for f in round_files(out) if f.report_id != "2" * 16] == [newest]
    assert stranger.exists() and notes.exists()


@pytest.mark.parametrize("value", ["-1", "36501", "soon"])
def test_bad_keep_days_is_exit_2(tmp_path: Path, value: str) -> None:
    args = ["run", str(write_list(tmp_path)), "--no-control", "--keep-days", value]
    result = probe_cli(args, tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--keep-days" in lines[0], result.stderr


def test_retention_never_deletes_the_round_it_keeps(tmp_path: Path) -> None:
    """Even with a clock that jumped a year ahead, the round just written stays."""
    out = tmp_path / "r"
    day = out / "2026-01-02"
    day.mkdir(parents=True)
    current = day / f"20260102T030405Z_{'f' * 16}.jsonl"
    current.write_text("")
    older = out / "2026-01-01" / f"20260101T030405Z_{'e' * 16}.jsonl"
    older.parent.mkdir()
    older.write_text("")
    misfiled = day / f"20260101T030405Z_{'d' * 16}.jsonl"  # its day is not its name's
    misfiled.write_text("")
    later = datetime(2027, 1, 1, tzinfo=UTC)
    done = expire_rounds(out, 1, keep=[current], now=later)
    assert done.removed == [older] and current.exists() and misfiled.exists()
    assert not older.parent.exists()  # the day it emptied
    with pytest.raises(ValueError):
        expire_rounds(out, -1)


# --- probe purge -------------------------------------------------------------------------


def _probe_files(tmp_path: Path) -> dict[str, Path]:
    """A device after some use: rounds in the data directory and in a results directory of
    the user's (named in the config), the config, GeoIP updates and an installed timer;
    and files of the user's that purge must leave alone."""
    custom = tmp_path / "my-results"
    config = tmp_path / "config" / "probe" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'[run]\nout = "{custom}"\n')
    in_custom = results_path(quick_round(tmp_path).stdout)
    config.write_text(f'[run]\ntimeout = 3\n# out = "{custom}"\n')
    in_data = results_path(quick_round(tmp_path).stdout)
    config.write_text(f'[run]\nout = "{custom}"\n')
    geoip = tmp_path / "data" / "geoip"
    geoip.mkdir(parents=True)
    (geoip / "asn.mmdb").write_bytes(b"x")
    units = tmp_path / "config" / "systemd" / "user"
    units.mkdir(parents=True)
    for name in ("probe.service", "probe.timer"):
        (units / name).write_text("[Unit]\n")
    mine = {
        "notes": custom / "notes.txt",
        # named like a round file (its day matches its name) but not this probe's
        "lookalike": custom / "2020-01-01" / f"20200101T000000Z_{'9' * 16}.jsonl",
        "data_file": tmp_path / "data" / "keep.txt",
        "other_unit": units / "other.service",
        "other_config": tmp_path / "config" / "other-app.toml",
    }
    for path in mine.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('{"software_name": "someone else"}\n')
    return {
        "custom": custom,
        "in_custom": in_custom,
        "in_data": in_data,
        "config": config,
        "asn": geoip / "asn.mmdb",
        "service": units / "probe.service",
        "timer": units / "probe.timer",
        **{f"mine:{k}": v for k, v in mine.items()},
    }


def _assert_purged(files: dict[str, Path]) -> None:
    for name in ("in_custom", "in_data", "config", "asn", "service", "timer"):
        assert not files[name].exists(), name
    for name, path in files.items():
        if name.startswith("mine:"):
            assert path.exists(), name


def test_purge_without_a_terminal_and_without_yes_refuses(tmp_path: Path) -> None:
    files = _probe_files(tmp_path)
    result = probe_cli(["purge"], tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--yes" in lines[0], result.stderr
    assert all(path.exists() for path in files.values())


def test_purge_yes_removes_the_probes_files_and_nothing_else(tmp_path: Path) -> None:
    files = _probe_files(tmp_path)
    # the rounds made the probe id, and both rounds' records carry it
    probe_id = (tmp_path / "data" / "probe_id").read_text().strip()
    for name in ("in_custom", "in_data"):
        assert json.loads(files[name].read_text().splitlines()[0])["probe_id"] == probe_id
    cache_files = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert cache_files and all(n.startswith("fingerprints-") for n in cache_files), cache_files
    (tmp_path / "cache" / ".fingerprints-1-cpython-311.bin.x1y2.tmp").write_bytes(b"cut")
    result = probe_cli(["purge", "--yes"], tmp_path)
    assert result.returncode == 0, result.stderr
    _assert_purged(files)
    out = result.stdout
    assert not (tmp_path / "data" / "probe_id").exists()
    assert f"Removed {tmp_path / 'data' / 'probe_id'}" in out
    assert f"Removed 1 result file from {tmp_path / 'data' / 'results'}." in out
    assert f"Removed 1 result file from {files['custom']}." in out
    assert f"Removed {files['config']}" in out and f"Removed {files['asn']}" in out
    assert str(files["timer"]) in out  # the schedule's own message (round.schedule.remove)
    assert f"Left 1 file in {files['custom']}" in out
    assert f"In {files['custom']} only this probe's result files were removed" in out
    # the fingerprint cache the rounds made (and a write of it cut short) goes too: nothing
    # personal in it, but a trace that the probe ran here
    assert not (tmp_path / "cache").exists()
    # the probe's own directories that are now empty are gone too
    assert not (tmp_path / "data" / "results").exists()
    assert not (tmp_path / "data" / "geoip").exists()
    # a second purge finds nothing and says so
    again = probe_cli(["purge", "--yes"], tmp_path)
    assert again.returncode == 0 and "Removed 0 result files" in again.stdout


def test_purge_removes_a_broken_config_but_not_a_foreign_file_given_as_config(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config" / "probe" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("[run\n")  # not TOML: every other command refuses it
    assert probe_cli(["results"], tmp_path).returncode == 2
    result = probe_cli(["purge", "--yes"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert not config.exists()
    foreign = tmp_path / "bashrc"
    foreign.write_text("export PATH=/bin\n")
    result = probe_cli(["--config", str(foreign), "purge", "--yes"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert foreign.exists()


def _purge_on_a_terminal(
    tmp_path: Path,
    answer: bytes,
    *,
    args: tuple[str, ...] = ("purge",),
    question: bytes = b"Remove all of this?",
) -> tuple[int, str]:
    """`probe purge` with a pseudo-terminal as stdin and stdout, answering the question."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "probe", *args],
        env=home_env(tmp_path),
        cwd=str(tmp_path),
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    output = b""
    answered = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
        if not answered and question in output:
            os.write(controller, answer)
            answered = True
        if process.poll() is not None and not ready:
            break
    code = process.wait(timeout=30)
    os.close(controller)
    return code, output.decode(errors="replace")


def test_purge_on_a_terminal_asks_first(tmp_path: Path) -> None:
    files = _probe_files(tmp_path)
    code, output = _purge_on_a_terminal(tmp_path, b"n\n")
    assert code == 1 and "Nothing removed." in output, output
    assert "1 result file in" in output and str(files["config"]) in output
    assert all(path.exists() for path in files.values())
    code, output = _purge_on_a_terminal(tmp_path, b"y\n")
    assert code == 0, output
    _assert_purged(files)


# --- help, version, completion -----------------------------------------------------------


def test_version_comes_from_the_package_metadata() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"probe, version {importlib.metadata.version('probe')}"
    assert importlib.metadata.version("probe") == probe.__version__


def test_every_command_has_an_example_in_its_help() -> None:
    found = commands(cli)
    assert {"probe run", "probe results show", "probe purge", "probe report"} <= {
        path for path, _ in found
    }
    for path, _ in found:
        result = CliRunner().invoke(cli, [*path.split()[1:], "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Example" in result.output, path


def test_shell_completion_script_and_completions(tmp_path: Path) -> None:
    script = subprocess.run(
        [sys.executable, "-m", "probe"],
        env={**home_env(tmp_path), "_PROBE_COMPLETE": "bash_source"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert script.returncode == 0 and "_probe_completion" in script.stdout
    words = subprocess.run(
        [sys.executable, "-m", "probe"],
        env={
            **home_env(tmp_path),
            "_PROBE_COMPLETE": "bash_complete",
            "COMP_WORDS": "probe res",
            "COMP_CWORD": "1",
        },
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "plain,results" in words.stdout.splitlines()


def test_a_schedule_from_the_single_file_runs_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """pex sets $PEX; the timer must run the file, not its unpacked copy in the cache."""
    from probe.round.schedule import probe_command

    monkeypatch.setenv("PEX", "probe.pyz")
    command = probe_command(["--every", "1h"])
    assert command[1:] == [os.path.abspath("probe.pyz"), "run", "--every", "1h"]
    assert os.path.exists(command[0])
    monkeypatch.delenv("PEX")
    assert probe_command([])[1:] == ["-m", "probe", "run"]
