"""The lab's parts that need no root: the fake data centre (against the self-check client, on
loopback), the ClientHello parser of the SNI middlebox, the lab zone's DNS answers, the nft
rules a censor becomes, and the target lists written for `probe run`."""

from __future__ import annotations

import asyncio
import ssl
import tomllib
from pathlib import Path

import dns.message
import dns.rcode
import pytest

from probe.targets import validate_paths
from tests.lab import censor, checks, lab, middleboxes, servers
from tests.lab.scenarios import SCENARIOS, TARGET_IDS, targets_toml
from tests.lab.topology import DC_IPS, ZONE


@pytest.mark.parametrize("transport", ["abridged", "intermediate", "padded_intermediate",
                                       "obfuscated2"])  # fmt: skip
async def test_fake_dc_answers_every_transport(transport: str) -> None:
    server = await asyncio.start_server(servers.guarded(servers.serve_dc), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        check = {"ip": "127.0.0.1", "port": port, "transport": transport}
        result = await checks.mtproto(check, 2.0)
    finally:
        server.close()
        await server.wait_closed()
    assert result == {"outcome": "ok"}


async def test_fake_dc_answers_http_too() -> None:
    server = await asyncio.start_server(servers.guarded(servers.serve_dc), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        result = await checks.http({"ip": "127.0.0.1", "port": port, "host": "dc"}, 2.0)
    finally:
        server.close()
        await server.wait_closed()
    assert result == {"outcome": "501"}


def client_hello(server_name: str | None) -> bytes:
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_client_hello_sni_is_found() -> None:
    hello = client_hello("web.telegram.org")
    assert middleboxes.tls_record_complete(hello)
    assert middleboxes.client_hello_sni(hello) == "web.telegram.org"
    assert not middleboxes.tls_record_complete(hello[:40])
    assert middleboxes.client_hello_sni(hello[:40]) is None


def test_client_hello_without_sni_and_other_bytes() -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    assert middleboxes.client_hello_sni(outgoing.read()) is None
    assert middleboxes.client_hello_sni(b"GET / HTTP/1.1\r\n\r\n") is None


def test_name_lists_match_exactly_unless_wildcard() -> None:
    assert middleboxes._name_listed("Web.Telegram.org.", ["web.telegram.org"])
    assert not middleboxes._name_listed("web.telegram.org", ["telegram.org"])
    assert middleboxes._name_listed("web.telegram.org", ["*.telegram.org"])
    assert middleboxes.http_host(b"GET / HTTP/1.1\r\nHOST: t.me:80\r\n\r\n") == "t.me"


def test_lab_zone_answers() -> None:
    def ask(name: str, rdtype: str = "A") -> dns.message.Message:
        wire = servers.dns_answer(dns.message.make_query(name, rdtype).to_wire(), ZONE)
        assert wire is not None
        return dns.message.from_wire(wire)

    reply = ask("web.telegram.org")
    assert [r.address for r in reply.answer[0]] == [ZONE["web.telegram.org"]]
    assert ask("nowhere.example").rcode() == dns.rcode.NXDOMAIN
    assert ask("web.telegram.org", "AAAA").answer == []
    assert servers.dns_answer(b"\x00garbage", ZONE) is None


def test_censor_rules() -> None:
    rules = censor.nft_ruleset(
        censor.Censor(
            blackhole=DC_IPS[:1],
            tcp_reset=(("198.19.0.10", 443),),
            dns=censor.DNSInjection(("t.me",), "NXDOMAIN"),
            sni_names=("t.me",),
            mtproto="drop",
        )
    )
    assert f'iifname "cc0" ip daddr {DC_IPS[0]} drop' in rules
    assert "ip daddr 198.19.0.10 tcp dport 443 reject with tcp reset" in rules
    assert f"udp dport 53 tproxy to :{censor.DNS_INJECTOR_PORT}" in rules
    assert f"tcp dport 443 redirect to :{censor.PROXY_PORT}" in rules
    assert "@ih,0,32 0xeeeeeeee drop" in rules
    assert censor.nft_ruleset(censor.Censor()).count("    iifname") == 0
    assert censor.middlebox_config(censor.Censor(mtproto="reset")) is None


def test_target_lists_are_valid(tmp_path: Path) -> None:
    for scenario in SCENARIOS:
        path = tmp_path / f"{scenario.name}.toml"
        path.write_text(targets_toml(scenario))
        loaded = tomllib.loads(path.read_text())
        assert tuple(t["id"] for t in loaded["targets"]) == TARGET_IDS
        assert validate_paths([str(path)]) == []


def test_without_root_the_lab_skips_but_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lab.os, "geteuid", lambda: 1000)
    reason = lab.lab_unavailable_reason()
    assert reason is not None and "root" in reason
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="root"):
        lab.skip_or_fail(reason)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="lab cannot run in CI"):
        lab.skip_or_fail(reason)
    monkeypatch.setattr(lab.shutil, "which", lambda tool: None)
    monkeypatch.setattr(lab.os, "geteuid", lambda: 0)
    assert "ip and nft" in (lab.lab_unavailable_reason() or "")
