"""The censorship lab: every scenario's censor really interferes, and `probe run` (the real CLI,
inside the client namespace) gives the expected verdict for every target.

Run: ``sudo .venv/bin/python -m pytest -q -p no:cacheprovider -m lab tests/lab`` (docs/lab.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from tests.lab import topology
from tests.lab.lab import Lab
from tests.lab.scenarios import SCENARIOS, TARGET_IDS, Scenario, tcp
from tests.lab.topology import DC_IPS, LabError

pytestmark = pytest.mark.lab

SCENARIO_PARAMS = [pytest.param(s, id=s.name) for s in SCENARIOS]


def test_lab_is_sealed(lab: Lab) -> None:
    """No default route, no link to the root namespace, no route to anything outside the lab."""
    assert lab.topology.isolation_problems() == []
    # a connect to an address outside the lab fails locally: no packet can leave
    outside = [{"kind": "tcp", "ip": "192.0.2.1", "port": 443, "timeout": 1.0}]
    for ns in lab.topology.namespaces:
        assert lab.check(ns, outside)[0]["outcome"] == "unreachable", ns


def test_every_scenario_is_distinct_and_has_evidence() -> None:
    names = [s.name for s in SCENARIOS]
    assert len(names) == len(set(names)) and len(names) >= 12
    for scenario in SCENARIOS:
        assert set(scenario.expected) <= set(TARGET_IDS), scenario.name
        wheres = {c.where for c in scenario.self_checks}
        assert "client" in wheres and "control" in wheres, scenario.name


@pytest.mark.parametrize("scenario", SCENARIO_PARAMS)
def test_censor_interferes(lab: Lab, scenario: Scenario) -> None:
    """The lab does what the scenario says, seen from the client and from the control."""
    lab.apply(scenario)
    problems = lab.self_check(scenario)
    assert not problems, f"the lab is broken for {scenario.name}:\n" + "\n".join(problems)


def test_self_checks_catch_a_censor_that_does_nothing(lab: Lab) -> None:
    """A scenario whose censor silently fails to apply must fail its self-checks, not pass."""
    scenario = next(s for s in SCENARIOS if s.name == "ip-blackhole-dcs")
    lab.apply(scenario)
    lab.topology.ns_run(lab.topology.censor, ["nft", "flush", "ruleset"])  # sabotage
    problems = lab.self_check(scenario)
    assert any("timeout" in p and DC_IPS[0] in p for p in problems), problems
    lab.clear()


def test_self_checks_catch_a_foreign_resolver(lab: Lab) -> None:
    """If the client's resolv.conf does not point at the lab resolver, the lab refuses to run."""
    scenario = SCENARIOS[0]
    resolv = topology.NETNS_ETC / lab.topology.client / "resolv.conf"
    original = resolv.read_text()
    try:
        resolv.write_text(f"nameserver {topology.SPARE_IP}\noptions timeout:1 attempts:1\n")
        problems = lab.self_check(scenario)
    finally:
        resolv.write_text(original)
    assert any("resolv_conf" in p for p in problems), problems
    assert any("selfcheck.plab.test" in p for p in problems), problems


def test_cleanup_removes_leftovers_of_a_crashed_run(lab: Lab) -> None:
    """A namespace (with a process inside) left by a dead run is removed on the next start."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = f"{topology.PREFIX}{dead.pid}-client"
    topology.run(["ip", "netns", "add", leftover])
    (topology.NETNS_ETC / leftover).mkdir(parents=True, exist_ok=True)
    sleeper = subprocess.Popen(
        ["ip", "netns", "exec", leftover, "sleep", "60"], start_new_session=True
    )
    try:
        time.sleep(0.2)
        removed = topology.cleanup_leftovers()
        assert leftover in removed
        assert lab.topology.client not in removed  # a live run's namespaces stay
        assert leftover not in topology.list_lab_namespaces()
        assert not (topology.NETNS_ETC / leftover).exists()
        assert sleeper.wait(timeout=5) != 0  # killed
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()
        topology.delete_namespace(leftover)


def _describe(record: dict) -> str:
    keys = record.get("test_keys", {})
    endpoints = [
        f"{e.get('address')}/{e.get('transport') or ''}:{e.get('outcome')}:{e.get('failure')}"
        for e in keys.get("x_endpoints", [])
    ]
    return f"{json.dumps(keys.get('verdict'))} endpoints={endpoints}"


@pytest.mark.parametrize("scenario", SCENARIO_PARAMS)
def test_probe_verdicts(lab_with_control: Lab, scenario: Scenario, tmp_path) -> None:
    lab = lab_with_control
    lab.apply(scenario)
    problems = lab.self_check(scenario)
    if problems:
        raise LabError(f"the lab is broken for {scenario.name}:\n" + "\n".join(problems))
    run = lab.run_probe(scenario, tmp_path, timeout=float(os.environ.get("PLAB_TIMEOUT", "1.5")))
    assert run.returncode == 0, f"probe run exited {run.returncode}: {run.stderr[-3000:]}"
    by_id: dict[str, dict] = {}
    for record in run.records:
        assert record["input"] not in by_id, f"two records for {record['input']}"
        by_id[record["input"]] = record
    assert set(by_id) == set(TARGET_IDS), f"records for {sorted(by_id)}: {run.stderr[-2000:]}"
    failures = []
    for target_id in TARGET_IDS:
        record = by_id[target_id]
        mismatch = scenario.expect(target_id).mismatch(record["test_keys"]["verdict"])
        if mismatch:
            failures.append(f"{target_id}: {mismatch}\n    {_describe(record)}")
    assert not failures, f"{scenario.name} ({scenario.censor.describe()}):\n" + "\n".join(failures)


def test_offline_client_cannot_reach_the_control(lab: Lab) -> None:
    """Client offline means offline: not even the control is reachable (no blocked verdicts)."""
    scenario = next(s for s in SCENARIOS if s.world.client_offline)
    lab.apply(scenario)
    check = tcp("client", topology.CONTROL_IP, topology.CONTROL_PORT, "")
    assert lab.check(lab.topology.client, [dict(check.check)])[0]["outcome"] == "unreachable"
    lab.clear()
