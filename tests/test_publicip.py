"""Public-address discovery (`probe.vantage.publicip`) against real STUN, HTTPS and DNS servers on
loopback: every hostile answer is a failure string within the deadline, the majority rule per
family, private answers refused unless allowed, and no observation ever holds the address.

The probe's socket is bound to 127.0.0.2, so an honest server answers 127.0.0.2 while every
server listens on 127.0.0.1 (or ::1): the answered address can be searched for in the records
without matching a server's address. Loopback is not public, so the tests that want a trusted
answer allow 127.0.0.0/8 (`allow_nets`), as the lab allows 198.18.0.0/15.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import socket
import ssl
import struct
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe import failures
from probe.steps.dns import Resolver
from probe.steps.stun_wire import MAX_STUN_REQUESTS, StunReply, binding_request, parse_stun_reply
from probe.steps.tcp import ByteCounter
from probe.vantage import publicip
from probe.vantage.publicip import (
    HTTPS_ECHO,
    STUN,
    Discovery,
    PublicIPObservation,
    PublicIPResult,
    counts_as_public,
    decide,
    discover,
    https_echo,
    parse_echo_body,
    stun_binding,
)
from tests.servers.certs import make_pki
from tests.servers.dns_server import DNSServer, Rule
from tests.servers.http_server import HTTPTestServer
from tests.servers.stun_server import (
    MAGIC_COOKIE,
    STUNServer,
    address_value,
    error_response,
    success,
)

PROBE = "127.0.0.2"  # the probe's source address; honest servers answer it
LOOPBACK = ("127.0.0.0/8",)
LOOPBACK6 = ("::1/128",)
LIE = "198.51.100.7"  # TEST-NET-2: what the lying servers answer
LIE6 = "2001:db8::7"
TIMEOUT = 1.0
#: For the STUN servers that never give a valid answer (the step waits for its deadline).
HOSTILE_TIMEOUT = 0.6
#: A step must end within its timeout plus this (DESIGN.md allows far more; loopback is fast).
SLACK = 0.5
TXID = bytes(range(1, 13))


def elapsed_since(start: float) -> float:
    return time.monotonic() - start


# --- servers -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_pki().write_ca_file(tmp_path_factory.mktemp("pki"))


def _tls_context() -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    make_pki().good.configure_cert(context)
    return context


def http_response(body: bytes, status: str = "200 OK", content_type: str = "text/plain") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def trace_body(ip: str) -> bytes:
    """Cloudflare's /cdn-cgi/trace, as it looks (the ip= line third)."""
    return (
        f"fl=123f45\nh=test.localhost\nip={ip}\nts=1700000000.123\nvisit_scheme=https\n"
        "uag=Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0\n"
        "colo=FRA\nsliver=none\nhttp=http/1.1\nloc=DE\ntls=TLSv1.3\nsni=plaintext\nwarp=off\n"
        "gateway=off\nrbi=off\nkex=X25519\n"
    ).encode()


ECHO_RESPONSES = {
    "bare": http_response(f"{PROBE}\n".encode()),
    "trace": http_response(trace_body(PROBE)),
    "lie": http_response(f"{LIE}\n".encode()),
    "bare6": http_response(b"::1"),
    "lie6": http_response(f"{LIE6}\n".encode()),
    "html": http_response(b"<html><title>Blocked</title></html>", content_type="text/html"),
    "notfound": http_response(f"{PROBE}\n".encode(), status="404 Not Found"),
    "two": http_response(f"ip={PROBE}\nip={LIE}\n".encode()),
    "long": http_response(f"{PROBE}\n".encode() + b" " * 1000),
    "empty": http_response(b""),
    "zone": http_response(b"fe80::1%eth0"),
    "with-port": http_response(f"{PROBE}:4433".encode()),
}


@asynccontextmanager
async def echo_server(host: str = "127.0.0.1") -> AsyncIterator[HTTPTestServer]:
    """An HTTPS "what is my IP" server: /raw/<name> serves ECHO_RESPONSES[name]."""
    async with HTTPTestServer(
        host=host, ssl_context=_tls_context(), raw_responses=dict(ECHO_RESPONSES)
    ) as server:
        yield server


def echo_url(server: HTTPTestServer, name: str, host: str = "test.localhost") -> str:
    return server.url(f"/raw/{name}", host=host)


@asynccontextmanager
async def stun_servers(
    *behaviours: str, host: str = "127.0.0.1", lie_address: str = LIE
) -> AsyncIterator[list[STUNServer]]:
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(STUNServer(b, host=host, lie_address=lie_address))
            for b in behaviours
        ]


def resolver_for(dns_server: DNSServer) -> Resolver:
    return Resolver(dns_server.address, pool=None, system_nameserver=None, duplicate_window=0.01)


def observation_json(thing: Discovery | list[PublicIPResult]) -> str:
    if isinstance(thing, Discovery):
        return json.dumps(thing.to_dict())
    return json.dumps([r.observation.to_dict() for r in thing])


def spellings(ip: str) -> Iterator[str]:
    """Every form of `ip` a record could carry it in."""
    address = ipaddress.ip_address(ip)
    yield str(address)
    yield address.exploded
    yield address.packed.hex()
    yield str(int(address))
    yield base64.b64encode(address.packed).decode()
    if address.version == 4:
        yield f"::ffff:{address}"
        yield ipaddress.IPv6Address(f"::ffff:{address}").exploded
    else:
        yield address.exploded.upper()


def assert_no_address(text: str, *ips: str) -> None:
    for ip in ips:
        for spelling in spellings(ip):
            assert spelling.lower() not in text.lower(), (spelling, text)


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port nobody listens on (its datagrams get ICMP port unreachable)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# --- the STUN step -------------------------------------------------------------------------------


async def test_stun_normal_answer_is_our_source_address() -> None:
    counter = ByteCounter()
    async with STUNServer() as server:
        result = await stun_binding(
            *server.address,
            timeout=TIMEOUT,
            source_address=PROBE,
            counter=counter,
            allow_nets=LOOPBACK,
        )
        assert len(server.received) == 1 and len(server.received[0].transaction_id) == 12
    assert result.address == PROBE
    observation = result.observation
    assert observation.failure is None and observation.failed_operation is None
    assert observation.method == STUN
    assert observation.server_family == 4 and observation.answer_family == 4
    assert observation.public is True and observation.agreed is False
    assert observation.server_address == f"127.0.0.1:{server.port}"
    assert 0 <= observation.t0 <= observation.t < TIMEOUT
    assert counter.sent == 20 and counter.received == 32  # header + one 12-byte attribute


async def test_stun_loopback_answer_is_not_public_unless_allowed() -> None:
    async with STUNServer() as server:
        result = await stun_binding(*server.address, timeout=TIMEOUT, source_address=PROBE)
    assert result.address == PROBE  # known in memory ...
    assert result.observation.public is False  # ... but never taken as a public address


@pytest.mark.parametrize(
    ("behaviour", "expected"),
    [
        ("mapped", PROBE),  # an old server: plain MAPPED-ADDRESS
        ("both", PROBE),  # XOR-MAPPED-ADDRESS wins over a lying MAPPED-ADDRESS
        ("foreign", PROBE),  # a lie from another port is never seen (connected socket)
        ("noise", PROBE),  # garbage and a wrong-id reply are skipped, the genuine one taken
        ("lie", LIE),  # a liar's answer comes back as it is: the majority deals with it
    ],
)
async def test_stun_answers(behaviour: str, expected: str) -> None:
    async with STUNServer(behaviour, lie_address=LIE) as server:
        result = await stun_binding(*server.address, timeout=TIMEOUT, source_address=PROBE)
    assert result.observation.failure is None
    assert result.address == expected


@pytest.mark.parametrize(
    ("behaviour", "failure"),
    [
        ("garbage", failures.STUN_INVALID_REPLY),
        ("wrong_id", failures.STUN_WRONG_TRANSACTION_ID),
        ("error", failures.STUN_ERROR_RESPONSE),
        ("silence", failures.GENERIC_TIMEOUT),
        ("truncated", failures.STUN_INVALID_REPLY),
        ("short_attr", failures.STUN_INVALID_REPLY),
        ("bad_family", failures.STUN_INVALID_REPLY),
        ("no_address", failures.STUN_INVALID_REPLY),
        ("indication", failures.STUN_INVALID_REPLY),
        ("flood", failures.STUN_WRONG_TRANSACTION_ID),
    ],
)
@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
async def test_stun_hostile_servers_are_failures_within_the_deadline(
    behaviour: str, failure: str, host: str
) -> None:
    start = time.monotonic()
    async with STUNServer(behaviour, host=host) as server:
        result = await stun_binding(*server.address, timeout=HOSTILE_TIMEOUT, allow_nets=LOOPBACK)
    assert elapsed_since(start) < HOSTILE_TIMEOUT + SLACK
    assert result.address is None
    observation = result.observation
    assert observation.failure == failure
    assert observation.failed_operation == failures.STUN_BINDING
    assert observation.answer_family is None and observation.public is False
    assert observation.server_family == (6 if host == "::1" else 4)
    if behaviour == "error":
        assert observation.response_code == 420
        assert elapsed_since(start) < HOSTILE_TIMEOUT / 2  # an error response ends the transaction
    if behaviour == "flood":
        assert (
            elapsed_since(start) < HOSTILE_TIMEOUT / 2
        )  # bounded by a datagram count, not the clock


async def test_stun_closed_port_is_connection_refused() -> None:
    start = time.monotonic()
    result = await stun_binding("127.0.0.1", free_udp_port(), timeout=TIMEOUT)
    assert result.observation.failure == failures.CONNECTION_REFUSED
    assert result.observation.failed_operation == failures.STUN_BINDING
    assert elapsed_since(start) < TIMEOUT


async def test_stun_retransmits_with_the_same_transaction_id() -> None:
    async with STUNServer("silence") as server:
        result = await stun_binding(*server.address, timeout=1.7)
        first = [r.transaction_id for r in server.received]
        await stun_binding(*server.address, timeout=0.2)
        second = server.received[len(first)].transaction_id
    assert result.observation.failure == failures.GENERIC_TIMEOUT
    assert len(first) == MAX_STUN_REQUESTS  # at 0, 0.5 and 1.5 s
    assert len(set(first)) == 1
    assert second != first[0]  # a fresh random id per transaction


async def test_stun_bad_source_address_is_a_failure_not_an_exception() -> None:
    async with STUNServer(host="::1") as server:
        result = await stun_binding(*server.address, timeout=TIMEOUT, source_address=PROBE)
    assert result.address is None
    assert result.observation.failure == failures.ADDRESS_NOT_AVAILABLE
    assert result.observation.failed_operation == failures.CONNECT


async def test_stun_ipv6() -> None:
    async with STUNServer(host="::1") as server:
        result = await stun_binding(*server.address, timeout=TIMEOUT, allow_nets=LOOPBACK6)
    assert result.address == "::1"
    assert result.observation.server_family == 6 and result.observation.answer_family == 6
    assert result.observation.public is True
    assert result.observation.server_address == f"[::1]:{server.port}"


async def test_stun_cancellation_escapes() -> None:
    async with STUNServer("silence") as server:
        task = asyncio.create_task(stun_binding(*server.address, timeout=5.0))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


# --- the STUN parser -------------------------------------------------------------------------


def test_binding_request_is_a_bare_header() -> None:
    request = binding_request(TXID)
    assert request == struct.pack("!HHI", 0x0001, 0, MAGIC_COOKIE) + TXID
    with pytest.raises(ValueError):
        binding_request(b"short")


@pytest.mark.parametrize("ip", ["203.0.113.9", "2001:db8::7", "8.8.8.8", "2606:4700::1"])
@pytest.mark.parametrize("xor", [True, False])
def test_parse_success(ip: str, xor: bool) -> None:
    reply = parse_stun_reply(success(ip, 40000, TXID, xor=xor), TXID)
    assert reply == StunReply("success", address=ip)
    assert ip not in repr(reply)


def test_parse_ipv4_mapped_answer_becomes_ipv4() -> None:
    reply = parse_stun_reply(success("::ffff:10.1.2.3", 1, TXID), TXID)
    assert reply.address == "10.1.2.3"


def _message(message_type: int, attributes: bytes, txid: bytes = TXID) -> bytes:
    return struct.pack("!HHI", message_type, len(attributes), MAGIC_COOKIE) + txid + attributes


def _attribute(kind: int, value: bytes) -> bytes:
    return struct.pack("!HH", kind, len(value)) + value + b"\x00" * (-len(value) % 4)


def test_parse_first_xor_mapped_address_counts() -> None:
    first = address_value("203.0.113.1", 1, xor=True, transaction_id=TXID)
    second = address_value("203.0.113.2", 1, xor=True, transaction_id=TXID)
    message = _message(0x0101, _attribute(0x0020, first) + _attribute(0x0020, second))
    assert parse_stun_reply(message, TXID).address == "203.0.113.1"


def test_parse_error_response() -> None:
    assert parse_stun_reply(error_response(TXID, 401, "Unauthorized"), TXID) == StunReply(
        "error", error_code=401
    )
    assert parse_stun_reply(_message(0x0111, b""), TXID) == StunReply("error")
    bad_class = _attribute(0x0009, struct.pack("!HBB", 0, 7, 0))
    assert parse_stun_reply(_message(0x0111, bad_class), TXID) == StunReply("error")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x01\x01" + b"\x00" * 10,  # shorter than a header
        _message(0x0101, b"")[:-1],  # one byte short
        _message(0x0101, b"") + b"\x00" * 4,  # length field says 0, 4 bytes follow
        b"\xc1\x01" + _message(0x0101, b"")[2:],  # top bits set: not STUN
        _message(0x0101, b"")[:4] + b"\x00\x00\x00\x00" + TXID,  # no magic cookie
        _message(0x0001, b""),  # a request, not a response
        _message(0x0101, b""),  # no address at all
        _message(0x0101, b"\x00\x20\x00\x08\x00\x01"),  # length not a multiple of 4
        _message(0x0101, _attribute(0x0020, b"\x00\x01\x00\x01\x01")),  # IPv4, 1 address byte
        _message(0x0101, _attribute(0x0001, b"\x00\x02\x00\x01" + b"\x00" * 4)),  # IPv6, 4 bytes
        _message(0x0101, struct.pack("!HH", 0x8022, 3) + b"abc"),  # padding missing
    ],
)
def test_parse_invalid(data: bytes) -> None:
    assert parse_stun_reply(data, TXID).outcome == "invalid"


def test_parse_wrong_transaction_id() -> None:
    other = bytes(12)
    assert parse_stun_reply(success("203.0.113.9", 1, other), TXID).outcome == "wrong_id"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=300), txid=st.binary(min_size=12, max_size=12))
def test_random_bytes_never_raise(data: bytes, txid: bytes) -> None:
    reply = parse_stun_reply(data, txid)
    assert reply.outcome in ("success", "error", "wrong_id", "invalid")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    message_type=st.sampled_from([0x0101, 0x0111, 0x0001, 0x0011, 0x0101]),
    attributes=st.lists(
        st.tuples(
            st.sampled_from([0x0001, 0x0009, 0x0020, 0x8022, 0x8028, 0xFFFF]),
            st.binary(max_size=40),
            st.booleans(),  # announce a wrong length
            st.integers(min_value=0, max_value=0xFFFF),
        ),
        max_size=6,
    ),
    length_delta=st.sampled_from([0, 0, 0, -4, 4, 1]),
)
def test_structured_replies_never_raise(
    message_type: int, attributes: list[tuple[int, bytes, bool, int]], length_delta: int
) -> None:
    """Valid headers with our id and arbitrary attributes: the parser's deep paths."""
    body = b""
    for kind, value, lie_length, length in attributes:
        announced = length if lie_length else len(value)
        body += struct.pack("!HH", kind, announced) + value + b"\x00" * (-len(value) % 4)
    length = max(len(body) + length_delta, 0) & 0xFFFF
    data = struct.pack("!HHI", message_type, length, MAGIC_COOKIE) + TXID + body
    reply = parse_stun_reply(data, TXID)
    assert reply.outcome in ("success", "error", "invalid")
    if reply.outcome == "success":
        assert reply.address is not None and ipaddress.ip_address(reply.address)


# --- the HTTPS echo step ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["bare", "trace"])
async def test_echo_answers(name: str, ca_file: str) -> None:
    counter = ByteCounter()
    async with echo_server() as server:
        result = await https_echo(
            echo_url(server, name),
            "127.0.0.1",
            timeout=TIMEOUT,
            ca_files=(ca_file,),
            source_address=PROBE,
            counter=counter,
            allow_nets=LOOPBACK,
        )
    observation = result.observation
    assert observation.failure is None, observation
    assert result.address == PROBE
    assert observation.method == HTTPS_ECHO and observation.response_code == 200
    assert observation.public is True and observation.answer_family == 4
    assert observation.server == echo_url(server, name)
    assert observation.server_address == f"127.0.0.1:{server.port}"
    assert counter.sent > 0 and counter.received > 0
    assert server.requests[0].peer == PROBE


async def test_echo_ipv6(ca_file: str) -> None:
    async with echo_server("::1") as server:
        result = await https_echo(
            echo_url(server, "bare6"),
            "::1",
            timeout=TIMEOUT,
            ca_files=(ca_file,),
            allow_nets=LOOPBACK6,
        )
    assert result.observation.failure is None
    assert result.address == "::1"
    assert result.observation.server_family == 6 and result.observation.answer_family == 6


@pytest.mark.parametrize(
    ("path", "failure", "operation"),
    [
        ("/raw/html", failures.IP_ECHO_INVALID_REPLY, failures.HTTP_ROUND_TRIP),
        ("/raw/notfound", failures.IP_ECHO_INVALID_REPLY, failures.HTTP_ROUND_TRIP),
        ("/raw/two", failures.IP_ECHO_INVALID_REPLY, failures.HTTP_ROUND_TRIP),
        ("/raw/long", failures.IP_ECHO_INVALID_REPLY, failures.HTTP_ROUND_TRIP),
        ("/raw/empty", failures.IP_ECHO_INVALID_REPLY, failures.HTTP_ROUND_TRIP),
        ("/raw/zone", failures.IP_ECHO_INVALID_REPLY, failures.HTTP_ROUND_TRIP),
        ("/raw/with-port", failures.IP_ECHO_INVALID_REPLY, failures.HTTP_ROUND_TRIP),
        ("/redirect/1", failures.IP_ECHO_INVALID_REPLY, failures.HTTP_ROUND_TRIP),
        ("/garbage", failures.HTTP_INVALID_RESPONSE, failures.HTTP_ROUND_TRIP),
        ("/never", failures.GENERIC_TIMEOUT, failures.HTTP_ROUND_TRIP),
        ("/trickle", failures.GENERIC_TIMEOUT, failures.READ),
        ("/reset-before", failures.CONNECTION_RESET, failures.HTTP_ROUND_TRIP),
        ("/close", failures.EOF_ERROR, failures.HTTP_ROUND_TRIP),
        ("/eof-mid-body", failures.EOF_ERROR, failures.READ),
    ],
)
async def test_echo_hostile_servers_are_failures_within_the_deadline(
    path: str, failure: str, operation: str, ca_file: str
) -> None:
    start = time.monotonic()
    async with echo_server() as server:
        result = await https_echo(
            server.url(path, host="test.localhost"),
            "127.0.0.1",
            timeout=TIMEOUT,
            ca_files=(ca_file,),
            source_address=PROBE,
            allow_nets=LOOPBACK,
        )
    assert elapsed_since(start) < TIMEOUT + SLACK
    assert result.address is None
    assert (result.observation.failure, result.observation.failed_operation) == (
        failure,
        operation,
    )
    assert result.observation.answer_family is None


async def test_echo_untrusted_certificate(ca_file: str) -> None:
    async with echo_server() as server:
        unknown = await https_echo(echo_url(server, "bare"), "127.0.0.1", timeout=TIMEOUT)
        wrong = await https_echo(
            echo_url(server, "bare", host="wrong.localhost"),
            "127.0.0.1",
            timeout=TIMEOUT,
            ca_files=(ca_file,),
        )
    assert unknown.observation.failure == failures.SSL_UNKNOWN_AUTHORITY
    assert unknown.observation.failed_operation == failures.TLS_HANDSHAKE
    assert wrong.observation.failure == failures.SSL_INVALID_HOSTNAME
    assert unknown.address is None and wrong.address is None


async def test_echo_refused_connection(ca_file: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = await https_echo(
        f"https://test.localhost:{port}/", "127.0.0.1", timeout=TIMEOUT, ca_files=(ca_file,)
    )
    assert result.observation.failure == failures.CONNECTION_REFUSED
    assert result.observation.failed_operation == failures.CONNECT


async def test_echo_rejects_a_url_that_is_not_https() -> None:
    with pytest.raises(ValueError):
        await https_echo("http://test.localhost/", "127.0.0.1", timeout=TIMEOUT)


@pytest.mark.parametrize(
    ("body", "truncated", "expected"),
    [
        ("203.0.113.9", False, "203.0.113.9"),
        ("  203.0.113.9\r\n", False, "203.0.113.9"),
        ("2001:DB8::0007\n", False, "2001:db8::7"),
        ("::ffff:203.0.113.9", False, "203.0.113.9"),
        ("fl=1\nip=2001:db8::7\nts=1\n", False, "2001:db8::7"),
        ("fl=1\nip=203.0.113.9\nuag=Mozilla", True, "203.0.113.9"),
        ("fl=1\nip=203.0.113.9\nip=203.0.113.9\n", False, "203.0.113.9"),
        ("fl=1\nip=203.0.113.9\nip=203.0.113.8\n", False, None),
        ("fl=1\nip=203.0.113", True, None),  # the ip= line was cut by the cap
        ("fl=1\nip=not-an-ip\n", False, None),
        ("203.0.113.9", True, None),  # a bare body cut by the cap
        ("203.0.113.9 203.0.113.8", False, None),
        ("[2001:db8::7]", False, None),
        ("fe80::1%eth0", False, None),
        ("<html>203.0.113.9</html>", False, None),
        ("", False, None),
        ("x" * 1000, False, None),
    ],
)
def test_parse_echo_body(body: str, truncated: bool, expected: str | None) -> None:
    assert parse_echo_body(body, truncated=truncated) == expected


# --- public or not -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "allow", "expected"),
    [
        ("8.8.8.8", (), True),
        ("2606:4700::1", (), True),
        ("127.0.0.2", (), False),
        ("127.0.0.2", LOOPBACK, True),
        ("10.0.0.1", (), False),
        ("100.64.0.1", (), False),  # carrier-grade NAT
        ("192.0.2.1", (), False),
        ("198.18.0.5", (), False),
        ("198.18.0.5", ("198.18.0.0/15",), True),
        ("::1", (), False),
        ("fe80::1", (), False),
        ("fd00::1", (), False),
        ("2001:db8::7", (), False),
        ("::ffff:10.0.0.1", (), False),  # IPv4-mapped private
        ("::ffff:8.8.8.8", (), True),
        ("64:ff9b::a00:1", (), False),  # NAT64 of 10.0.0.1
        ("2002:a00:1::1", (), False),  # 6to4 of 10.0.0.1
        ("not an address", (), False),
    ],
)
def test_counts_as_public(address: str, allow: tuple[str, ...], expected: bool) -> None:
    nets = tuple(ipaddress.ip_network(n) for n in allow)
    assert counts_as_public(address, nets) is expected


def _answer(address: str | None, method: str = STUN) -> PublicIPResult:
    family = None if address is None else (6 if ":" in address else 4)
    observation = PublicIPObservation(method=method, server="x", answer_family=family)
    if address is None:
        observation.failure = failures.GENERIC_TIMEOUT
    return PublicIPResult(observation, address)


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        (["1.1.1.1"], "1.1.1.1"),  # one answer is a majority of one
        (["1.1.1.1", "1.1.1.1", "9.9.9.9"], "1.1.1.1"),
        (["1.1.1.1", "9.9.9.9"], None),  # a tie
        (["1.1.1.1", "1.1.1.1", "9.9.9.9", "9.9.9.9"], None),
        (["1.1.1.1", "9.9.9.9", "8.8.8.8"], None),  # a plurality is not a majority
        (["1.1.1.1", "1.1.1.1", None, None, None], "1.1.1.1"),  # failures do not vote
        (["10.0.0.1", "10.0.0.1", "1.1.1.1"], None),  # a private majority is never ours
        (["1.1.1.1", "10.0.0.1"], None),  # but a private answer still votes against
        ([None, None], None),
        ([], None),
    ],
)
def test_majority_rule(answers: list[str | None], expected: str | None) -> None:
    results = [_answer(a) for a in answers]
    discovery = decide(results)
    assert discovery.ipv4 == expected and discovery.ipv6 is None
    for result in results:
        assert result.observation.agreed is (expected is not None and result.address == expected)
    public = [a for a in answers if a is not None and counts_as_public(a)]
    assert set(discovery.answers) == set(public)
    if expected is not None:
        assert discovery.answers[0] == expected


def test_majority_is_per_family() -> None:
    results = [
        _answer("1.1.1.1"),
        _answer("2606:4700::1"),
        _answer("2606:4700::1"),
        _answer("2606:4700::2"),
        _answer("2606:4700::3"),
    ]
    discovery = decide(results)
    assert discovery.ipv4 == "1.1.1.1"
    assert discovery.ipv6 is None  # 2 of 4 IPv6 answers is not a strict majority
    summary = discovery.to_dict()
    assert summary["ipv4"] == {"found": True, "answers": 1, "agreed": 1}
    assert summary["ipv6"] == {"found": False, "answers": 4, "agreed": 0}


def test_majority_counts_an_address_however_it_is_written() -> None:
    results = [_answer("1.1.1.1"), _answer("1.1.1.1"), _answer("9.9.9.9")]
    results[1].address = "::ffff:1.1.1.1"
    discovery = decide(results)
    assert discovery.ipv4 == "1.1.1.1"
    assert [r.observation.agreed for r in results] == [True, True, False]


# --- discover ----------------------------------------------------------------------------------


ZONE = {
    "stun-a.test": {"A": ["127.0.0.1"], "AAAA": ["::1"]},
    "stun-b.test": {"A": ["127.0.0.1"], "AAAA": ["::1"]},
    "stun-c.test": {"A": ["127.0.0.1"], "AAAA": ["::1"]},
    "v4.test.localhost": {"A": ["127.0.0.1"]},
    "v6.test.localhost": {"AAAA": ["::1"]},
}


@pytest.fixture
async def dns_server() -> AsyncIterator[DNSServer]:
    async with DNSServer(ZONE) as server:
        yield server


async def test_discover_majority_over_stun_and_echo(dns_server: DNSServer, ca_file: str) -> None:
    """Two honest STUN servers and an honest echo page outvote a lying STUN server and a lying
    echo page; every observation is recorded, the liars' as not agreed."""
    counter = ByteCounter()
    async with (
        stun_servers("normal", "normal", "lie", lie_address=LIE) as stun,
        echo_server() as echo,
    ):
        start = time.monotonic()
        discovery = await discover(
            resolver_for(dns_server),
            stun_servers=[
                ("127.0.0.1", stun[0].port),
                ("127.0.0.1", stun[1].port),
                ("stun-c.test", stun[2].port),
            ],
            echo_urls=[
                echo_url(echo, "trace", host="v4.test.localhost"),
                echo_url(echo, "lie", host="v4.test.localhost"),
            ],
            timeout=2.0,
            allow_nets=(*LOOPBACK, "198.51.100.0/24"),
            ca_files=(ca_file,),
            source_address=PROBE,
            counter=counter,
        )
        took = elapsed_since(start)
    # stun-c.test also has ::1, which the IPv4 source address cannot reach: a failure
    assert discovery.ipv4 == PROBE
    assert discovery.ipv6 is None
    assert discovery.answers == (PROBE, LIE)
    summary = [
        (o.method, o.server_family, o.agreed, o.public, o.failure) for o in discovery.observations
    ]
    assert summary[:3] == [
        (STUN, 4, True, True, None),
        (STUN, 4, True, True, None),
        (STUN, 4, False, True, None),
    ]
    assert summary[3] == (STUN, 6, False, False, failures.ADDRESS_NOT_AVAILABLE)  # from 127.0.0.2
    assert summary[4:] == [(HTTPS_ECHO, 4, True, True, None), (HTTPS_ECHO, 4, False, True, None)]
    assert counter.sent > 0
    assert took < 2.0 + SLACK
    assert {q.name for q in dns_server.received} == {"stun-c.test", "v4.test.localhost"}


async def test_discover_ipv4_and_ipv6_separately(dns_server: DNSServer, ca_file: str) -> None:
    async with (
        stun_servers("normal", "normal") as v4,
        stun_servers("normal", "lie", host="::1", lie_address=LIE6) as v6,
        echo_server("::1") as echo6,
    ):
        discovery = await discover(
            resolver_for(dns_server),
            stun_servers=[
                ("127.0.0.1", v4[0].port),
                ("127.0.0.1", v4[1].port),
                ("::1", v6[0].port),
                ("::1", v6[1].port),
            ],
            echo_urls=[echo_url(echo6, "bare6", host="v6.test.localhost")],
            timeout=TIMEOUT,
            allow_nets=(*LOOPBACK, *LOOPBACK6),
            ca_files=(ca_file,),
        )
    assert discovery.ipv4 == "127.0.0.1"
    assert discovery.ipv6 == "::1"  # 2 of 3 IPv6 answers
    assert [o.answer_family for o in discovery.observations] == [4, 4, 6, 6, 6]
    assert [o.agreed for o in discovery.observations] == [True, True, True, False, True]
    assert discovery.to_dict()["ipv6"] == {"found": True, "answers": 3, "agreed": 2}


async def test_discover_refuses_private_answers_unless_allowed(dns_server: DNSServer) -> None:
    async with stun_servers("normal", "normal", "normal") as stun:
        servers = [("127.0.0.1", s.port) for s in stun]
        refused = await discover(
            resolver_for(dns_server), stun_servers=servers, echo_urls=(), timeout=TIMEOUT
        )
        allowed = await discover(
            resolver_for(dns_server),
            stun_servers=servers,
            echo_urls=(),
            timeout=TIMEOUT,
            allow_nets=LOOPBACK,
        )
    assert refused.ipv4 is None and refused.answers == ()
    assert all(not o.public and not o.agreed for o in refused.observations)
    assert allowed.ipv4 == "127.0.0.1" and allowed.answers == ("127.0.0.1",)


async def test_discover_private_majority_loses_to_nobody(dns_server: DNSServer) -> None:
    """Two servers answer a private address and one a public one: the private majority is never
    taken, and the lone public answer is no majority either; it is kept for scrubbing."""
    async with (
        stun_servers("lie", "lie", lie_address="10.0.0.5") as private,
        stun_servers("lie", lie_address="1.2.3.4") as public,
    ):
        discovery = await discover(
            resolver_for(dns_server),
            stun_servers=[("127.0.0.1", s.port) for s in private + public],
            echo_urls=(),
            timeout=TIMEOUT,
        )
    assert discovery.ipv4 is None
    assert discovery.answers == ("1.2.3.4",)
    assert [o.public for o in discovery.observations] == [False, False, True]


@pytest.mark.parametrize(
    "embedded", ["64:ff9b::a00:5", "2002:a00:5::1", "fd00::5", "::ffff:10.0.0.5"]
)
async def test_discover_refuses_ipv6_forms_of_private_addresses(
    dns_server: DNSServer, embedded: str
) -> None:
    async with stun_servers("lie", "lie", host="::1", lie_address=embedded) as stun:
        discovery = await discover(
            resolver_for(dns_server),
            stun_servers=[("::1", s.port) for s in stun],
            echo_urls=(),
            timeout=TIMEOUT,
        )
    assert discovery.ipv4 is None and discovery.ipv6 is None and discovery.answers == ()
    assert all(o.answer_family is not None and not o.public for o in discovery.observations)


async def test_discover_one_answer_decides(dns_server: DNSServer) -> None:
    async with stun_servers("normal", "silence", "garbage", "error") as stun:
        discovery = await discover(
            resolver_for(dns_server),
            stun_servers=[("127.0.0.1", s.port) for s in stun],
            echo_urls=(),
            timeout=0.8,
            allow_nets=LOOPBACK,
            source_address=PROBE,
        )
    assert discovery.ipv4 == PROBE
    assert [o.failure for o in discovery.observations] == [
        None,
        failures.GENERIC_TIMEOUT,
        failures.STUN_INVALID_REPLY,
        failures.STUN_ERROR_RESPONSE,
    ]


async def test_discover_tie_is_no_answer(dns_server: DNSServer) -> None:
    async with stun_servers("normal", "lie", lie_address=LIE) as stun:
        discovery = await discover(
            resolver_for(dns_server),
            stun_servers=[("127.0.0.1", s.port) for s in stun],
            echo_urls=(),
            timeout=TIMEOUT,
            allow_nets=(*LOOPBACK, "198.51.100.0/24"),
            source_address=PROBE,
        )
    assert discovery.ipv4 is None
    assert set(discovery.answers) == {PROBE, LIE}  # both kept for scrubbing
    assert not any(o.agreed for o in discovery.observations)


async def test_discover_resolution_failures_are_observations(dns_server: DNSServer) -> None:
    async with stun_servers("normal") as stun:
        discovery = await discover(
            resolver_for(dns_server),
            stun_servers=[("missing.test", stun[0].port), ("127.0.0.1", stun[0].port)],
            echo_urls=["https://missing.test/"],
            timeout=TIMEOUT,
            allow_nets=LOOPBACK,
        )
    missing = [o for o in discovery.observations if o.failed_operation == failures.RESOLVE]
    assert [(o.method, o.server, o.failure) for o in missing] == [
        (STUN, f"missing.test:{stun[0].port}", failures.DNS_NXDOMAIN),
        (HTTPS_ECHO, "https://missing.test/", failures.DNS_NXDOMAIN),
    ]
    assert all(o.server_address is None and o.server_family is None for o in missing)
    assert discovery.ipv4 == "127.0.0.1"


async def test_discover_ends_within_its_deadline_when_everything_hangs(ca_file: str) -> None:
    """Silent STUN servers, a silent echo page and a DNS server that never answers: every
    attempt is a failure, and the whole discovery ends near its timeout."""
    async with (
        stun_servers("silence") as silent,
        stun_servers("silence", host="::1") as silent6,
        echo_server() as echo,
        DNSServer({}, [Rule("silence")]) as silent_dns,
    ):
        start = time.monotonic()
        discovery = await discover(
            resolver_for(silent_dns),
            stun_servers=[
                ("127.0.0.1", silent[0].port),
                ("::1", silent6[0].port),
                ("stun-a.test", silent[0].port),
            ],
            echo_urls=[echo.url("/never"), echo_url(echo, "bare")],
            timeout=1.0,
            ca_files=(ca_file,),
        )
        took = elapsed_since(start)
    assert took < 1.0 + SLACK
    assert discovery.ipv4 is None and discovery.ipv6 is None
    assert [(o.failure, o.failed_operation) for o in discovery.observations] == [
        (failures.GENERIC_TIMEOUT, failures.STUN_BINDING),
        (failures.GENERIC_TIMEOUT, failures.STUN_BINDING),
        (failures.GENERIC_TIMEOUT, failures.RESOLVE),  # stun-a.test: the DNS server is silent
        (failures.GENERIC_TIMEOUT, failures.HTTP_ROUND_TRIP),  # https://127.0.0.1:port/never
        (failures.GENERIC_TIMEOUT, failures.RESOLVE),  # test.localhost: the DNS server is silent
    ]


async def test_discover_with_literal_urls_needs_no_dns(ca_file: str) -> None:
    resolver = Resolver(("127.0.0.1", 9), pool=None, system_nameserver=None)  # never asked
    async with echo_server() as echo, stun_servers("normal") as stun:
        discovery = await discover(
            resolver,
            stun_servers=[("127.0.0.1", stun[0].port)],
            echo_urls=[echo.url("/raw/bare")],  # https://127.0.0.1:port/: the cert has the IP
            timeout=TIMEOUT,
            ca_files=(ca_file,),
            source_address=PROBE,
            allow_nets=LOOPBACK,
        )
    assert discovery.ipv4 == PROBE
    assert all(o.failure is None and o.agreed for o in discovery.observations)


async def test_discover_rejects_bad_configuration() -> None:
    resolver = Resolver(("127.0.0.1", 9), pool=None, system_nameserver=None)
    with pytest.raises(ValueError):
        await discover(resolver, stun_servers=(), echo_urls=["http://x.test/"])
    with pytest.raises(ValueError):
        await discover(resolver, stun_servers=(), echo_urls=(), allow_nets=["127.0.0.1/8"])
    with pytest.raises(ValueError):
        await discover(
            resolver, stun_servers=(), echo_urls=["https://x.test/"], ca_files=("/nonexistent",)
        )


# --- what is recorded ------------------------------------------------------------------------


async def test_observations_never_hold_the_address(dns_server: DNSServer, ca_file: str) -> None:
    """Serialised observations, summaries and reprs carry no form of any answered address."""
    async with (
        stun_servers("normal", "mapped", "lie") as stun,
        stun_servers("lie", "lie", host="::1", lie_address=LIE6) as stun6,
        echo_server() as echo,
        echo_server("::1") as echo6,
    ):
        discovery4 = await discover(
            resolver_for(dns_server),
            stun_servers=[("127.0.0.1", s.port) for s in stun],
            echo_urls=[
                echo_url(echo, "bare", host="v4.test.localhost"),
                echo_url(echo, "trace", host="v4.test.localhost"),
            ],
            timeout=TIMEOUT,
            allow_nets=(*LOOPBACK, "198.51.100.0/24"),
            ca_files=(ca_file,),
            source_address=PROBE,
        )
        discovery6 = await discover(
            resolver_for(dns_server),
            stun_servers=[("::1", s.port) for s in stun6],
            echo_urls=[echo_url(echo6, "lie6", host="v6.test.localhost")],
            timeout=TIMEOUT,
            allow_nets=("2001:db8::/32",),
            ca_files=(ca_file,),
        )
        single = await stun_binding(*stun[0].address, timeout=TIMEOUT, source_address=PROBE)
    assert discovery4.ipv4 == PROBE and set(discovery4.answers) == {PROBE, LIE}
    assert discovery6.ipv6 == LIE6 and discovery6.answers == (LIE6,)
    text = ""
    for discovery in (discovery4, discovery6):
        text += observation_json(discovery) + repr(discovery) + repr(discovery.observations)
        text += json.dumps(
            [PublicIPObservation.from_dict(o.to_dict()).to_dict() for o in discovery.observations]
        )
    text += observation_json([single]) + repr(single)
    assert_no_address(text, PROBE, LIE, LIE6)
    assert set(discovery4.to_dict()["observations"][0]) == {
        "method",
        "server",
        "server_address",
        "server_family",
        "answer_family",
        "public",
        "agreed",
        "response_code",
        "failure",
        "failed_operation",
        "t0",
        "t",
    }


def test_observation_round_trip_and_tolerant_reader() -> None:
    observation = PublicIPObservation(
        method=STUN,
        server="stun.example:3478",
        server_address="192.0.2.1:3478",
        server_family=4,
        answer_family=4,
        public=True,
        agreed=True,
        failure=None,
        t0=0.1,
        t=0.2,
    )
    assert PublicIPObservation.from_dict(json.loads(json.dumps(observation.to_dict()))) == (
        observation
    )
    junk = PublicIPObservation.from_dict(
        {"method": 3, "public": "yes", "server_family": "4", "t0": float("nan"), "t": True}
    )
    assert junk == PublicIPObservation(method="", server="")


def test_defaults_are_well_formed() -> None:
    """The public defaults are data only: never contacted by any test (the network guard)."""
    assert len({host for host, _ in publicip.DEFAULT_STUN_SERVERS}) >= 2
    for host, port in publicip.DEFAULT_STUN_SERVERS:
        assert host and 0 < port < 65536
    for url in publicip.DEFAULT_ECHO_URLS:
        assert url.startswith("https://")
    assert publicip.DEFAULT_TIMEOUT <= 5


async def test_echo_source_of_another_family_is_a_failure(ca_file: str) -> None:
    result = await https_echo(
        "https://test.localhost:9/",
        "::1",
        timeout=TIMEOUT,
        ca_files=(ca_file,),
        source_address=PROBE,
    )
    assert result.observation.failure == failures.ADDRESS_NOT_AVAILABLE
    assert result.observation.failed_operation == failures.CONNECT
