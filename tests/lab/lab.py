"""One running lab: topology + lab CA + the internet's servers + (when available) the control
server, and the operations a scenario needs: apply a censor, run self-checks, run the probe."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.lab import censor as censor_rules
from tests.lab.ipv6 import VANTAGE_HOSTS, VANTAGE_HOSTS6
from tests.lab.scenarios import Scenario, SelfCheck, targets_toml
from tests.lab.scenarios_sni import NEUTRAL_TLS_PORT
from tests.lab.topology import (
    BASELINE_IP,
    BLOCKPAGE_IP,
    CONTROL_IP,
    CONTROL_PORT,
    DC_IPS,
    DC_PORTS,
    REPO_ROOT,
    RESOLVER_IP,
    WEB2_IP,
    WEB_IP,
    WEB_NAMES,
    ZONE,
    LabError,
    LabProcess,
    Topology,
)

PROBE_BIN = Path(sys.executable).with_name("probe")


def probe_supports(*command: str) -> bool:
    """Whether the probe in this virtualenv has a command (it is being written in parallel)."""
    if not PROBE_BIN.exists():
        return False
    proc = subprocess.run(
        [str(PROBE_BIN), *command, "--help"], capture_output=True, text=True, timeout=60,
        check=False, cwd=REPO_ROOT,
    )  # fmt: skip
    return proc.returncode == 0


@dataclass
class ProbeRun:
    returncode: int
    stdout: str
    stderr: str
    records: list[dict[str, Any]]


@dataclass
class Lab:
    workdir: Path
    topology: Topology = field(init=False)
    ca_file: Path = field(init=False)
    servers: LabProcess | None = None
    control: LabProcess | None = None
    middlebox: LabProcess | None = None

    def __post_init__(self) -> None:
        self.topology = Topology(self.workdir)
        self.ca_file = self.workdir / "lab-ca.pem"

    # --- life cycle -----------------------------------------------------------------------
    def start(self) -> None:
        self.topology.create()
        problems = self.topology.isolation_problems()
        if problems:
            raise LabError("the lab is not sealed: " + "; ".join(problems))
        ca = trustme.CA(organization_name="probe censorship lab")
        ca.cert_pem.write_to_path(str(self.ca_file))
        server_cert = ca.issue_cert(*WEB_NAMES)
        cert_file, key_file = self.workdir / "web-cert.pem", self.workdir / "web-key.pem"
        server_cert.cert_chain_pems[0].write_to_path(str(cert_file))
        for extra in server_cert.cert_chain_pems[1:]:
            extra.write_to_path(str(cert_file), append=True)
        server_cert.private_key_pem.write_to_path(str(key_file))
        config = {
            "zone": ZONE,
            "cert_file": str(cert_file),
            "key_file": str(key_file),
            "resolver": RESOLVER_IP,
            "web": [WEB_IP, WEB2_IP, BASELINE_IP, *VANTAGE_HOSTS, *VANTAGE_HOSTS6],
            "blockpage": BLOCKPAGE_IP,
            "dcs": list(DC_IPS),
            "dc_ports": list(DC_PORTS),
        }
        config_path = self.workdir / "servers.json"
        config_path.write_text(json.dumps(config))
        self.servers = self.topology.spawn_python(
            "servers", self.topology.net, "tests.lab.servers", str(config_path)
        )
        self.clear()

    def start_control(self) -> None:
        """Start the project's control server in the uncensored `ctrl` namespace."""
        self.control = self.topology.spawn(
            "control",
            self.topology.ctrl,
            [str(PROBE_BIN), "control", "serve", "--host", CONTROL_IP, "--port",
             str(CONTROL_PORT), "--allow-net", "198.18.0.0/15", "--allow-net", "10.10.34.0/24",
             "--allow-net", "2001:2::/48",
             "--ca-file", str(self.ca_file), "--neutral-quic-port", "443",
             "--neutral-tls-port", str(NEUTRAL_TLS_PORT)],
            ready_line=None,
        )  # fmt: skip
        probe = [{"kind": "tcp", "ip": CONTROL_IP, "port": CONTROL_PORT, "timeout": 0.5}]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.control.popen.poll() is not None:
                break
            if self.check(self.topology.ctrl, probe)[0]["outcome"] == "ok":
                return
            time.sleep(0.2)
        raise LabError(f"the control server did not start: {self.control.log_tail()}")

    def stop(self) -> None:
        self.topology.destroy()

    # --- scenarios ------------------------------------------------------------------------
    def clear(self) -> None:
        """Back to an uncensored, healthy lab."""
        if self.middlebox is not None:
            self.topology.stop(self.middlebox)
            self.middlebox = None
        self.topology.ns_run(
            self.topology.censor, ["nft", "-f", "-"],
            input_text=censor_rules.nft_ruleset(censor_rules.Censor()),
        )  # fmt: skip
        self.topology.ns_run(self.topology.net, ["nft", "flush", "ruleset"])
        self.topology.set_client_routes(True)

    def apply(self, scenario: Scenario) -> None:
        self.clear()
        rules = censor_rules.nft_ruleset(scenario.censor)
        (self.workdir / f"{scenario.name}.nft").write_text(rules)
        self.topology.ns_run(self.topology.censor, ["nft", "-f", "-"], input_text=rules)
        middlebox = censor_rules.middlebox_config(scenario.censor)
        if middlebox is not None:
            path = self.workdir / f"{scenario.name}.middlebox.json"
            path.write_text(json.dumps(middlebox))
            self.middlebox = self.topology.spawn_python(
                f"middlebox-{scenario.name}", self.topology.censor, "tests.lab.middleboxes",
                str(path),
            )  # fmt: skip
        if scenario.world.outage:
            self.topology.ns_run(
                self.topology.net, ["nft", "-f", "-"],
                input_text=censor_rules.outage_ruleset(scenario.world.outage),
            )  # fmt: skip
        if scenario.world.client_offline:
            self.topology.set_client_routes(False)

    def check(self, ns: str, checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for check in checks:
            if check["kind"] == "tls":
                check.setdefault("ca", str(self.ca_file))
        out = self.topology.python(ns, "tests.lab.checks", input_text=json.dumps(checks))
        results: list[dict[str, Any]] = json.loads(out)
        return results

    def self_check(self, scenario: Scenario) -> list[str]:
        """Run the scenario's self-checks; return every mismatch (empty = the lab works)."""
        namespaces = {"client": self.topology.client, "control": self.topology.ctrl}
        problems = []
        for where, ns in namespaces.items():
            wanted: list[SelfCheck] = [c for c in scenario.all_self_checks() if c.where == where]
            if not wanted:
                continue
            results = self.check(ns, [dict(c.check) for c in wanted])
            for check, result in zip(wanted, results, strict=True):
                if not check.matches(result):
                    problems.append(
                        f"{where}: {check.describe()}: expected {check.expect!r}, got {result}"
                    )
        return problems

    def run_probe(self, scenario: Scenario, tmp: Path, timeout: float = 1.5) -> ProbeRun:
        list_path = tmp / f"{scenario.name}.toml"
        list_path.write_text(targets_toml(scenario))
        out_dir = tmp / "results"
        command = [
            "ip", "netns", "exec", self.topology.client, str(PROBE_BIN), "run", str(list_path),
            "--out", str(out_dir), "--timeout", str(timeout), "--json",
            "--ca-file", str(self.ca_file),
        ]  # fmt: skip
        if self.control is not None:
            command += ["--control", f"http://{CONTROL_IP}:{CONTROL_PORT}"]
        else:
            command += ["--no-control"]
        command += list(scenario.probe_args)
        if scenario.censor.sni_residual:
            # the self-checks triggered the residual censor: let its penalty pass first
            time.sleep(scenario.censor.sni_residual + 0.5)
        proc = subprocess.run(
            command, capture_output=True, text=True, timeout=300, cwd=tmp, check=False
        )
        records = []
        for path in sorted(out_dir.glob("**/*.jsonl")) if out_dir.exists() else []:
            for line in path.read_text().splitlines():
                if line.strip():
                    records.append(json.loads(line))
        return ProbeRun(proc.returncode, proc.stdout, proc.stderr, records)

    def logs(self) -> str:
        parts = []
        for path in sorted(self.workdir.glob("*.log")):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-2000:]}")
        return "\n".join(parts)


def tools_missing() -> list[str]:
    return [tool for tool in ("ip", "nft") if shutil.which(tool) is None]


def skip_or_fail(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"lab cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def lab_unavailable_reason() -> str | None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "the censorship lab needs root (network namespaces, nftables): run as root"
    missing = tools_missing()
    if missing:
        return f"the censorship lab needs {' and '.join(missing)} (iproute2, nftables)"
    return None
