"""Memory: peak RSS of `probe run` over 2,500, 5,000 and 10,000 HTTPS targets on loopback.

The same private-namespace world as bench/success_overhead.py (one TLS listener, one name and
one 127.1.x.y address per target). Peak RSS comes from wait4() (ru_maxrss) of the `probe run`
process. Flat means: beyond the concurrency window, more targets cost no more memory because
records stream to disk as each target finishes.

    sudo .venv/bin/python bench/memory.py [--sizes 2500,5000,10000] [--page-bytes 2048]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import benchlib

GOAL_MIB = 250


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="2500,5000,10000")
    parser.add_argument("--page-bytes", type=int, default=2048)
    args = parser.parse_args()
    benchlib.isolate()
    print(benchlib.describe_machine())
    sizes = [int(s) for s in args.sizes.split(",") if s]
    work = Path(tempfile.mkdtemp(prefix="pbench-memory-"))
    world = benchlib.https_world(max(sizes), work, page_bytes=args.page_bytes)
    rows = []
    print(
        f"{'targets':>8} {'peak RSS MiB':>12} {'wall s':>7} {'CPU s':>7} {'ok':>6} "
        f"{'records MiB':>11} {'peak fds':>8}"
    )
    with benchlib.world(world.spec):
        for size in sizes:
            list_path = benchlib.https_list(work / f"list{size}.toml", world.names[:size])
            command = benchlib.probe_command(
                list_path,
                "--no-control",
                "--resolver",
                "127.0.0.1:53",
                "--ca-file",
                world.ca_pem,
                "--out",
                str(work / f"results{size}"),
                "--json",
            )
            measured = benchlib.run_measured(command, timeout=900, watch_fds=True)
            benchlib.check_ok(measured, "probe run")
            summary = measured.json_lines()[-1]
            ok = sum(row["counts"]["ok"] for row in summary["services"])
            records_mib = Path(summary["results_file"]).stat().st_size / 2**20
            rows.append(
                {
                    "targets": size,
                    "peak_rss_mib": measured.max_rss_mib,
                    "wall_s": measured.wall,
                    "cpu_s": measured.cpu,
                    "ok": ok,
                    "records_mib": records_mib,
                    "peak_fds": measured.peak_fds,
                }
            )
            print(
                f"{size:>8} {measured.max_rss_mib:12.1f} {measured.wall:7.1f} "
                f"{measured.cpu:7.1f} {ok:>6} {records_mib:11.1f} {measured.peak_fds:>8}",
                flush=True,
            )
    print(json.dumps({"page_bytes": args.page_bytes, "runs": rows}))
    first, last = rows[0], rows[-1]
    span = (last["targets"] - first["targets"]) / 1000
    growth = (last["peak_rss_mib"] - first["peak_rss_mib"]) / span if span else 0.0
    peaks = ", ".join(f"{r['targets']}: {r['peak_rss_mib']:.0f} MiB" for r in rows)
    goal = "met" if last["peak_rss_mib"] < GOAL_MIB else "MISSED"
    benchlib.summary_line(
        "memory",
        f"peak RSS {peaks}; "
        f"growth {growth:.1f} MiB per 1,000 targets; goal < {GOAL_MIB} MB {goal}, "
        f"flat {'yes' if growth < 2 else 'NO'}",
    )


if __name__ == "__main__":
    main()
