"""Benchmark: `probe report` on its two engines, DuckDB and Apache Spark (local mode).

    python bench/bench_report_engines.py --records 1000000 --dir /tmp/bench-report

The same synthetic result set as bench/bench_report.py (generated under `--dir`, or reused when
it already holds one with the same parameters), the page cache warmed, then each engine in its
own subprocess, `--repeat` times, alternating. Measured from outside: wall time; peak memory as
the largest sum of the resident sizes of the child and all its descendants (Spark's JVM is one)
seen by sampling /proc every 0.25 s; CPU time as the user + system time of the child and its
descendants, which the child reads from /proc when its report is done. Per-core throughput is
records per CPU-second. Each child also prints a digest of its results (rows, series, events,
gaps): the engines must agree.
Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
for entry in (REPO, BENCH):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


def digest(report: object) -> str:
    """What must be equal across engines: the rows (a hash over every column), the series,
    the change events and the gaps."""
    con = report.connection  # type: ignore[attr-defined]
    found = con.execute(
        "SELECT count(*), bit_xor(hash(time, probe_asn, probe_cc, probe_id, network_type, "
        "input, service, status, blocking, confirmed, report_id, source, conflict)) FROM rows"
    ).fetchone()
    summary = repr(
        (report.series, report.events, report.gaps, report.across)  # type: ignore[attr-defined]
    )
    return (
        f"{found[0]} rows (hash {found[1]:x}), {len(report.series)} series, "  # type: ignore[attr-defined]
        f"{len(report.events)} events, {len(report.gaps)} gaps, "  # type: ignore[attr-defined]
        f"digest {hashlib.sha256(summary.encode()).hexdigest()[:16]}"
    )


def child(engine: str, root: Path) -> None:
    start = time.perf_counter()
    if engine == "spark":
        from probe.report.spark import build_report_spark, spark_session

        spark = spark_session()
        ready = time.perf_counter()
        report = build_report_spark([root], spark=spark)
    else:
        from probe.report import build_report

        ready = time.perf_counter()
        report = build_report([root])
    done = time.perf_counter()
    # CPU time of this process and of its children still running (Spark's JVM), read before
    # they exit: the parent's sampling can miss a child's last quarter second
    cpu: dict[int, float] = {}
    _sample(_tree(os.getpid()), cpu)
    print(f"cpu {sum(cpu.values()):.2f}")
    print(f"start {ready - start:.1f} s, report {done - ready:.1f} s; {digest(report)}")


def _tree(root: int) -> list[int]:
    """root and its descendants (from /proc/*/stat)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(entry))
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending += parents.get(pid, [])
    return found


def _sample(pids: list[int], cpu: dict[int, float]) -> int:
    """Resident bytes of `pids` now; their CPU seconds into `cpu`."""
    resident = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/statm") as handle:
                resident += int(handle.read().split()[1]) * PAGE
        except (OSError, IndexError):
            continue
        cpu[pid] = (int(fields[11]) + int(fields[12])) / TICKS
    return resident


def run_child(engine: str, root: Path) -> tuple[float, float, float, str]:
    """(wall s, peak MiB of the process tree, CPU s, the child's line) of one engine run."""
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, __file__, "--child", engine, "--dir", str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    peak, cpu = 0, dict[int, float]()
    while process.poll() is None:
        peak = max(peak, _sample(_tree(process.pid), cpu))
        time.sleep(0.25)
    wall = time.perf_counter() - start
    assert process.stdout is not None
    lines = process.stdout.read().strip().splitlines()
    if process.returncode != 0 or len(lines) != 2:
        raise SystemExit(f"engine {engine} failed with status {process.returncode}")
    return wall, peak / 2**20, float(lines[0].split()[1]), lines[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/bench-report"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--engine", action="append", choices=("duckdb", "spark"))
    parser.add_argument("--child", choices=("duckdb", "spark"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.dir)
        return 0
    from bench_report import ensure_data, warm_cache

    sizes = ensure_data(args.dir, args.records, args.seed)
    records = sizes["records"]
    print(f"data: {records:,} records in {sizes['files']:,} files", flush=True)
    print(f"page cache warm-up read: {warm_cache(args.dir):.1f} s", flush=True)
    engines = args.engine or ["duckdb", "spark"]
    results: dict[str, list[tuple[float, float, float, str]]] = {}
    for engine in engines * args.repeat:
        wall, peak, cpu, line = run_child(engine, args.dir)
        results.setdefault(engine, []).append((wall, peak, cpu, line))
        print(f"  {engine:7s} {wall:7.1f} s  peak {peak:7.0f} MiB  CPU {cpu:7.1f} s  {line}")
    print()
    python = platform.python_version()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {python}")
    print()
    print("| engine | wall time (best) | peak memory (least) | CPU time | records per CPU-second |")
    print("|---|---:|---:|---:|---:|")
    for engine, runs in results.items():
        wall, _, cpu, _ = min(runs)
        peak = min(r[1] for r in runs)
        print(f"| {engine} | {wall:.1f} s | {peak:,.0f} MiB | {cpu:.1f} s | {records / cpu:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
