"""The SNI swap and residual blocking (issue 19 items 1-2): after a failed TLS handshake the
probe tries a benign name on the same address, the target's name on a neutral server, and
(with a residual window) re-tests the benign flow until the censor lets it through. Real
loopback servers: a trustme TLS server behind an SNI-filtering middlebox
(tests/servers/sni_filter.py) that censors only the probe's source address (127.0.0.2), so
the control (127.0.0.3) measures the same endpoint uncensored."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from click.testing import CliRunner

from probe import failures
from probe.analysis import analyze, judge
from probe.analysis.case import Case, TargetFacts, VantageFacts
from probe.cli import cli
from probe.control.neutral_tls import start_neutral_tls
from probe.observations import Observations, TLSHandshake
from probe.observations.connections import (
    NEUTRAL_CONTROL,
    RESIDUAL,
    SNI_NEUTRAL,
    SNI_SWAP,
    TCPConnect,
)
from probe.round.measure import MeasureConfig, RunState, measure_target
from probe.round.measure.endpoint import Flow
from probe.round.measure.sni_swap import extra_handshake, residual_interval
from probe.steps import dns as probe_dns
from probe.targets import Target
from tests.servers.certs import TestPKI, make_pki
from tests.servers.sni_filter import SNIFilter
from tests.servers.tls_server import TLSBehaviour, TLSServer
from tests.test_tcp import CONTROL_SOURCE, PROBE_SOURCE

TIMEOUT = 1.0
NAME = "test.localhost"
BENIGN = "benign.localhost"


@pytest.fixture
def tls_pki() -> TestPKI:
    return make_pki()


@pytest.fixture
def ca_file(tls_pki: TestPKI, tmp_path) -> str:
    return tls_pki.write_ca_file(tmp_path)


def _target(port: int) -> Target:
    return Target(id="t/tls", service="t", check="tls", host="127.0.0.1", sni=NAME, ports=(port,))


async def _measure(target: Target, ca_file: str, source: str, **config: Any) -> Observations:
    measure = MeasureConfig(timeout=TIMEOUT, ca_files=(ca_file,), source_address=source, **config)
    resolver = probe_dns.Resolver(("127.0.0.1", 9), pool=None, duplicate_window=0.01)
    return await measure_target(target, RunState(config=measure, resolver=resolver))


async def _probe_and_control(
    target: Target, ca_file: str, **config: Any
) -> tuple[Observations, Observations]:
    probe = await _measure(target, ca_file, PROBE_SOURCE, neutral_sni=BENIGN, **config)
    control = await _measure(target, ca_file, CONTROL_SOURCE)
    return probe, control


def _record(target: Target, probe: Observations, control: Observations | None) -> dict[str, Any]:
    test_keys: dict[str, Any] = {
        "target": target.to_wire(),
        **probe.to_dict(),
        "control": control.to_dict() if control is not None else None,
        "x_vantage": {"baseline_ok": 1, "baseline_total": 1, "control_reachable": True},
    }
    # through JSON, as a stored record
    return {"probe_cc": "ZZ", "test_keys": json.loads(json.dumps(test_keys))}


def _judge(target: Target, probe: Observations, control: Observations) -> dict[str, Any]:
    case = Case(
        target=TargetFacts.from_wire(target.to_wire()),
        probe=probe,
        control=control,
        vantage=VantageFacts(baseline_ok=1, baseline_total=1, control_reachable=True),
    )
    live = judge(case).to_dict()
    stored = analyze(_record(target, probe, control)).to_dict()
    assert stored == live  # the verdict is a pure function of the record
    return live


def _purposes(obs: Observations) -> list[str | None]:
    return [h.x_purpose for h in obs.tls_handshakes]


async def test_sni_filter_named_when_a_benign_name_gets_through(tls_pki: TestPKI, ca_file) -> None:
    async with TLSServer(tls_pki.good) as server:
        async with SNIFilter(("127.0.0.1", server.port), names=[NAME]) as middlebox:
            target = _target(middlebox.port)
            probe, control = await _probe_and_control(target, ca_file)
    assert _purposes(probe) == [None, SNI_SWAP]
    own, swap = probe.tls_handshakes
    assert own.failure == failures.CONNECTION_RESET and own.server_name == NAME
    assert swap.failure is None and swap.server_name == BENIGN and swap.no_tls_verify
    assert swap.transaction_id != own.transaction_id
    assert [c.x_purpose for c in probe.tcp_connect] == [None, SNI_SWAP]
    result = _judge(target, probe, control)
    verdict = result["verdict"]
    assert (verdict["status"], verdict["blocking"]) == ("blocked", "tls")
    assert verdict["x_evidence"] == "sni-filter"
    assert "SNI filtering" in verdict["reason"]
    assert "x_residual" not in verdict
    # the swap is not an attempt on the endpoint: one endpoint, blocked at the handshake
    assert [(e["outcome"], e["failed_operation"]) for e in result["x_endpoints"]] == [
        ("blocked", "tls_handshake")
    ]
    assert control.tls_handshakes[0].failure is None and _purposes(control) == [None]


async def test_ip_filter_when_every_name_fails_on_the_address(tls_pki: TestPKI, ca_file) -> None:
    """Every ClientHello to the address is reset; the target's name completes on a neutral
    server: the address is filtered, not the name."""
    async with TLSServer(tls_pki.good) as server, TLSServer(tls_pki.good) as neutral:
        async with SNIFilter(("127.0.0.1", server.port), every_hello=True) as middlebox:
            target = _target(middlebox.port)
            probe, control = await _probe_and_control(
                target, ca_file, neutral_server=("127.0.0.1", neutral.port)
            )
    assert _purposes(probe) == [None, SNI_SWAP, NEUTRAL_CONTROL, SNI_NEUTRAL]
    assert [h.failure is None for h in probe.tls_handshakes] == [False, False, True, True]
    verdict = _judge(target, probe, control)["verdict"]
    assert (verdict["blocking"], verdict["x_evidence"]) == ("tls", "ip-filter")
    assert "address filtering" in verdict["reason"]


async def test_name_failing_on_the_neutral_server_is_sni_filtering(
    tls_pki: TestPKI,
    ca_file,
) -> None:
    """The censor punishes the client after a trigger (so the swap fails too), but the
    target's name fails on a neutral server where a benign name completes: SNI filtering."""
    async with TLSServer(tls_pki.good) as server, TLSServer(tls_pki.good) as neutral_server:
        upstream = ("127.0.0.1", server.port)
        async with (
            SNIFilter(upstream, names=[NAME], residual=30) as middlebox,
            SNIFilter(("127.0.0.1", neutral_server.port), names=[NAME]) as neutral,
        ):
            target = _target(middlebox.port)
            probe, control = await _probe_and_control(
                target, ca_file, neutral_server=("127.0.0.1", neutral.port)
            )
    assert _purposes(probe) == [None, SNI_SWAP, NEUTRAL_CONTROL, SNI_NEUTRAL]
    assert [h.failure is None for h in probe.tls_handshakes] == [False, False, True, False]
    assert neutral.seen_names == [BENIGN, NAME]
    verdict = _judge(target, probe, control)["verdict"]
    assert verdict["x_evidence"] == "sni-filter"


async def test_residual_blocking_measured(tls_pki: TestPKI, ca_file) -> None:
    """After the trigger every connection of the client is reset for PENALTY seconds: the
    probe re-tests the benign flow until it completes and records how long that took."""
    penalty = 2.0
    async with TLSServer(tls_pki.good) as server, TLSServer(tls_pki.good) as neutral:
        upstream = ("127.0.0.1", server.port)
        async with SNIFilter(upstream, names=[NAME], residual=penalty) as middlebox:
            target = _target(middlebox.port)
            probe, control = await _probe_and_control(
                target,
                ca_file,
                residual_window=20.0,
                neutral_server=("127.0.0.1", neutral.port),
            )
    purposes = [c.x_purpose for c in probe.tcp_connect]
    assert purposes[:2] == [None, SNI_SWAP] and RESIDUAL in purposes
    verdict = _judge(target, probe, control)["verdict"]
    lasted = verdict["x_residual"]
    assert lasted["ended"] is True and lasted["samples"] >= 2 and lasted["failed"] >= 1
    # the censor's penalty bounds it from below; the window from above
    assert penalty - 0.5 <= lasted["seconds"] < 20.0
    assert lasted["at_least"] < lasted["seconds"]
    assert lasted["neutral_failed"] == 0 and lasted["neutral_samples"] == lasted["samples"]
    assert verdict["x_evidence"] == "sni-filter"  # a benign sample got through in the end
    assert "residual blocking" in verdict["reason"]


async def test_no_residual_after_the_swap_works(tls_pki: TestPKI, ca_file) -> None:
    """A censor without residual blocking: the swap completes at once, no samples are taken
    (quiet: no x_residual)."""
    async with TLSServer(tls_pki.good) as server:
        async with SNIFilter(("127.0.0.1", server.port), names=[NAME]) as middlebox:
            target = _target(middlebox.port)
            probe, control = await _probe_and_control(target, ca_file, residual_window=20.0)
    assert _purposes(probe) == [None, SNI_SWAP]
    verdict = _judge(target, probe, control)["verdict"]
    assert verdict["x_evidence"] == "sni-filter" and "x_residual" not in verdict


async def test_success_makes_no_extra_connection(tls_pki: TestPKI, ca_file) -> None:
    """Quiet when nothing is blocked: one connection, no x_purpose anywhere, no evidence."""
    async with TLSServer(tls_pki.good) as server, TLSServer(tls_pki.good) as neutral:
        async with SNIFilter(("127.0.0.1", server.port), names=["other.localhost"]) as mb:
            target = _target(mb.port)
            probe, control = await _probe_and_control(
                target,
                ca_file,
                residual_window=20.0,
                neutral_server=("127.0.0.1", neutral.port),
            )
    assert len(probe.tcp_connect) == 1 and len(probe.tls_handshakes) == 1
    assert mb.seen_names == [NAME, NAME]  # the probe's and the control's handshakes only
    record = probe.to_dict()
    assert "x_purpose" not in json.dumps(record)
    verdict = _judge(target, probe, control)["verdict"]
    assert verdict["status"] == "ok"
    assert "x_evidence" not in verdict and "x_residual" not in verdict


async def test_the_control_never_swaps(tls_pki: TestPKI, ca_file) -> None:
    """Without neutral_sni (the control's configuration) a failed handshake is all there is."""
    async with TLSServer(tls_pki.good, behaviour=TLSBehaviour.RESET) as server:
        obs = await _measure(_target(server.port), ca_file, CONTROL_SOURCE)
    assert _purposes(obs) == [None] and len(obs.tcp_connect) == 1


@pytest.mark.parametrize(
    "behaviour", [TLSBehaviour.SILENT, TLSBehaviour.GARBAGE, TLSBehaviour.CLOSE]
)
async def test_hostile_servers_give_failures_and_end(
    tls_pki: TestPKI,
    ca_file,
    behaviour: TLSBehaviour,
) -> None:
    """The target and the neutral server both misbehave: every extra handshake fails with a
    failure string, and the flow ends within its step timeouts."""
    async with (
        TLSServer(tls_pki.good, behaviour=behaviour) as server,
        TLSServer(tls_pki.good, behaviour=behaviour) as neutral,
    ):
        started = time.monotonic()
        probe = await _measure(
            _target(server.port),
            ca_file,
            PROBE_SOURCE,
            neutral_sni=BENIGN,
            neutral_server=("127.0.0.1", neutral.port),
            residual_window=2.5,
        )
        elapsed = time.monotonic() - started
    # own + swap + residual samples + neutral control + neutral: each at most two timeouts
    samples = sum(1 for h in probe.tls_handshakes if h.x_purpose is not None)
    assert elapsed <= (samples + 1) * 2 * TIMEOUT + 2.5 + 2
    assert all(h.failure for h in probe.tls_handshakes)
    assert {h.x_purpose for h in probe.tls_handshakes} >= {None, SNI_SWAP, SNI_NEUTRAL}
    # without a control: no verdict at `tls`, so nothing is concluded from the extras
    verdict = analyze(_record(_target(server.port), probe, None)).to_dict()["verdict"]
    assert verdict["status"] == "inconclusive" and "x_evidence" not in verdict


async def test_neutral_tls_server_accepts_any_name() -> None:
    """The control's neutral server completes a handshake for any name (unverified)."""
    server = await start_neutral_tls("127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    try:
        measure = MeasureConfig(timeout=TIMEOUT)
        state = RunState(config=measure, resolver=probe_dns.Resolver(("127.0.0.1", 9), pool=None))
        for name in ("web.telegram.org", "www.example.com", "anything.invalid"):
            flow = Flow(state, time.monotonic())
            assert await extra_handshake("127.0.0.1", port, name, SNI_NEUTRAL, flow)
            assert flow.observations.tls_handshakes[0].server_name == name
    finally:
        server.close()
        await server.wait_closed()


def test_unknown_purposes_are_dropped_from_stored_records() -> None:
    """A stored record cannot invent a purpose: an unknown x_purpose reads as none."""
    handshake = TLSHandshake("127.0.0.1:443", NAME, failure=None, x_purpose=SNI_SWAP)
    d = handshake.to_dict()
    assert TLSHandshake.from_dict(d).x_purpose == SNI_SWAP
    d["x_purpose"] = "something_else"
    assert TLSHandshake.from_dict(d).x_purpose is None
    connect = TCPConnect("127.0.0.1", 443, True, x_purpose=RESIDUAL).to_dict()
    assert TCPConnect.from_dict(connect).x_purpose == RESIDUAL
    assert "x_purpose" not in TCPConnect("127.0.0.1", 443, True).to_dict()


def test_residual_interval_bounds_the_samples() -> None:
    assert residual_interval(10) == 1.0
    assert residual_interval(600) == 5.0
    assert residual_interval(10_000) == 5.0


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--residual-window", "601"], "--residual-window 601.0"),
        (["--residual-window", "-1"], "--residual-window -1.0"),
        (["--neutral-sni", "1.2.3.4"], "--neutral-sni 1.2.3.4"),
        (["--neutral-sni", "no spaces"], "--neutral-sni no spaces"),
        (["--neutral-server", "neutral.example"], "--neutral-server neutral.example"),
        (["--neutral-server", "127.0.0.1:99999"], "--neutral-server 127.0.0.1:99999"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(tmp_path, args: list[str], named: str) -> None:
    result = CliRunner().invoke(
        cli, ["run", "--no-control", "--yes", "--out", str(tmp_path), *args]
    )
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and named in lines[0], result.output


async def test_address_blocked_for_good_is_not_called_residual(
    tls_pki: TestPKI, ca_file: str
) -> None:
    """Every ClientHello to the address is reset for the whole window: the samples never get
    through (x_residual.ended is false), the evidence is address filtering, and the reason
    does not claim residual blocking."""
    async with TLSServer(tls_pki.good) as server, TLSServer(tls_pki.good) as neutral:
        async with SNIFilter(("127.0.0.1", server.port), every_hello=True) as middlebox:
            target = _target(middlebox.port)
            probe, control = await _probe_and_control(
                target,
                ca_file,
                residual_window=2.5,
                neutral_server=("127.0.0.1", neutral.port),
            )
    verdict = _judge(target, probe, control)["verdict"]
    lasted = verdict["x_residual"]
    assert lasted["ended"] is False and lasted["seconds"] is None
    assert lasted["failed"] == lasted["samples"] >= 2
    assert lasted["failures"] == [failures.CONNECTION_RESET]
    assert verdict["x_evidence"] == "ip-filter"
    assert "residual blocking" not in verdict["reason"]
    assert "the name completes on a neutral server" in verdict["reason"]


def test_control_neutral_tls_port_is_checked() -> None:
    result = CliRunner().invoke(cli, ["control", "serve", "--neutral-tls-port", "70000"])
    assert result.exit_code == 2, result.output
    assert "--neutral-tls-port 70000" in result.output


async def test_without_a_control_the_swap_is_local_evidence(tls_pki: TestPKI, ca_file: str) -> None:
    """No control: a reset handshake with the target's name on an address where a benign
    name completes is blocked at tls (unconfirmed), named sni-filter; a wrong certificate
    (not a censor's failure) is not."""
    async with TLSServer(tls_pki.good) as server:
        async with SNIFilter(("127.0.0.1", server.port), names=[NAME]) as middlebox:
            target = _target(middlebox.port)
            probe = await _measure(target, ca_file, PROBE_SOURCE, neutral_sni=BENIGN)
    result = analyze(_record(target, probe, None)).to_dict()
    verdict = result["verdict"]
    assert (verdict["status"], verdict["blocking"], verdict["confirmed"]) == (
        "blocked",
        "tls",
        False,
    )
    assert verdict["x_evidence"] == "sni-filter"
    assert "local evidence only" in verdict["reason"]
    async with TLSServer(tls_pki.wrong_name) as server:
        probe = await _measure(_target(server.port), ca_file, PROBE_SOURCE, neutral_sni=BENIGN)
    assert [h.x_purpose for h in probe.tls_handshakes] == [None, SNI_SWAP]
    verdict = analyze(_record(_target(server.port), probe, None)).to_dict()["verdict"]
    assert verdict["status"] == "inconclusive" and "x_evidence" not in verdict


async def test_no_swap_when_no_name_was_sent(tls_pki: TestPKI, ca_file: str) -> None:
    """A URL whose host is an address sends no SNI: there is no name to swap."""
    async with TLSServer(tls_pki.good, behaviour=TLSBehaviour.RESET) as server:
        target = Target(
            id="t/ip", service="t", check="https", url=f"https://127.0.0.1:{server.port}/"
        )
        probe = await _measure(target, ca_file, PROBE_SOURCE, neutral_sni=BENIGN)
    assert [h.x_purpose for h in probe.tls_handshakes] == [None]
    assert probe.tls_handshakes[0].failure == failures.CONNECTION_RESET
