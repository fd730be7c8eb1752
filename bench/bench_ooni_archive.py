"""Benchmark: `probe report --ooni-archive` over a local copy of OONI's archive.

    python bench/bench_ooni_archive.py --measurements 20000 --dir /tmp/bench-ooni

Builds (under `--dir`, reused when it holds one with the same parameters) an archive in OONI's
`raw/<YYYYMMDD>/<HH>/<CC>/<testname>/` layout from the real messenger measurements in
tests/data/ooni/spec_examples (telegram, signal, whatsapp, facebook_messenger), each copy with
its own report_id, time and network, `--per-file` measurements per gzipped JSON Lines file, plus
as many web_connectivity measurements in partitions of their own (which the default selection
prunes by path). Then runs, each in its own subprocess (wall time measured by the parent, peak
memory from the child's ru_maxrss), `--repeat` times alternating:

- archive: `build_report([], archive=OoniArchive.open([dir], <default selection>))` — every
  messenger measurement converted, analysed and aggregated;
- half: the same over the first half of the archive's days (`--until`), to show that peak
  memory does not grow with the number of measurements (only the staged rows do);
- pruned: `--since` the last tenth of the days: the files outside are never opened;
- floor: the same files gunzipped and `json.loads`-ed line by line, nothing else — what reading
  alone costs.

Prints measurements per CPU-second (user + system time of the child: on a shared machine
wall time follows the other load) and peak memory per variant, a JSON line, and a SUMMARY line.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SAMPLES = REPO / "tests" / "data" / "ooni" / "spec_examples"
MESSENGERS = ("telegram", "signal", "whatsapp", "facebook_messenger")
NETWORKS = [("IR", "AS44244"), ("IR", "AS197207"), ("IT", "AS30722"), ("DE", "AS3320")]
START = datetime(2026, 1, 1)
HOURS_PER_STEP = 24


def _samples(tests: tuple[str, ...]) -> list[dict[str, Any]]:
    found = []
    for path in sorted(SAMPLES.glob("*.json")):
        m = json.loads(path.read_text())
        if m.get("test_name") in tests:
            found.append(m)
    return found


def _write_archive(root: Path, count: int, per_file: int, tests: tuple[str, ...]) -> int:
    """`count` measurements of `tests`, `per_file` to a file, one file per partition; returns
    the number of files."""
    samples = _samples(tests)
    files = 0
    for first in range(0, count, per_file):
        received = START + timedelta(hours=HOURS_PER_STEP * (first // per_file))
        sample = samples[(first // per_file) % len(samples)]
        cc, asn = NETWORKS[(first // per_file) % len(NETWORKS)]
        test = sample["test_name"].replace("_", "")
        day, hour = received.strftime("%Y%m%d"), received.strftime("%H")
        directory = root / "raw" / day / hour / cc / test
        directory.mkdir(parents=True, exist_ok=True)
        with gzip.open(directory / f"{day}{hour}_{cc}_{test}.n0.0.jsonl.gz", "wt") as handle:
            for index in range(first, min(first + per_file, count)):
                made = received - timedelta(minutes=index % 60)
                m = {
                    **sample,
                    "report_id": f"bench-{index}",
                    "measurement_start_time": made.strftime("%Y-%m-%d %H:%M:%S"),
                    "probe_cc": cc,
                    "probe_asn": asn,
                }
                handle.write(json.dumps(m) + "\n")
        files += 1
    return files


def ensure_data(root: Path, count: int, per_file: int) -> dict[str, Any]:
    params = {"measurements": count, "per_file": per_file, "version": 2}
    stamp = root / "params.json"
    if stamp.exists() and json.loads(stamp.read_text()).get("params") == params:
        return dict(json.loads(stamp.read_text()))
    if root.exists():
        subprocess.run(["rm", "-rf", str(root)], check=True)
    root.mkdir(parents=True)
    files = _write_archive(root / "messengers", count, per_file, MESSENGERS)
    other = _write_archive(root / "other", count, per_file, ("web_connectivity",))
    subprocess.run(["cp", "-rn", f"{root / 'other'}/raw", str(root / "messengers")], check=True)
    subprocess.run(["rm", "-rf", str(root / "other")], check=True)
    size = sum(p.stat().st_size for p in root.rglob("*.jsonl.gz"))
    info = {"params": params, "files": files, "other_files": other, "gz_bytes": size}
    stamp.write_text(json.dumps(info))
    return info


def _days(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "messengers" / "raw").iterdir())


def _report(root: Path, since: datetime | None, until: datetime | None) -> str:
    from probe.report import build_report, make_filters
    from probe.report.ooni_archive import OoniArchive, make_selection

    filters = make_filters(
        since.isoformat() if since else None, until.isoformat() if until else None
    )
    archive = OoniArchive.open(
        [root / "messengers"], make_selection(filters.since, filters.until, [], [])
    )
    built = build_report([], filters, archive=archive)
    stats = archive.stats
    return json.dumps(
        {
            "measurements": stats.measurements,
            "files": stats.files,
            "pruned_dirs": stats.pruned_dirs,
            "rows": built.rows,
            "series": len(built.series),
        }
    )


def _day(text: str) -> datetime:
    return datetime.strptime(text, "%Y%m%d")


def child(variant: str, root: Path) -> str:
    days = _days(root)
    if variant == "archive":
        return _report(root, None, None)
    if variant == "half":
        return _report(root, None, _day(days[len(days) // 2]))
    if variant == "pruned":
        return _report(root, _day(days[len(days) * 9 // 10]), None)
    if variant == "floor":
        count = 0
        for path in sorted((root / "messengers").rglob("*.jsonl.gz")):
            if any(f"/{t.replace('_', '')}/" in str(path) for t in MESSENGERS):
                with gzip.open(path, "rt") as handle:
                    for line in handle:
                        json.loads(line)
                        count += 1
        return json.dumps({"measurements": count})
    raise SystemExit(f"unknown variant {variant}")


def run_child(variant: str, root: Path) -> tuple[float, float, float, dict[str, Any]]:
    """(wall s, CPU s, peak RSS MiB, result) of one variant in a fresh interpreter. CPU time
    (user + system of the child) is the figure to compare on a shared machine: wall time
    varies with the other load, CPU time much less."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", variant, "--dir", str(root)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"variant {variant} failed")
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss / 1024, json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--measurements", type=int, default=20000)
    parser.add_argument("--per-file", type=int, default=200)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/bench-ooni-archive"))
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--variants", default="floor,archive,half,pruned")
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        print(child(args.child, args.dir))
        return
    info = ensure_data(args.dir, args.measurements, args.per_file)
    print(f"archive: {info}  ({platform.python_version()}, {os.cpu_count()} CPUs)", flush=True)
    best: dict[str, tuple[float, float, float, dict[str, Any]]] = {}
    for _ in range(args.repeat):
        for variant in args.variants.split(","):
            wall, cpu, rss, result = run_child(variant, args.dir)
            print(
                f"  {variant:8s} {wall:6.1f} s wall {cpu:6.1f} s CPU  peak {rss:5.0f} MiB {result}",
                flush=True,
            )
            old = best.get(variant)
            best[variant] = (
                min(wall, old[0]) if old else wall,
                min(cpu, old[1]) if old else cpu,
                min(rss, old[2]) if old else rss,
                result,
            )
    print(
        "| variant | measurements | files read | wall (best) | CPU (best) "
        "| measurements per CPU-second | peak RSS |"
    )
    print("|---|---|---|---|---|---|---|")
    figures = {}
    for variant, (wall, cpu, rss, result) in best.items():
        rate = result["measurements"] / cpu if cpu else 0.0
        figures[variant] = {
            "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2),
            "rss_mib": round(rss),
            "per_cpu_s": round(rate),
            **result,
        }
        files = result.get("files", "-")
        print(
            f"| {variant} | {result['measurements']:,} | {files} | {wall:.1f} s | {cpu:.1f} s | "
            f"{rate:,.0f} | {rss:.0f} MiB |"
        )
    print(json.dumps({"archive": info, "variants": figures}))
    a = figures.get("archive", {})
    print(
        f"SUMMARY ooni_archive: {a.get('measurements', 0):,} measurements at "
        f"{a.get('per_cpu_s', 0):,} per CPU-second, peak {a.get('rss_mib', 0)} MiB"
    )


if __name__ == "__main__":
    main()
