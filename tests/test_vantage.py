"""Vantage metadata: GeoIP lookups, the public-address scrubber, VPN detection, and the VPN
annotation and scrubbing on real records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from probe.observations import DNSAnswer, DNSQuery
from probe.round.measure import MeasureConfig
from probe.round.runner import Round, RoundOptions
from probe.steps import dns
from probe.targets import Target, TargetList
from probe.vantage.facts import (
    Scrubber,
    default_route_interfaces,
    is_tunnel_interface,
    local_global_ipv6_addresses,
)
from probe.vantage.geoip import GeoIP, GeoIPError
from tests.control_helpers import running_control
from tests.geoip_helpers import write_asn_country_db
from tests.servers.http_server import HTTPTestServer


@pytest.fixture
def geoip_db(tmp_path: Path) -> str:
    return write_asn_country_db(
        tmp_path / "test.mmdb",
        {
            "127.0.0.0/8": (64500, "Loopback Networks", "DE"),
            "203.0.113.0/24": (44244, "Irancell", "IR"),
            "2001:db8::/32": (62041, "Telegram Messenger", "GB"),
        },
    )


def test_geoip_lookups_and_annotation(geoip_db: str):
    geoip = GeoIP((geoip_db,))
    try:
        info = geoip.lookup("203.0.113.7")
        assert (info.asn, info.as_org_name, info.cc) == (44244, "Irancell", "IR")
        assert geoip.lookup("2001:db8::1").asn == 62041
        assert geoip.lookup("192.0.2.1").asn is None
        assert geoip.lookup("not an ip").asn is None
        query = DNSQuery(
            hostname="x",
            query_type="A",
            engine="udp",
            resolver_address="127.0.0.1:53",
            answers=[DNSAnswer("A", ipv4="203.0.113.9"), DNSAnswer("CNAME", hostname="y")],
        )
        geoip.annotate([query])
        assert query.answers[0].asn == 44244
        assert query.answers[1].asn is None
    finally:
        geoip.close()


def test_geoip_bad_file_is_a_clear_error(tmp_path: Path):
    bad = tmp_path / "bad.mmdb"
    bad.write_bytes(b"not a database")
    with pytest.raises(GeoIPError, match=r"bad\.mmdb"):
        GeoIP((str(bad),))


def test_scrubber_replaces_only_whole_addresses():
    scrubber = Scrubber()
    scrubber.add("203.0.113.7")
    scrubber.add("2001:db8:0:0::42")
    scrubber.add("127.0.0.1")  # loopback is never "the public address"
    text = (
        "from 203.0.113.7, not 203.0.113.70 or 1203.0.113.7; v6 2001:db8::42 "
        "and 2001:0db8:0000:0000:0000:0000:0000:0042; 127.0.0.1 stays"
    )
    assert scrubber.scrub(text) == (
        "from [scrubbed], not 203.0.113.70 or 1203.0.113.7; v6 [scrubbed] "
        "and [scrubbed]; 127.0.0.1 stays"
    )


def test_local_global_ipv6_addresses_from_proc(tmp_path: Path):
    proc = tmp_path / "if_inet6"
    proc.write_text(
        "00000000000000000000000000000001 01 80 10 80       lo\n"
        "fe800000000000000000000000000001 02 40 20 80     eth0\n"
        "2a0102030405060700000000000000aa 02 40 00 00     eth0\n"
    )
    assert local_global_ipv6_addresses(str(proc)) == ["2a01:203:405:607::aa"]


def test_default_route_and_tunnel_detection_from_proc(tmp_path: Path):
    route = tmp_path / "route"
    route.write_text(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
        "tun0\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0\n"
    )
    route6 = tmp_path / "ipv6_route"
    route6.write_text(
        "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
        "fe800000000000000000000000000001 00000400 00000001 00000000 00000003     wg0\n"
    )
    assert default_route_interfaces(str(route), str(route6)) == ["tun0", "wg0"]
    sys_net = tmp_path / "net"
    (sys_net / "eth0").mkdir(parents=True)
    (sys_net / "eth0" / "type").write_text("1\n")
    (sys_net / "vpn7").mkdir()
    (sys_net / "vpn7" / "tun_flags").write_text("0x1001\n")
    assert is_tunnel_interface("tun0", str(sys_net))
    assert is_tunnel_interface("vpn7", str(sys_net))
    assert not is_tunnel_interface("eth0", str(sys_net))


def _one_target_round(tmp_path: Path, url: str, **options: object) -> Round:
    target = Target(
        id="itest/page",
        service="itest",
        check="http",
        url=url,
        list_name="l",
        definition={"id": "itest/page", "service": "itest", "check": "http", "url": url},
    )
    lst = TargetList(
        name="l",
        updated=__import__("datetime").date(2026, 11, 28),
        path="l.toml",
        sha256="0" * 64,
        targets=(target,),
    )
    config = MeasureConfig(timeout=2.0, resolver=("127.0.0.1", 9), source_address="127.0.0.2")
    return Round(
        [lst], [target], RoundOptions(measure=config, out_dir=str(tmp_path / "out"), **options)
    )  # type: ignore[arg-type]


async def test_a_loopback_echo_is_not_taken_for_our_address(tmp_path: Path, geoip_db: str):
    """A control behind a reverse proxy echoes the proxy's address: never ours."""
    async with HTTPTestServer() as server, running_control(geoip_dbs=(geoip_db,)) as control:
        round_ = _one_target_round(tmp_path, server.url("/page"), control_urls=(control,))
        result = await round_.run()
    record = json.loads(Path(result.path).read_text())
    assert (record["probe_cc"], record["probe_asn"]) == ("ZZ", "AS0")
    assert not round_.scrubber.addresses


async def test_public_address_is_scrubbed_from_bodies_headers_and_failures(tmp_path: Path):
    leaky = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Your-Address: 203.0.113.7\r\n"
        b"Content-Length: 60\r\nConnection: close\r\n\r\n"
        b"<html><title>You are 203.0.113.7</title>ip=203.0.113.7</html>"
    )
    async with HTTPTestServer(raw_responses={"leak": leaky}) as server:
        round_ = _one_target_round(tmp_path, server.url("/raw/leak"))
        round_.scrubber.add("203.0.113.7")  # what the control's echo would have told us
        result = await round_.run()
    text = Path(result.path).read_text()
    assert "203.0.113.7" not in text
    record = json.loads(text)
    response = record["test_keys"]["requests"][0]["response"]
    assert "[scrubbed]" in response["body"]
    assert dict(response["headers_list"])["X-Your-Address"] == "[scrubbed]"
    assert record["probe_ip"] == "127.0.0.1"


async def test_control_in_another_country_marks_the_records_vpn(tmp_path: Path, geoip_db: str):
    async with HTTPTestServer() as server, running_control(geoip_dbs=(geoip_db,)) as control:
        round_ = _one_target_round(
            tmp_path,
            server.url("/page"),
            control_urls=(control,),
            expected_cc="IR",
            # the control echoes 127.0.0.2: trusted as our own address only in a test bed
            own_nets=("127.0.0.0/8",),
        )
        result = await round_.run()
    record = json.loads(Path(result.path).read_text())
    # The control (with its database) sees us in DE on AS64500; we said we are in IR.
    assert record["probe_cc"] == "DE"
    assert record["probe_asn"] == "AS64500"
    assert record["probe_network_name"] == "Loopback Networks"
    assert record["annotations"]["network_type"] == "vpn"
    assert any("VPN" in note for note in result.vantage.notes)


def test_resolver_parse_used_by_the_cli():
    assert dns.parse_resolver("[::1]:5353") == ("::1", 5353)
