"""The control server against a hostile client, on loopback (issue 14, items 6-7): IPv6 forms
that embed a private IPv4 address are refused as what they embed, DNS answers into refused
ranges are not told, malformed input is a 400 with a JSON error (never a 500), and no log line
holds a client address unless the operator asked for them."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import logging

import aiohttp
import pytest

from probe import failures
from probe.control import make_address_guard
from tests.control_helpers import running_control

# Each embeds 127.0.0.1 or 10.0.0.1 in a way an IPv6 stack or translator may honour.
EMBEDDED_PRIVATE = [
    "::127.0.0.1",  # IPv4-compatible (deprecated, RFC 4291)
    "::10.0.0.1",
    "::ffff:0:127.0.0.1",  # SIIT, IPv4-translated (RFC 2765)
    "::ffff:127.0.0.1",  # IPv4-mapped
    "fec0::1",  # site-local (deprecated, RFC 3879)
    "fec0::a00:1",
    "64:ff9b::7f00:1",  # NAT64 well-known prefix (RFC 6052)
    "64:ff9b:1:7f00:0:100::",  # NAT64 local-use prefix (RFC 8215), 127.0.0.1 in the /48 layout
    "64:ff9b:1::808:808",  # the local-use prefix is a local translator: refused, whatever it holds
    "2002:7f00:1::",  # 6to4 (RFC 3056)
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
    "2a00:1450::5efe:10.0.0.1",  # ISATAP interface id (RFC 5214)
]
EMBEDDED_PUBLIC = ["::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::", "2606:4700::1111"]


@pytest.mark.parametrize("address", EMBEDDED_PRIVATE)
def test_the_guard_refuses_every_embedding_of_a_private_address(address):
    refuse = make_address_guard(())
    assert refuse(address)


@pytest.mark.parametrize("address", EMBEDDED_PUBLIC)
def test_the_guard_lets_public_embeddings_through(address):
    assert not make_address_guard(())(address)


@pytest.mark.parametrize("address", EMBEDDED_PRIVATE)
def test_the_probe_calls_no_embedding_of_a_private_address_public(address):
    """The probe's own rule (scrubbing, redirects, vantage facts) is the guard's: an address
    that leads to a private one is not public, so it is never taken for a public address."""
    from probe.addresses import is_public

    assert not is_public(address)


@pytest.mark.parametrize("address", EMBEDDED_PUBLIC)
def test_the_probe_calls_public_embeddings_public(address):
    from probe.addresses import is_public

    assert is_public(address)


def test_embedded_addresses_are_judged_by_what_they_embed():
    from probe.addresses import destinations

    assert destinations(ipaddress.ip_address("::127.0.0.1")) == (ipaddress.ip_address("127.0.0.1"),)
    assert destinations(ipaddress.ip_address("2002:7f00:1::")) == (
        ipaddress.ip_address("127.0.0.1"),
    )
    # `::` and `::1` are themselves, not 0.0.0.0 and 0.0.0.1; both are refused anyway
    assert destinations(ipaddress.ip_address("::1")) == (ipaddress.ip_address("::1"),)
    assert make_address_guard(())("::1") and make_address_guard(())("::")
    # allowing a lab range allows its embeddings too, and nothing else
    lab = make_address_guard((ipaddress.ip_network("10.0.0.0/8"),))
    assert not lab("::ffff:0:10.0.0.1")
    assert lab("::ffff:0:127.0.0.1")


async def post(base: str, body: object) -> tuple[int, str, str]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with aiohttp.ClientSession() as session:
        async with session.post(
            base + "/v1/measure", data=data, headers={"Content-Type": "application/json"}
        ) as response:
            return response.status, response.content_type, await response.text()


async def test_embedded_private_addresses_are_refused_as_targets():
    """Each form as a target's host: the control refuses the endpoint itself, connects nowhere
    (the test network guard would fail the test on any connect outside loopback)."""
    targets = [
        {"id": f"t/{i}", "service": "t", "check": "tcp", "host": address, "ports": [80]}
        for i, address in enumerate(EMBEDDED_PRIVATE)
    ]
    async with running_control(allow_nets=()) as base:
        status, _, text = await post(base, {"targets": targets})
    assert status == 200, text
    for target, result in zip(targets, json.loads(text)["results"], strict=True):
        [connect] = result["observations"]["tcp_connect"]
        assert connect["status"]["failure"] == failures.CONTROL_REFUSED_DESTINATION, target
        assert connect["ip"] == target["host"], "the caller wrote this address itself"


async def test_dns_answers_into_refused_ranges_are_not_told():
    """A name whose A and AAAA answers are private: the control says the query was refused,
    and neither the addresses nor the raw DNS reply that holds them reach the caller."""
    from tests.servers.dns_server import DNSServer

    zone = {
        "inside.test": {"A": ["10.9.8.7"], "AAAA": ["::ffff:0:a09:807"]},
        "mixed.test": {"A": ["10.9.8.7", "127.0.0.1"]},
    }
    async with DNSServer(zone) as dns_server:
        async with running_control(
            allow_nets=("127.0.0.0/8",), resolver=dns_server.address
        ) as base:
            targets = [
                {"id": "t/inside", "service": "t", "check": "tcp", "host": "inside.test",
                 "ports": [9]},
                {"id": "t/mixed", "service": "t", "check": "tcp", "host": "mixed.test",
                 "ports": [9]},
            ]  # fmt: skip
            status, _, text = await post(base, {"targets": targets})
    assert status == 200, text
    assert "10.9.8.7" not in text and "a09:807" not in text
    inside, mixed = json.loads(text)["results"]
    queries = inside["observations"]["queries"]
    assert queries, "the control resolved the name itself"
    for query in queries:
        assert query["failure"] == failures.CONTROL_REFUSED_DESTINATION
        assert query["answers"] == [] and query["raw_response"] is None
    for connect in inside["observations"]["tcp_connect"]:
        assert connect["status"]["failure"] == failures.CONTROL_REFUSED_DESTINATION
        assert connect["ip"] == ""
    # an allowed answer stays, with the query's success; only the refused one goes
    [query] = [q for q in mixed["observations"]["queries"] if q["query_type"] in ("A", "ANY")]
    assert query["failure"] is None
    assert [a["ipv4"] for a in query["answers"] if a.get("ipv4")] == ["127.0.0.1"]
    for query in mixed["observations"]["queries"]:
        if query["raw_response"]:
            assert bytes([10, 9, 8, 7]) not in base64.b64decode(query["raw_response"])


DEEP = b'{"targets": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


def target(**fields: object) -> dict:
    """A good tcp target with one fault: each case is refused for its own fault."""
    good = {"id": "t/x", "service": "t", "check": "tcp", "host": "a.test", "ports": [443]}
    return {"targets": [{**good, **fields}]}


@pytest.mark.parametrize(
    "body",
    [
        DEEP,
        b'{"targets": [' + b'{"a": ' * 30_000 + b"1" + b"}" * 30_000 + b"]}",
        b"\xff\xfe not utf-8",
        b"[1e999999]",
        target(transports=[["obfuscated2"]], check="mtproto"),
        target(transports=[{"a": 1}], check="mtproto"),
        target(transports="obfuscated2", check="mtproto"),
        target(ports="443"),
        target(ports=[[443]]),
        target(ports=[1e3]),
        target(dc=[1], check="mtproto"),
        target(sni=["a"]),
        target(sni="not a name!"),
        target(x_ca_pem=["pem"]),
        target(x_ca_pem="é" * 10),
        target(host="a b.test"),
        target(host="a\u0000b.test"),
        target(host="[::1]"),
        target(host=["a.test"]),
        target(host="x" * 300),
        target(id={"a": 1}),
        target(id="t/" + "x" * 300),
        target(check=["tcp"]),
        {"targets": [{"id": "t/u", "check": "http", "url": "http://[::1/"}]},
        {"targets": [{"id": "t/u", "check": "http", "url": "http://a.test:99999/"}]},
        {"targets": [{"id": "t/u", "check": "http", "url": "http://a.test:-1/"}]},
        {"targets": [{"id": "t/u", "check": "http", "url": "http://a b.test/"}]},
        {"targets": [{"id": "t/u", "check": "http", "url": "http://user@a.test/"}]},
        {"targets": [{"id": "t/u", "check": "http", "url": "http:///path"}]},
        {"targets": [{"id": "t/u", "check": "http", "url": "http://a.test/\r\nX: y"}]},
        {"targets": [{"id": "t/u", "check": "http", "url": ["http://a.test/"]}]},
        {"targets": [{"id": "t/u", "check": "https", "url": "http://a.test/"}]},
        {"targets": "all"},
        {"targets": [None]},
        [],
        "targets",
    ],
)
async def test_malformed_input_is_400_with_a_json_error(body):
    async with running_control() as base:
        status, content_type, text = await post(base, body)
    assert status == 400, text[:200]
    assert content_type == "application/json"
    assert json.loads(text)["error"]


async def test_every_http_error_of_the_api_is_json():
    async with running_control() as base, aiohttp.ClientSession() as session:
        for method, path, expected in (
            ("GET", "/nowhere", 404),
            ("GET", "/v1/measure", 405),
            ("DELETE", "/v1/health", 405),
        ):
            async with session.request(method, base + path) as response:
                assert response.status == expected
                assert response.content_type == "application/json"
                assert (await response.json())["error"]


async def _send_malformed(base: str) -> None:
    host, port = base.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
    await writer.drain()
    async with asyncio.timeout(3):
        await reader.read()
    writer.close()


@pytest.mark.parametrize("with_addresses", [False, True])
async def test_malformed_http_logs_a_client_address_only_when_asked(caplog, with_addresses):
    caplog.set_level(logging.DEBUG)
    async with running_control(log_client_addresses=with_addresses) as base:
        await _send_malformed(base)
        async with aiohttp.ClientSession() as session:
            async with session.get(base + "/v1/health") as response:
                assert response.status == 200
    formatter = logging.Formatter("%(message)s")
    logged = "\n".join(
        formatter.format(record)
        for record in caplog.records
        if record.name.startswith(("probe", "aiohttp", "asyncio"))
    )
    assert "Error handling request" in logged
    assert ("127.0.0.1" in logged) == with_addresses, logged


def test_what_the_list_loader_accepts_the_control_accepts():
    """The control checks hosts and URLs as the probe's list loader does: a stricter check
    would refuse a whole round's request for one target with an IDN host or a non-ASCII path."""
    from probe.control import target_from_request

    for definition in (
        {"id": "t/idn", "check": "tcp", "host": "пример.испытание", "ports": [443]},
        {"id": "t/path", "check": "https", "url": "https://example.test/путь?q=ü"},
        {"id": "t/v6", "check": "https", "url": "https://[2001:db8::1]:8443/"},
        {"id": "t/sni", "check": "tls", "host": "192.0.2.1", "sni": "bücher.example"},
    ):
        assert target_from_request(definition).id == definition["id"]


@pytest.mark.parametrize(
    "fields",
    [
        {"x_ca_pem": ["pem"]},
        {"x_ca_pem": "é" * 10},
        {"sni": "not a name!", "check": "tls"},
        {"sni": ["a"], "check": "tls"},
        {"host": "a b.test"},
        {"ports": list(range(1, 10))},  # more than MAX_PORTS_PER_TARGET
        {"ports": [0]},
        {"dc": 0, "check": "mtproto"},
        {"unknown": 1},
        {"ca": "roots.pem", "check": "tls"},
    ],
)
def test_each_fault_is_refused_in_an_otherwise_good_target(fields):
    """The target the malformed-input cases start from needs `ports` since the control reads
    the wire format of `probe.targets`: here each fault is the only one."""
    from probe.control import BadRequest, target_from_request

    good = {"id": "t/x", "service": "t", "check": "tcp", "host": "a.test", "ports": [443]}
    target_from_request(good)
    if fields.get("check") in ("tls", "mtproto"):
        del good["ports"]
    with pytest.raises(BadRequest):
        target_from_request({**good, **fields})
