"""The default volunteer run in the censorship lab: no control server, no GeoIP option.

The probe must learn its own address (the lab's STUN server and HTTPS echo), keep it out of
every record in every spelling although hostile pages reflect it back, know its network from
the GeoIP data in its data directory (a database built for the lab ranges, where
`probe geoip update` installs one), and call Telegram blocked — unconfirmed, from local evidence
— when every data centre is blackholed while the baseline works; inconclusive when offline.

Run: ``sudo .venv/bin/python -m pytest -q -p no:cacheprovider tests/lab -k volunteer``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.geoip_helpers import write_db
from tests.lab.lab import PROBE_BIN, Lab, probe_supports, skip_or_fail
from tests.lab.scenarios import LAB_TARGETS, SCENARIOS, Scenario, targets_toml
from tests.lab.topology import CLIENT_IP, DC_IPS, LabError
from tests.lab.volunteer_servers import spellings

pytestmark = pytest.mark.lab

STUN_IP = "198.19.0.40"
ECHO_IP = "198.19.0.41"
REFLECTOR_IP = "198.19.0.42"
# Not 80 or 443: the censor's transparent proxy intercepts those, and a page reached through it
# sees (and reflects) the proxy's address, not the client's.
REFLECTOR_PORTS = (8080, 8081)
ECHO_PORT = 8443
LAB_ASN, LAB_ORG, LAB_CC = 64500, "Lab Telecom", "IR"

VOLUNTEER_TARGETS: tuple[dict[str, Any], ...] = (
    *LAB_TARGETS,
    *(
        {"id": f"reflect/p{port}", "service": "reflect", "check": "http",
         "url": f"http://{REFLECTOR_IP}:{port}/who"}
        for port in REFLECTOR_PORTS
    ),
)  # fmt: skip


@dataclass
class VolunteerWorld:
    lab: Lab
    workdir: Path
    echo_ca: Path
    data_dir: Path


@pytest.fixture(scope="module")
def world(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VolunteerWorld]:
    if not probe_supports("run"):
        skip_or_fail("the probe has no `probe run`")
    workdir = tmp_path_factory.mktemp("volunteer")
    ca = trustme.CA(organization_name="volunteer echo CA")
    cert = ca.issue_cert(ECHO_IP)
    cert_file, key_file, ca_file = (workdir / n for n in ("echo.pem", "echo-key.pem", "ca.pem"))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    # The network data a volunteer's probe has with no option: here, where `probe geoip
    # update` puts it, a database for the lab's ranges.
    data_dir = workdir / "data"
    (data_dir / "geoip").mkdir(parents=True)
    write_db(
        data_dir / "geoip" / "asn.mmdb",
        {
            "198.18.0.0/15": {
                "autonomous_system_number": LAB_ASN,
                "autonomous_system_organization": LAB_ORG,
            }
        },
    )
    write_db(data_dir / "geoip" / "country.mmdb", {"198.18.0.0/15": {"country_code": LAB_CC}})
    topology = lab.topology
    for ip in (STUN_IP, ECHO_IP, REFLECTOR_IP):
        topology.ns_run(topology.net, ["ip", "addr", "add", f"{ip}/32", "dev", "nc0"])
    config = workdir / "volunteer.json"
    config.write_text(
        json.dumps(
            {
                "stun": [STUN_IP, 3478],
                "echo": [ECHO_IP, ECHO_PORT],
                "cert_file": str(cert_file),
                "key_file": str(key_file),
                "reflectors": [[REFLECTOR_IP, port] for port in REFLECTOR_PORTS],
            }
        )
    )
    process = topology.spawn_python(
        "volunteer-servers", topology.net, "tests.lab.volunteer_servers", str(config)
    )
    try:
        yield VolunteerWorld(lab, workdir, ca_file, data_dir)
    finally:
        topology.stop(process)
        for ip in (STUN_IP, ECHO_IP, REFLECTOR_IP):
            topology.ns_run(
                topology.net, ["ip", "addr", "del", f"{ip}/32", "dev", "nc0"], check=False
            )


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    records: dict[str, dict[str, Any]]
    raw: str  # every results file, as written


def run_probe(world: VolunteerWorld, scenario: Scenario, tmp: Path, *extra: str) -> Run:
    """The real `probe run` in the client namespace, as a volunteer runs it: no --control, no
    --geoip-db. The lab's own discovery servers stand in for the public ones."""
    lab = world.lab
    lst = tmp / "volunteer.toml"
    lst.write_text(targets_toml(scenario, VOLUNTEER_TARGETS))
    out = tmp / "results"
    command = [
        "ip", "netns", "exec", lab.topology.client, str(PROBE_BIN), "run", str(lst),
        "--out", str(out), "--timeout", os.environ.get("PLAB_TIMEOUT", "1.5"),
        "--ca-file", str(lab.ca_file), "--ca-file", str(world.echo_ca),
        "--stun", f"{STUN_IP}:3478", "--ip-echo", f"https://{ECHO_IP}:{ECHO_PORT}/",
        # the lab's addresses are reserved (198.18.0.0/15): a test bed must say they count
        "--own-net", "198.18.0.0/15",
        *extra,
    ]  # fmt: skip
    env = {
        **os.environ,
        "PROBE_DATA_DIR": str(world.data_dir),
        "PROBE_ACCEPT_RISKS": "1",
        "XDG_CONFIG_HOME": str(tmp / "no-config"),
        "COLUMNS": "160",
    }
    env.pop("PROBE_CONFIG", None)
    proc = subprocess.run(
        command, capture_output=True, text=True, timeout=300, cwd=tmp, env=env, check=False
    )
    raw = "".join(p.read_text() for p in sorted(out.glob("**/*.jsonl"))) if out.exists() else ""
    records = {r["input"]: r for r in (json.loads(line) for line in raw.splitlines() if line)}
    return Run(proc.returncode, proc.stdout, proc.stderr, records, raw)


def leaks(text: str) -> list[str]:
    """Every spelling of the client's address found in `text` (no port: it varies)."""
    forms = spellings(CLIENT_IP, 1)
    del forms[1]  # "addr:port": the port varies, and "addr" alone is checked
    found = [form for form in forms if form in text]
    # and anything that still parses to it, however written with digits and dots
    for candidate in re.findall(r"\d{1,3}(?:\.\d{1,3}){3}", text):
        if [int(x) for x in candidate.split(".")] == [198, 18, 1, 2]:
            found.append(candidate)
    return found


def scenario(name: str) -> Scenario:
    return next(s for s in SCENARIOS if s.name == name)


def verdict(run: Run, target_id: str) -> dict[str, Any]:
    return run.records[target_id]["test_keys"]["verdict"]


def test_volunteer_run_in_a_censored_network(world: VolunteerWorld, tmp_path: Path) -> None:
    """Iran-like censor (DNS injection, every DC blackholed, an SNI drop), no control."""
    chosen = scenario("iran-combined")
    world.lab.apply(chosen)
    problems = world.lab.self_check(chosen)
    if problems:
        raise LabError("the lab is broken:\n" + "\n".join(problems))
    run = run_probe(world, chosen, tmp_path, "--json")
    assert run.returncode == 0, run.stderr[-3000:]
    assert set(run.records) == {t["id"] for t in VOLUNTEER_TARGETS}, run.stderr[-2000:]

    # 1. The address was learned (STUN and the echo agree), and never written down.
    for record in run.records.values():
        discovery = record["test_keys"]["x_ip_discovery"]
        assert discovery["ipv4"] == {"found": True, "answers": 2, "agreed": 2}, discovery
        assert record["annotations"]["x_scrubbed"] == "address-known"
    assert leaks(run.raw) == []
    assert leaks(run.stdout) == [] and leaks(run.stderr) == []
    # ... although the reflectors were reached and wrote it everywhere (the test can fail).
    for port in REFLECTOR_PORTS:
        keys = run.records[f"reflect/p{port}"]["test_keys"]
        response = keys["requests"][0]["response"]
        assert response["code"] == 200
        assert response["body"].count("[scrubbed]") >= 20, response["body"][:500]
        assert response["headers"]["X-Client-IP-0"] == "[scrubbed]"
        assert "[scrubbed]" in keys["requests"][0]["response"]["x_title"]

    # 2. The network is known from the data directory's database, with no option.
    for record in run.records.values():
        assert record["probe_asn"] == f"AS{LAB_ASN}"
        assert record["probe_cc"] == LAB_CC
        assert record["probe_network_name"] == LAB_ORG
        assert record["probe_ip"] == "127.0.0.1"
        assert "updated" in record["annotations"]["geoip"]

    # 3. Telegram: every data centre blocked (local evidence, unconfirmed); DNS injection
    # confirmed by the national fingerprint (the probe is in IR); the SNI drop on one site is
    # named by the SNI swap (unconfirmed, without a control).
    for target_id in ("telegram/dc1", "telegram/dc2", "telegram/dc3"):
        v = verdict(run, target_id)
        assert (v["status"], v["blocking"], v["confirmed"]) == ("blocked", "tcp", False), v
        assert "local evidence" in v["reason"] and "baseline" in v["reason"]
    assert verdict(run, "telegram/web")["status"] == "blocked"
    assert verdict(run, "telegram/web")["blocking"] == "dns"
    assert verdict(run, "telegram/web")["confirmed"] is True
    # the SNI drop of telegram.org: a benign name to the same address completes (the SNI
    # swap), which stands alone without a control
    org = verdict(run, "telegram/org")
    assert (org["status"], org["blocking"], org["confirmed"]) == ("blocked", "tls", False), org
    assert org["x_evidence"] == "sni-filter" and "local evidence" in org["reason"]
    assert verdict(run, "baseline/example")["status"] == "ok"
    facts = run.records["telegram/dc1"]["test_keys"]["x_service"]
    assert (facts["usable"], facts["interfered"]) == (False, True)

    summary = json.loads(run.stdout.strip().splitlines()[-1])
    telegram = next(row for row in summary["services"] if row["service"] == "telegram")
    assert (telegram["status"], telegram["usable"], telegram["interfered"]) == (
        "blocked",
        False,
        True,
    )
    assert summary["probe_asn"] == f"AS{LAB_ASN}" and not summary["offline"]
    assert DC_IPS[0] in run.raw  # the targets' own addresses stay in the records


def test_volunteer_run_without_address_discovery_redacts(
    world: VolunteerWorld, tmp_path: Path
) -> None:
    """--no-ip-discovery: the address is unknown, so every address in pages and headers that
    is not a DNS answer or a target's is redacted, and the records say so."""
    chosen = scenario("ip-blackhole-dcs")
    world.lab.apply(chosen)
    run = run_probe(world, chosen, tmp_path, "--no-ip-discovery")
    assert run.returncode == 0, run.stderr[-3000:]
    assert leaks(run.raw) == []
    for record in run.records.values():
        assert record["annotations"]["x_scrubbed"] == "address-unknown-redacted"
        assert "x_ip_discovery" not in record["test_keys"]
        assert (record["probe_asn"], record["probe_cc"]) == ("AS0", "ZZ")
    response = run.records["reflect/p8080"]["test_keys"]["requests"][0]["response"]
    assert response["code"] == 200 and "[scrubbed]" in response["body"]
    # measurement data stays: the data centres' addresses are the targets'
    assert run.records["telegram/dc1"]["test_keys"]["tcp_connect"][0]["ip"] == DC_IPS[0]
    assert verdict(run, "telegram/dc1")["status"] == "blocked"
    assert "could not be identified" in run.stderr + run.stdout


def test_volunteer_run_offline_is_inconclusive(world: VolunteerWorld, tmp_path: Path) -> None:
    chosen = scenario("client-offline")
    world.lab.apply(chosen)
    try:
        run = run_probe(world, chosen, tmp_path, "--json")
    finally:
        world.lab.clear()
    assert run.returncode == 0, run.stderr[-3000:]
    assert {verdict(run, t)["status"] for t in run.records} == {"inconclusive"}
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["offline"] is True
    telegram = next(row for row in summary["services"] if row["service"] == "telegram")
    assert telegram["usable"] is None and telegram["interfered"] is None
    assert leaks(run.raw) == []
