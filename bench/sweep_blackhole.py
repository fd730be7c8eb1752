"""Blackhole sweep: how long does a round take when every endpoint is silently dropped?

Two namespaces: a client and a router, joined by a veth pair (198.18.254.0/30). The client's
only route beyond that link is 198.19.0.0/16 via the router, whose nftables prerouting hook
drops every packet to 198.19.0.0/16 (no RST, no ICMP: each connect waits for its timeout). N
`tcp` targets with distinct addresses in 198.19.0.0/16 are measured by the real `probe run`
(a subprocess in the client namespace, `--no-control`, `--resolver` pointing at a DNS server in
the client namespace), with the default concurrency and with `--concurrency 3` (OONI's
parallelism), and the wall time is reported in units of the per-step timeout T.

    sudo .venv/bin/python bench/sweep_blackhole.py [--timeout 1.5] [--sizes 50,200,1000]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import benchlib

from probe.round.measure import DEFAULT_CONCURRENCY as PROBE_DEFAULT_CONCURRENCY

CLIENT_ADDRESS = "198.18.254.1/30"
ROUTER_ADDRESS = "198.18.254.2/30"
ROUTER = "198.18.254.2"
DROPPED_NET = "198.19.0.0/16"
DEFAULT_CONCURRENCY = None  # the probe's own default
NFT_RULES = f"""
table inet pbench {{
    chain pre {{
        type filter hook prerouting priority -300; policy accept;
        ip daddr {DROPPED_NET} counter drop
    }}
}}
"""


def build_lab(spaces: benchlib.Namespaces) -> tuple[str, str]:
    client = spaces.create("client")
    router = spaces.create("router")
    benchlib.run_ip(
        "-n",
        client,
        "link",
        "add",
        "veth0",
        "type",
        "veth",
        "peer",
        "name",
        "veth0",
        "netns",
        router,
    )
    benchlib.run_ip("-n", client, "addr", "add", CLIENT_ADDRESS, "dev", "veth0")
    benchlib.run_ip("-n", router, "addr", "add", ROUTER_ADDRESS, "dev", "veth0")
    benchlib.run_ip("-n", client, "link", "set", "veth0", "up")
    benchlib.run_ip("-n", router, "link", "set", "veth0", "up")
    benchlib.run_ip("-n", client, "route", "add", DROPPED_NET, "via", ROUTER)
    subprocess.run(
        ["ip", "netns", "exec", router, "nft", "-f", "-"], input=NFT_RULES, text=True, check=True
    )
    default = benchlib.run_ip("-n", client, "route", "show", "default").stdout.strip()
    if default:
        raise SystemExit(f"the client namespace has a default route ({default}): refusing")
    return client, router


def dropped_count(router: str) -> int:
    listing = subprocess.run(
        ["ip", "netns", "exec", router, "nft", "-j", "list", "table", "inet", "pbench"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for item in json.loads(listing)["nftables"]:
        rule = item.get("rule")
        if rule:
            for expr in rule["expr"]:
                if "counter" in expr:
                    return int(expr["counter"]["packets"])
    return 0


def targets(n: int, *, hostnames: bool) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    rows, zone = [], {}
    for i in range(n):
        address = benchlib.address_for(i, (198, 19))
        host = f"b{i}.blackhole.test" if hostnames else address
        if hostnames:
            zone[host] = [address]
        rows.append(
            {"id": f"bench/b{i}", "service": "bench", "check": "tcp", "host": host, "ports": [443]}
        )
    return rows, zone


def failures_of(results_file: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    for line in Path(results_file).read_text().splitlines():
        record = json.loads(line)
        for connect in record["test_keys"]["tcp_connect"]:
            counts[connect["status"].get("failure") or "success"] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=1.5, help="per-step timeout T (s)")
    parser.add_argument("--sizes", default="50,200,1000", help="N for the default settings")
    parser.add_argument("--ooni-sizes", default="50,200", help="N for --concurrency 3")
    parser.add_argument(
        "--hostname-size",
        type=int,
        default=200,
        help="N for the run with host names (DNS + TCP); 0 skips it",
    )
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="run the largest default-settings N under py-spy (collapsed stacks; see "
        "bench/profile_top.py)",
    )
    parser.add_argument(
        "--low-fd-limit",
        type=int,
        default=512,
        help="also run N=1000 under this hard open-file limit; 0 skips it",
    )
    args = parser.parse_args()
    benchlib.require_root()
    benchlib.cleanup_stale_namespaces()
    print(benchlib.describe_machine())
    spaces = benchlib.Namespaces()
    client, router = build_lab(spaces)
    T = args.timeout
    # (N, --concurrency or None for the default, host names?, hard open-file limit or None)
    runs: list[tuple[int, int | None, bool, int | None]] = [
        (int(n), DEFAULT_CONCURRENCY, False, None) for n in args.sizes.split(",") if n
    ]
    if args.hostname_size:
        runs.append((args.hostname_size, DEFAULT_CONCURRENCY, True, None))
    if args.low_fd_limit:
        runs.append((1000, DEFAULT_CONCURRENCY, False, args.low_fd_limit))
    runs += [(int(n), 3, False, None) for n in args.ooni_sizes.split(",") if n]
    profiled = (
        max(n for n, c, h, f in runs if c is None and not h and f is None),
        None,
        False,
        None,
    )
    all_zone: dict[str, list[str]] = {}
    lists = []
    work = Path(tempfile.mkdtemp(prefix="pbench-sweep-"))
    for index, (n, _concurrency, hostnames, _limit) in enumerate(runs):
        rows, zone = targets(n, hostnames=hostnames)
        all_zone.update(zone)
        lists.append(benchlib.write_list(work / f"sweep{index}.toml", f"sweep{index}", rows))
    print(f"T = {T} s; dropped: {DROPPED_NET} at the router (nftables prerouting drop)")
    header = (
        f"{'N':>5} {'concurrency':>11} {'names':>5} {'wall s':>7} {'wall/T':>6} "
        f"{'round/T':>7} {'model/T':>7} {'peak fds':>8} {'fd limit':>11}  outcomes"
    )
    print(header)
    results: list[dict[str, Any]] = []
    with benchlib.world({"dns": {"host": "127.0.0.1", "port": 53, "zone": all_zone}}, netns=client):
        for (n, concurrency, hostnames, fd_limit), list_path in zip(runs, lists, strict=True):
            before = dropped_count(router)
            options = [
                "--no-control",
                "--resolver",
                "127.0.0.1:53",
                "--timeout",
                str(T),
                "--out",
                str(work / "results"),
                "--json",
            ]
            if concurrency is not None:
                options += ["--concurrency", str(concurrency)]
            command = ["ip", "netns", "exec", client, *benchlib.probe_command(list_path, *options)]
            if args.profile and (n, concurrency, hostnames, fd_limit) == profiled:
                command = [
                    "py-spy",
                    "record",
                    "-o",
                    args.profile,
                    "-f",
                    "raw",
                    "-r",
                    "500",
                    "--",
                    *command,
                ]
            if fd_limit is not None:
                command = ["prlimit", f"--nofile={fd_limit}:{fd_limit}", "--", *command]
            measured = benchlib.run_measured(command, timeout=60 + 2 * T * n, watch_fds=True)
            benchlib.check_ok(measured, "probe run")
            summary = measured.json_lines()[-1]
            outcomes = failures_of(summary["results_file"])
            effective = concurrency or PROBE_DEFAULT_CONCURRENCY
            if fd_limit is not None:  # the runner lowers the concurrency to fit the limit
                effective = min(effective, max(1, (fd_limit - 256) // 4))
            model = math.ceil(n / effective) + (0.3 / T if hostnames else 0)
            row = {
                "n": n,
                "concurrency": concurrency or "default",
                "hostnames": hostnames,
                "fd_hard_limit": fd_limit,
                "start_s": measured.wall - summary["runtime"],
                "wall": measured.wall,
                "wall_T": measured.wall / T,
                "round_T": summary["runtime"] / T,
                "model_T": model,
                "peak_fds": measured.peak_fds,
                "fd_limit": measured.fd_limit,
                "dropped_packets": dropped_count(router) - before,
                "outcomes": dict(outcomes),
                "cpu": measured.cpu,
            }
            results.append(row)
            label = f"{row['concurrency']}" + (f" nofile {fd_limit}" if fd_limit else "")
            print(
                f"{n:>5} {label:>11} {'yes' if hostnames else 'no':>5} "
                f"{measured.wall:7.2f} {row['wall_T']:6.2f} {row['round_T']:7.2f} "
                f"{model:7.2f} {measured.peak_fds:>8} {measured.fd_limit:>11}  "
                f"{dict(outcomes)} (SYNs dropped: {row['dropped_packets']}, "
                f"CPU {measured.cpu:.2f} s)",
                flush=True,
            )
    print(json.dumps({"timeout": T, "runs": results}))
    by_default = {
        r["n"]: r
        for r in results
        if r["concurrency"] == "default" and not r["hostnames"] and not r["fd_hard_limit"]
    }
    by_ooni = {r["n"]: r for r in results if r["concurrency"] == 3}
    parts = [
        f"N={n} {r['round_T']:.2f}T (process {r['wall_T']:.2f}T)"
        for n, r in sorted(by_default.items())
    ]
    parts += [f"c3 N={n} {r['round_T']:.1f}T" for n, r in sorted(by_ooni.items())]
    goals = []
    for n, goal in ((200, 1.3), (1000, 1.5)):
        if n in by_default:
            met = by_default[n]["round_T"] <= goal
            goals.append(f"N={n} goal {goal}T {'met' if met else 'MISSED'}")
    starts = [r["start_s"] for r in results]
    benchlib.summary_line(
        "sweep_blackhole",
        f"T={T}s, round time: "
        + ", ".join(parts + goals)
        + f"; interpreter start + imports {min(starts):.2f}-{max(starts):.2f} s per process",
    )


if __name__ == "__main__":
    main()
