"""`probe run` end to end: the real CLI in a subprocess, against loopback servers and the control
server, with every record validated against docs/record.schema.json."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
from pathlib import Path

import pytest

from tests.loopback_world import (
    PROBE,
    loopback_world,
    read_records,
    run_probe,
    schema_validator,
    start_probe,
)
from tests.servers.tcp_server import closed_port

TIMEOUT = "1.5"
FILE_LIMIT = 40_000  # room for a few records of the loopback world, not for all of them


def common_args(world, out: Path) -> list[str]:
    return [
        "run",
        str(world.list_path),
        "--resolver",
        world.resolver,
        "--source-address",
        PROBE,
        "--ca-file",
        world.ca_file,
        "--timeout",
        TIMEOUT,
        "--out",
        str(out),
    ]


async def test_run_with_a_control_gives_the_right_verdict_for_each_kind_of_blocking(tmp_path):
    out = tmp_path / "results"
    async with loopback_world(tmp_path) as world:
        result = await run_probe([*common_args(world, out), "--control", world.control_url])
    assert result.returncode == 0, result.stderr
    records = read_records(out)
    validator = schema_validator()
    for record in records:
        errors = sorted(validator.iter_errors(record), key=str)
        assert not errors, f"{record['input']}: {errors[0].message} at {list(errors[0].path)}"
    verdicts = {r["input"]: r["test_keys"]["verdict"] for r in records}
    assert set(verdicts) == set(world.expected)
    got = {k: (v["status"], v["blocking"]) for k, v in verdicts.items()}
    assert got == world.expected, {
        k: verdicts[k]["reason"] for k in got if got[k] != world.expected[k]
    }
    # The national blockpage address and the blockpage are known fingerprints.
    assert verdicts["itest/dnslie"]["confirmed"] is True
    assert verdicts["itest/blockpage"]["confirmed"] is True
    assert "obfuscated2" in verdicts["telegram/dc-dpi"]["reason"]
    for record in records:
        assert record["probe_ip"] == "127.0.0.1"
        assert record["test_keys"]["x_vantage"]["control_reachable"] is True
        assert record["test_keys"]["control"] is not None
        assert record["test_keys"]["list"]["name"] == "world"
    # Every record of one round shares the report id and sits in the file named after it.
    [path] = list(out.rglob("*.jsonl"))
    assert path.name.endswith(f"_{records[0]['report_id']}.jsonl")
    assert "Telegram" in result.stdout and "blocked" in result.stdout
    assert_reanalysis_reproduces(records)


def assert_reanalysis_reproduces(records: list[dict]) -> None:
    """The verdict is a pure function of the stored record: `probe analyze` gives it again."""
    from probe.analysis import analyze

    for record in records:
        again = analyze(record).verdict.to_dict()
        assert again == record["test_keys"]["verdict"], record["input"]


async def test_json_summary_and_mtproto_observations_for_every_transport_and_port(tmp_path):
    out = tmp_path / "results"
    async with loopback_world(tmp_path) as world:
        result = await run_probe(
            [*common_args(world, out), "--no-control", "--json", "--only", "telegram/*"]
        )
    assert result.returncode == 0, result.stderr
    [summary] = [json.loads(line) for line in result.stdout.splitlines()]
    assert summary["targets"] == 3  # the two DCs and the list's baseline
    assert summary["bytes_sent"] > 0 and summary["bytes_received"] > 0
    telegram = next(s for s in summary["services"] if s["service"] == "telegram")
    assert telegram["data_centres"]["total"] == 2
    records = {r["input"]: r for r in read_records(out)}
    loopback_dc = records["telegram/dc-loopback"]["test_keys"]
    seen = {(m["address"], m["transport"]) for m in loopback_dc["mtproto"]}
    ports = records["telegram/dc-loopback"]["test_keys"]["target"]["ports"]
    assert seen == {
        (f"127.0.0.1:{port}", transport)
        for port in ports
        for transport in ("obfuscated2", "intermediate")
    }
    assert all(m["success"] for m in loopback_dc["mtproto"])


async def test_probe_offline_is_inconclusive_never_blocked(tmp_path):
    dead = closed_port()
    list_path = tmp_path / "offline.toml"
    list_path.write_text(
        '[list]\nname = "offline"\nupdated = 2026-11-28\n\n'
        f'[[targets]]\nid = "baseline/a"\nservice = "baseline"\ncheck = "tcp"\n'
        f'host = "127.0.0.1"\nports = [{dead}]\n\n'
        f'[[targets]]\nid = "telegram/dc1"\nservice = "telegram"\ncheck = "mtproto"\n'
        f'host = "127.0.0.1"\nports = [{dead}]\n\n'
        f'[[targets]]\nid = "signal/web"\nservice = "signal"\ncheck = "tcp"\n'
        f'host = "127.0.0.1"\nports = [{dead}]\n'
    )
    out = tmp_path / "results"
    result = await run_probe(
        [
            "run",
            str(list_path),
            "--resolver",
            f"127.0.0.1:{closed_port()}",
            "--control",
            f"http://127.0.0.1:{dead}",
            "--timeout",
            "1",
            "--out",
            str(out),
        ]
    )
    assert result.returncode == 0, result.stderr
    records = read_records(out)
    assert {r["test_keys"]["verdict"]["status"] for r in records} == {"inconclusive"}
    assert all(r["test_keys"]["control_failure"] for r in records)
    assert "offline" in result.stdout


async def test_interrupt_keeps_finished_records_and_marks_the_rest(tmp_path):
    out = tmp_path / "results"
    async with loopback_world(tmp_path) as world:
        # A long timeout keeps the silent TLS server's target busy while we interrupt.
        args = common_args(world, out)
        args[args.index("--timeout") + 1] = "30"
        process = await start_probe([*args, "--no-control"])
        # Wait until at least one record is on disk, then interrupt.
        for _ in range(200):
            await asyncio.sleep(0.1)
            if any(p.stat().st_size for p in out.rglob("*.jsonl")):
                break
        process.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 130, stderr.decode()
    records = read_records(out)  # every line parses: nothing half-written
    validator = schema_validator()
    for record in records:
        assert not list(validator.iter_errors(record))
    interrupted = [r for r in records if r["annotations"].get("interrupted") == "true"]
    finished = [r for r in records if r not in interrupted]
    assert finished and interrupted
    assert len(records) == len(world.expected)
    for record in interrupted:
        assert record["test_keys"]["verdict"]["status"] == "inconclusive"
        assert record["test_keys"]["failure"] == "interrupted"
    assert_reanalysis_reproduces(records)


async def test_sigterm_exits_143(tmp_path):
    out = tmp_path / "results"
    async with loopback_world(tmp_path) as world:
        args = common_args(world, out)
        args[args.index("--timeout") + 1] = "30"
        process = await start_probe([*args, "--no-control"])
        # Signal once the round is running (its first target's progress line), not after a fixed
        # sleep: on a loaded machine start-up alone took 2 s, and a SIGTERM before the handler
        # is installed ends Python with -15, not 143.
        assert process.stderr is not None
        first_line = await asyncio.wait_for(process.stderr.readline(), 60)
        assert first_line.startswith(b"["), first_line
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 143
    assert all(isinstance(r, dict) for r in read_records(out))


async def test_two_runs_at_once_write_separate_valid_files(tmp_path):
    out = tmp_path / "results"
    async with loopback_world(tmp_path) as world:
        args = [*common_args(world, out), "--no-control"]
        first, second = await asyncio.gather(run_probe(args), run_probe(args))
    assert first.returncode == second.returncode == 0
    files = list(out.rglob("*.jsonl"))
    assert len(files) == 2
    for path in files:
        lines = path.read_text().splitlines()
        assert len(lines) == len(world.expected)
        assert len({json.loads(line)["report_id"] for line in lines}) == 1


async def test_every_with_count_makes_two_rounds(tmp_path):
    out = tmp_path / "results"
    async with loopback_world(tmp_path) as world:
        result = await run_probe(
            [
                *common_args(world, out),
                "--no-control",
                "--only",
                "itest/down",
                "--every",
                "1s",
                "--count",
                "2",
                "--json",
            ]
        )
    assert result.returncode == 0, result.stderr
    summaries = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(summaries) == 2
    assert summaries[0]["report_id"] != summaries[1]["report_id"]
    assert len(list(out.rglob("*.jsonl"))) == 2


async def test_unwritable_results_directory_is_bad_input(tmp_path):
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    async with loopback_world(tmp_path) as world:
        result = await run_probe([*common_args(world, blocker / "results"), "--no-control"])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "not writable" in lines[0]


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--timeout", "0"], "--timeout"),
        (["--resolver", "not-an-ip"], "--resolver"),
        (["--every", "soon"], "--every"),
        (["--count", "2"], "--every"),
        (["--only", "nothing/*"], "--only"),
        (["--ca-file", "/nonexistent.pem"], "--ca-file"),
        (["--frobnicate"], "frobnicate"),
    ],
)
async def test_bad_options_are_one_line_and_exit_2(tmp_path, extra, fragment):
    list_path = tmp_path / "l.toml"
    list_path.write_text(
        '[list]\nname = "l"\nupdated = 2026-11-28\n\n[[targets]]\nid = "t/a"\n'
        'service = "t"\ncheck = "tcp"\nhost = "127.0.0.1"\nports = [9]\n'
    )
    out = tmp_path / "results"
    result = await run_probe(["run", str(list_path), "--no-control", "--out", str(out), *extra])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.stderr
    assert not out.exists(), "nothing is written on bad input"


async def test_bad_target_list_names_file_and_line(tmp_path):
    list_path = tmp_path / "bad.toml"
    list_path.write_text(
        '[list]\nname = "bad"\nupdated = 2026-11-28\n\n[[targets]]\nid = "t/a"\n'
        'service = "t"\ncheck = "tcp"\nhost = "127.0.0.1"\nports = [70000]\n'
    )
    result = await run_probe(["run", str(list_path), "--no-control", "--out", str(tmp_path / "o")])
    assert result.returncode == 2
    assert result.stderr.strip().startswith(f"probe: error: {list_path}:10: port 70000")


async def test_full_disk_is_exit_1_without_a_partial_line(tmp_path):
    """RLIMIT_FSIZE makes writes past a size fail with EFBIG (Python ignores SIGXFSZ), which is
    what a full disk looks like to the writer."""
    out = tmp_path / "results"
    async with loopback_world(tmp_path) as world:
        args = [sys_exe_arg for sys_exe_arg in common_args(world, out)] + ["--no-control"]

        def limit_file_size() -> None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))

        import sys

        from tests.loopback_world import REPO, probe_env

        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "probe",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=probe_env(),
            cwd=str(REPO),
            preexec_fn=limit_file_size,
        )
        _, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 1, stderr.decode()
    assert "cannot write results" in stderr.decode()
    for path in out.rglob("*.jsonl"):
        text = path.read_text()
        assert text == "" or text.endswith("\n")
        for line in text.splitlines():
            json.loads(line)
    [path] = list(out.rglob("*.jsonl"))
    assert 0 < os.path.getsize(path) <= FILE_LIMIT


async def test_interrupt_while_waiting_for_the_control_keeps_the_measurements(tmp_path):
    """Targets measured but still waiting for a slow control are written with what was
    measured (control_failure "interrupted"), not replaced by empty interrupted records."""
    from tests.servers.tcp_server import TCPServer

    out = tmp_path / "results"
    async with TCPServer("silent") as hanging_control, loopback_world(tmp_path) as world:
        args = [
            *common_args(world, out),
            "--only",
            "itest/down",
            "--control",
            f"http://127.0.0.1:{hanging_control.port}",
        ]
        process = await start_probe(args)
        await asyncio.sleep(4.0)  # the flows end within one timeout; the control never answers
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 130
    records = {r["input"]: r for r in read_records(out)}
    down = records["itest/down"]["test_keys"]
    assert down["tcp_connect"], "the measurement made before the interrupt is kept"
    assert down["control_failure"] == "interrupted"
    assert down.get("failure") is None
    validator = schema_validator()
    assert all(not list(validator.iter_errors(r)) for r in records.values())
    assert_reanalysis_reproduces(list(records.values()))
