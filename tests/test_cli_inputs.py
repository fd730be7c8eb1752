"""Bad options for `probe run` are exit 2 with one line naming the option (or the config file
and line), and nothing is written: a typo must not silently become a different measurement."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.loopback_world import run_probe

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


def _write_list(tmp_path: Path) -> Path:
    path = tmp_path / "t.toml"
    path.write_text(LIST)
    return path


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--control", "notaurl"], "--control notaurl"),
        (["--control", "ftp://control.example"], "--control ftp://"),
        (["--control", "http://"], "--control http://"),
        (["--control", "http://127.0.0.1:99999"], "--control http://127.0.0.1:99999"),
        (["--control", "http://127.0.0.1:8080/?x=1"], "--control http://"),
        (["--out", ""], "--out ''"),
        (["--out", "   "], "--out '   '"),
        (["--stun", "no-port"], "--stun no-port"),
        (["--ip-echo", "http://plain.example/"], "--ip-echo http://"),
        (["--own-net", "not-a-net"], "--own-net not-a-net"),
    ],
)
async def test_bad_run_options_are_exit_2_with_nothing_written(
    tmp_path: Path, args: list[str], named: str
) -> None:
    lst = _write_list(tmp_path)
    result = await run_probe(
        ["run", str(lst), "--resolver", "127.0.0.1:9", "--no-ip-discovery", *args]
        + ([] if "--out" in args else ["--out", str(tmp_path / "results")]),
        limit=60,
    )
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and named in lines[0], result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.toml"]


async def test_a_bad_control_url_in_the_config_names_file_and_line(tmp_path: Path) -> None:
    lst = _write_list(tmp_path)
    config = tmp_path / "config.toml"
    config.write_text('[run]\nout = "r"\ncontrol = ["nope"]\n')
    result = await run_probe(
        ["--config", str(config), "run", str(lst), "--resolver", "127.0.0.1:9"], limit=60
    )
    assert result.returncode == 2, result.stderr
    assert f"{config}:3: control = 'nope'" in result.stderr, result.stderr
    assert not (tmp_path / "r").exists()


async def test_one_hostile_line_never_stops_a_report_or_an_analysis(tmp_path: Path) -> None:
    """Deep nesting, NaN and invalid UTF-8 lines are skipped and named; the good measurement
    beside them is still read; exit 0."""
    import json

    source = Path(__file__).parent / "data" / "report"
    good = json.loads(next(source.glob("telegram_*.json")).read_text())
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(
        b"\n".join(
            [
                json.dumps(good).encode(),
                b"[" * 100_000 + b"]" * 100_000,
                b'{"test_runtime": NaN}',
                b'{"input": "\xff"}',
            ]
        )
        + b"\n"
    )
    for command in (["analyze", str(path)], ["report", str(path)]):
        result = await run_probe(command, limit=60)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        text = result.stdout + result.stderr
        for reason in ("nested too deeply", "NaN is not JSON", "invalid UTF-8"):
            assert reason in text, (command, text[-2000:])


@pytest.mark.parametrize(
    "command",
    [
        ["analyze", "{fifo}"],
        ["report", "{fifo}"],
        ["run", "{fifo}"],
        ["run", "{list}", "--ca-file", "{fifo}"],
        ["run", "{list}", "--geoip-db", "{fifo}"],
    ],
)
async def test_a_fifo_is_refused_not_read(tmp_path: Path, command: list[str]) -> None:
    """Reading a FIFO blocks forever: it is refused (exit 2, one line) before it is opened."""
    import os

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    lst = _write_list(tmp_path)
    args = [a.format(fifo=fifo, list=lst) for a in command]
    if args[0] == "run":
        args += ["--resolver", "127.0.0.1:9", "--out", str(tmp_path / "results")]
    result = await run_probe(args, limit=30)
    assert result.returncode == 2, result.stderr
    assert f"{fifo}: not a regular file" in result.stderr
    assert not (tmp_path / "results").exists()
