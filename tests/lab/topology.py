"""The lab's namespaces, links, addresses and processes, and their robust cleanup.

Layout (all names prefixed ``plab-<pid>-`` so that leftovers of a crashed run can be found)::

    client 198.18.1.2 ── 198.18.1.1 censor 198.19.0.1 ── 198.19.0.2 net ── 198.19.1.1
                                                              (servers)        │
                                                                    198.19.1.2 ctrl

Only routes to 198.18.0.0/15 and 10.10.34.0/24 exist; there is no default route anywhere and no
link to the root namespace, so a packet to any other address fails with ENETUNREACH.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from tests.lab.ipv6 import (
    CENSOR6_CLIENT_SIDE_IP,
    DOMESTIC_IP,
    DUAL6_IP,
    DUAL_BASELINE6_IP,
    DUAL_BASELINE_IP,
    DUAL_IP,
    LAB6_PREFIX,
    VANTAGE_HOSTS,
    create_ipv6,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
PREFIX = "plab-"
NETNS_ETC = Path("/etc/netns")
NETNS_RUN = Path("/var/run/netns")

# --- the address plan -----------------------------------------------------------------------
CLIENT_IP = "198.18.1.2"
CENSOR_CLIENT_SIDE_IP = "198.18.1.1"
CENSOR_NET_SIDE_IP = "198.19.0.1"
NET_IP = "198.19.0.2"
NET_CTRL_SIDE_IP = "198.19.1.1"
CONTROL_IP = "198.19.1.2"
RESOLVER_IP = "198.19.0.53"
WEB_IP = "198.19.0.10"  # web.telegram.org
WEB2_IP = "198.19.0.11"  # telegram.org, t.me
BASELINE_IP = "198.19.0.30"  # www.example.org: the lab's "widely reachable site"
DC_IPS = ("198.19.0.20", "198.19.0.21", "198.19.0.22")  # fake Telegram DC1..DC3
DC_PORTS = (443, 80, 5222)
STUN_IP = "198.19.0.160"  # stun.plab.test: a messenger's STUN server (tests/lab/test_stun_lab.py)
SPARE_IP = "198.19.0.77"  # an address with no host behind it (nothing answers DNS there)
BLOCKPAGE_IP = "10.10.34.36"  # Iran's national blockpage host (FACTS.md §5)
CONTROL_PORT = 8080
LAB_ROUTES = ("198.18.0.0/15", "10.10.34.0/24")

#: the lab zone served by the resolver in `net`; selfcheck.plab.test exists nowhere else. A
#: list of addresses gives A and AAAA records (IPv6 only from 2001:2::/48)
ZONE: dict[str, str | list[str]] = {
    "web.telegram.org": WEB_IP,
    "telegram.org": WEB2_IP,
    "t.me": WEB2_IP,
    "www.example.org": BASELINE_IP,
    "dc1.plab.test": DC_IPS[0],
    "dc2.plab.test": DC_IPS[1],
    "dc3.plab.test": DC_IPS[2],
    "control.plab.test": CONTROL_IP,
    "selfcheck.plab.test": "198.19.0.99",
    "domestic.plab.test": DOMESTIC_IP,
    "dual.example.org": [DUAL_BASELINE_IP, DUAL_BASELINE6_IP],
    "dual.plab.test": [DUAL_IP, DUAL6_IP],
    "stun.plab.test": STUN_IP,
}
SELFCHECK_NAME = "selfcheck.plab.test"
WEB_NAMES = (
    "web.telegram.org", "telegram.org", "t.me", "www.example.org",
    "domestic.plab.test", "dual.example.org", "dual.plab.test",
)  # fmt: skip


class LabError(RuntimeError):
    """The lab itself is broken (setup failed, a self-check failed): never a probe verdict."""


def run(args: Sequence[str], *, check: bool = True, input_text: str | None = None) -> str:
    """Run a command and return its stdout; a failure raises LabError with stderr."""
    proc = subprocess.run(
        list(args), input=input_text, capture_output=True, text=True, timeout=60, check=False
    )
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_lab_namespaces() -> list[str]:
    out = run(["ip", "netns", "list"], check=False)
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    return [name for name in names if name.startswith(PREFIX)]


def kill_namespace_processes(ns: str) -> None:
    """SIGKILL every process living in one lab namespace (by pid, nothing broader)."""
    for _ in range(3):
        out = run(["ip", "netns", "pids", ns], check=False)
        pids = [int(p) for p in out.split() if p.isdigit()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def delete_namespace(ns: str) -> None:
    kill_namespace_processes(ns)
    run(["ip", "netns", "delete", ns], check=False)
    shutil.rmtree(NETNS_ETC / ns, ignore_errors=True)


def cleanup_leftovers() -> list[str]:
    """Remove namespaces (and their processes and /etc/netns entries) of lab runs that died.

    A namespace whose owner pid is still alive (this process included) belongs to a running lab
    and is left alone.
    """
    removed = []
    owners: set[str] = set(list_lab_namespaces())
    if NETNS_ETC.is_dir():
        owners |= {p.name for p in NETNS_ETC.iterdir() if p.name.startswith(PREFIX)}
    for ns in sorted(owners):
        match = re.match(rf"{PREFIX}(\d+)-", ns)
        if match and _pid_alive(int(match.group(1))):
            continue
        delete_namespace(ns)
        removed.append(ns)
    return removed


@dataclass
class LabProcess:
    name: str
    ns: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, limit: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""


@dataclass
class Topology:
    """One lab: four namespaces, their links, and the processes started inside them."""

    workdir: Path
    tag: str = field(default_factory=lambda: f"{PREFIX}{os.getpid()}")
    processes: list[LabProcess] = field(default_factory=list)
    created: bool = False

    @property
    def client(self) -> str:
        return f"{self.tag}-client"

    @property
    def censor(self) -> str:
        return f"{self.tag}-censor"

    @property
    def net(self) -> str:
        return f"{self.tag}-net"

    @property
    def ctrl(self) -> str:
        return f"{self.tag}-ctrl"

    @property
    def namespaces(self) -> tuple[str, str, str, str]:
        return (self.client, self.censor, self.net, self.ctrl)

    # --- building -------------------------------------------------------------------------
    def create(self) -> None:
        cleanup_leftovers()
        existing = set(list_lab_namespaces())
        for ns in self.namespaces:  # an earlier lab of this very process that was not destroyed
            if ns in existing:
                delete_namespace(ns)
        self.workdir.mkdir(parents=True, exist_ok=True)
        _register_cleanup(self)
        self.created = True
        for ns in self.namespaces:
            run(["ip", "netns", "add", ns])
            self.ns_run(ns, ["ip", "link", "set", "lo", "up"])
            # a namespace starts with no routes at all; we add only lab routes below
        self._link(self.client, "c0", self.censor, "cc0")
        self._link(self.censor, "cn0", self.net, "nc0")
        self._link(self.net, "nk0", self.ctrl, "k0")
        self._addr(self.client, "c0", f"{CLIENT_IP}/24")
        self._addr(self.censor, "cc0", f"{CENSOR_CLIENT_SIDE_IP}/24")
        self._addr(self.censor, "cn0", f"{CENSOR_NET_SIDE_IP}/24")
        self._addr(self.net, "nc0", f"{NET_IP}/24")
        extra = {RESOLVER_IP, WEB_IP, WEB2_IP, BASELINE_IP, *DC_IPS, *VANTAGE_HOSTS}
        for ip in sorted(extra):
            self._addr(self.net, "nc0", f"{ip}/32")
        self._addr(self.net, "lo", f"{BLOCKPAGE_IP}/32")
        self._addr(self.net, "nk0", f"{NET_CTRL_SIDE_IP}/24")
        self._addr(self.ctrl, "k0", f"{CONTROL_IP}/24")
        for ns in (self.censor, self.net):
            self._sysctl(ns, "net/ipv4/ip_forward", "1")
        create_ipv6(self)
        self.set_client_routes(True)
        self._route(self.censor, "10.10.34.0/24", NET_IP)
        # TPROXY (the DNS injector) needs marked packets delivered locally whatever their address
        self.ns_run(self.censor, ["ip", "rule", "add", "fwmark", "1", "lookup", "100"])
        self.ns_run(self.censor, ["ip", "route", "add", "local", "0.0.0.0/0", "dev", "lo",
                                  "table", "100"])  # fmt: skip
        self._route(self.censor, "198.19.1.0/24", NET_IP)
        self._route(self.net, "198.18.1.0/24", CENSOR_NET_SIDE_IP)
        for prefix in ("198.18.1.0/24", "198.19.0.0/24", "10.10.34.0/24"):
            self._route(self.ctrl, prefix, NET_CTRL_SIDE_IP)
        for ns in (self.client, self.ctrl):
            etc = NETNS_ETC / ns
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "resolv.conf").write_text(f"nameserver {RESOLVER_IP}\noptions timeout:1\n")
            (etc / "hosts").write_text("127.0.0.1 localhost\n")

    def _link(self, ns_a: str, name_a: str, ns_b: str, name_b: str) -> None:
        # created directly inside the two namespaces: no end ever exists in the root namespace
        run(["ip", "link", "add", name_a, "netns", ns_a, "type", "veth", "peer", "name", name_b,
             "netns", ns_b])  # fmt: skip
        self.ns_run(ns_a, ["ip", "link", "set", name_a, "up"])
        self.ns_run(ns_b, ["ip", "link", "set", name_b, "up"])

    def _sysctl(self, ns: str, key: str, value: str) -> None:
        # /proc/sys/net shows the namespace of the process that opens it (no procps needed)
        self.ns_run(ns, ["sh", "-c", f"echo {value} > /proc/sys/{key}"])

    def _addr(self, ns: str, dev: str, cidr: str) -> None:
        self.ns_run(ns, ["ip", "addr", "add", cidr, "dev", dev])

    def _route(self, ns: str, prefix: str, via: str) -> None:
        self.ns_run(ns, ["ip", "route", "replace", prefix, "via", via])

    def set_client_routes(self, online: bool) -> None:
        """The client's routes into the lab; offline = no route beyond its own link at all."""
        for prefix in ("198.19.0.0/16", "10.10.34.0/24"):
            if online:
                self._route(self.client, prefix, CENSOR_CLIENT_SIDE_IP)
            else:
                self.ns_run(self.client, ["ip", "route", "del", prefix], check=False)
        if online:
            self.ns_run(self.client, ["ip", "-6", "route", "replace", LAB6_PREFIX, "via",
                                      CENSOR6_CLIENT_SIDE_IP])  # fmt: skip
        else:
            self.ns_run(self.client, ["ip", "-6", "route", "del", LAB6_PREFIX], check=False)

    # --- running things inside --------------------------------------------------------------
    def ns_run(
        self, ns: str, args: Sequence[str], *, check: bool = True, input_text: str | None = None
    ) -> str:
        return run(["ip", "netns", "exec", ns, *args], check=check, input_text=input_text)

    def python(self, ns: str, module: str, *args: str, input_text: str | None = None) -> str:
        """Run `python -m module` inside a namespace to completion (the lab's self-checks)."""
        proc = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-m", module, *args],
            input=input_text,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO_ROOT,
            check=False,
        )
        if proc.returncode != 0:
            raise LabError(f"{module} in {ns} failed ({proc.returncode}): {proc.stderr[-2000:]}")
        return proc.stdout

    def spawn(
        self,
        name: str,
        ns: str,
        args: Sequence[str],
        *,
        ready_line: str | None = "READY",
        ready_timeout: float = 15.0,
        env: dict[str, str] | None = None,
    ) -> LabProcess:
        """Start a long-running process inside a namespace; wait for it to print `ready_line`."""
        log_path = self.workdir / f"{name}.log"
        log = log_path.open("wb")
        popen = subprocess.Popen(
            ["ip", "netns", "exec", ns, *args],
            stdout=subprocess.PIPE if ready_line else log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            cwd=REPO_ROOT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        log.close()
        process = LabProcess(name, ns, popen, log_path)
        self.processes.append(process)
        if ready_line is not None:
            assert popen.stdout is not None
            deadline = time.monotonic() + ready_timeout
            line = b""
            while time.monotonic() < deadline:
                ready, _, _ = select.select([popen.stdout], [], [], 0.1)
                if ready:
                    line = popen.stdout.readline()
                    if line.strip() == ready_line.encode() or not line:
                        break
                elif popen.poll() is not None:
                    break
            if line.strip() != ready_line.encode():
                self.stop(process)
                raise LabError(f"{name} in {ns} did not start: {process.log_tail()}")
        return process

    def spawn_python(self, name: str, ns: str, module: str, *args: str) -> LabProcess:
        return self.spawn(name, ns, [sys.executable, "-m", module, *args])

    def stop(self, process: LabProcess) -> None:
        if process.popen.poll() is None:
            process.popen.terminate()
            try:
                process.popen.wait(timeout=3)
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait(timeout=3)
        if process.popen.stdout is not None:
            process.popen.stdout.close()
        if process in self.processes:
            self.processes.remove(process)

    # --- checks and teardown ----------------------------------------------------------------
    def isolation_problems(self) -> list[str]:
        """Everything that could let a packet out of the lab; empty when the lab is sealed."""
        problems = []
        root_links = run(["ip", "-o", "link", "show"], check=False)
        for ifname in ("c0", "cc0", "cn0", "nc0", "nk0", "k0"):
            if re.search(rf"^\d+: {ifname}[@:]", root_links, re.M):
                problems.append(f"interface {ifname} exists in the root namespace")
        for ns in self.namespaces:
            routes = self.ns_run(ns, ["ip", "-4", "route", "show", "table", "all"], check=False)
            routes += self.ns_run(ns, ["ip", "-6", "route", "show", "table", "all"], check=False)
            for line in routes.splitlines():
                if line.startswith("local "):
                    continue  # delivers to this namespace itself (the censor's TPROXY table)
                if line.startswith("default") or " default " in line:
                    problems.append(f"{ns}: default route: {line}")
            links = self.ns_run(ns, ["ip", "-o", "link", "show"], check=False)
            for line in links.splitlines():
                ifname = line.split(":")[1].strip().split("@")[0]
                if ifname not in ("lo", "c0", "cc0", "cn0", "nc0", "nk0", "k0"):
                    problems.append(f"{ns}: unexpected interface {ifname}")
            # route lookups only (nothing is sent); documentation and shared-space addresses
            for outside in ("192.0.2.1", "203.0.113.1", "100.64.0.1", "2001:db8::1",
                            "2001:2:1::1", "2001:67c:4e8:f002::a"):  # fmt: skip
                out = subprocess.run(
                    ["ip", "netns", "exec", ns, "ip", "route", "get", outside],
                    capture_output=True, text=True, check=False,
                )  # fmt: skip
                if out.returncode == 0:
                    problems.append(f"{ns}: a route to {outside} exists: {out.stdout.strip()}")
        return problems

    def destroy(self) -> None:
        for process in list(self.processes):
            with contextlib.suppress(Exception):
                self.stop(process)
        if self.created:
            for ns in self.namespaces:
                delete_namespace(ns)
            self.created = False


_live: list[Topology] = []
_handlers_installed = False


def _cleanup_all() -> None:
    while _live:
        _live.pop().destroy()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    _cleanup_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _register_cleanup(topology: Topology) -> None:
    """Clean up at interpreter exit and on SIGTERM/SIGHUP too, not only in the fixture."""
    global _handlers_installed
    _live.append(topology)
    if not _handlers_installed:
        atexit.register(_cleanup_all)
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _on_signal)
        _handlers_installed = True


def unregister(topology: Topology) -> None:
    if topology in _live:
        _live.remove(topology)


def dump_json(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), sort_keys=True)
