"""DNS over HTTPS over HTTP/2 (probe/steps/dns/doh_transport.py) against a real local h2
server (tests/servers/doh_h2.py): one connection for every query, every byte counted, and a
failure string (never a traceback or a hang) from a server that resets streams, sends garbage,
hangs up or never answers."""

from __future__ import annotations

import asyncio
import ssl
import time

import pytest

from probe import failures
from probe.observations import Trace
from probe.round.doh_fallback import doh_control
from probe.round.measure import MeasureConfig, RunState
from probe.steps import dns
from probe.steps.dns.doh_transport import CORK_SECONDS, _CountedStream, doh_client, doh_context
from probe.steps.tcp import tcp_connect
from probe.steps.tls_context import client_context
from tests.servers.certs import TestPKI, pki, pki_ca_file  # noqa: F401 (fixtures)
from tests.servers.dns_server import DNSServer, Rule
from tests.servers.doh_h2 import DoHH2Server
from tests.test_doh_fallback import CountingRelay

NAMES = [f"n{i}.example" for i in range(30)]
ZONE = {name: {"A": [f"198.18.1.{i}"]} for i, name in enumerate(NAMES)}
TIMEOUT = 1.0


def server_context(pki: TestPKI) -> ssl.SSLContext:  # noqa: F811
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    pki.chained.configure_cert(context)
    return context


def run_state(ca_file: str, timeout: float = 5.0) -> RunState:
    return RunState(
        config=MeasureConfig(timeout=timeout, ca_files=(ca_file,)),
        resolver=dns.Resolver(("127.0.0.1", 9), pool=None),  # not used
    )


async def test_every_query_shares_one_h2_connection_and_every_byte_is_counted(
    pki: TestPKI,  # noqa: F811
    pki_ca_file: str,  # noqa: F811
) -> None:
    """30 names (60 queries) over one TLS connection that agreed on h2; the round's counter
    holds what crossed a counting relay; far fewer bytes than six HTTP/1.1 connections."""
    async with DNSServer(ZONE) as server, DoHH2Server(server, server_context(pki)) as doh:
        async with CountingRelay(doh.port) as relay:
            state = run_state(pki_ca_file)
            found = await doh_control(NAMES, state, [f"https://localhost:{relay.port}/dns-query"])
            await asyncio.sleep(0.05)  # the relay counts our close records too
    assert sorted(found) == sorted(NAMES)
    for i, name in enumerate(NAMES):
        a, aaaa = found[name]
        assert (a["query_type"], a["failure"], a["engine"]) == ("A", None, "doh")
        assert a["answers"][0]["ipv4"] == f"198.18.1.{i}"
        assert (aaaa["query_type"], aaaa["failure"]) == ("AAAA", "dns_no_answer")
    assert relay.connections == 1 and doh.alpn == ["h2"]
    assert doh.streams == 2 * len(NAMES)
    assert state.counter.sent == relay.upstream
    assert relay.downstream - 24 <= state.counter.received <= relay.downstream
    # One handshake with its chain (~3 kB) + 60 small exchanges: well under what six
    # HTTP/1.1 connections cost (6 handshakes alone are ~18 kB).
    assert relay.upstream + relay.downstream < 16_000


async def test_the_targets_tls_context_keeps_offering_http11_alone(
    pki_ca_file: str,  # noqa: F811
) -> None:
    """httpcore sets ALPN on the context it gets: the DoH context is not the targets' cached
    one (whose HTTP step speaks only HTTP/1.1)."""
    targets = client_context((pki_ca_file,))
    doh = doh_context((pki_ca_file,))
    assert doh is not targets
    client = doh_client(timeout=1.0, counter=None, ca_files=(pki_ca_file,))
    await client.aclose()
    assert client_context((pki_ca_file,)) is targets
    with pytest.raises(ValueError, match="CA file not found"):
        doh_context(("/nonexistent/ca.pem",))


@pytest.mark.parametrize(
    ("mode", "failure"),
    [
        ("reset", failures.HTTP_INVALID_RESPONSE),
        ("garbage", failures.HTTP_INVALID_RESPONSE),
        ("close", failures.EOF_ERROR),
        ("silent", failures.GENERIC_TIMEOUT),
    ],
)
async def test_a_hostile_h2_server_gives_each_query_a_failure(
    pki: TestPKI,  # noqa: F811
    pki_ca_file: str,  # noqa: F811
    mode: str,
    failure: str,
) -> None:
    async with DNSServer(ZONE) as server:
        async with DoHH2Server(server, server_context(pki), mode=mode) as doh:
            client = doh_client(timeout=TIMEOUT, counter=None, ca_files=(pki_ca_file,))
            async with client:
                queries = await asyncio.wait_for(
                    asyncio.gather(
                        *(
                            dns.resolve_doh(
                                name, "A", doh.url, trace=_trace(), timeout=TIMEOUT, client=client
                            )
                            for name in NAMES[:5]
                        )
                    ),
                    3 * TIMEOUT + 2,
                )
    assert [q.failure for q in queries] == [failure] * 5
    assert all(q.engine == "doh" and q.answers == [] for q in queries)


@pytest.mark.parametrize("mode", ["reset", "garbage", "close", "silent"])
async def test_a_hostile_h2_resolver_costs_one_deadline_and_the_next_one_answers(
    pki: TestPKI,  # noqa: F811
    pki_ca_file: str,  # noqa: F811
    mode: str,
) -> None:
    """The DNS-only control asks the first name alone: a resolver that gave no DNS reply is
    not asked the other 29 names (one deadline, not 30), and the next resolver answers."""
    async with DNSServer(ZONE) as server:
        async with (
            DoHH2Server(server, server_context(pki), mode=mode) as bad,
            DoHH2Server(server, server_context(pki)) as good,
        ):
            state = run_state(pki_ca_file, timeout=TIMEOUT)
            started = time.monotonic()
            found = await asyncio.wait_for(doh_control(NAMES, state, [bad.url, good.url]), 20)
            elapsed = time.monotonic() - started
    assert sorted(found) == sorted(NAMES)
    assert all(qs[0]["resolver_address"] == good.url for qs in found.values())
    assert bad.streams <= 2  # the first name's A and AAAA at most
    assert elapsed < 3 * TIMEOUT + 2


async def test_a_stream_never_answered_times_out_alone(
    pki: TestPKI,  # noqa: F811
    pki_ca_file: str,  # noqa: F811
) -> None:
    """One name the server never answers (its stream stays open): its queries time out, the
    other names' queries on the same connection are answered."""
    rules = [Rule("silence", name="n3.example", transport="doh")]
    async with DNSServer(ZONE, rules) as server, DoHH2Server(server, server_context(pki)) as doh:
        state = run_state(pki_ca_file, timeout=TIMEOUT)
        found = await asyncio.wait_for(doh_control(NAMES, state, [doh.url]), 20)
    assert [q["failure"] for q in found["n3.example"]] == [failures.GENERIC_TIMEOUT] * 2
    assert all(found[n][0]["failure"] is None for n in NAMES if n != "n3.example")
    assert doh.connections == 1


def _trace() -> Trace:
    return Trace(0.0, 0)


def test_httpcores_words_for_a_closed_h2_connection_are_eof() -> None:
    import httpcore
    import httpx

    try:
        try:
            raise httpcore.RemoteProtocolError("Server disconnected")
        except httpcore.RemoteProtocolError as exc:
            raise httpx.RemoteProtocolError("Server disconnected") from exc
    except httpx.RemoteProtocolError as exc:
        assert failures.classify(exc) == failures.EOF_ERROR
    assert failures.classify(httpx.RemoteProtocolError("<StreamReset>")) == (
        failures.HTTP_INVALID_RESPONSE
    )


async def test_frames_written_one_by_one_leave_in_one_send() -> None:
    """httpcore writes each HTTP/2 frame on its own: corked, those written together cost one
    send (one TLS record, mostly one segment), and all of them arrive."""
    received = bytearray()

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            received.extend(data)
        writer.close()

    server = await asyncio.start_server(sink, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    trace = Trace(time.monotonic(), 1)
    connected = await tcp_connect("127.0.0.1", port, trace=trace, timeout=TIMEOUT)
    assert connected.stream is not None
    stream = _CountedStream(connected.stream, connected.stream.sock)
    frames = [b"HEADERS" * 3, b"DATA" * 10, b"END_STREAM", b"SETTINGS-ACK"]
    for frame in frames:
        await stream.write(frame)
    await asyncio.sleep(CORK_SECONDS * 4)
    await stream.write(b"later")  # after the cork: a send of its own
    await stream.aclose()  # sends what is still corked
    for _ in range(100):
        if len(received) == sum(map(len, frames)) + 5:
            break
        await asyncio.sleep(0.01)
    server.close()
    writes = [e.num_bytes for e in trace.events if e.operation == "write"]
    assert writes == [sum(map(len, frames)), 5]
    assert bytes(received) == b"".join(frames) + b"later"
