"""Follow-up checks (issue 19 items 3 and 4) against real local servers: the bulk endpoint
and the throttling check (probe/control/bulk.py, probe/steps/throttle.py), TTL sweeps
(probe/steps/ttl.py), and their pure judgements (probe/analysis/throttle.py,
censor_location.py, followups.py). The censor itself is reproduced in tests/lab/test_hops.py."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import Any

import dns.message
import pytest
from click.testing import CliRunner

from probe.analysis.censor_location import (
    AT_ENDPOINT,
    CENSOR_HOP,
    ENDPOINT_ANSWERED,
    NOT_FOUND,
    locate,
)
from probe.analysis.followups import amend
from probe.analysis.throttle import (
    INCONCLUSIVE,
    NOT_THROTTLED,
    THROTTLED,
    judge_throttle,
    sign_test_p,
)
from probe.analysis.vocabulary import Analysis, Status, Verdict
from probe.cli import cli
from probe.control.bulk import BulkServer, bulk_context
from probe.i18n.message import M
from probe.steps.throttle import bulk_sample, throttle_check
from probe.steps.ttl import (
    DNS_ANSWER,
    RESET,
    SILENT,
    TLS_HANDSHAKE,
    client_hello,
    ttl_sweep,
)

SLOW_NAME = "slow.example"


@contextlib.asynccontextmanager
async def bulk_server() -> AsyncIterator[int]:
    server = BulkServer("127.0.0.1", 0)
    port = await server.start()
    try:
        yield port
    finally:
        await server.close()


@contextlib.asynccontextmanager
async def sni_server(
    handler: Any,
) -> AsyncIterator[int]:
    """A TLS server whose handler gets the client's SNI (as a throttling or resetting
    server that picks flows by name would)."""
    context = bulk_context()
    names: dict[int, str | None] = {}

    def remember(obj: ssl.SSLObject, name: str | None, _: ssl.SSLContext) -> None:
        names[id(obj)] = name

    context.sni_callback = remember  # type: ignore[assignment]

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        name = names.pop(id(writer.get_extra_info("ssl_object")), None)
        with contextlib.suppress(OSError, ssl.SSLError):
            await handler(name, reader, writer)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def slow_for_one_name(
    name: str | None, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    await reader.readuntil(b"\r\n\r\n")
    size = 32 * 1024
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
    for _ in range(size // 4096):
        if name == SLOW_NAME:
            await asyncio.sleep(0.02)
        writer.write(bytes(4096))
        await writer.drain()


async def test_bulk_endpoint_serves_any_sni_and_bounds_the_object() -> None:
    async with bulk_server() as port:
        for name in ("web.telegram.org", "example.com"):
            sample = await bulk_sample("127.0.0.1", port, name, 100_000, 5.0)
            assert sample.failure is None
            assert sample.body_bytes == 100_000
            assert sample.goodput and sample.goodput > 0
            assert sample.t_first_byte is not None


async def test_same_speed_for_both_names_is_not_throttling() -> None:
    async with bulk_server() as port:
        check = await throttle_check("127.0.0.1", port, "web.telegram.org", pairs=6, size=65536)
    x = check.to_dict()
    assert len(x["samples"]) == 12
    assert [s["sni"] for s in x["samples"][:4]] == [
        "web.telegram.org",
        "example.com",
        "example.com",
        "web.telegram.org",
    ]
    assert judge_throttle(x).verdict == NOT_THROTTLED


async def test_a_server_slow_for_one_name_is_throttling() -> None:
    async with sni_server(slow_for_one_name) as port:
        check = await throttle_check("127.0.0.1", port, SLOW_NAME, pairs=6, size=32 * 1024)
    judged = judge_throttle(check.to_dict())
    assert judged.verdict == THROTTLED, judged
    assert judged.slower_pairs == 6 and judged.p_value == pytest.approx(1 / 64)


async def test_refused_bulk_endpoint_is_inconclusive_not_an_exception() -> None:
    async with bulk_server() as port:
        pass  # closed: nothing listens there any more
    check = await throttle_check("127.0.0.1", port, "web.telegram.org", pairs=5, timeout=2.0)
    assert all(s.failure == "connection_refused" for s in check.samples)
    assert len(check.samples) == 2  # stopped at the first neutral download that failed
    assert judge_throttle(check.to_dict()).verdict == INCONCLUSIVE


def samples(ratios: list[float]) -> dict[str, Any]:
    rows = []
    for pair, ratio in enumerate(ratios):
        rows.append({"sni": "t", "pair": pair, "goodput": 1000.0 * ratio, "t_first_byte": 0.1})
        rows.append({"sni": "n", "pair": pair, "goodput": 1000.0, "t_first_byte": 0.1})
    return {"sni": "t", "neutral_sni": "n", "samples": rows}


def test_throttle_rule_needs_both_effect_and_significance() -> None:
    assert judge_throttle(samples([0.1] * 8)).verdict == THROTTLED
    # a uniformly slow link: ratios around 1
    assert judge_throttle(samples([0.9, 1.1, 1.0, 0.95, 1.05, 1.0, 0.98, 1.02])).verdict == (
        NOT_THROTTLED
    )
    # large effect but not significant: 5 of 8 slower
    assert judge_throttle(samples([0.1] * 5 + [1.5] * 3)).verdict == NOT_THROTTLED
    # significant but small: all 8 slower, median 0.8
    assert judge_throttle(samples([0.8] * 8)).verdict == NOT_THROTTLED
    assert judge_throttle(samples([0.1] * 4)).verdict == INCONCLUSIVE
    assert sign_test_p(8, 8) == 1 / 256
    assert sign_test_p(0, 8) == 1.0
    hostile = {"sni": "t", "neutral_sni": "n", "samples": [None, {"pair": "x"}, 5]}
    assert judge_throttle(hostile).verdict == INCONCLUSIVE
    assert judge_throttle({"samples": "nonsense"}).verdict == INCONCLUSIVE


def test_client_hello_carries_the_name() -> None:
    hello = client_hello("web.telegram.org")
    assert hello[:1] == b"\x16" and b"web.telegram.org" in hello


async def reset_one_name(
    name: str | None, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    await reader.read(1)


async def test_sweep_on_loopback_reaches_the_endpoint_at_hop_one() -> None:
    async with bulk_server() as port:
        sweep = await ttl_sweep("tls", "127.0.0.1", port, "web.telegram.org", wait=1.0)
    x = sweep.to_dict()
    assert x["hops"][0] == {"ttl": 1, "trigger": TLS_HANDSHAKE, "neutral": TLS_HANDSHAKE}
    assert len(x["hops"]) == 4  # one window: both answered, the farther hops add nothing
    assert locate(x) == {"location": ENDPOINT_ANSWERED, "censor_hop": None, "endpoint_hop": 1}
    assert "127.0.0.1" not in str(x)


async def test_sweep_names_the_endpoint_when_the_server_itself_resets() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = await reader.read(4096)
        if b"blocked.example" in first:
            writer.transport.abort()  # RST (unread data): the endpoint resets the name
            return
        writer.write(b"\x16\x03\x03\x00\x00")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        sweep = await ttl_sweep("tls", "127.0.0.1", port, "blocked.example", wait=1.0)
    finally:
        server.close()
    x = sweep.to_dict()
    assert x["hops"][0]["trigger"] in (RESET, "eof") and x["hops"][0]["neutral"] == TLS_HANDSHAKE
    assert locate(x)["location"] == AT_ENDPOINT


async def test_dns_sweep_against_a_local_server() -> None:
    class Answer(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            reply = dns.message.make_response(dns.message.from_wire(data))
            self.transport.sendto(reply.to_wire(), addr)  # type: ignore[attr-defined]

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Answer, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    try:
        sweep = await ttl_sweep("dns", "127.0.0.1", port, "web.telegram.org", wait=1.0)
    finally:
        transport.close()
    assert sweep.hops[0].trigger == DNS_ANSWER and sweep.hops[0].neutral == DNS_ANSWER
    assert locate(sweep.to_dict())["location"] == ENDPOINT_ANSWERED


def hops(*rows: tuple[str, str]) -> dict[str, Any]:
    return {
        "trigger": "tls",
        "hops": [{"ttl": i + 1, "trigger": a, "neutral": b} for i, (a, b) in enumerate(rows)],
    }


def test_locate_rules_on_hand_built_sweeps() -> None:
    s, r, h = SILENT, RESET, TLS_HANDSHAKE
    assert locate(hops((s, s), (r, s), (r, s), (r, h))) == {
        "location": CENSOR_HOP,
        "censor_hop": 2,
        "endpoint_hop": 4,
    }
    assert locate(hops((s, s), (r, s)))["location"] == CENSOR_HOP  # endpoint beyond max_ttl
    assert locate(hops((s, s), (s, s), (r, h)))["location"] == AT_ENDPOINT
    assert locate(hops((s, s), (h, h)))["location"] == ENDPOINT_ANSWERED
    assert locate(hops((s, s), (s, h), (s, h)))["location"] == NOT_FOUND  # a dropping censor
    assert locate({"hops": "junk"})["location"] == NOT_FOUND
    assert locate({"hops": [None, {"ttl": "1"}]})["location"] == NOT_FOUND


def test_amend_adds_clauses_and_keeps_status() -> None:
    base = Analysis(Verdict(Status("ok"), None, False, [], M("Reached.")), [])
    keys: dict[str, Any] = {"x_throttle": samples([0.1] * 8)}
    amended = amend(base, keys)
    assert amended.verdict.status == "ok"
    assert "throttled" in amended.verdict.reason and "10 percent" in amended.verdict.reason
    assert keys["verdict"]["reason"] == amended.verdict.reason
    keys = {"x_censor_location": hops((SILENT, SILENT), (RESET, SILENT), (RESET, TLS_HANDSHAKE))}
    assert "2 hops away" in amend(base, keys).verdict.reason
    assert amend(base, {"x_throttle": samples([1.0] * 8)}) is base


@pytest.mark.parametrize("value", ["nonsense", "example.org:443", "127.0.0.1", "1.2.3.4:0"])
def test_bad_throttle_check_is_exit_2(value: str) -> None:
    result = CliRunner().invoke(cli, ["run", "--throttle-check", value, "--yes"])
    assert result.exit_code == 2, result.output
    assert "--throttle-check" in result.output


async def test_a_name_that_cannot_be_sent_is_a_failure_not_an_exception() -> None:
    sweep = await ttl_sweep("dns", "127.0.0.1", 9, "a" * 70 + ".example", wait=0.5)
    assert sweep.failure is not None and sweep.hops == []
    assert locate(sweep.to_dict())["location"] == NOT_FOUND
    sample = await bulk_sample("127.0.0.1", 9, "bad name\x00", 1024, 1.0)
    assert sample.failure is not None and sample.body_bytes == 0


async def test_a_path_refusing_the_connection_stops_the_sweep() -> None:
    async with bulk_server() as port:
        pass  # closed
    sweep = await ttl_sweep("tls", "127.0.0.1", port, "blocked.example", wait=0.5)
    assert len(sweep.hops) == 4 and all(h.trigger == "connect_failed" for h in sweep.hops)
    assert locate(sweep.to_dict())["location"] == NOT_FOUND


async def test_sweep_over_ipv6_sets_the_hop_limit() -> None:
    import socket

    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")
    server = BulkServer("::1", 0)
    try:
        port = await server.start()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        sweep = await ttl_sweep("tls", "::1", port, "web.telegram.org", wait=1.0)
    finally:
        await server.close()
    assert sweep.hops[0].trigger == TLS_HANDSHAKE
    assert locate(sweep.to_dict())["endpoint_hop"] == 1


async def test_probe_control_bulk_command_serves() -> None:
    import socket
    import sys

    with socket.socket() as probe_port:
        probe_port.bind(("127.0.0.1", 0))
        port = probe_port.getsockname()[1]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "probe", "control", "bulk", "--port", str(port),
        stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        line = await asyncio.wait_for(process.stderr.readline(), 60)
        assert f"127.0.0.1:{port}" in line.decode()
        sample = await bulk_sample("127.0.0.1", port, "web.telegram.org", 10_000, 10.0)
        assert sample.failure is None and sample.body_bytes == 10_000
    finally:
        process.terminate()
        await process.wait()
