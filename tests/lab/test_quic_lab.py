"""QUIC in the lab: a censor drops UDP 443 to web.telegram.org's address while TCP/TLS to it
works; `probe run` (with the control) keeps the target `ok` and names `quic` evidence in
`verdict.x_quic`; with no censor the QUIC handshake completes and nothing is said.

A real aioquic server (tests/servers/quic_server.py) with the lab CA's certificate runs on the
web host's UDP 443 in the `net` namespace, beside the lab's HTTPS server (docs/lab.md).
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
from tests.lab.scenarios import Scenario, SelfCheck, tls
from tests.lab.topology import CONTROL_IP, CONTROL_PORT, WEB_IP, LabError

pytestmark = pytest.mark.lab

QUIC_CHECK = {"kind": "quic", "ip": WEB_IP, "port": 443, "sni": "web.telegram.org"}
UDP_443_DROPPED = Scenario(
    "quic-udp443-dropped",
    "UDP 443 to web.telegram.org's address is dropped; TCP 443 to it works.",
    censor=Censor(udp_drop=((WEB_IP, 443),)),
    self_checks=(
        SelfCheck("client", QUIC_CHECK, "timeout"),
        SelfCheck("control", QUIC_CHECK, "ok"),
        tls("client", WEB_IP, "web.telegram.org", "ok"),
    ),
)
NEUTRAL_CHECK = {"kind": "quic", "ip": CONTROL_IP, "port": 443, "sni": "control.plab.test"}
UDP_443_EVERYWHERE = Scenario(
    "quic-udp443-everywhere",
    "UDP 443 is dropped to every host (the control's neutral QUIC endpoint included).",
    censor=Censor(udp_drop=((WEB_IP, 443), (CONTROL_IP, 443))),
    self_checks=(
        SelfCheck("client", QUIC_CHECK, "timeout"),
        SelfCheck("client", NEUTRAL_CHECK, "timeout"),
        SelfCheck("control", QUIC_CHECK, "ok"),
    ),
)
QUIET = Scenario(
    "quic-quiet",
    "No censorship: QUIC and TLS both work.",
    self_checks=(
        SelfCheck("client", QUIC_CHECK, "ok"),
        SelfCheck("client", NEUTRAL_CHECK, "ok"),
        SelfCheck("control", QUIC_CHECK, "ok"),
    ),
)
TARGETS = """\
[list]
name = "lab-quic"
updated = 2026-12-06

[[targets]]
id = "baseline/example"
service = "baseline"
check = "https"
url = "https://www.example.org/"

[[targets]]
id = "telegram/web"
service = "telegram"
check = "https"
url = "https://web.telegram.org/"
quic = true
"""


@pytest.fixture(scope="module")
def quic_lab(lab_with_control: Lab) -> Iterator[Lab]:
    lab = lab_with_control
    workdir = lab.workdir
    process = lab.topology.spawn(
        "quic-web", lab.topology.net,
        [sys.executable, "-m", "tests.servers.quic_server", "--host", WEB_IP, "--port", "443",
         "--cert", str(workdir / "web-cert.pem"), "--key", str(workdir / "web-key.pem")],
    )  # fmt: skip
    try:
        yield lab
    finally:
        lab.topology.stop(process)
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


def _run(lab: Lab, tmp: Path) -> dict[str, dict[str, Any]]:
    targets = tmp / "quic.toml"
    targets.write_text(TARGETS)
    out = tmp / "results"
    proc = subprocess.run(
        ["ip", "netns", "exec", lab.topology.client, str(PROBE_BIN), "run", str(targets),
         "--out", str(out), "--timeout", "1.5", "--ca-file", str(lab.ca_file), "--yes",
         "--control", f"http://{CONTROL_IP}:{CONTROL_PORT}"],
        capture_output=True, text=True, timeout=300, cwd=tmp, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [
        json.loads(line)
        for path in sorted(out.glob("**/*.jsonl"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    return {r["input"]: r for r in records}


def test_udp_443_dropped_to_one_host_is_quic_evidence(quic_lab: Lab, tmp_path: Path) -> None:
    _apply(quic_lab, UDP_443_DROPPED)
    web = _run(quic_lab, tmp_path)["telegram/web"]
    verdict = web["test_keys"]["verdict"]
    assert verdict["status"] == "ok", verdict  # QUIC alone never blocks a reachable target
    assert verdict["x_quic"] == {
        "status": "failing", "evidence": "quic", "failure": "generic_timeout_error",
    }  # fmt: skip
    assert "QUIC to it fails" in verdict["reason"]
    control = web["test_keys"]["control"]["quic_handshakes"]
    assert control and control[0]["failure"] is None  # the control's QUIC worked
    assert web["test_keys"]["x_vantage"]["neutral_quic_ok"] is True  # UDP 443 in general works


def test_udp_443_dropped_everywhere_is_named_against_the_neutral_endpoint(
    quic_lab: Lab, tmp_path: Path
) -> None:
    _apply(quic_lab, UDP_443_EVERYWHERE)
    web = _run(quic_lab, tmp_path)["telegram/web"]
    assert web["test_keys"]["x_vantage"]["neutral_quic_ok"] is False
    verdict = web["test_keys"]["verdict"]
    assert verdict["status"] == "ok", verdict
    assert verdict["x_quic"]["evidence"] == "udp-443"
    assert "blocked as a whole" in verdict["reason"]


def test_quic_works_no_false_positive(quic_lab: Lab, tmp_path: Path) -> None:
    _apply(quic_lab, QUIET)
    web = _run(quic_lab, tmp_path)["telegram/web"]
    verdict = web["test_keys"]["verdict"]
    assert verdict["status"] == "ok" and verdict["x_quic"]["status"] == "ok", verdict
    assert verdict["x_quic"]["evidence"] is None and "QUIC" not in verdict["reason"]
    assert web["test_keys"]["quic_handshakes"][0]["negotiated_protocol"] == "h3"
    assert web["test_keys"]["x_vantage"]["neutral_quic_ok"] is True
