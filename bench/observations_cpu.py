"""Observation encoding CPU: microseconds per `Observations.to_dict()` and per
`Observations.from_dict()`, this tree against an older version of the observation types, side
by side in one process.

The older types are `probe/observations.py` as of a git revision (`--old`, default HEAD, or the
last revision that had the single-file module), written to a temporary file and imported beside
this tree's `probe.observations`. Both build the same two realistic targets' observations:

* a successful HTTPS target: two DNS queries (A, AAAA) with answers and raw replies, two TCP
  connects, two TLS handshakes each with a 3-certificate chain (base64 DER), an HTTP redirect
  and the final 200 with headers and a 2 KB page, and the flows' network events;
* a Telegram data centre (MTProto): connects on two ports, four transports' handshakes with
  key fingerprints, and their network events.

Before timing, the outputs must agree byte for byte: the JSON of `to_dict()` of both versions,
and `from_dict()` of both over the records and over mutations of them (every field replaced by
values of the wrong type, as a hostile peer or file would send) — else the script stops.
Figures are CPU time (`time.process_time`), the median of `--rounds` alternating passes of
`--repeat` calls each. Needs no root and no network.

    python bench/observations_cpu.py [--old REV] [--rounds 9] [--repeat 2000]
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import gc
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import benchlib


def old_module(ref: str | None) -> tuple[ModuleType, str]:
    """probe/observations.py as of `ref` (default: HEAD, else the last revision that had it)."""
    path_in_repo = "probe/observations.py"

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], cwd=benchlib.REPO, capture_output=True, text=True)

    rev = ref or "HEAD"
    done = git("show", f"{rev}:{path_in_repo}")
    if done.returncode != 0 and ref is None:
        last = git("rev-list", "-1", "HEAD", "--", path_in_repo).stdout.strip()
        rev = f"{last}^" if last else rev
        done = git("show", f"{rev}:{path_in_repo}")
    if done.returncode != 0:
        raise SystemExit(f"no {path_in_repo} at {rev}")
    described = git("rev-parse", "--short", rev).stdout.strip()
    path = Path(tempfile.mkdtemp(prefix="pbench-obs-old-")) / "observations_old.py"
    path.write_text(done.stdout, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("observations_old", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["observations_old"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module, described or rev


def _b64(size: int, seed: int) -> str:
    return base64.b64encode(bytes((seed * 31 + i * 7) % 256 for i in range(size))).decode()


CHAIN = [_b64(1400, 1), _b64(1100, 2), _b64(1300, 3)]
PAGE = (
    "<!doctype html><html><head><meta charset=utf-8><title>Example news</title></head><body>"
    + "".join(
        f"<p>Paragraph {i}: the quick brown fox jumps over the lazy dog.</p>" for i in range(30)
    )
    + "</body></html>"
)
REQUEST_HEADERS = [
    ("Host", "news.example"),
    ("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36"),
    ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    ("Accept-Language", "en-US;q=0.8,en;q=0.5"),
    ("Accept-Encoding", "gzip, deflate"),
]
RESPONSE_HEADERS = [
    ("Date", "Tue, 04 Jun 2024 10:00:00 GMT"),
    ("Content-Type", "text/html; charset=utf-8"),
    ("Content-Length", str(len(PAGE))),
    ("Server", "nginx"),
    ("Cache-Control", "max-age=600"),
    ("Vary", "Accept-Encoding"),
    ("Set-Cookie", "a=1; Path=/"),
    ("Set-Cookie", "b=2; Path=/"),  # a repeated name: the map keeps the first
    ("Strict-Transport-Security", "max-age=31536000"),
    ("X-Frame-Options", "SAMEORIGIN"),
    ("ETag", '"5f3c-61a"'),
    ("Last-Modified", "Mon, 03 Jun 2024 09:00:00 GMT"),
]


def _events(m: ModuleType, address: str, tid: int, ops: list[tuple[str, int | None]]) -> list[Any]:
    t = 0.01 * tid
    out = []
    for operation, num_bytes in ops:
        out.append(m.NetworkEvent(operation, address, num_bytes, None, t, t + 0.0005, tid))
        t += 0.001
    return out


def https_target(m: ModuleType) -> Any:
    """A successful HTTPS target's observations, built with module `m`'s types."""
    answers_a = [m.DNSAnswer("A", ipv4="198.18.0.10", ttl=300, asn=64500, as_org_name="Example")]
    answers_aaaa = [
        m.DNSAnswer("CNAME", hostname="edge.example.net.", ttl=60),
        m.DNSAnswer("AAAA", ipv6="2001:db8::10", ttl=300, asn=64500, as_org_name="Example"),
    ]
    queries = [
        m.DNSQuery("news.example", "A", "udp", "198.18.0.53:53", answers_a, None, 0,
                   _b64(60, 4), 0.000101, 0.012345, 1),
        m.DNSQuery("news.example", "AAAA", "udp", "198.18.0.53:53", answers_aaaa, None, 0,
                   _b64(90, 5), 0.000102, 0.013456, 2),
    ]  # fmt: skip
    flows = [
        ("198.18.0.10", 443, "198.18.0.10:443", 3),
        ("2001:db8::10", 443, "[2001:db8::10]:443", 4),
    ]
    tcp, tls, events = [], [], []
    for ip, port, address, tid in flows:
        tcp.append(m.TCPConnect(ip, port, True, None, 0.0201, 0.0302, tid))
        tls.append(
            m.TLSHandshake(address, "news.example", "tcp", "TLSv1.3", "TLS_AES_128_GCM_SHA256",
                           "http/1.1", False, list(CHAIN), None, None, 0.0303, 0.0604, tid)
        )  # fmt: skip
        ops = [("connect", None), ("tls_handshake_start", None), ("write", 517), ("read", 4096),
               ("read", 1200), ("write", 80), ("tls_handshake_done", None),
               ("http_transaction_start", None), ("write", 210), ("read", 4096), ("read", 900),
               ("http_transaction_done", None)]  # fmt: skip
        events += _events(m, address, tid, ops)
    redirect = m.HTTPTransaction(
        "https://news.example/", "GET", list(REQUEST_HEADERS), "198.18.0.10:443", 301,
        [("Location", "https://news.example/en/"), ("Content-Length", "0"), ("Server", "nginx")],
        "", False, 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", None,
        "https://news.example/en/", None, None, 0.0605, 0.0801, 3,
    )  # fmt: skip
    final = m.HTTPTransaction(
        "https://news.example/en/", "GET", list(REQUEST_HEADERS), "198.18.0.10:443", 200,
        list(RESPONSE_HEADERS), PAGE, False, len(PAGE),
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "Example news",
        None, None, None, 0.0802, 0.1103, 3,
    )  # fmt: skip
    return m.Observations(queries, tcp, tls, [redirect, final], events, [])


def mtproto_target(m: ModuleType) -> Any:
    """A Telegram data centre's observations (raw IP: no DNS, no TLS)."""
    tcp, shakes, events = [], [], []
    transports = ["abridged", "intermediate", "padded_intermediate", "obfuscated2"]
    for i, (port, transport) in enumerate(
        [(443, t) for t in transports[:2]] + [(80, t) for t in transports[2:]]
    ):
        tid = i + 1
        address = f"149.154.167.51:{port}"
        tcp.append(
            m.TCPConnect("149.154.167.51", port, True, None, 0.001 * i, 0.001 * i + 0.04, tid)
        )
        shakes.append(
            m.MTProtoHandshake(address, transport, True, None, None, "res_pq", None, 41, 84,
                               ["c3b42b026ce86b21", "0bc35f3509f7b7a5"], True, None,
                               0.05 + 0.001 * i, 0.09 + 0.001 * i, tid)
        )  # fmt: skip
        events += _events(m, address, tid, [("connect", None), ("write", 41), ("read", 84)])
    return m.Observations([], tcp, [], [], events, shakes)


TARGETS: dict[str, Callable[[ModuleType], Any]] = {"https": https_target, "mtproto": mtproto_target}


def encode(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


WRONG_VALUES: list[Any] = [
    None,
    True,
    0,
    -3,
    2.0,
    1.5,
    float("inf"),
    "7",
    " 8",
    "x",
    "",
    [],
    {},
    [["a", "b"]],
]


def _with_key(put: Callable[[Any], Any], mapping: dict[str, Any], key: str, new: Any) -> Any:
    return put({**mapping, key: new})


def _with_item(put: Callable[[Any], Any], items: list[Any], index: int, new: Any) -> Any:
    return put([*items[:index], new, *items[index + 1 :]])


def mutations(record: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The record with one value (at any depth) replaced by each of WRONG_VALUES."""

    def walk(value: Any, put: Callable[[Any], Any]) -> Iterator[Any]:
        for wrong in WRONG_VALUES:
            yield put(wrong)
        if isinstance(value, dict):
            for key in value:
                yield from walk(value[key], partial(_with_key, put, value, key))
        elif isinstance(value, list):
            for index in range(min(len(value), 2)):
                yield from walk(value[index], partial(_with_item, put, value, index))

    for key in record:
        yield from walk(record[key], partial(_with_key, lambda x: x, record, key))


def fields(obj: Any) -> str:
    """Every field of a parsed observation, recursively, as text (comparable across versions)."""
    return repr(dataclasses.astuple(obj))


def check_identical(old: ModuleType, new: ModuleType) -> int:
    """Stops unless both versions give the same bytes; returns how many inputs were compared."""
    compared = 0
    for name, build in TARGETS.items():
        old_dict, new_dict = build(old).to_dict(), build(new).to_dict()
        if encode(old_dict) != encode(new_dict):
            raise SystemExit(f"{name}: to_dict differs between the versions")
        for variant in [new_dict, *mutations(new_dict)]:
            a, b = old.Observations.from_dict(variant), new.Observations.from_dict(variant)
            if fields(a) != fields(b) or encode(a.to_dict()) != encode(b.to_dict()):
                raise SystemExit(
                    f"{name}: from_dict differs between the versions on {variant!r:.300}"
                )
            compared += 1
    return compared


def cpu_per_call(func: Callable[[], Any], repeat: int) -> float:
    clock = time.process_time
    started = clock()
    for _ in range(repeat):
        func()
    return (clock() - started) / repeat * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", help="git revision of the older probe/observations.py")
    parser.add_argument("--rounds", type=int, default=9, help="alternating passes per version")
    parser.add_argument("--repeat", type=int, default=2000, help="calls per pass")
    args = parser.parse_args()
    print(benchlib.describe_machine())

    from probe import observations as new

    old, old_rev = old_module(args.old)
    compared = check_identical(old, new)
    print(f"identical output: to_dict and from_dict over {compared} inputs (old = {old_rev})")
    versions = {"old": old, "new": new}
    figures: dict[str, Any] = {"old_rev": old_rev, "compared": compared}
    line: list[str] = []
    for name, build in TARGETS.items():
        size = len(encode(build(new).to_dict()))
        calls: dict[str, dict[str, Callable[[], Any]]] = {}
        for version, module in versions.items():
            obs = build(module)
            record = obs.to_dict()
            from_dict = module.Observations.from_dict
            calls[version] = {
                "to_dict": obs.to_dict,
                "from_dict": partial(from_dict, record),
            }
        row: dict[str, Any] = {"json_bytes": size}
        for op in ("to_dict", "from_dict"):
            samples: dict[str, list[float]] = {"old": [], "new": []}
            gc.collect()
            for index in range(args.rounds):
                for version in ("old", "new") if index % 2 == 0 else ("new", "old"):
                    samples[version].append(cpu_per_call(calls[version][op], args.repeat))
            old_us, new_us = statistics.median(samples["old"]), statistics.median(samples["new"])
            row[op] = {"old_us": old_us, "new_us": new_us, "ratio": new_us / old_us}
            print(
                f"{name:8s} {op:9s} old {old_us:7.1f} µs  new {new_us:7.1f} µs  "
                f"new/old {new_us / old_us:.2f}  ({size / 1000:.1f} kB as JSON)"
            )
            line.append(f"{name} {op} {old_us:.0f}->{new_us:.0f} µs")
        figures[name] = row
    print(json.dumps(figures))
    benchlib.summary_line("observations_cpu", "; ".join(line) + f" (old {old_rev}, identical)")


if __name__ == "__main__":
    main()
