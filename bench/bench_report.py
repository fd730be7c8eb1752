"""Benchmark: `probe report` aggregation against DuckDB's floor and a pure-Python loop.

    python bench/bench_report.py --records 1000000 --dir /tmp/bench-report

Generates a synthetic result set of about `--records` records of realistic size under `--dir`
(reused when it already holds one with the same parameters), warms the page cache, then runs in
one go, each variant in its own subprocess (wall time measured by the parent, peak memory from
the child's ru_maxrss):

- report: `probe.report.build_report([dir])` — read, dedupe, per-series summaries, change events;
- floor:  DuckDB `read_json` of the same files (explicit columns) grouped by the same keys
          (target, ASN, country, status, method) — the least any DuckDB-based report can cost;
- floor_dedup: the fair floor for the report's extra duty: the same read with each line's
          SHA-256 (the report's duplicate identity), duplicates dropped by (report_id, input,
          time, hash) with DISTINCT, then the same grouping;
- before: with `--before TREE` (a source tree of an earlier version), that version's report;
- floor_auto: the same with `read_json`'s schema auto-detection (informative);
- python: a straightforward loop, `json.loads` per line, a Counter over the same keys.

floor, report, floor_dedup (and before) run `--repeat` times, alternating; the best wall time
and the least peak memory of each are compared.
Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # the synthetic data generator is tests/synthetic.py
    sys.path.insert(0, str(REPO))

TARGETS_PER_RUN = 18
DAYS = 35


def _files(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*.jsonl"))


def variant_report(root: Path) -> str:
    from probe.report import build_report

    built = build_report([root])
    return f"{built.rows} rows, {len(built.series)} series, {len(built.events)} events"


def _floor(root: Path, auto: bool) -> str:
    import duckdb

    from probe.report import RECORD_COLUMNS

    con = duckdb.connect()
    source = (
        "read_json($glob, format = 'newline_delimited')"
        if auto
        else "read_json($glob, columns = $columns, format = 'newline_delimited')"
    )
    params: dict[str, object] = {"glob": f"{root}/**/*.jsonl"}
    if not auto:
        params["columns"] = RECORD_COLUMNS
    rows = con.execute(
        f"""SELECT input, probe_asn, probe_cc, test_keys.verdict.status,
                   test_keys.verdict.blocking, count(*)
            FROM {source} GROUP BY ALL""",
        params,
    ).fetchall()
    return f"{sum(r[-1] for r in rows)} rows in {len(rows)} groups"


def variant_floor(root: Path) -> str:
    return _floor(root, auto=False)


def variant_floor_dedup(root: Path) -> str:
    """The fair floor for what the report must do beyond counting: the same read with the
    line's SHA-256 (the report's duplicate identity), duplicates dropped by (report_id, input,
    time, hash), then grouped by the same keys."""
    import duckdb

    from probe.report import RECORD_COLUMNS

    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    rows = con.execute(
        """SELECT input, probe_asn, probe_cc, status, blocking, count(*) FROM (
               SELECT DISTINCT r.input, r.probe_asn, r.probe_cc, r.report_id,
                      r.measurement_start_time,
                      r.test_keys.verdict.status AS status,
                      r.test_keys.verdict.blocking AS blocking, sha256(json) AS identity
               FROM (SELECT json_transform(json, $structure) AS r, json
                     FROM read_ndjson_objects($glob))
           ) GROUP BY ALL""",
        {"glob": f"{root}/**/*.jsonl", "structure": json.dumps(RECORD_COLUMNS)},
    ).fetchall()
    return f"{sum(r[-1] for r in rows)} rows in {len(rows)} groups"


def variant_floor_auto(root: Path) -> str:
    return _floor(root, auto=True)


def variant_python(root: Path) -> str:
    counts: Counter[tuple[object, ...]] = Counter()
    for path in _files(root):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                verdict = record["test_keys"]["verdict"]
                key = (
                    record["input"],
                    record["probe_asn"],
                    record["probe_cc"],
                    verdict["status"],
                    verdict["blocking"],
                )
                counts[key] += 1
    return f"{sum(counts.values())} rows in {len(counts)} groups"


VARIANTS = {
    "report": variant_report,
    "before": variant_report,  # the report of the source tree given with --before
    "floor": variant_floor,
    "floor_dedup": variant_floor_dedup,
    "floor_auto": variant_floor_auto,
    "python": variant_python,
}


def run_child(variant: str, root: Path, before: Path | None) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MiB, result line) of one variant in a fresh interpreter."""
    start = time.perf_counter()
    extra = ["--before", str(before)] if before else []
    child = subprocess.Popen(
        [sys.executable, __file__, "--child", variant, "--dir", str(root), *extra],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"variant {variant} failed with status {child.returncode}")
    return wall, usage.ru_maxrss / 1024, output.strip()


def ensure_data(root: Path, records: int, seed: int) -> dict[str, int]:
    from tests import synthetic

    marker = root / "bench-params.json"
    vantages = -(-records // (TARGETS_PER_RUN * 24 * DAYS - TARGETS_PER_RUN * 40))
    params = {"vantages": vantages, "days": DAYS, "seed": seed}
    if marker.exists() and json.loads(marker.read_text()).get("params") == params:
        return dict(json.loads(marker.read_text())["sizes"])
    if root.exists() and any(root.iterdir()):
        raise SystemExit(f"{root} exists and holds other data: give an empty or new --dir")
    start = time.perf_counter()
    truth = synthetic.generate(root, vantages=vantages, days=DAYS, seed=seed)
    sizes = {
        "records": truth.records,
        "files": truth.files,
        "bytes": truth.bytes_written,
        "events": len(truth.events),
        "generate_seconds": round(time.perf_counter() - start),
    }
    marker.write_text(json.dumps({"params": params, "sizes": sizes}))
    return sizes


def warm_cache(root: Path) -> float:
    start = time.perf_counter()
    for path in _files(root):
        with open(path, "rb") as handle:
            while handle.read(1 << 20):
                pass
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/bench-report"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--skip", action="append", default=[], choices=sorted(VARIANTS))
    parser.add_argument(
        "--before",
        type=Path,
        help="a source tree of an earlier version (e.g. `git archive HEAD~3 probe | tar -x -C "
        "DIR`): its report runs as variant `before`, alternating with this one's",
    )
    parser.add_argument("--child", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.child == "before":
            sys.path.insert(0, str(args.before.resolve()))
        print(VARIANTS[args.child](args.dir))
        return 0

    sizes = ensure_data(args.dir, args.records, args.seed)
    disk = sum(p.stat().st_size for p in args.dir.rglob("*.jsonl"))
    print(
        f"data: {sizes['records']:,} records in {sizes['files']:,} files, {disk:,} bytes on disk "
        f"({disk / sizes['records']:,.0f} B/record), generated in {sizes['generate_seconds']} s",
        flush=True,
    )
    print(f"page cache warm-up read: {warm_cache(args.dir):.1f} s", flush=True)
    results: dict[str, list[tuple[float, float, str]]] = {}
    rounds = ["floor", "report", "floor_dedup"] + (["before"] if args.before else [])
    order = rounds * args.repeat + ["floor_auto", "python"]
    for variant in order:
        if variant in args.skip:
            continue
        wall, rss, line = run_child(variant, args.dir, args.before)
        results.setdefault(variant, []).append((wall, rss, line))
        print(f"  {variant:10s} {wall:7.1f} s  peak {rss:7.0f} MiB  {line}", flush=True)
    best = {name: min(runs) for name, runs in results.items()}
    floor = best.get("floor", (float("nan"), 0.0, ""))[0]
    print()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, DuckDB {_duckdb_version()}"
    )
    print()
    floor_rss = min(r[1] for r in results.get("floor", [(0.0, float("nan"), "")]))
    print("| variant | wall time (best) | vs floor | peak memory (RSS, least) | vs floor |")
    print("|---|---:|---:|---:|---:|")
    for name in ("before", "report", "floor", "floor_dedup", "floor_auto", "python"):
        if name in best:
            wall = best[name][0]
            rss = min(r[1] for r in results[name])
            runs = len(results[name])
            print(
                f"| {name} | {wall:.1f} s (best of {runs}) | {wall / floor:.2f}× | "
                f"{rss:,.0f} MiB | {rss / floor_rss:.2f}× |"
            )
    return 0


def _duckdb_version() -> str:
    import duckdb

    return str(duckdb.__version__)


if __name__ == "__main__":
    sys.exit(main())
