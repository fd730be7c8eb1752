"""A small world on loopback for end-to-end tests of `probe run`: a DNS server, TLS, HTTP and
raw TCP servers, a fake Telegram data centre and the control server, each behaving differently
for the probe (source 127.0.0.2) and for the control (source 127.0.0.3) — the way a censor sits
between the probe and the world but not between the control and the world.

`probe run` itself runs as a subprocess (the real CLI) with `--resolver` pointed at the world's
DNS server and `--source-address 127.0.0.2`, so it never asks the system resolver and never
leaves loopback.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import json
import os
import shutil
import ssl
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.control_helpers import running_control
from tests.servers.certs import make_pki
from tests.servers.dns_server import DNSServer, Rule
from tests.servers.fake_dc import FakeDC
from tests.servers.fake_dc import Rule as DCRule
from tests.servers.http_server import HTTPTestServer
from tests.servers.tcp_server import closed_port
from tests.servers.tls_server import TLSServer, server_context

PROBE = "127.0.0.2"
CONTROL = "127.0.0.3"
REPO = Path(__file__).resolve().parent.parent
SCHEMA_PATH = REPO / "docs" / "record.schema.json"


class PeerCertServer:
    """TLS with a certificate chosen by the client's address: a man in the middle for the probe
    (a certificate for the wrong name), the genuine one for everybody else."""

    def __init__(self, by_peer: dict[str, ssl.SSLContext], default: ssl.SSLContext) -> None:
        self.by_peer = by_peer
        self.default = default
        self.port = 0
        self._server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")[0]
        context = self.by_peer.get(peer, self.default)
        with contextlib.suppress(Exception):
            await writer.start_tls(context)
            await reader.read(65536)
        with contextlib.suppress(Exception):
            writer.close()

    async def __aenter__(self) -> PeerCertServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)


@dataclass
class World:
    dns: DNSServer
    control_url: str
    ca_file: str
    list_path: Path
    expected: dict[str, tuple[str, str | None]] = field(default_factory=dict)

    @property
    def resolver(self) -> str:
        return f"{self.dns.host}:{self.dns.port}"


def _toml_target(**fields: Any) -> str:
    lines = ["[[targets]]"]
    for key, value in fields.items():
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


@contextlib.asynccontextmanager
async def loopback_world(tmp: Path, *, timeout: float = 1.5) -> AsyncIterator[World]:
    pki = make_pki()
    ca_file = pki.write_ca_file(tmp)
    zone = {
        "web.test.localhost": {"A": ["127.0.0.1"]},
        "tls.test.localhost": {"A": ["127.0.0.1"]},
        "lie.test.localhost": {"A": ["127.0.0.1"]},
        "block.test.localhost": {"A": ["127.0.0.1"]},
        "mitm.test.localhost": {"A": ["127.0.0.1"]},
    }
    rules = [Rule("lie", name="lie.test.localhost", peer=PROBE, ips=("10.10.34.36",))]
    good = server_context(pki.good)
    wrong = server_context(pki.wrong_name)
    page = HTTPTestServer()
    blockpage = HTTPTestServer(by_peer={PROBE: "blockpage"})
    async with contextlib.AsyncExitStack() as stack:
        dns_server = await stack.enter_async_context(DNSServer(zone, rules))
        await stack.enter_async_context(page)
        await stack.enter_async_context(blockpage)
        https = await stack.enter_async_context(TLSServer(pki.good, app=page.handle_connection))
        reset_tls = await stack.enter_async_context(TLSServer(pki.good, by_peer={PROBE: "reset"}))
        silent_tls = await stack.enter_async_context(TLSServer(pki.good, by_peer={PROBE: "silent"}))
        mitm = await stack.enter_async_context(PeerCertServer({PROBE: wrong}, good))
        dc = await stack.enter_async_context(FakeDC(ports=(0, 0)))
        dpi_dc = await stack.enter_async_context(
            FakeDC(
                ports=(0,),
                rules=[
                    DCRule("reset", peer=PROBE, transport="intermediate"),
                    DCRule("reset", peer=PROBE, transport="abridged"),
                ],
            )
        )
        control_url = await stack.enter_async_context(
            running_control(
                resolver=dns_server.address,
                source_address=CONTROL,
                ca_files=(ca_file,),
                timeout=timeout,
            )
        )
        down_port = closed_port()
        targets = [
            _toml_target(
                id="baseline/local",
                service="baseline",
                check="https",
                url=f"https://web.test.localhost:{https.port}/page",
            ),
            _toml_target(
                id="itest/clean",
                service="itest",
                check="https",
                url=f"https://web.test.localhost:{https.port}/page",
            ),
            _toml_target(
                id="itest/dnslie", service="itest", check="dns", host="lie.test.localhost"
            ),
            _toml_target(
                id="itest/reset",
                service="itest",
                check="tls",
                host="tls.test.localhost",
                ports=[reset_tls.port],
            ),
            _toml_target(
                id="itest/silence",
                service="itest",
                check="tls",
                host="tls.test.localhost",
                ports=[silent_tls.port],
            ),
            _toml_target(
                id="itest/mitm",
                service="itest",
                check="tls",
                host="mitm.test.localhost",
                sni="test.localhost",
                ports=[mitm.port],
            ),
            _toml_target(
                id="itest/blockpage",
                service="itest",
                check="http",
                url=f"http://block.test.localhost:{blockpage.port}/page",
            ),
            _toml_target(
                id="itest/down", service="itest", check="tcp", host="127.0.0.1", ports=[down_port]
            ),
            _toml_target(
                id="telegram/dc-loopback",
                service="telegram",
                check="mtproto",
                host="127.0.0.1",
                ports=list(dc.ports),
            ),
            _toml_target(
                id="telegram/dc-dpi",
                service="telegram",
                check="mtproto",
                host="127.0.0.1",
                ports=list(dpi_dc.ports),
                transports=["obfuscated2", "intermediate"],
            ),
        ]
        list_path = tmp / "world.toml"
        list_path.write_text(
            '[list]\nname = "world"\nupdated = 2026-11-28\n\n' + "\n".join(targets)
        )
        yield World(
            dns=dns_server,
            control_url=control_url,
            ca_file=ca_file,
            list_path=list_path,
            expected={
                "baseline/local": ("ok", None),
                "itest/clean": ("ok", None),
                "itest/dnslie": ("blocked", "dns"),
                "itest/reset": ("blocked", "tls"),
                "itest/silence": ("blocked", "tls"),
                "itest/mitm": ("blocked", "tls"),
                "itest/blockpage": ("blocked", "http-diff"),
                "itest/down": ("down", None),
                "telegram/dc-loopback": ("ok", None),
                "telegram/dc-dpi": ("blocked", "protocol"),
            },
        )


@dataclass
class ProbeRun:
    returncode: int
    stdout: str
    stderr: str


#: A sitecustomize that installs tests/netguard.py in `probe` subprocesses (see its docstring):
#: the in-process guard cannot see them, so they carry their own.
GUARD_DIR = REPO / "tests" / "data" / "hostile" / "guard"
GUARD_MARK = "NETWORK GUARD VIOLATION"


@functools.cache
def session_data_dir() -> str:
    """An empty data directory for this test session's `probe` subprocesses (no GeoIP update;
    the probe id they make stays here, never in the developer's own data directory)."""
    path = tempfile.mkdtemp(prefix="probe-test-data-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def probe_env() -> dict[str, str]:
    """The environment of a `probe` subprocess: no user config, consent for unattended use
    (as in scripts; tests/test_consent.py removes it), and the network guard on."""
    env = dict(os.environ)
    env.setdefault("PROBE_ACCEPT_RISKS", "1")
    env.pop("PROBE_CONFIG", None)
    env["XDG_CONFIG_HOME"] = "/nonexistent-probe-test-config"
    # the shipped GeoIP data, never a `probe geoip update` of the developer's own account; the
    # probe id of the test session's runs lives there too
    env["PROBE_DATA_DIR"] = session_data_dir()
    env["PYTHONPATH"] = os.pathsep.join([str(GUARD_DIR), str(REPO)])
    env["PROBE_TEST_GUARD"] = "1"
    env["COLUMNS"] = "120"
    # English, whatever the developer's locale (a test that wants Persian says so)
    env["LANGUAGE"] = "en"
    return env


async def start_probe(args: Sequence[str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "probe",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        env=probe_env(),
        cwd=str(REPO),
    )


async def run_probe(args: Sequence[str], *, limit: float = 120.0) -> ProbeRun:
    """The real CLI in a subprocess, while this process's servers keep serving."""
    process = await start_probe(args)
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), limit)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    result = ProbeRun(process.returncode, stdout.decode(), stderr.decode())
    assert GUARD_MARK not in result.stderr, result.stderr
    return result


def read_records(out_dir: Path) -> list[dict[str, Any]]:
    records = []
    for path in sorted(out_dir.rglob("*.jsonl")):
        for line in path.read_text().splitlines():
            records.append(json.loads(line))
    return records


def schema_validator() -> Any:
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text())
    return jsonschema.Draft202012Validator(schema)
