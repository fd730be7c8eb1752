"""The control server's limits, attacked as a hostile client would, on loopback (issue 14,
items 1-5): caller roots cost bounded memory and no disk, a reply has a size cap and says what
it cut, slow or vanished clients hold no slot, every connection and request has a deadline,
and failed accepts do not flood the log. Each test starts the real server (aiohttp, our
connection deadlines) as `probe control serve` runs it."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import errno
import gc
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from probe import failures
from probe.control import (
    MAX_CA_CERTIFICATES,
    MAX_CA_PEMS_PER_REQUEST,
    MAX_REPLY_BYTES_PER_TARGET,
    ControlClient,
)
from probe.steps import dns, tls_context
from probe.targets import Target
from tests.control_helpers import running_control
from tests.servers.certs import make_pki

# --- helpers -------------------------------------------------------------------------------


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def tcp_target(port: int, target_id: str = "t/tcp") -> dict:
    return {"id": target_id, "service": "t", "check": "tcp", "host": "127.0.0.1", "ports": [port]}


async def post(base: str, body: object, *, timeout: float = 20.0) -> tuple[int, dict, bytes]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(timeout=client_timeout) as session:
        async with session.post(
            base + "/v1/measure", data=data, headers={"Content-Type": "application/json"}
        ) as response:
            raw = await response.read()
            return response.status, json.loads(raw), raw


async def get_health(base: str, timeout: float) -> int:
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(timeout=client_timeout) as session:
        async with session.get(base + "/v1/health") as response:
            await response.read()
            return response.status


def host_port(base: str) -> tuple[str, int]:
    host, port = base.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


async def raw_request(base: str, data: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(*host_port(base))
    writer.write(data)
    await writer.drain()
    return reader, writer


def post_head(length: int) -> bytes:
    return (
        f"POST /v1/measure HTTP/1.1\r\nHost: control\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[tuple[int, list[asyncio.StreamReader]]]:
    """Accepts, reads, never answers; yields its port and the readers of its connections."""
    readers: list[asyncio.StreamReader] = []
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        readers.append(reader)
        writers.append(writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], readers
    finally:
        for writer in writers:
            writer.transport.abort()
        server.close()


async def closed_by_peer(reader: asyncio.StreamReader, within: float) -> bool:
    """Whether the other side closes (EOF or reset) within `within` seconds."""
    try:
        async with asyncio.timeout(within):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


def make_ca_pem(index: int) -> str:
    """A distinct self-signed CA certificate (EC P-256: fast)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"probe test root {index}")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def tls_target(port: int, target_id: str, pem: str) -> dict:
    return {
        "id": target_id,
        "service": "t",
        "check": "tls",
        "host": "127.0.0.1",
        "sni": "test.localhost",
        "ports": [port],
        "x_ca_pem": pem,
    }


# --- 1. bounded memory: caller roots ---------------------------------------------------------


async def test_caller_roots_do_not_grow_the_tls_context_cache():
    """40 requests' worth of distinct roots (each one a TLS context of ~0.8 MB when built):
    the cache keeps at most CONTEXT_CACHE_SIZE of them, and no more contexts stay alive."""
    pems = [make_ca_pem(i) for i in range(40)]
    tls_context._build_context.cache_clear()
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, running_control() as base:
        for start in range(0, len(pems), MAX_CA_PEMS_PER_REQUEST):
            batch = pems[start : start + MAX_CA_PEMS_PER_REQUEST]
            targets = [tls_target(port, f"t/{start + i}", pem) for i, pem in enumerate(batch)]
            status, reply, _ = await post(base, {"targets": targets})
            assert status == 200, reply
            for result in reply["results"]:  # a context was built: the handshake was tried
                assert result["observations"]["tls_handshakes"]
    gc.collect()
    cached = tls_context._build_context.cache_info().currsize
    alive = len(tls_context._CONTEXT_ROOTS)
    assert cached <= 16, f"{cached} contexts cached for 40 distinct roots"
    assert alive <= 16 + 2, f"{alive} contexts alive"


async def test_caller_roots_are_bounded_in_size_count_and_variety():
    port = closed_port()
    many = "".join(make_ca_pem(i) for i in range(MAX_CA_CERTIFICATES + 1))
    async with running_control() as base:
        status, reply, _ = await post(base, {"targets": [tls_target(port, "t/many", many)]})
        assert status == 400 and "certificates" in reply["error"]
        pems = [make_ca_pem(i) for i in range(MAX_CA_PEMS_PER_REQUEST + 1)]
        targets = [tls_target(port, f"t/{i}", pem) for i, pem in enumerate(pems)]
        status, reply, _ = await post(base, {"targets": targets})
        assert status == 400 and "x_ca_pem" in reply["error"]
        huge = make_ca_pem(0) + "\n" * 70_000
        status, reply, _ = await post(base, {"targets": [tls_target(port, "t/huge", huge)]})
        assert status == 400 and "64 KiB" in reply["error"]
        status, reply, _ = await post(base, {"targets": [tls_target(port, "t/junk", "junk")]})
        assert status == 400 and "no PEM certificate" in reply["error"]


# --- 3. no disk growth -----------------------------------------------------------------------


async def test_caller_roots_are_used_from_memory_and_never_written_to_disk(tmp_path, monkeypatch):
    from tests.servers.tls_server import TLSServer

    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    pki = make_pki()
    pem = pki.ca.cert_pem.bytes().decode()
    async with TLSServer(pki.good) as server, running_control() as base:
        for round_ in range(3):
            target = tls_target(server.port, f"t/{round_}", pem)
            status, reply, _ = await post(base, {"targets": [target]})
            assert status == 200, reply
            [handshake] = reply["results"][0]["observations"]["tls_handshakes"]
            assert handshake["failure"] is None, "the caller's roots verified the server"
    assert list(temp.iterdir()) == [], "nothing a client sends persists on disk"


# --- 2. bounded reply ------------------------------------------------------------------------

HOPS = 11  # the first request and max_redirects (10) redirects
FAT_HEADERS = 600  # x ~100 bytes: a 60 KB head, under the HTTP step's 64 KiB bound


@contextlib.asynccontextmanager
async def fat_redirect_chain() -> AsyncIterator[int]:
    """/hop/N answers 302 to /hop/N+1 on the same server with a 60 KB head: a redirect chain
    that would put ~1.3 MB into one target's result (each head twice: list and map)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].decode()
            hop = int(path.rsplit("/", 1)[-1]) if path.rsplit("/", 1)[-1].isdigit() else 0
            fat = "".join(f"X-Fat-{i}: {'v' * 90}\r\n" for i in range(FAT_HEADERS))
            location = f"http://127.0.0.1:{port}/hop/{hop + 1}"
            writer.write(
                f"HTTP/1.1 302 Found\r\nLocation: {location}\r\n{fat}"
                "Content-Length: 0\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield port


async def test_a_fat_redirect_chain_keeps_the_reply_under_its_cap_and_says_so():
    cap = 200 * 1024  # room for about three of the six results
    async with fat_redirect_chain() as port, running_control(max_reply_bytes=cap) as base:
        targets = [
            {"id": f"t/fat{i}", "service": "t", "check": "http",
             "url": f"http://127.0.0.1:{port}/hop/0?t={i}"}
            for i in range(6)
        ]  # fmt: skip
        status, reply, raw = await post(base, {"targets": targets})
        assert status == 200
        assert len(raw) <= cap, len(raw)
        kept = [r for r in reply["results"] if "observations" in r]
        dropped = [r for r in reply["results"] if "observations" not in r]
        assert kept and dropped, "some results fit, the rest were dropped"
        for result in kept:
            assert len(json.dumps(result)) <= MAX_REPLY_BYTES_PER_TARGET
            assert len(result["observations"]["requests"]) == HOPS, "every hop is still there"
            assert result["x_truncated"]["http_responses_trimmed"] >= 1
        for result in dropped:
            assert result["x_truncated"] == {"reason": "reply_cap", "cap_bytes": cap}
        assert reply["x_truncated"]["results_dropped"] == len(dropped)
        assert reply["x_truncated"]["results_trimmed"] == len(kept)

        # The probe's client takes such a reply, with what was kept.
        asked = [Target(id=t["id"], service="t", check="http", url=t["url"]) for t in targets]
        pool = dns.GetaddrinfoPool()
        try:
            resolver = dns.Resolver(None, pool=pool, system_nameserver=None)
            client = ControlClient([base], token=None, timeout=20, resolver=resolver)
            answer = await client.measure(asked)
        finally:
            pool.close()
        assert answer.failure is None
        assert 0 < len(answer.observations) < len(targets)


def test_one_result_is_cut_to_its_cap_whatever_it_holds():
    """Heads of escaped characters, many events and handshakes: the JSON of one result stays
    under its cap, says what was cut, and keeps the first entries."""
    from probe.control import bounded_result
    from probe.observations import (
        HTTPTransaction,
        NetworkEvent,
        Observations,
        TCPConnect,
        TLSHandshake,
    )

    cert = "A" * 2000
    observations = Observations(
        tcp_connect=[TCPConnect(ip="192.0.2.1", port=443, success=True) for _ in range(64)],
        tls_handshakes=[
            TLSHandshake(address="192.0.2.1:443", server_name="a", peer_certificates=[cert] * 10)
            for _ in range(20)
        ],
        requests=[
            HTTPTransaction(
                url=f"http://a.test/{i}",
                response_code=302,
                response_headers=[(f"h{j}", "\u00e9\u0001" * 2000) for j in range(16)],
            )
            for i in range(19)
        ],
        network_events=[NetworkEvent(operation="read", address="192.0.2.1:443")] * 4096,
    )  # fmt: skip
    cap = MAX_REPLY_BYTES_PER_TARGET
    text, cut = bounded_result("t/x", observations, cap)
    assert cut
    assert len(text) <= cap
    result = json.loads(text)
    marks = result["x_truncated"]
    assert marks["network_events_dropped"] == 4096
    assert marks["dropped"]
    assert result["observations"]["requests"][0]["request"]["url"] == "http://a.test/0"


# --- 4. slots and time -----------------------------------------------------------------------


async def test_half_sent_bodies_hold_no_slot_and_end_at_the_body_deadline():
    """Six clients send a head and part of the body, then stall: with two slots, a normal
    request is still measured at once; the stalled ones get 408 at the body deadline."""
    async with running_control(max_concurrent=2, body_timeout=1.5) as base:
        stalled = [await raw_request(base, post_head(1000) + b'{"targets": [') for _ in range(6)]
        await asyncio.sleep(0.2)
        started = time.monotonic()
        status, reply, _ = await post(base, {"targets": [tcp_target(closed_port())]})
        assert status == 200, reply
        assert time.monotonic() - started < 1.5
        for reader, writer in stalled:
            answer = b""
            async with asyncio.timeout(3):
                while b"}" not in answer:  # the JSON error, not the close after it
                    chunk = await reader.read(4096)
                    assert chunk, answer
                    answer += chunk
            writer.close()
            assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
            assert b'"error"' in answer and b"did not arrive" in answer


async def test_a_client_that_goes_away_frees_its_slot_and_cancels_its_measurement():
    """One slot; a client asks for a measurement that would take 6 s (a TLS server that never
    answers), then disconnects: the measurement stops and the next client is served."""
    async with silent_server() as (port, peers):
        async with running_control(max_concurrent=1, timeout=6.0) as base:
            body = json.dumps({"targets": [tls_target(port, "t/slow", make_ca_pem(0))]}).encode()
            _reader, writer = await raw_request(base, post_head(len(body)) + body)
            async with asyncio.timeout(3):
                while not peers:  # noqa: ASYNC110 - until the control is measuring
                    await asyncio.sleep(0.05)
            writer.transport.abort()
            assert await closed_by_peer(peers[0], within=2.0), "the measurement was cancelled"
            started = time.monotonic()
            status, reply, _ = await post(base, {"targets": [tcp_target(closed_port())]})
            assert status == 200, reply
            assert time.monotonic() - started < 2.0


async def test_the_request_deadline_returns_what_finished():
    """A 0.7 s request deadline with 6 s steps: the target still running is cut (no
    observations, generic_timeout_error), the finished one is there, and the reply says so."""
    async with silent_server() as (port, _peers):
        async with running_control(timeout=6.0, request_timeout=0.7) as base:
            targets = [tls_target(port, "t/slow", make_ca_pem(0)), tcp_target(closed_port())]
            started = time.monotonic()
            status, reply, _ = await post(base, {"targets": targets})
            elapsed = time.monotonic() - started
    assert status == 200
    assert elapsed < 3.0, elapsed
    slow, fast = reply["results"]
    assert slow == {"id": "t/slow", "failure": failures.GENERIC_TIMEOUT}
    [connect] = fast["observations"]["tcp_connect"]
    assert connect["status"]["failure"] == failures.CONNECTION_REFUSED
    assert reply["x_deadline"] == {"seconds": 0.7, "results_unfinished": 1}


# --- 5. slowloris and fd exhaustion ----------------------------------------------------------

SLOW_HEAD = b"GET /v1/health HTTP/1.1\r\nHost: control\r\n"


@contextlib.asynccontextmanager
async def slowloris(base: str, count: int) -> AsyncIterator[list[asyncio.StreamReader]]:
    """`count` connections that send a partial head, then one more header line every 0.3 s,
    until the block ends; yields the readers of those the server accepted."""
    host, port = host_port(base)
    pairs: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def open_one() -> None:
        with contextlib.suppress(OSError):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(SLOW_HEAD)
            pairs.append((reader, writer))

    async def trickle() -> None:
        while True:
            await asyncio.sleep(0.3)
            for _reader, writer in pairs:
                if not writer.is_closing():
                    writer.write(b"X-Slow: 1\r\n")

    await asyncio.gather(*(open_one() for _ in range(count)))
    task = asyncio.create_task(trickle())
    try:
        yield [reader for reader, _ in pairs]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for _reader, writer in pairs:
            writer.transport.abort()


async def test_slowloris_connections_are_cut_at_the_header_deadline_and_health_answers():
    async with running_control(header_timeout=1.0) as base, slowloris(base, 200) as readers:
        assert len(readers) == 200
        started = time.monotonic()
        assert await get_health(base, timeout=5.0) == 200
        assert time.monotonic() - started < 1.0
        closed = await asyncio.gather(*(closed_by_peer(r, within=3.0) for r in readers))
        assert all(closed), f"{closed.count(False)} slow heads still open after 3 s"


SERVE_SCRIPT = """
import ipaddress, resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[2]), int(sys.argv[2])))
from probe.control import ControlServerConfig, serve
from probe.round.measure import MeasureConfig
config = ControlServerConfig(
    measure=MeasureConfig(timeout=1.0), header_timeout=1.0, body_timeout=1.0, request_timeout=2.0
)
serve(config, "127.0.0.1", int(sys.argv[1]))
"""


async def test_out_of_file_descriptors_health_still_answers_and_the_log_stays_short():
    """`probe control serve` with 96 file descriptors, 200 slow heads: accepts fail for lack of
    descriptors, the header deadline frees them, /v1/health answers within its client timeout,
    the failed accepts make at most a line or two, and SIGTERM stops the server cleanly."""
    port = closed_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(  # noqa: ASYNC220 - waited for in a thread below
        [sys.executable, "-c", SERVE_SCRIPT, str(port), "96"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=str(Path(__file__).resolve().parent.parent),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                assert await get_health(base, timeout=1.0) == 200
                break
            except (aiohttp.ClientError, TimeoutError):
                assert process.poll() is None, process.stderr.read().decode()  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "the server did not start"
                await asyncio.sleep(0.1)
        async with slowloris(base, 200):
            await asyncio.sleep(0.3)  # the server has run out of descriptors
            started = time.monotonic()
            assert await get_health(base, timeout=10.0) == 200
            health_seconds = time.monotonic() - started
            await asyncio.sleep(1.5)  # more failed accepts, if any
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            _, stderr_bytes = await asyncio.to_thread(process.communicate, timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr_bytes = process.communicate()
    stderr = stderr_bytes.decode(errors="replace")
    assert process.returncode == 0, stderr[-2000:]
    accept_lines = [line for line in stderr.splitlines() if "accept" in line]
    assert accept_lines, "the server did run out of descriptors"
    assert len(accept_lines) <= 2, "\n".join(accept_lines)
    assert "Traceback" not in stderr, stderr[-2000:]
    assert health_seconds < 10.0


async def test_failed_accepts_are_one_log_line_per_minute(caplog):
    """asyncio reports every failed accept (EMFILE) to the loop's exception handler, about once
    a second while descriptors lack; the control turns that into one line per minute."""
    caplog.set_level(logging.INFO)
    async with running_control():
        loop = asyncio.get_running_loop()
        for _ in range(500):
            loop.call_exception_handler(
                {
                    "message": "socket.accept() out of system resource",
                    "exception": OSError(errno.EMFILE, os.strerror(errno.EMFILE)),
                }
            )
    lines = [r for r in caplog.records if "accept" in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert not any(r.exc_info for r in lines)


async def test_a_flood_of_malformed_requests_is_rate_limited_in_the_log(caplog):
    caplog.set_level(logging.DEBUG)
    async with running_control() as base:
        for _ in range(40):
            reader, writer = await raw_request(base, b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
            async with asyncio.timeout(3):
                answer = await reader.read()
            writer.close()
            assert answer.split(b" ", 2)[1] == b"400", answer[:80]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert 1 <= len(errors) <= 10, len(errors)


# --- 6. the probe's client keeps the control's markers ----------------------------------------


def test_the_client_keeps_what_the_control_cut_and_left_unfinished():
    """A result's `x_truncated` stays with its observations (and so with the record's
    `control`), a result dropped whole and a target cut by the deadline are told per target;
    anything else a control writes into a marker is not kept."""
    from probe.control.client import parse_reply

    doc = {
        "client": {},
        "results": [
            {"id": "t/cut", "observations": {},
             "x_truncated": {"cap_bytes": 10, "dropped": {"requests": 2, "x": "junk"},
                             "junk": "y" * 100}},
            {"id": "t/dropped", "x_truncated": {"reason": "reply_cap", "cap_bytes": 10}},
            {"id": "t/slow", "failure": failures.GENERIC_TIMEOUT},
            {"id": "t/whole", "observations": {}},
            {"id": "t/other", "failure": failures.GENERIC_TIMEOUT},
        ],
        "x_deadline": {"seconds": 1.0, "results_unfinished": 1},
    }  # fmt: skip
    asked = {"t/cut", "t/dropped", "t/slow", "t/whole"}
    reply = parse_reply(json.dumps(doc).encode(), "http://control", asked)
    assert reply.deadline
    assert reply.truncated == {
        "t/cut": {"cap_bytes": 10, "dropped": {"requests": 2}},
        "t/dropped": {"reason": "reply_cap", "cap_bytes": 10},
    }
    assert reply.failures == {"t/slow": failures.GENERIC_TIMEOUT}
    assert reply.target_failure("t/slow") == failures.GENERIC_TIMEOUT
    assert reply.target_failure("t/whole") is None
    assert set(reply.observations) == {"t/cut", "t/whole"}
    assert reply.observations["t/cut"].to_dict()["x_truncated"] == reply.truncated["t/cut"]
    assert "x_truncated" not in reply.observations["t/whole"].to_dict()


async def test_the_client_says_which_targets_the_controls_deadline_cut():
    async with silent_server() as (port, _peers):
        async with running_control(timeout=6.0, request_timeout=0.7) as base:
            asked = [
                Target(id="t/slow", service="t", check="tls", host="127.0.0.1", ports=(port,),
                       sni="test.localhost"),
                Target(id="t/fast", service="t", check="tcp", host="127.0.0.1",
                       ports=(closed_port(),)),
            ]  # fmt: skip
            pool = dns.GetaddrinfoPool()
            try:
                resolver = dns.Resolver(None, pool=pool, system_nameserver=None)
                client = ControlClient([base], token=None, timeout=20, resolver=resolver)
                reply = await client.measure(asked)
            finally:
                pool.close()
    assert reply.failure is None and reply.deadline
    assert reply.failures == {"t/slow": failures.GENERIC_TIMEOUT}
    assert set(reply.observations) == {"t/fast"}
