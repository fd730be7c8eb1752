"""STUN reachability of a messenger's call server (`stun_port` on a dns target): the step
against a real STUN server on loopback (and its hostile modes), the target's flow, the control
measuring the same, the analysis rule, the list field's validation, and privacy: the mapped
address a reply carries (the volunteer's own) is never kept, recorded or logged."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import jsonschema
import pytest

from probe import failures
from probe.analysis import judge
from probe.analysis.case import Case, TargetFacts, VantageFacts
from probe.analysis.stun import judge_stun
from probe.cli import main
from probe.control.client import ControlClient
from probe.observations import Observations, StunCheck, Trace
from probe.round.measure import MeasureConfig, RunState, measure_target
from probe.steps import dns
from probe.steps.stun import stun_check
from probe.steps.stun_wire import MAX_STUN_REQUESTS
from probe.targets import Target
from probe.targets.loader import bundled_list_paths, load_lists, parse_list_text
from tests.control_helpers import running_control
from tests.loopback_world import SCHEMA_PATH
from tests.servers.dns_server import DNSServer
from tests.servers.stun_server import STUNServer

TIMEOUT = 1.5
HANG_BOUND = 3 * TIMEOUT + 2
PROBE = "127.0.0.2"
#: what a lying server says our address is: distinctive, so a leak is easy to see
MAPPED = "198.51.100.77"
SCHEMA = json.loads(SCHEMA_PATH.read_text())


def _trace() -> Trace:
    return Trace(zero=time.monotonic(), transaction_id=7)


async def test_a_valid_reply_is_recorded_without_the_mapped_address(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    for behaviour in ("normal", "lie", "mapped"):
        async with STUNServer(behaviour, lie_address=MAPPED) as server:
            check = await stun_check(
                *server.address, trace=_trace(), timeout=TIMEOUT, source_address=PROBE
            )
        assert check.success and check.failure is None, (behaviour, check)
        assert check.requests == 1 and check.rtt is not None and check.rtt >= 0
        assert check.address == "127.0.0.1" and check.transaction_id == 7
        text = json.dumps(check.to_dict())
        assert MAPPED not in text and PROBE not in text, text
    assert MAPPED not in caplog.text and PROBE not in caplog.text


@pytest.mark.parametrize(
    ("behaviour", "failure"),
    [
        ("silence", failures.GENERIC_TIMEOUT),
        ("garbage", failures.STUN_INVALID_REPLY),
        ("wrong_id", failures.STUN_WRONG_TRANSACTION_ID),
        ("error", failures.STUN_ERROR_RESPONSE),
        ("no_address", failures.STUN_INVALID_REPLY),
        ("flood", failures.STUN_WRONG_TRANSACTION_ID),
    ],
)
async def test_hostile_servers_are_failures_within_bounds(behaviour: str, failure: str) -> None:
    async with STUNServer(behaviour, lie_address=MAPPED, error_code=420) as server:
        started = time.monotonic()
        check = await stun_check(*server.address, trace=_trace(), timeout=TIMEOUT)
        assert time.monotonic() - started < HANG_BOUND
    assert not check.success and check.failure == failure, check
    assert check.rtt is None and 1 <= check.requests <= MAX_STUN_REQUESTS
    if behaviour == "error":
        assert check.error_code == 420 and check.requests == 1
    if behaviour == "silence":  # retransmitted, bounded, with the same transaction id
        assert check.requests == MAX_STUN_REQUESTS
        assert len({r.transaction_id for r in server.received}) == 1
    assert MAPPED not in json.dumps(check.to_dict())


async def test_a_closed_port_is_connection_refused() -> None:
    async with STUNServer() as server:
        port = server.port
    check = await stun_check("127.0.0.1", port, trace=_trace(), timeout=TIMEOUT)
    assert check.failure == failures.CONNECTION_REFUSED and not check.success


# --- a target with stun_port ------------------------------------------------------------------


def _target(port: int, host: str = "stun.localhost") -> Target:
    return Target.from_wire(
        {"id": "facebook_messenger/stun", "service": "facebook_messenger", "check": "dns",
         "host": host, "stun_port": port}
    )  # fmt: skip


ZONE = {"stun.localhost": {"A": ["127.0.0.1"]}}


def _state(resolver_address: tuple[str, int]) -> RunState:
    resolver = dns.Resolver(resolver_address, pool=None)
    config = MeasureConfig(timeout=TIMEOUT, source_address=PROBE, resolver=resolver_address)
    return RunState(config=config, resolver=resolver)


def _case(target: Target, probe: Observations, control: Observations | None = None,
          ipv6_ok: bool | None = None) -> Case:  # fmt: skip
    vantage = VantageFacts(baseline_ok=1, baseline_total=1, control_reachable=control is not None,
                           ipv6_ok=ipv6_ok)  # fmt: skip
    return Case(TargetFacts.from_wire(target.to_wire()), probe, control, vantage=vantage)


async def test_a_dns_target_with_stun_port_sends_a_binding_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with STUNServer("lie", lie_address=MAPPED) as server, DNSServer(ZONE) as resolver:
        target = _target(server.port)
        observations = await measure_target(target, _state(resolver.address))
    [check] = observations.stun
    assert check.success and check.port == server.port
    record = observations.to_dict()
    assert record["x_stun"] == [check.to_dict()]
    assert Observations.from_dict(record).stun == [check]
    assert MAPPED not in json.dumps(record) and MAPPED not in caplog.text
    stun_schema = {"$defs": SCHEMA["$defs"], "$ref": "#/$defs/stun"}  # no mapped address
    jsonschema.Draft202012Validator(stun_schema).validate(record["x_stun"][0])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(stun_schema).validate({**check.to_dict(), "mapped": "x"})
    verdict = judge(_case(target, observations, observations)).verdict  # the control agrees
    assert verdict.status == "ok" and verdict.to_dict()["x_stun"]["status"] == "ok"
    assert "STUN" not in verdict.reason


async def test_stun_dropped_here_while_the_control_gets_answers_is_blocked() -> None:
    async with (
        STUNServer("normal", by_peer={PROBE: "silence"}) as server,
        DNSServer(ZONE) as resolver,
    ):
        target = _target(server.port)
        here = await measure_target(target, _state(resolver.address))
        async with running_control(resolver=resolver.address) as url:  # from 127.0.0.3
            client = ControlClient(
                [url], token=None, timeout=10.0, resolver=dns.Resolver(resolver.address, pool=None)
            )
            reply = await client.measure([target])
    control = reply.observations[target.id]
    assert here.stun[0].failure == failures.GENERIC_TIMEOUT
    assert control.stun[0].success
    verdict = judge(_case(target, here, control)).verdict
    assert verdict.status == "blocked" and verdict.blocking == "protocol"
    assert verdict.to_dict()["x_stun"] == {
        "status": "failing", "evidence": "udp-blocked-here", "failure": "generic_timeout_error",
    }  # fmt: skip
    assert "UDP to it is blocked on this network" in verdict.reason
    # without a control: no proof, STUN changes nothing (a DNS-only target is inconclusive)
    alone = judge(_case(target, here)).verdict
    assert alone.status == "inconclusive" and alone.stun == {
        "status": "failing", "evidence": None, "failure": "generic_timeout_error",
    }  # fmt: skip
    # the control fails too: the server does not answer STUN, no evidence
    down = judge(_case(target, here, here)).verdict
    assert down.status == "ok" and down.stun is not None and down.stun["status"] == "unanswered"


async def test_the_control_refuses_private_stun_destinations() -> None:
    target = _target(3478, host="127.0.0.1")
    async with running_control(allow_nets=()) as url:
        client = ControlClient(
            [url], token=None, timeout=10.0, resolver=dns.Resolver(("127.0.0.1", 9), pool=None)
        )
        reply = await client.measure([target])
    [check] = reply.observations[target.id].stun
    assert check.failure == failures.CONTROL_REFUSED_DESTINATION and not check.success
    here = Observations(stun=[StunCheck("127.0.0.1", 3478, failure=failures.GENERIC_TIMEOUT)])
    finding = judge_stun(here, reply.observations[target.id])
    assert finding is not None and finding.status == "failing" and finding.evidence is None


def test_an_error_response_here_is_no_proof_and_ipv6_without_ipv6_is_left_out() -> None:
    control = Observations(stun=[StunCheck("192.0.2.1", 3478, success=True)])
    error = Observations(stun=[StunCheck("192.0.2.1", 3478, failure=failures.STUN_ERROR_RESPONSE)])
    finding = judge_stun(error, control)
    assert finding is not None and finding.evidence is None and finding.status == "failing"
    v6_only = Observations(
        stun=[StunCheck("2001:db8::1", 3478, failure=failures.NETWORK_UNREACHABLE)]
    )
    assert judge_stun(v6_only, control, ipv6_ok=False) is None
    assert judge_stun(Observations(), control) is None
    assert "x_stun" not in Observations().to_dict()


# --- the list field ---------------------------------------------------------------------------

_LIST = """[list]
name = "m"
updated = 2026-12-01

[[targets]]
id = "facebook_messenger/stun"
service = "facebook_messenger"
check = "{check}"
host = "stun.example"
{extra}stun_port = {port}
"""


@pytest.mark.parametrize(
    ("check", "extra", "port", "problem"),
    [
        ("dns", "", "0", "list.toml:10: stun_port 0 out of range 1..65535"),
        ("dns", "", "65536", "list.toml:10: stun_port 65536 out of range 1..65535"),
        ("dns", "", '"3478"', 'list.toml:10: "stun_port" must be an integer, not a string'),
        (
            "tcp",
            "ports = [443]\n",
            "3478",
            'list.toml:11: "stun_port" is not allowed for check "tcp"',
        ),
    ],
)
def test_bad_stun_port_values_name_file_line_and_field(
    check: str, extra: str, port: str, problem: str
) -> None:
    result = parse_list_text(_LIST.format(check=check, extra=extra, port=port), "list.toml")
    assert len(result.problems) == 1 and result.problems[0].startswith(problem), result.problems


def test_probe_targets_validate_exits_2_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "list.toml"
    path.write_text(_LIST.format(check="dns", extra="", port="70000"))
    with pytest.raises(SystemExit) as exit_info:
        main(["targets", "validate", str(path)])
    err = capsys.readouterr().err
    assert (
        exit_info.value.code == 2 and f"{path}:10: stun_port 70000 out of range 1..65535" in err
    ), err


def test_the_bundled_facebook_stun_target_opts_in() -> None:
    result = load_lists([p for p in bundled_list_paths() if "facebook_messenger" in p])
    [stun] = [t for t in result.targets if t.id == "facebook_messenger/stun"]
    assert stun.check == "dns" and stun.stun_port == 3478
    assert stun.to_wire(["stun_port"]) == {"stun_port": 3478}
