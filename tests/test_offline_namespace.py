"""`probe run` over the bundled lists inside an empty network namespace (no interface up, no
route): it must finish quickly, call nothing blocked, and say the probe looks offline.

Needs root for `ip netns`; skips with a reason elsewhere, and fails instead when CI=true."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 3.0


def _need_root() -> None:
    reason = None
    if os.geteuid() != 0:
        reason = "needs root for network namespaces"
    elif shutil.which("ip") is None:
        reason = "needs iproute2 (`ip`)"
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the namespace test cannot run: {reason}")
        pytest.skip(reason)


def run_in_empty_namespace(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    """`probe run --timeout 3 --out tmp/results ARGS` in a fresh namespace; (result, seconds)."""
    _need_root()
    name = f"ptest-offline-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_CONFIG_HOME": str(tmp_path)}
    command = [sys.executable, "-m", "probe", "run", "--timeout", str(TIMEOUT)]
    try:
        started = time.monotonic()
        completed = subprocess.run(
            ["ip", "netns", "exec", name, *command, "--out", str(tmp_path / "results"), *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            cwd=str(REPO),
        )
        return completed, time.monotonic() - started
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_empty_namespace_is_offline_not_blocked(tmp_path: Path):
    completed, elapsed = run_in_empty_namespace(tmp_path, "--json")
    assert completed.returncode == 0, completed.stderr
    summary = json.loads(completed.stdout)
    assert summary["offline"] is True
    assert summary["bytes_sent"] == 0
    records = [
        json.loads(line)
        for path in (tmp_path / "results").rglob("*.jsonl")
        for line in path.read_text().splitlines()
    ]
    assert len(records) == summary["targets"] > 40  # every bundled target has its record
    assert {r["test_keys"]["verdict"]["status"] for r in records} == {"inconclusive"}
    # "about one timeout": a generous bound, never a precise timing assertion.
    assert elapsed < 3 * TIMEOUT + 30


def test_empty_namespace_human_summary_says_offline(tmp_path: Path):
    completed, _ = run_in_empty_namespace(tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert "appears to be offline" in completed.stdout
