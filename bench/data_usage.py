"""Data usage: bytes sent and received by one default round over the bundled lists.

The bundled lists (targets/*.toml, loaded with probe.targets.load_lists) are copied with every
endpoint replaced by a loopback stand-in inside a private network namespace: each host name
resolves (through our DNS server) to its own 127.2.x.y address, each IP literal (Telegram's data
centres, IPv6 ones included) is rewritten to its own 127.3.x.y address. Stand-ins: HTTPS/HTTP
sites that serve a realistically large page (default 400 KB, a typical front page), plain TCP
listeners for `tcp` targets, the fake data centre for `mtproto` targets. Certificates come from a
trustme CA passed with --ca-file. Then one `probe run` with the default timeout and body cap.

Two figures: what the probe counts (`--json` bytes_sent/bytes_received: TCP and UDP payload it
wrote and read) and what crossed the namespace's loopback interface (every packet once, IP and
TCP headers included, MTU set to 1500 like an Ethernet or Wi-Fi link), which also counts data a
server pushed that the probe never read because it closed the connection at the body cap.

    sudo .venv/bin/python bench/data_usage.py [--page-kb 400]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import benchlib

from probe.addresses import is_ip_literal
from probe.targets import bundled_list_paths, load_lists

GOAL_BYTES = 1_000_000


def build(
    work: Path, page_bytes: int, gzipped: bool
) -> tuple[dict[str, Any], list[str], str, dict[str, int]]:
    loaded = load_lists(bundled_list_paths())
    if loaded.problems:
        raise SystemExit("bundled lists: " + "; ".join(loaded.problems))
    names: dict[str, str] = {}
    literals: dict[str, str] = {}
    listeners: dict[tuple[str, int], str] = {}  # (ip, port) -> kind
    tls_names: set[str] = set()
    counts = {"targets": 0, "ipv6_literals_mapped_to_ipv4": 0}
    lists = []
    for target_list in loaded.lists:
        rows = []
        for target in target_list.targets:
            counts["targets"] += 1
            definition = dict(target.definition)
            host = target.hostname
            if is_ip_literal(host):
                if ":" in host:
                    counts["ipv6_literals_mapped_to_ipv4"] += 1
                address = literals.setdefault(host, benchlib.address_for(len(literals), (127, 3)))
                definition["host"] = address
            else:
                address = names.setdefault(host, benchlib.address_for(len(names), (127, 2)))
            if target.check in ("https", "tls"):
                tls_names.add(target.sni or host)
            kind = {
                "https": "https",
                "tls": "https",
                "http": "http",
                "tcp": "tcp",
                "mtproto": "mtproto",
            }.get(target.check)
            if kind is not None:
                for port in target.endpoint_ports():
                    listeners.setdefault((address, port), kind)
            rows.append(definition)
            if target.ca:
                shutil.copy(target.ca, work / Path(target.ca).name)
        lists.append(
            benchlib.write_list(
                work / f"{target_list.name}.toml",
                target_list.name,
                rows,
                updated=target_list.updated.isoformat(),
            )
        )
    pki = benchlib.make_pki(sorted(tls_names), work)
    mtproto_hosts: dict[str, list[int]] = {}
    pages, tcp = [], []
    for (address, port), kind in sorted(listeners.items()):
        if kind == "mtproto":
            mtproto_hosts.setdefault(address, []).append(port)
        elif kind == "tcp":
            tcp.append({"host": address, "port": port})
        else:
            pages.append(
                {
                    "host": address,
                    "port": port,
                    "tls": kind == "https",
                    "page_bytes": page_bytes,
                    "gzip": gzipped,
                }
            )
    spec = {
        "dns": {"host": "127.0.0.1", "port": 53, "zone": {n: [a] for n, a in names.items()}},
        "tls_pem": pki.server_pem,
        "pages": pages,
        "tcp": tcp,
        "mtproto": [{"host": h, "ports": p} for h, p in mtproto_hosts.items()],
    }
    counts.update(
        names=len(names),
        ip_literals=len(literals),
        pages=len(pages),
        tcp_listeners=len(tcp),
        mtproto_ports=sum(map(len, mtproto_hosts.values())),
    )
    return spec, lists, pki.ca_pem, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--page-kb", type=int, default=400, help="size of every stand-in page")
    parser.add_argument("--body-cap", type=int, help="passed to probe run (default: its own)")
    parser.add_argument(
        "--gzip",
        action="store_true",
        help="pages served gzip-compressed (as real sites do) when asked for",
    )
    args = parser.parse_args()
    benchlib.isolate(lo_mtu=1500)
    print(benchlib.describe_machine())
    work = Path(tempfile.mkdtemp(prefix="pbench-data-"))
    spec, lists, ca, counts = build(work, args.page_kb * 1000, args.gzip)
    served = "gzip-compressed when asked for" if args.gzip else "uncompressed"
    print(f"stand-ins: {json.dumps(counts)}; every page {args.page_kb} KB, {served}")
    options = [
        "--no-control",
        "--resolver",
        "127.0.0.1:53",
        "--ca-file",
        ca,
        "--out",
        str(work / "results"),
        "--json",
    ]
    if args.body_cap:
        options += ["--body-cap", str(args.body_cap)]
    with benchlib.world(spec):
        before = benchlib.lo_bytes()
        measured = benchlib.run_measured(benchlib.probe_command(*lists, *options), timeout=300)
        wire = benchlib.lo_bytes() - before
    benchlib.check_ok(measured, "probe run")
    summary = measured.json_lines()[-1]
    statuses: dict[str, int] = {}
    for row in summary["services"]:
        for status, n in row["counts"].items():
            statuses[status] = statuses.get(status, 0) + n
    counted = summary["bytes_sent"] + summary["bytes_received"]
    print(f"targets {summary['targets']}: {statuses}; round {summary['runtime']:.1f} s")
    print(
        f"probe counted: sent {summary['bytes_sent']:,} B, received "
        f"{summary['bytes_received']:,} B, total {counted:,} B"
    )
    print(f"loopback wire (headers included, MTU 1500): {wire:,} B")
    print(
        json.dumps(
            {
                "page_kb": args.page_kb,
                "gzip": args.gzip,
                "body_cap": args.body_cap,
                "counts": counts,
                "statuses": statuses,
                "bytes_sent": summary["bytes_sent"],
                "bytes_received": summary["bytes_received"],
                "wire_bytes": wire,
            }
        )
    )
    goal = "met" if counted < GOAL_BYTES else "MISSED"
    benchlib.summary_line(
        "data_usage",
        f"one round, {summary['targets']} targets, {args.page_kb} KB pages ({served}"
        f"{f', --body-cap {args.body_cap}' if args.body_cap else ''}): probe "
        f"counted {counted / 1e6:.2f} MB (sent {summary['bytes_sent'] / 1e3:.0f} kB), wire "
        f"{wire / 1e6:.2f} MB; goal < 1 MB {goal}",
    )


if __name__ == "__main__":
    main()
