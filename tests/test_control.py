"""The control server and client against real loopback servers: measurement, refusals, limits."""

from __future__ import annotations

import asyncio
import json
import socket

import aiohttp
import pytest

from probe import failures
from probe.control import ControlClient, target_from_request
from probe.steps import dns
from probe.targets import Target
from tests.control_helpers import running_control
from tests.servers.http_server import HTTPTestServer


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


async def post(url: str, body: object, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with aiohttp.ClientSession() as session:
        async with session.post(
            url + "/v1/measure",
            data=data,
            headers={"Content-Type": "application/json", **(headers or {})},
        ) as response:
            return response.status, await response.json()


def tcp_target(port: int, host: str = "127.0.0.1", target_id: str = "test/tcp") -> dict:
    return {"id": target_id, "service": "test", "check": "tcp", "host": host, "ports": [port]}


async def test_health_and_a_measurement_with_the_echo():
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, running_control() as base:
        async with aiohttp.ClientSession() as session:
            async with session.get(base + "/v1/health") as response:
                assert response.status == 200
                assert (await response.json())["status"] == "ok"
        status, reply = await post(base, {"targets": [tcp_target(port)]})
    assert status == 200
    assert reply["client"]["ip"] == "127.0.0.1"
    [result] = reply["results"]
    [connect] = result["observations"]["tcp_connect"]
    assert connect["status"] == {"success": True, "failure": None, "blocked": None}


async def test_private_destination_is_a_per_endpoint_failure():
    async with running_control(allow_nets=()) as base:
        status, reply = await post(base, {"targets": [tcp_target(443)]})
    assert status == 200
    [connect] = reply["results"][0]["observations"]["tcp_connect"]
    assert connect["status"]["failure"] == failures.CONTROL_REFUSED_DESTINATION


async def test_a_name_resolving_into_a_private_range_is_refused():
    from tests.servers.dns_server import DNSServer

    async with DNSServer({"inside.test": {"A": ["127.0.0.1"]}}) as dns_server:
        async with running_control(allow_nets=(), resolver=dns_server.address) as base:
            target = tcp_target(443, host="inside.test")
            status, reply = await post(base, {"targets": [target]})
    assert status == 200
    observations = reply["results"][0]["observations"]
    assert observations["queries"], "the control resolved the name itself"
    [connect] = observations["tcp_connect"]
    assert connect["status"]["failure"] == failures.CONTROL_REFUSED_DESTINATION
    # The answer into a refused range is not echoed: the query says refused instead.
    assert all(q["answers"] in ([], None) for q in observations["queries"])
    assert connect["ip"] != "127.0.0.1"
    assert observations["queries"][0]["failure"] == failures.CONTROL_REFUSED_DESTINATION


async def test_a_redirect_into_a_private_range_is_recorded_and_not_followed():
    async with HTTPTestServer() as http_server, running_control() as base:
        target = {
            "id": "test/redirect",
            "service": "test",
            "check": "http",
            "url": http_server.url("/redirect-private"),
        }
        status, reply = await post(base, {"targets": [target]})
    assert status == 200
    requests = reply["results"][0]["observations"]["requests"]
    assert len(requests) == 1, "the hop to 10.1.2.3 must not be made"
    assert requests[0]["response"]["code"] in (301, 302, 303, 307, 308)
    assert requests[0]["failure"] == failures.HTTP_REDIRECT_REFUSED


async def test_bodies_never_leave_the_control():
    async with HTTPTestServer() as http_server, running_control() as base:
        target = {
            "id": "test/page",
            "service": "test",
            "check": "http",
            "url": http_server.url("/page"),
        }
        status, reply = await post(base, {"targets": [target]})
    assert status == 200
    [request] = reply["results"][0]["observations"]["requests"]
    assert request["response"]["code"] == 200
    assert request["response"]["body"] is None
    assert request["response"]["x_body_length"] > 0
    assert request["response"]["x_title"] == "Probe test page"
    assert len(request["response"]["x_body_sha256"]) == 64


async def test_oversized_request_is_413_with_a_json_error():
    async with running_control() as base:
        status, reply = await post(base, b'{"targets": ["' + b"x" * 400_000 + b'"]}')
    assert status == 413
    assert "larger" in reply["error"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"not json", "not JSON"),
        ({"targets": []}, "no targets"),
        ({"nothing": 1}, "expected"),
        ({"targets": [{"id": "x/y", "check": "smtp", "host": "a.test"}]}, "unknown check"),
        ({"targets": [tcp_target(70000)]}, "ports"),
        ({"targets": [tcp_target(1), tcp_target(2)]}, "duplicate"),
        ({"targets": [tcp_target(1, target_id=f"t/{i}") for i in range(401)]}, "too many"),
        ({"targets": [{"id": "t/u", "check": "http", "url": "ftp://a.test/"}]}, "url"),
    ],
)
async def test_malformed_requests_are_400(body, fragment):
    async with running_control() as base:
        status, reply = await post(base, body)
    assert status == 400
    assert fragment in reply["error"]


async def test_token_is_required_when_configured():
    async with running_control(token="s3cret") as base:
        status, reply = await post(base, {"targets": [tcp_target(closed_port())]})
        assert status == 401
        assert "token" in reply["error"]
        status, _ = await post(
            base, {"targets": [tcp_target(closed_port())]}, {"Authorization": "Bearer wrong"}
        )
        assert status == 401
        status, _ = await post(
            base, {"targets": [tcp_target(closed_port())]}, {"Authorization": "Bearer s3cret"}
        )
        assert status == 200


async def test_saturated_control_answers_503():
    # A server that accepts and stays silent keeps the first request busy for its timeout.
    silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    target = {
        "id": "t/dc",
        "service": "t",
        "check": "mtproto",
        "host": "127.0.0.1",
        "ports": [port],
    }
    async with silent, running_control(max_concurrent=1, timeout=1.5) as base:
        first = asyncio.create_task(post(base, {"targets": [target]}))
        await asyncio.sleep(0.3)
        status, reply = await post(base, {"targets": [tcp_target(closed_port())]})
        assert status == 503
        assert "saturated" in reply["error"]
        first_status, _ = await first
        assert first_status == 200


async def test_client_tries_urls_in_order_and_reports_failure():
    dead = f"http://127.0.0.1:{closed_port()}"
    target = Target(id="test/tcp", service="test", check="tcp", host="127.0.0.1", ports=(9,))
    pool = dns.GetaddrinfoPool()
    try:
        resolver = dns.Resolver(None, pool=pool, system_nameserver=None)
        async with running_control() as base:
            client = ControlClient([dead, base], token=None, timeout=5, resolver=resolver)
            reply = await client.measure([target])
            assert reply.failure is None
            assert reply.url == base
            assert reply.observations["test/tcp"].tcp_connect[0].failure == "connection_refused"
            assert reply.client is not None and reply.client.ip == "127.0.0.1"
        client = ControlClient([dead], token=None, timeout=5, resolver=resolver)
        reply = await client.measure([target])
        assert reply.failure == failures.CONNECTION_REFUSED
        assert reply.observations == {}
    finally:
        pool.close()


def test_target_from_request_is_strict():
    good = target_from_request(tcp_target(443))
    assert good.ports == (443,)
    for bad in (
        [],
        {"id": 1, "check": "tcp", "host": "a"},
        {"id": "a/b", "check": "tcp", "host": "a", "url": "http://a/"},
        {"id": "a/b", "check": "tcp", "host": "a", "ports": [True]},
        {"id": "a/b", "check": "mtproto", "host": "a", "transports": ["carrier-pigeon"]},
        {"id": "a/b", "check": "https", "url": "https://a/", "x_ca_pem": "not a pem"},
        {"id": "a/b", "check": "mtproto", "host": "a", "dc": 70000},
        {"id": "a/b", "check": "mtproto", "host": "a", "dc": True},
        {"id": "a/b", "check": "mtproto", "host": "a", "dc": "2"},
    ):
        with pytest.raises(ValueError):
            target_from_request(bad)


def test_the_data_centre_id_travels_to_the_control():
    """The control's obfuscated2 handshake carries the same DC id as the probe's."""
    from probe.control import target_to_request
    from probe.targets import Target

    media = Target(
        id="telegram/media-dc2", service="telegram", check="mtproto", host="127.0.0.1",
        ports=(443,), transports=("obfuscated2",), dc=-2,
    )  # fmt: skip
    assert target_from_request(target_to_request(media)).dc == -2
