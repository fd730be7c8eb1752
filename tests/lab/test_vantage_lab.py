"""The vantage scenarios in the censorship lab (tests/lab/scenarios_vantage.py): a shutdown
(allowlist) is named as "international connectivity down", not "offline"; nothing working at
all stays "offline"; IPv6 blocked with IPv4 open (and the reverse) is named; and with nothing
done the probe stays quiet. The real `probe run`, with the real control, in the client
namespace; the lab has IPv6 (2001:2::/48 only) for these.

Run: ``sudo .venv/bin/python -m pytest -q -p no:cacheprovider tests/lab -k vantage``.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.lab.lab import PROBE_BIN, Lab
from tests.lab.scenarios import targets_toml
from tests.lab.scenarios_vantage import (
    ALL_IDS,
    DOMESTIC_TARGETS,
    SCENARIOS,
    VANTAGE_TARGETS,
    VantageScenario,
)
from tests.lab.topology import CONTROL_IP, CONTROL_PORT, LabError

pytestmark = pytest.mark.lab

PARAMS = [pytest.param(s, id=s.name) for s in SCENARIOS]


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    records: dict[str, dict[str, Any]]
    out_dir: Path


def apply(lab: Lab, scenario: VantageScenario) -> None:
    lab.clear()  # the whole censor ruleset is replaced: our table goes with the last one
    if scenario.rules:
        (lab.workdir / f"{scenario.name}.nft").write_text(scenario.nft())
        lab.topology.ns_run(lab.topology.censor, ["nft", "-f", "-"], input_text=scenario.nft())


def self_check(lab: Lab, scenario: VantageScenario) -> list[str]:
    problems = []
    namespaces = {"client": lab.topology.client, "control": lab.topology.ctrl}
    for where, ns in namespaces.items():
        wanted = [c for c in scenario.self_checks if c.where == where]
        if not wanted:
            continue
        results = lab.check(ns, [dict(c.check) for c in wanted])
        for check, result in zip(wanted, results, strict=True):
            if not check.matches(result):
                problems.append(f"{where}: {check.describe()}: expected {check.expect!r}, {result}")
    return problems


def run_probe(lab: Lab, scenario: VantageScenario, tmp: Path) -> Run:
    main, domestic = tmp / "vantage.toml", tmp / "domestic.toml"
    main.write_text(targets_toml(scenario, VANTAGE_TARGETS))  # type: ignore[arg-type]
    domestic_list = targets_toml(scenario, DOMESTIC_TARGETS)  # type: ignore[arg-type]
    domestic.write_text(domestic_list.replace('name = "lab-', 'name = "domestic-', 1))
    out = tmp / "results"
    command = [
        "ip", "netns", "exec", lab.topology.client, str(PROBE_BIN), "run", str(main),
        "--domestic-baselines", str(domestic), "--out", str(out), "--json",
        "--timeout", os.environ.get("PLAB_TIMEOUT", "1.5"), "--ca-file", str(lab.ca_file),
        "--control", f"http://{CONTROL_IP}:{CONTROL_PORT}",
    ]  # fmt: skip
    env = {**os.environ, "PROBE_ACCEPT_RISKS": "1", "XDG_CONFIG_HOME": str(tmp / "no-config")}
    env.pop("PROBE_CONFIG", None)
    proc = subprocess.run(
        command, capture_output=True, text=True, timeout=300, cwd=tmp, env=env, check=False
    )
    records: dict[str, dict[str, Any]] = {}
    for path in sorted(out.glob("**/*.jsonl")) if out.exists() else []:
        for line in path.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                assert record["input"] not in records, f"two records for {record['input']}"
                records[record["input"]] = record
    return Run(proc.returncode, proc.stdout, proc.stderr, records, out)


def probe_results(run: Run, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_CONFIG_HOME": str(run.out_dir.parent / "no-config")}
    return subprocess.run(
        [str(PROBE_BIN), *args, "--out", str(run.out_dir)],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip


def _describe(record: dict[str, Any]) -> str:
    keys = record["test_keys"]
    endpoints = [
        f"{e.get('address')}:{e.get('outcome')}:{e.get('failure')}"
        for e in keys.get("x_endpoints", [])
    ]
    return f"{json.dumps(keys.get('verdict'))} endpoints={endpoints}"


def test_the_vantage_scenarios_are_distinct_and_have_evidence() -> None:
    names = [s.name for s in SCENARIOS]
    assert len(names) == len(set(names))
    for scenario in SCENARIOS:
        assert set(scenario.expected) <= set(ALL_IDS), scenario.name
        assert {c.where for c in scenario.self_checks} == {"client", "control"}, scenario.name
    # each technique has a scenario where it happens and the clean one where it does not
    assert {s.connectivity for s in SCENARIOS} == {"online", "shutdown", "offline"}


def test_the_lab_has_ipv6_only_inside_its_range(lab: Lab) -> None:
    for ns in lab.topology.namespaces:
        addresses = lab.topology.ns_run(ns, ["ip", "-6", "-o", "addr", "show", "scope", "global"])
        for line in addresses.splitlines():
            address = line.split()[3]
            assert address.startswith("2001:2:"), f"{ns}: {line}"
    outside = [{"kind": "tcp", "ip": "2001:db8::1", "port": 443, "timeout": 1.0}]
    for ns in lab.topology.namespaces:
        assert lab.check(ns, outside)[0]["outcome"] == "unreachable", ns


@pytest.mark.parametrize("scenario", PARAMS)
def test_vantage_censor_interferes(lab: Lab, scenario: VantageScenario) -> None:
    apply(lab, scenario)
    try:
        problems = self_check(lab, scenario)
    finally:
        lab.clear()
    assert not problems, f"the lab is broken for {scenario.name}:\n" + "\n".join(problems)


@pytest.mark.parametrize("scenario", PARAMS)
def test_vantage_verdicts(lab_with_control: Lab, scenario: VantageScenario, tmp_path: Path) -> None:
    lab = lab_with_control
    apply(lab, scenario)
    try:
        problems = self_check(lab, scenario)
        if problems:
            raise LabError(f"the lab is broken for {scenario.name}:\n" + "\n".join(problems))
        run = run_probe(lab, scenario, tmp_path)
    finally:
        lab.clear()
    assert run.returncode == 0, f"probe run exited {run.returncode}: {run.stderr[-3000:]}"
    assert set(run.records) == set(ALL_IDS), f"records for {sorted(run.records)}"
    failures = []
    for target_id in ALL_IDS:
        record = run.records[target_id]
        verdict = record["test_keys"]["verdict"]
        mismatch = scenario.expect(target_id).mismatch(verdict)
        words = scenario.reasons.get(target_id)
        if mismatch is None and words and words not in verdict["reason"]:
            mismatch = f"the reason does not say {words!r}"
        if mismatch is None and scenario.connectivity != "shutdown":
            if "nternational connectivity" in verdict["reason"]:
                mismatch = "a shutdown named where there is none"
        named_family = "only IPv" in verdict["reason"]
        if mismatch is None and named_family and target_id not in scenario.reasons:
            mismatch = "an address family named as blocked where none is"
        if mismatch:
            failures.append(f"{target_id}: {mismatch}\n    {_describe(record)}")
    assert not failures, f"{scenario.name}:\n" + "\n".join(failures)
    x_vantage = run.records["telegram/web"]["test_keys"]["x_vantage"]
    assert x_vantage["domestic_total"] == 1 and x_vantage["baseline_total"] == 2, x_vantage
    summary = json.loads(run.stdout.splitlines()[-1])
    assert summary["shutdown"] is (scenario.connectivity == "shutdown"), summary["vantage"]
    assert summary["offline"] is (scenario.connectivity == "offline"), summary["vantage"]
    if scenario.connectivity == "online":
        assert x_vantage["ipv6_ok"] is True, x_vantage  # the dual-stack baseline proved it
    _check_results_commands(run, scenario)


def _check_results_commands(run: Run, scenario: VantageScenario) -> None:
    """`probe results` says it too, in plain words, in English and in Persian."""
    listed = probe_results(run, "results", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    row = json.loads(listed.stdout.splitlines()[-1])
    assert row["shutdown"] is (scenario.connectivity == "shutdown"), row
    shown = probe_results(run, "--lang", "en", "results", "show", row["report_id"])
    assert shown.returncode == 0, shown.stderr
    said = "International connectivity looks down" in shown.stdout
    assert said is (scenario.connectivity == "shutdown"), shown.stdout[-2000:]
    if scenario.connectivity == "shutdown":
        fa = probe_results(run, "--lang", "fa", "results", "show", row["report_id"])
        assert "اتصال بین‌المللی قطع است" in fa.stdout, fa.stdout[-2000:]
