"""Installing without a clone (slow: package builds and fresh virtual environments).

- The sdist holds the target lists and the network data, and the wheel built from that sdist
  (as `python -m build` does) holds them as package data.
- That wheel, installed into a fresh venv (`pip install probe-*.whl`, what `pipx install` does),
  runs `probe run` over the loopback world with the right verdict for every target.
- The single-file build (scripts/build_single_file.sh, pex) runs the same round with a bare
  interpreter: `python3 probe.pyz run ...`, no venv, nothing installed.

Dependencies come from the package registry, as for a volunteer. Every destination of the
rounds is on loopback (the list, `--resolver`, `--control`). The `probe` of the venv carries the
test suite's network guard (a copy of it on PYTHONPATH); the single file cannot (its unpacked
venv runs Python with -I, which ignores PYTHONPATH), and contacts nothing else either.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.loopback_world import (
    GUARD_DIR,
    GUARD_MARK,
    PROBE,
    REPO,
    loopback_world,
    probe_env,
    read_records,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SOURCES = ("pyproject.toml", "README.md", "probe", "targets", "scripts")


def _missing(what: str) -> None:
    """Skip when a build tool is missing; under CI the test extra must have it."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {what} is missing (pip install -e '.[test]')")
    pytest.skip(f"{what} is missing")


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project's sources (builds write into the tree; the repo stays clean)."""
    root = tmp_path_factory.mktemp("source")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, root / name, ignore=ignore)
        else:
            shutil.copy(REPO / name, root / name)
    return root


@pytest.fixture(scope="module")
def dist(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist, and the wheel built from it."""
    if not _has_module("build"):
        _missing("the `build` package")
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return out


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def guard_path(tmp_path: Path) -> Path:
    """The network guard (sitecustomize + tests/netguard.py) alone on a path: not the repo,
    so that `import probe` finds the installed package."""
    guard = tmp_path / "guard"
    (guard / "tests").mkdir(parents=True)
    shutil.copy(GUARD_DIR / "sitecustomize.py", guard / "sitecustomize.py")
    shutil.copy(REPO / "tests" / "netguard.py", guard / "tests" / "netguard.py")
    (guard / "tests" / "__init__.py").write_text("")
    return guard


def installed_env(tmp_path: Path, *, guard: bool) -> dict[str, str]:
    env = probe_env()
    env.pop("PYTHONPATH")
    env.pop("PROBE_TEST_GUARD")
    if guard:
        env["PYTHONPATH"] = str(guard_path(tmp_path))
        env["PROBE_TEST_GUARD"] = "1"
    env["PROBE_DATA_DIR"] = str(tmp_path / "data")
    env["PEX_ROOT"] = str(tmp_path / "pex-root")
    return env


async def _round(command: list[str], tmp_path: Path, env: dict[str, str]) -> Round:
    out = tmp_path / "results"
    async with loopback_world(tmp_path) as world:
        args = [
            *("run", str(world.list_path), "--resolver", world.resolver),
            *("--source-address", PROBE, "--ca-file", world.ca_file, "--timeout", "1.5"),
            *("--control", world.control_url, "--out", str(out)),
        ]
        process = await asyncio.create_subprocess_exec(
            *command,
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL,
            env=env,
            cwd=str(tmp_path),
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), 300)
    assert process.returncode is not None
    return Round(world.expected, out, process.returncode, stdout.decode(), stderr.decode())


@dataclass
class Round:
    expected: dict[str, tuple[str, str | None]]
    out: Path
    code: int
    stdout: str
    stderr: str


def run_round(command: list[str], tmp_path: Path, env: dict[str, str]) -> Round:
    """`COMMAND run` over the loopback world (its servers run in this process meanwhile)."""
    return asyncio.run(_round(command, tmp_path, env))


def run(command: list[str], tmp_path: Path, env: dict[str, str] | None = None, **kw: Any) -> Any:
    """A command in `tmp_path` (never the repository: `import probe` must not find it)."""
    return subprocess.run(
        command, env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=600, **kw
    )


def assert_round(done: Round) -> None:
    assert done.code == 0, done.stderr[-3000:]
    assert GUARD_MARK not in done.stderr, done.stderr
    got = {
        r["input"]: (r["test_keys"]["verdict"]["status"], r["test_keys"]["verdict"]["blocking"])
        for r in read_records(done.out)
    }
    assert got == done.expected
    assert f"Results: {done.out}" in done.stdout


def test_sdist_and_wheel_hold_the_lists_and_the_network_data(dist: Path) -> None:
    (sdist,) = dist.glob("probe-*.tar.gz")
    (wheel,) = dist.glob("probe-*.whl")
    lists = sorted(p.name for p in (REPO / "targets").iterdir() if p.suffix in (".toml", ".pem"))
    lists += sorted(f"domestic/{p.name}" for p in (REPO / "targets" / "domestic").glob("*.toml"))
    geoip = sorted(
        p.name
        for p in (REPO / "probe" / "data" / "geoip").iterdir()
        if p.is_file() and p.suffix != ".py"
    )
    assert lists and {"asn.mmdb", "country.mmdb", "SOURCES.md"} <= set(geoip)
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for name in lists:
        assert f"targets/{name}" in names
    for name in geoip:
        assert f"probe/data/geoip/{name}" in names
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    for name in lists:
        assert f"probe/data/targets/{name}" in names
    for name in geoip:
        assert f"probe/data/geoip/{name}" in names
    packages = sorted(
        str(init.parent.relative_to(REPO))
        for init in (REPO / "probe").rglob("__init__.py")
        if "__pycache__" not in init.parts
    )
    assert [p for p in packages if f"{p}/__init__.py" not in names] == []


def test_the_wheel_runs_probe_in_a_fresh_venv(dist: Path, tmp_path: Path) -> None:
    (wheel,) = dist.glob("probe-*.whl")
    venv = tmp_path / "venv"
    made = run([sys.executable, "-m", "venv", str(venv)], tmp_path)
    assert made.returncode == 0, made.stderr
    python = str(venv / "bin" / "python")
    installed = run([python, "-m", "pip", "install", "-q", str(wheel)], tmp_path)
    assert installed.returncode == 0, installed.stderr[-3000:]
    env = installed_env(tmp_path, guard=True)
    where = run([python, "-c", "import probe; print(probe.__file__)"], tmp_path, env)
    assert where.stdout.strip().startswith(str(venv)), where
    version = run([str(venv / "bin" / "probe"), "--version"], tmp_path, env)
    assert version.stdout.strip() == "probe, version " + wheel.name.split("-")[1]
    assert_round(run_round([str(venv / "bin" / "probe")], tmp_path, env))


def bare_python() -> str:
    """The interpreter this venv was made from: no probe, no dependencies."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    return base if os.path.exists(base) else sys.executable


def test_the_single_file_runs_with_a_bare_python(source: Path, tmp_path: Path) -> None:
    if not _has_module("pex"):
        _missing("pex")
    single = tmp_path / "probe.pyz"
    script = str(source / "scripts" / "build_single_file.sh")
    built = run(
        ["bash", script, "--current", "-o", str(single)],
        tmp_path,
        {**os.environ, "PYTHON": sys.executable},
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    python = bare_python()
    env = installed_env(tmp_path, guard=False)
    if run([python, "-c", "import probe"], tmp_path, env).returncode == 0:
        pytest.skip(f"{python} has probe installed: not a bare interpreter")
    inside = run(
        [python, str(single), "-c", "import probe; print(probe.__file__); import duckdb"],
        tmp_path,
        {**env, "PEX_INTERPRETER": "1"},
    )
    assert inside.stdout.startswith(str(tmp_path / "pex-root")), inside
    assert "No module named 'duckdb'" in inside.stderr, inside.stderr[-2000:]  # left out
    done = run_round([python, str(single)], tmp_path, env)
    assert_round(done)
    listed = run([python, str(single), "results", "--out", str(done.out), "--json"], tmp_path, env)
    assert json.loads(listed.stdout)["targets"] == len(done.expected), listed.stderr
    report = run([python, str(single), "report", str(done.out)], tmp_path, env)
    assert report.returncode == 1
    lines = report.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs DuckDB" in lines[0], report.stderr
