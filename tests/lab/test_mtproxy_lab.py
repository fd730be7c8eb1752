"""MTProxy links in the lab: a censor drops fake-TLS hellos to one proxy host (padded
obfuscated2 to the same proxy passes), and `probe proxy check` inside the client namespace
names fake-TLS as the kind that does not get through there; with no censor it stays quiet.

Two real MTProxies (tests/servers/mtproxy_server.py) run in the `net` namespace on lab hosts
198.19.0.150 and .151, relaying to the lab's own fake data centre (tests/lab/servers.py, a
second MTProto implementation). docs/mtproxy.md, docs/lab.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.lab.censor import Censor
from tests.lab.lab import PROBE_BIN, Lab, probe_supports, skip_or_fail
from tests.lab.scenarios import Scenario, SelfCheck, tcp, tls
from tests.lab.topology import DC_IPS, LabError, LabProcess

pytestmark = pytest.mark.lab

PROXY_IPS = ("198.19.0.150", "198.19.0.151")  # the censored proxy host, and an untouched one
PORT = 443
KEY = bytes.fromhex("5c1e0d7b9a3f24e8c6b1a0d9f8e7c6b5")
DOMAIN = "www.example.com"
#: the proxy closes (or resets) a TLS hello not signed with its secret: it answered
REFUSED = ("eof", "reset")
SECRETS = {
    "fake_tls": "ee" + KEY.hex() + DOMAIN.encode().hex(),
    "padded": "dd" + KEY.hex(),
}

FAKE_TLS_DROPPED = Scenario(
    "mtproxy-fake-tls-dropped",
    "TLS ClientHellos to one proxy host are dropped; other payloads to it pass.",
    censor=Censor(tls_hello_drop=((PROXY_IPS[0], PORT),)),
    self_checks=(
        tcp("client", PROXY_IPS[0], PORT, "ok"),
        tls("client", PROXY_IPS[0], DOMAIN, "timeout"),
        tls("client", PROXY_IPS[1], DOMAIN, REFUSED),  # the proxy refuses an unsigned hello
        tls("control", PROXY_IPS[0], DOMAIN, REFUSED),
    ),
)
NO_CENSOR = Scenario(
    "mtproxy-quiet",
    "No censorship: every proxy kind gets through.",
    self_checks=(
        tls("client", PROXY_IPS[0], DOMAIN, REFUSED),
        tls("control", PROXY_IPS[0], DOMAIN, REFUSED),
    ),
)


def _wait_listening(lab: Lab, process: LabProcess, ip: str) -> None:
    probe = [{"kind": "tcp", "ip": ip, "port": PORT, "timeout": 0.5}]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            break
        if lab.check(lab.topology.net, probe)[0]["outcome"] == "ok":
            return
        time.sleep(0.2)
    raise LabError(f"the MTProxy on {ip} did not start: {process.log_tail()}")


@pytest.fixture(scope="module")
def proxies(lab: Lab) -> Iterator[Lab]:
    if not probe_supports("proxy", "check"):
        skip_or_fail("the probe has no `probe proxy check`")
    topology, started = lab.topology, []
    for ip in PROXY_IPS:
        topology.ns_run(topology.net, ["ip", "addr", "add", f"{ip}/32", "dev", "nc0"])
    try:
        for ip in PROXY_IPS:
            process = topology.spawn(
                f"mtproxy-{ip}", topology.net,
                [sys.executable, "-m", "tests.servers.mtproxy_server", "--host", ip, "--port",
                 str(PORT), "--secret", KEY.hex(), "--domain", DOMAIN, "--upstream",
                 f"{DC_IPS[0]}:443"],
                ready_line=None,
            )  # fmt: skip
            started.append(process)
            _wait_listening(lab, process, ip)
        yield lab
    finally:
        for process in started:
            topology.stop(process)
        for ip in PROXY_IPS:
            topology.ns_run(
                topology.net, ["ip", "addr", "del", f"{ip}/32", "dev", "nc0"], check=False
            )
        lab.clear()


def _check_links(lab: Lab) -> tuple[list[dict[str, Any]], str, str]:
    links = [
        f"tg://proxy?server={ip}&port={PORT}&secret={SECRETS[kind]}"
        for ip in PROXY_IPS
        for kind in ("fake_tls", "padded")
    ]
    command = [
        "ip", "netns", "exec", lab.topology.client, str(PROBE_BIN), "--lang", "en", "proxy",
        "check", "--yes", "--timeout", "1.5", "-",
    ]  # fmt: skip
    plain = subprocess.run(
        command, input="\n".join(links), capture_output=True, text=True, timeout=120, check=False
    )
    as_json = subprocess.run(
        [*command[:-1], "--json", "-"], input="\n".join(links), capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert plain.returncode == 0 and as_json.returncode == 0, plain.stderr + as_json.stderr
    records = [json.loads(line) for line in as_json.stdout.splitlines()]
    for secret in SECRETS.values():  # the secret went to the proxies only, never to output
        for text in (plain.stdout, plain.stderr, as_json.stdout, as_json.stderr):
            assert secret not in text and KEY.hex() not in text
    return records, plain.stdout, as_json.stderr


def _apply(lab: Lab, scenario: Scenario) -> None:
    lab.apply(scenario)
    problems = []
    for where, ns in (("client", lab.topology.client), ("control", lab.topology.ctrl)):
        wanted: list[SelfCheck] = [c for c in scenario.self_checks if c.where == where]
        for check, result in zip(
            wanted, lab.check(ns, [dict(c.check) for c in wanted]), strict=True
        ):
            if not check.matches(result):
                problems.append(
                    f"{where}: {check.describe()}: expected {check.expect}, got {result}"
                )
    if problems:
        raise LabError(f"the lab is broken for {scenario.name}:\n" + "\n".join(problems))


def test_a_censor_dropping_fake_tls_to_one_proxy_is_named(proxies: Lab) -> None:
    _apply(proxies, FAKE_TLS_DROPPED)
    records, text, _ = _check_links(proxies)
    got = [(r["proxy"], r["kind"], r["verdict"]["status"]) for r in records]
    assert got == [
        (f"{PROXY_IPS[0]}:{PORT}", "fake_tls", "kind_filtered"),
        (f"{PROXY_IPS[0]}:{PORT}", "padded", "works"),
        (f"{PROXY_IPS[1]}:{PORT}", "fake_tls", "works"),
        (f"{PROXY_IPS[1]}:{PORT}", "padded", "works"),
    ], text
    blocked = records[0]["attempts"][0]
    assert (blocked["failure"], blocked["failed_operation"]) == (
        "generic_timeout_error", "mtproxy_fake_tls",
    )  # fmt: skip
    assert f"{PROXY_IPS[0]}:{PORT} fake-TLS (ee secret): does not work from here" in text
    assert "the disguised TLS hello got no answer (dropped)" in text
    assert "so this network treats fake-TLS (ee secret) differently" in text


def test_no_censor_no_false_positive(proxies: Lab) -> None:
    _apply(proxies, NO_CENSOR)
    records, text, _ = _check_links(proxies)
    assert [r["verdict"]["status"] for r in records] == ["works"] * 4, text
    assert all(r["attempts"][0]["mtproto"]["reply"] == "res_pq" for r in records)
    assert "does not work" not in text
    assert "Proxy kinds that got through: fake-TLS (ee secret), padded (dd secret)." in text
    assert "did not" not in text
