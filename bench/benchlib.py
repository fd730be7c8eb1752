"""Shared pieces of the benchmarks: the machine's description, private network namespaces, a
small "world" of servers run in its own process, target-list files, and measured subprocesses.

Safety: every benchmark that opens more than one loopback port runs inside a network namespace
it creates (``pbench-<pid>-*``) that holds only its own loopback interface, or a veth pair
between two such namespaces with addresses from 198.18.0.0/15 and no route anywhere else. No
packet can leave the machine from there. Stale namespaces of dead benchmark processes are
removed on start; ours are removed on exit (also on SIGINT/SIGTERM).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

NETNS_PREFIX = "pbench-"
# Benchmarks run `probe run` unattended against their own loopback and lab worlds: they consent
# the way scripts do (probe/cli/consent.py). The variable, not --yes: `--base` trees of older
# versions do not know the flag.
os.environ.setdefault("PROBE_ACCEPT_RISKS", "1")
#: set in the environment of a script re-executed inside its private namespace
INSIDE_ENV = "PBENCH_NETNS"


# --- the machine ----------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """What the figures depend on: CPUs, memory, Python, kernel."""
    mem_kb = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "open_files_limit": resource.getrlimit(resource.RLIMIT_NOFILE),
    }


def describe_machine() -> str:
    m = machine()
    soft, hard = m["open_files_limit"]
    return (
        f"machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory_gib']} GiB, "
        f"Python {m['python']}, Linux {m['kernel']}, open files {soft}/{hard}"
    )


# --- network namespaces ---------------------------------------------------------------------


def run_ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup_stale_namespaces() -> None:
    """Delete `pbench-<pid>-*` namespaces whose creating process is gone."""
    listing = run_ip("netns", "list", check=False).stdout
    for line in listing.splitlines():
        name = line.split()[0] if line.split() else ""
        if not name.startswith(NETNS_PREFIX):
            continue
        pid_text = name[len(NETNS_PREFIX) :].split("-", 1)[0]
        if pid_text.isdigit() and not _pid_alive(int(pid_text)):
            run_ip("netns", "delete", name, check=False)


class Namespaces:
    """Namespaces named `pbench-<our pid>-<suffix>`, deleted on exit whatever happens."""

    def __init__(self) -> None:
        self.names: list[str] = []
        atexit.register(self.delete_all)
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.delete_all()
        raise SystemExit(128 + signum)

    def create(self, suffix: str) -> str:
        name = f"{NETNS_PREFIX}{os.getpid()}-{suffix}"
        run_ip("netns", "delete", name, check=False)
        run_ip("netns", "add", name)
        self.names.append(name)
        run_ip("-n", name, "link", "set", "lo", "up")
        return name

    def delete_all(self) -> None:
        while self.names:
            run_ip("netns", "delete", self.names.pop(), check=False)


def require_root() -> None:
    if os.geteuid() != 0:
        sys.exit("this benchmark creates network namespaces: run it as root (e.g. sudo)")


def isolate(lo_mtu: int | None = None) -> None:
    """Re-run this script inside a fresh namespace holding only a loopback interface (and exit
    with its status). Inside, every 127.0.0.0/8 address is ours and nothing can leave."""
    if os.environ.get(INSIDE_ENV):
        return
    require_root()
    cleanup_stale_namespaces()
    spaces = Namespaces()
    name = spaces.create("lo")
    if lo_mtu is not None:
        run_ip("-n", name, "link", "set", "lo", "mtu", str(lo_mtu))
    env = dict(os.environ, **{INSIDE_ENV: name})
    command = ["ip", "netns", "exec", name, sys.executable, *sys.argv]
    with subprocess.Popen(command, env=env) as child:
        try:
            status = child.wait()
        except KeyboardInterrupt:
            child.send_signal(signal.SIGINT)
            status = child.wait()
    spaces.delete_all()
    sys.exit(status)


def lo_bytes() -> int:
    """Bytes that crossed this namespace's loopback (each packet counted once, headers included)."""
    return int(Path("/sys/class/net/lo/statistics/rx_bytes").read_text())


# --- certificates ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PKIFiles:
    ca_pem: str  # the root the clients trust (--ca-file)
    server_pem: str  # the server's key and chain


def make_pki(names: Sequence[str], directory: str | Path) -> PKIFiles:
    """A trustme CA and one leaf for `names` (wildcards allowed), written as PEM files."""
    import trustme

    ca = trustme.CA(organization_name="probe bench CA")
    leaf = ca.issue_cert(*names)
    directory = Path(directory)
    ca_path = directory / "bench-ca.pem"
    server_path = directory / "bench-server.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    leaf.private_key_and_cert_chain_pem.write_to_path(str(server_path))
    return PKIFiles(str(ca_path), str(server_path))


# --- target lists ---------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string for anything we write
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"cannot write {value!r} as TOML")


def write_list(
    path: str | Path,
    name: str,
    targets: Sequence[Mapping[str, Any]],
    *,
    updated: str = "2026-11-28",
) -> str:
    """Write a target list (our TOML schema) and return its path."""
    lines = ["[list]", f"name = {json.dumps(name)}", f"updated = {updated}", ""]
    for target in targets:
        lines.append("[[targets]]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in target.items())
        lines.append("")
    Path(path).write_text("\n".join(lines), encoding="utf-8")
    return str(path)


def address_for(index: int, prefix: tuple[int, int] = (127, 1)) -> str:
    """The index-th host address in prefix/16 (x.y.0.1, x.y.0.2, … skipping .0 and .255)."""
    third, fourth = divmod(index, 254)
    if third > 255:
        raise ValueError("more than 65,000 addresses asked of one /16")
    return f"{prefix[0]}.{prefix[1]}.{third}.{fourth + 1}"


# --- the world process ----------------------------------------------------------------------


@contextlib.contextmanager
def world(spec: Mapping[str, Any], *, netns: str | None = None) -> Iterator[dict[str, Any]]:
    """Run bench/world.py with `spec` in its own process (its CPU is not the client's); yields
    its ready line. Stopped with SIGTERM on exit."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as spec_file:
        json.dump(spec, spec_file)
    command = [sys.executable, str(BENCH / "world.py"), spec_file.name]
    if netns is not None:
        command = ["ip", "netns", "exec", netns, *command]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"the world process exited with {process.wait()}")
        yield json.loads(line)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        os.unlink(spec_file.name)


# --- measured subprocesses ------------------------------------------------------------------


@dataclass
class Measured:
    """One finished subprocess: wall time, CPU (user + system), peak RSS, output."""

    argv: list[str]
    returncode: int
    wall: float
    user: float
    system: float
    max_rss_mib: float
    stdout: str
    stderr: str
    peak_fds: int = 0
    fd_limit: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cpu(self) -> float:
        return self.user + self.system

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.startswith("{")]


def _watch_fds(pid: int, stop: threading.Event, out: dict[str, Any]) -> None:
    """Sample the child's open descriptors every 20 ms (best effort)."""
    while not stop.is_set():
        with contextlib.suppress(OSError):
            out["peak"] = max(out.get("peak", 0), len(os.listdir(f"/proc/{pid}/fd")))
            if "limit" not in out or out["limit"].startswith("?"):
                for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
                    if line.startswith("Max open files"):
                        soft, hard = line.split()[3:5]
                        # before the probe raises its limit we see the inherited one: keep
                        # reading until it changes or the process ends
                        out["limit"] = f"{soft}/{hard}" if out.get("seen") else f"?{soft}/{hard}"
                        out["seen"] = True
        stop.wait(0.02)


def run_measured(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    watch_fds: bool = False,
) -> Measured:
    """Run `argv` to completion (killed after `timeout` s) and measure it with wait4()."""
    with (
        tempfile.TemporaryFile("w+") as out,
        tempfile.TemporaryFile("w+") as err,
    ):
        started = time.perf_counter()
        process = subprocess.Popen(list(argv), stdout=out, stderr=err, env=env)
        killer = threading.Timer(timeout, process.kill)
        killer.start()
        fds: dict[str, Any] = {}
        stop = threading.Event()
        watcher = threading.Thread(target=_watch_fds, args=(process.pid, stop, fds), daemon=True)
        if watch_fds:
            watcher.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            killer.cancel()
            stop.set()
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if watch_fds:
            watcher.join()
        out.seek(0)
        err.seek(0)
        return Measured(
            argv=list(argv),
            returncode=process.returncode,
            wall=wall,
            user=usage.ru_utime,
            system=usage.ru_stime,
            max_rss_mib=usage.ru_maxrss / 1024,  # ru_maxrss is in KiB on Linux
            stdout=out.read(),
            stderr=err.read(),
            peak_fds=fds.get("peak", 0),
            fd_limit=str(fds.get("limit", "")).lstrip("?"),
        )


def probe_command(*args: str) -> list[str]:
    """`probe run ...` with this interpreter (the repository's virtualenv)."""
    return [sys.executable, "-m", "probe", "run", *args]


def check_ok(result: Measured, what: str) -> None:
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise SystemExit(f"{what} failed with status {result.returncode}:\n{tail}")


def summary_line(name: str, text: str) -> None:
    """The final one-line summary every benchmark prints."""
    print(f"SUMMARY {name}: {text}", flush=True)


# --- a loopback world of HTTPS sites --------------------------------------------------------

#: the names of the loopback sites: h0.bench.test, h1.bench.test, … (one certificate for all)
SITE_DOMAIN = "bench.test"
#: the DNS server of the loopback world (inside the private namespace)
WORLD_DNS = ("127.0.0.1", 53)


@dataclass(frozen=True)
class HTTPSWorld:
    spec: dict[str, Any]
    names: list[str]
    ca_pem: str


def https_world(count: int, directory: str | Path, *, page_bytes: int = 2048) -> HTTPSWorld:
    """`count` HTTPS sites h<i>.bench.test, each name on its own 127.1.x.y address (the probe
    runs one flow at a time per (ip, port), so distinct addresses make distinct flows), all
    served by one listener on 0.0.0.0:443 — only possible inside the private namespace."""
    pki = make_pki([f"*.{SITE_DOMAIN}"], directory)
    names = [f"h{i}.{SITE_DOMAIN}" for i in range(count)]
    zone = {name: [address_for(i)] for i, name in enumerate(names)}
    spec = {
        "dns": {"host": WORLD_DNS[0], "port": WORLD_DNS[1], "zone": zone},
        "tls_pem": pki.server_pem,
        "pages": [{"host": "0.0.0.0", "port": 443, "tls": True, "page_bytes": page_bytes}],
    }
    return HTTPSWorld(spec, names, pki.ca_pem)


def https_list(path: str | Path, names: Sequence[str]) -> str:
    rows = [
        {"id": f"bench/h{i}", "service": "bench", "check": "https", "url": f"https://{name}/"}
        for i, name in enumerate(names)
    ]
    return write_list(path, "bench", rows)
