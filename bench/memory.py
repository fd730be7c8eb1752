"""Memory: peak RSS of `probe run` over 2,500 to 100,000 HTTPS targets on loopback.

The same private-namespace world as bench/success_overhead.py (one TLS listener, one name and
one 127.x.y.z address per target, 2 KB pages), the targets split over lists of 5,000 (a list
file holds at most 1 MiB). Peak RSS comes from wait4() (ru_maxrss) of the `probe run` process.
Flat means: beyond the concurrency window, more targets cost no more memory than their own
definitions (the lists loaded in memory), because records stream to disk as each target
finishes and the round keeps only per-service counts. The growth is given per 1,000 targets
between each pair of points, from the first point to the last, and as the slope of a
least-squares line through the points from 10,000 targets on (ru_maxrss moves by a few MiB
from run to run, with the timing of the 1,024 targets in flight).

    sudo .venv/bin/python bench/memory.py [--counts 2500,5000,10000,25000,50000,100000]
        [--page-bytes 2048] [--base DIR]

`--base DIR` measures the `probe` package in DIR instead (e.g. `git archive HEAD probe | tar -x
-C /tmp/base`), put first on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import benchlib

GOAL_MIB = 250
#: growth per 1,000 targets called flat (MiB)
FLAT_MIB_PER_1000 = 0.5
DEFAULT_COUNTS = "2500,5000,10000,25000,50000,100000"
#: the line is fitted through the points from here on (well past the concurrency window)
FIT_FROM = 10_000
#: targets per list file (a list holds at most 1 MiB; these rows are ~90 bytes)
PER_LIST = 5_000
#: host addresses per /16 (benchlib.address_for); the sites take 127.10.0.0/16 onwards
PER_PREFIX = 254 * 256


def site_address(index: int) -> str:
    return benchlib.address_for(index % PER_PREFIX, (127, 10 + index // PER_PREFIX))


def https_world(count: int, directory: Path, page_bytes: int) -> tuple[dict[str, Any], str]:
    """benchlib.https_world over as many /16s as `count` needs."""
    pki = benchlib.make_pki([f"*.{benchlib.SITE_DOMAIN}"], directory)
    zone = {f"h{i}.{benchlib.SITE_DOMAIN}": [site_address(i)] for i in range(count)}
    spec = {
        "dns": {"host": benchlib.WORLD_DNS[0], "port": benchlib.WORLD_DNS[1], "zone": zone},
        "tls_pem": pki.server_pem,
        "pages": [{"host": "0.0.0.0", "port": 443, "tls": True, "page_bytes": page_bytes}],
    }
    return spec, pki.ca_pem


def https_lists(directory: Path, count: int) -> list[str]:
    paths = []
    for first in range(0, count, PER_LIST):
        rows = [
            {
                "id": f"bench/h{i}",
                "service": "bench",
                "check": "https",
                "url": f"https://h{i}.{benchlib.SITE_DOMAIN}/",
            }
            for i in range(first, min(count, first + PER_LIST))
        ]
        name = f"bench-{first // PER_LIST}"
        paths.append(benchlib.write_list(directory / f"{name}.toml", name, rows))
    return paths


def growth(a: dict[str, Any], b: dict[str, Any]) -> float:
    """MiB of peak RSS per 1,000 targets from run `a` to run `b`."""
    span = (b["targets"] - a["targets"]) / 1000
    return (b["peak_rss_mib"] - a["peak_rss_mib"]) / span if span else 0.0


def fitted_growth(rows: list[dict[str, Any]]) -> float | None:
    """The least-squares slope (MiB per 1,000 targets) through the points from FIT_FROM on."""
    points = [(r["targets"] / 1000, r["peak_rss_mib"]) for r in rows if r["targets"] >= FIT_FROM]
    if len(points) < 2:
        return None
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread if spread else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", "--sizes", default=DEFAULT_COUNTS, help="comma-separated")
    parser.add_argument("--page-bytes", type=int, default=2048)
    parser.add_argument("--base", help="directory holding another `probe` package to measure")
    args = parser.parse_args()
    benchlib.isolate()
    print(benchlib.describe_machine())
    counts = sorted({int(s) for s in args.counts.split(",") if s})
    work = Path(tempfile.mkdtemp(prefix="pbench-memory-"))
    spec, ca_pem = https_world(max(counts), work, args.page_bytes)
    env = None
    if args.base:
        # PYTHONSAFEPATH: `python -m` would put the working directory first, before PYTHONPATH
        env = dict(os.environ, PYTHONPATH=os.path.abspath(args.base), PYTHONSAFEPATH="1")
        print(f"measuring the probe package in {args.base}")
    rows: list[dict[str, Any]] = []
    print(
        f"{'targets':>8} {'peak RSS MiB':>12} {'MiB/1000 since previous':>23} {'wall s':>7} "
        f"{'CPU s':>7} {'ok':>7} {'records MiB':>11} {'peak fds':>8}"
    )
    with benchlib.world(spec):
        for count in counts:
            directory = work / f"n{count}"
            directory.mkdir()
            command = benchlib.probe_command(
                *https_lists(directory, count),
                "--no-control",
                "--resolver",
                "127.0.0.1:53",
                "--ca-file",
                ca_pem,
                "--out",
                str(directory / "results"),
                "--json",
            )
            measured = benchlib.run_measured(command, timeout=3600, env=env, watch_fds=True)
            benchlib.check_ok(measured, "probe run")
            summary = measured.json_lines()[-1]
            ok = sum(row["counts"]["ok"] for row in summary["services"])
            results = Path(summary["results_file"])
            records_mib = results.stat().st_size / 2**20
            results.unlink()  # 100,000 records are ~950 MiB
            row = {
                "targets": count,
                "peak_rss_mib": measured.max_rss_mib,
                "wall_s": measured.wall,
                "cpu_s": measured.cpu,
                "ok": ok,
                "records_mib": records_mib,
                "peak_fds": measured.peak_fds,
            }
            since = f"{growth(rows[-1], row):+.2f}" if rows else "-"
            rows.append(row)
            print(
                f"{count:>8} {measured.max_rss_mib:12.1f} {since:>23} {measured.wall:7.1f} "
                f"{measured.cpu:7.1f} {ok:>7} {records_mib:11.1f} {measured.peak_fds:>8}",
                flush=True,
            )
    steps = [
        {"from": a["targets"], "to": b["targets"], "mib_per_1000": growth(a, b)}
        for a, b in itertools.pairwise(rows)
    ]
    overall = growth(rows[0], rows[-1])
    fitted = fitted_growth(rows)
    print(
        json.dumps(
            {
                "page_bytes": args.page_bytes,
                "base": args.base,
                "runs": rows,
                "growth": steps,
                "growth_mib_per_1000": overall,
                "fitted_mib_per_1000": fitted,
            }
        )
    )
    peaks = ", ".join(f"{r['targets']}: {r['peak_rss_mib']:.0f} MiB" for r in rows)
    judged = fitted if fitted is not None else overall
    under = "met" if rows[-1]["peak_rss_mib"] < GOAL_MIB else "MISSED"
    flat = "yes" if judged < FLAT_MIB_PER_1000 else "NO"
    fit = f", fitted from {FIT_FROM:,} on {fitted:.2f}" if fitted is not None else ""
    benchlib.summary_line(
        "memory",
        f"peak RSS {peaks}; growth {overall:.2f} MiB per 1,000 targets from "
        f"{rows[0]['targets']:,} to {rows[-1]['targets']:,}{fit}; {rows[-1]['targets']:,} "
        f"under {GOAL_MIB} MB {under}, flat (< {FLAT_MIB_PER_1000} MiB per 1,000) {flat}",
    )


if __name__ == "__main__":
    main()
