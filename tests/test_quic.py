"""The QUIC step against a real aioquic server on loopback with trustme certificates: a
handshake with ALPN h3, every certificate failure, a refused ALPN, silence, bounded time."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest

from probe import failures
from probe.analysis import judge
from probe.analysis.case import Case, TargetFacts, VantageFacts
from probe.control.client import ControlClient
from probe.control.neutral_quic import start_neutral_quic
from probe.observations import Observations, Trace
from probe.round.measure import MeasureConfig, RunState, measure_target
from probe.steps import dns
from probe.steps.quic import quic_handshake
from probe.targets import Target
from tests.control_helpers import running_control
from tests.servers.certs import TestPKI, pki, pki_ca_file  # noqa: F401
from tests.servers.quic_server import QuicServer, write_leaf
from tests.servers.tls_server import TLSServer

TIMEOUT = 1.0
HANG_BOUND = 3 * TIMEOUT + 2


def _trace() -> Trace:
    return Trace(zero=time.monotonic(), transaction_id=1)


async def _handshake(
    leaf: object, tmp_path: Path, ca_file: str, *, name: str = "test.localhost", mode: str = "ok"
):
    cert, key = write_leaf(leaf, tmp_path)
    async with QuicServer(cert, key, mode=mode) as server:
        started = time.monotonic()
        observation = await quic_handshake(
            "127.0.0.1", server.port, name, trace=_trace(), timeout=TIMEOUT, ca_files=(ca_file,)
        )
        assert time.monotonic() - started < HANG_BOUND
    return observation


async def test_a_quic_handshake_with_h3(pki: TestPKI, pki_ca_file: str, tmp_path: Path) -> None:  # noqa: F811
    observation = await _handshake(pki.good, tmp_path, pki_ca_file)
    assert observation.failure is None, observation
    assert observation.network == "quic" and observation.negotiated_protocol == "h3"
    assert observation.tls_version == "TLSv1.3" and observation.cipher_suite
    assert observation.peer_certificates
    assert observation.to_dict()["network"] == "quic"


@pytest.mark.parametrize(
    ("leaf", "name", "failure"),
    [
        ("wrong_name", "test.localhost", failures.SSL_INVALID_HOSTNAME),
        ("good", "other.example", failures.SSL_INVALID_HOSTNAME),
        ("expired", "test.localhost", failures.SSL_INVALID_CERTIFICATE),
        ("unknown_ca", "test.localhost", failures.SSL_UNKNOWN_AUTHORITY),
    ],
)
async def test_certificate_failures(
    pki: TestPKI,  # noqa: F811
    pki_ca_file: str,  # noqa: F811
    tmp_path: Path,
    leaf: str,
    name: str,
    failure: str,
) -> None:
    observation = await _handshake(getattr(pki, leaf), tmp_path, pki_ca_file, name=name)
    assert (observation.failure, observation.failed_operation) == (failure, "quic_handshake")


async def test_a_refused_alpn_is_a_failed_handshake(
    pki: TestPKI,  # noqa: F811
    pki_ca_file: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    observation = await _handshake(pki.good, tmp_path, pki_ca_file, mode="wrong_alpn")
    assert observation.failure == failures.SSL_FAILED_HANDSHAKE


async def test_silence_is_a_timeout_within_bounds(pki_ca_file: str) -> None:  # noqa: F811
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as quiet:  # bound, never answers
        quiet.bind(("127.0.0.1", 0))
        started = time.monotonic()
        observation = await quic_handshake(
            "127.0.0.1", quiet.getsockname()[1], "test.localhost", trace=_trace(),
            timeout=TIMEOUT, ca_files=(pki_ca_file,),
        )  # fmt: skip
        assert time.monotonic() - started < HANG_BOUND
    assert observation.failure == failures.GENERIC_TIMEOUT
    assert observation.peer_certificates == []


# --- a target with quic = true: measured beside TLS, judged as evidence only ---------------------


def _target(port: int) -> Target:
    return Target.from_wire(
        {"id": "web/quic", "check": "tls", "host": "127.0.0.1", "sni": "test.localhost",
         "ports": [port], "quic": True}
    )  # fmt: skip


def _state(ca_file: str) -> RunState:
    resolver = dns.Resolver(("127.0.0.1", 9), pool=None)  # IP literals only: never asked
    return RunState(config=MeasureConfig(timeout=TIMEOUT, ca_files=(ca_file,)), resolver=resolver)


def _case(target: Target, probe: Observations, control: Observations | None = None,
          neutral: bool | None = None) -> Case:  # fmt: skip
    vantage = VantageFacts(baseline_ok=1, baseline_total=1, control_reachable=control is not None,
                           neutral_quic_ok=neutral)  # fmt: skip
    return Case(TargetFacts.from_wire(target.to_wire()), probe, control, vantage=vantage)


async def _measure(pki: TestPKI, ca_file: str, tmp_path: Path, *, quic: bool) -> tuple:  # noqa: F811
    async with TLSServer(pki.good) as tls_server:
        target = _target(tls_server.port)
        if quic:
            cert, key = write_leaf(pki.good, tmp_path)
            async with QuicServer(cert, key, port=tls_server.port):
                return target, await measure_target(target, _state(ca_file))
        return target, await measure_target(target, _state(ca_file))


async def test_quic_and_tls_both_work(pki: TestPKI, pki_ca_file: str, tmp_path: Path) -> None:  # noqa: F811
    target, observations = await _measure(pki, pki_ca_file, tmp_path, quic=True)
    [quic] = observations.quic_handshakes
    assert quic.failure is None and quic.negotiated_protocol == "h3"
    assert observations.tls_handshakes[0].failure is None
    assert quic.transaction_id != observations.tls_handshakes[0].transaction_id
    verdict = judge(_case(target, observations)).verdict
    assert verdict.status == "ok" and verdict.to_dict()["x_quic"]["status"] == "ok"
    assert "QUIC" not in verdict.reason
    assert Observations.from_dict(observations.to_dict()).quic_handshakes == [quic]


async def test_quic_dropped_while_tls_works_is_evidence_not_blocking(
    pki: TestPKI,  # noqa: F811
    pki_ca_file: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    target, observations = await _measure(pki, pki_ca_file, tmp_path, quic=False)
    assert observations.quic_handshakes[0].failure == failures.GENERIC_TIMEOUT
    verdict = judge(_case(target, observations)).verdict
    assert verdict.status == "ok"  # never blocked by QUIC alone
    assert verdict.to_dict()["x_quic"] == {
        "status": "failing", "evidence": "quic", "failure": "generic_timeout_error",
    }  # fmt: skip
    assert "QUIC to it fails (generic_timeout_error) while TLS over TCP works" in verdict.reason
    # a neutral QUIC endpoint failing too: UDP 443 as a whole
    udp = judge(_case(target, observations, neutral=False)).verdict
    assert udp.status == "ok" and udp.to_dict()["x_quic"]["evidence"] == "udp-443"
    assert "blocked as a whole" in udp.reason
    # a neutral endpoint that works: this host's QUIC only
    assert judge(_case(target, observations, neutral=True)).verdict.quic["evidence"] == "quic"
    # the control's QUIC fails too: the server does not speak QUIC, no evidence
    unsupported = judge(_case(target, observations, control=observations)).verdict
    assert unsupported.quic == {
        "status": "unsupported", "evidence": None, "failure": "generic_timeout_error",
    }  # fmt: skip


def test_targets_without_quic_records_keep_their_shape() -> None:
    assert "quic_handshakes" not in Observations().to_dict()
    plain = Target.from_wire({"id": "web/x", "check": "tls", "host": "127.0.0.1", "sni": "a.b"})
    assert plain.quic is False and "quic" not in plain.to_wire()
    assert judge(_case(plain, Observations())).verdict.quic is None


# --- the control's neutral QUIC endpoint --------------------------------------------------------


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        return int(probe_socket.getsockname()[1])


async def test_the_neutral_endpoint_completes_unverified_handshakes_only() -> None:
    port = _free_udp_port()
    server = await start_neutral_quic("127.0.0.1", port)
    try:
        open_ = await quic_handshake(
            "127.0.0.1", port, "control.example", trace=_trace(), timeout=TIMEOUT, verify=False
        )
        checked = await quic_handshake(
            "127.0.0.1", port, "control.example", trace=_trace(), timeout=TIMEOUT
        )
    finally:
        server.close()
    assert open_.failure is None and open_.no_tls_verify and open_.negotiated_protocol == "h3"
    assert checked.failure == failures.SSL_INVALID_HOSTNAME  # self-signed, no names: unverifiable


async def test_the_control_announces_its_neutral_endpoint() -> None:
    target = Target.from_wire({"id": "web/x", "check": "tcp", "host": "127.0.0.1", "ports": [9]})
    for port, expected in ((4433, 4433), (None, None)):
        async with running_control(neutral_quic_port=port) as url:
            client = ControlClient(
                [url], token=None, timeout=10.0, resolver=dns.Resolver(("127.0.0.1", 9), pool=None)
            )
            reply = await client.measure([target])
        assert reply.failure is None and reply.neutral_quic_port == expected


def test_the_neutral_result_is_read_from_x_vantage() -> None:
    assert VantageFacts.from_wire({"neutral_quic_ok": False}).neutral_quic_ok is False
    assert VantageFacts.from_wire({"neutral_quic_ok": True}).neutral_quic_ok is True
    assert VantageFacts.from_wire({"neutral_quic_ok": "no"}).neutral_quic_ok is None
    assert VantageFacts.from_wire({}).neutral_quic_ok is None


async def test_a_peer_answering_garbage_datagrams_is_a_timeout_not_a_crash(
    pki_ca_file: str,  # noqa: F811
) -> None:
    class Garbage(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            self.transport.sendto(b"\x17\x03\x03" + bytes(range(200)) * 5, addr)  # type: ignore[attr-defined]

    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        Garbage, local_addr=("127.0.0.1", 0)
    )
    try:
        started = time.monotonic()
        observation = await quic_handshake(
            "127.0.0.1", transport.get_extra_info("sockname")[1], "test.localhost",
            trace=_trace(), timeout=TIMEOUT, ca_files=(pki_ca_file,),
        )  # fmt: skip
        assert time.monotonic() - started < HANG_BOUND
    finally:
        transport.close()
    assert observation.failure == failures.GENERIC_TIMEOUT


# --- the list field ---------------------------------------------------------------------------

_QUIC_LIST = """[list]
name = "m"
updated = 2026-12-01

[[targets]]
id = "telegram/web"
service = "telegram"
check = "{check}"
{where}
quic = {value}
"""


@pytest.mark.parametrize(
    ("check", "where", "value", "problem"),
    [
        ("https", 'url = "https://web.example/"', '"yes"', '"quic" must be true or false'),
        ("https", 'url = "https://web.example/"', "1", '"quic" must be true or false'),
    ],
)
def test_a_bad_quic_value_names_file_line_and_field(
    check: str, where: str, value: str, problem: str
) -> None:
    from probe.targets.loader import parse_list_text

    text = _QUIC_LIST.format(check=check, where=where, value=value)
    result = parse_list_text(text, "list.toml")
    assert len(result.problems) == 1, result.problems
    assert result.problems[0].startswith(f"list.toml:10: {problem}"), result.problems
