"""STUN in the lab: a messenger's STUN server (stun.plab.test, 198.19.0.160, UDP 3478; a real
STUN server, tests/servers/stun_server.py, in the `net` namespace). When the censor drops UDP
3478 to it, `probe run` with the control calls facebook_messenger/stun `blocked` (blocking
`protocol`, `x_stun` evidence `udp-blocked-here`: the control's Binding requests are answered);
with no censor the Binding request is answered and nothing is said. The mapped address the
server sends back (the client's lab address) appears nowhere in the records.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.censor import Censor
from tests.lab.lab import PROBE_BIN, Lab
from tests.lab.scenarios import Scenario, SelfCheck
from tests.lab.topology import CLIENT_IP, CONTROL_IP, CONTROL_PORT, STUN_IP, LabError

pytestmark = pytest.mark.lab

PORT = 3478
STUN_CHECK = {"kind": "stun", "ip": STUN_IP, "port": PORT}
DROPPED = Scenario(
    "stun-udp3478-dropped",
    "UDP 3478 to stun.plab.test's address is dropped.",
    censor=Censor(udp_drop=((STUN_IP, PORT),)),
    self_checks=(
        SelfCheck("client", STUN_CHECK, "timeout"),
        SelfCheck("control", STUN_CHECK, "ok"),
    ),
)
QUIET = Scenario(
    "stun-quiet",
    "No censorship: STUN answers the client and the control.",
    self_checks=(SelfCheck("client", STUN_CHECK, "ok"), SelfCheck("control", STUN_CHECK, "ok")),
)
TARGETS = f"""\
[list]
name = "lab-stun"
updated = 2026-12-06

[[targets]]
id = "baseline/example"
service = "baseline"
check = "https"
url = "https://www.example.org/"

[[targets]]
id = "facebook_messenger/stun"
service = "facebook_messenger"
check = "dns"
host = "stun.plab.test"
stun_port = {PORT}
"""


@pytest.fixture(scope="module")
def stun_lab(lab_with_control: Lab) -> Iterator[Lab]:
    lab = lab_with_control
    topology = lab.topology
    topology.ns_run(topology.net, ["ip", "addr", "add", f"{STUN_IP}/32", "dev", "nc0"])
    process = None
    try:
        process = topology.spawn(
            "stun", topology.net,
            [sys.executable, "-m", "tests.servers.stun_server", "--host", STUN_IP, "--port",
             str(PORT)],
            ready_line=str(PORT),
        )  # fmt: skip
        yield lab
    finally:
        if process is not None:
            topology.stop(process)
        topology.ns_run(topology.net, ["ip", "addr", "del", f"{STUN_IP}/32", "dev", "nc0"],
                        check=False)  # fmt: skip
        lab.clear()


def _apply(lab: Lab, scenario: Scenario) -> None:
    lab.apply(scenario)
    problems = []
    for where, ns in (("client", lab.topology.client), ("control", lab.topology.ctrl)):
        wanted = [c for c in scenario.self_checks if c.where == where]
        results = lab.check(ns, [dict(c.check) for c in wanted])
        for check, result in zip(wanted, results, strict=True):
            if not check.matches(result):
                problems.append(
                    f"{where}: {check.describe()}: expected {check.expect}, got {result}"
                )
    if problems:
        raise LabError(f"the lab is broken for {scenario.name}:\n" + "\n".join(problems))


def _run(lab: Lab, tmp: Path) -> tuple[dict[str, dict[str, Any]], str]:
    targets = tmp / "stun.toml"
    targets.write_text(TARGETS)
    out = tmp / "results"
    proc = subprocess.run(
        ["ip", "netns", "exec", lab.topology.client, str(PROBE_BIN), "run", str(targets),
         "--out", str(out), "--timeout", "1.5", "--ca-file", str(lab.ca_file), "--yes",
         "--control", f"http://{CONTROL_IP}:{CONTROL_PORT}"],
        capture_output=True, text=True, timeout=300, cwd=tmp, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    texts = [path.read_text() for path in sorted(out.glob("**/*.jsonl"))]
    records = [json.loads(line) for text in texts for line in text.splitlines() if line.strip()]
    return {r["input"]: r for r in records}, "".join(texts) + proc.stdout + proc.stderr


def test_udp_3478_dropped_is_named_against_the_control(stun_lab: Lab, tmp_path: Path) -> None:
    _apply(stun_lab, DROPPED)
    records, text = _run(stun_lab, tmp_path)
    stun = records["facebook_messenger/stun"]["test_keys"]
    verdict = stun["verdict"]
    assert verdict["status"] == "blocked" and verdict["blocking"] == "protocol", verdict
    assert verdict["x_stun"] == {
        "status": "failing", "evidence": "udp-blocked-here", "failure": "generic_timeout_error",
    }  # fmt: skip
    assert "UDP to it is blocked on this network" in verdict["reason"]
    [here] = stun["x_stun"]
    assert here["address"] == STUN_IP and here["requests"] == 3 and not here["success"]
    assert stun["control"]["x_stun"][0]["success"] is True
    assert CLIENT_IP not in text


def test_stun_answered_no_false_positive(stun_lab: Lab, tmp_path: Path) -> None:
    _apply(stun_lab, QUIET)
    records, text = _run(stun_lab, tmp_path)
    stun = records["facebook_messenger/stun"]["test_keys"]
    verdict = stun["verdict"]
    assert verdict["status"] == "ok" and verdict["x_stun"]["status"] == "ok", verdict
    assert verdict["x_stun"]["evidence"] is None and "STUN" not in verdict["reason"]
    [here] = stun["x_stun"]
    assert here["success"] is True and here["rtt"] is not None
    assert CLIENT_IP not in text  # the mapped address (the client's own) is never kept
