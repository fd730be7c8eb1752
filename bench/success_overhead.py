"""Success-path overhead: CPU and wall time per HTTPS measurement, `probe run` against the floor.

Inside a private network namespace (only its loopback): a DNS server and one TLS + HTTP/1.1
listener on 0.0.0.0:443 serving M sites h<i>.bench.test, each on its own 127.1.x.y address, with
a trustme certificate for *.bench.test. The servers run in their own process. Then, in one run
and alternately: `probe run` over M `https` targets (`--no-control --resolver --ca-file`), and
bench/floor_https.py (raw asyncio + ssl, same DNS queries, verified handshakes and GETs). Each
client is also run over a small M0 so that the fixed cost (interpreter start, imports) can be
told apart from the cost per measurement.

    sudo .venv/bin/python bench/success_overhead.py [--count 2000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import benchlib

from probe.round.measure import DEFAULT_CONCURRENCY

SMALL = 20


def run_probe(list_path: str, ca: str, out: Path, count: int) -> benchlib.Measured:
    command = benchlib.probe_command(
        list_path,
        "--no-control",
        "--resolver",
        "127.0.0.1:53",
        "--ca-file",
        ca,
        "--out",
        str(out),
        "--json",
    )
    measured = benchlib.run_measured(command, timeout=600)
    benchlib.check_ok(measured, "probe run")
    summary = measured.json_lines()[-1]
    ok = sum(row["counts"]["ok"] for row in summary["services"])
    if ok != count:
        raise SystemExit(f"probe run: only {ok} of {count} targets ok: {summary['services']}")
    measured.extra["runtime"] = summary["runtime"]
    return measured


def run_floor(names_file: str, ca: str, count: int) -> benchlib.Measured:
    command = [
        sys.executable,
        str(benchlib.BENCH / "floor_https.py"),
        "--names-file",
        names_file,
        "--resolver",
        "127.0.0.1:53",
        "--ca-file",
        ca,
        "--concurrency",  # as many in flight as the probe's default
        str(DEFAULT_CONCURRENCY),
    ]
    measured = benchlib.run_measured(command, timeout=600)
    benchlib.check_ok(measured, "floor")
    result = json.loads(measured.stdout)
    if result["ok"] != count:
        raise SystemExit(f"floor: only {result['ok']} of {count} ok: {result['errors']}")
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000, help="M, the number of targets")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each client")
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="also run `probe run` once under py-spy (collapsed stacks; see bench/profile_top.py)",
    )
    args = parser.parse_args()
    benchlib.isolate()
    print(benchlib.describe_machine())
    work = Path(tempfile.mkdtemp(prefix="pbench-success-"))
    world = benchlib.https_world(args.count, work)
    big_list = benchlib.https_list(work / "big.toml", world.names)
    small_list = benchlib.https_list(work / "small.toml", world.names[:SMALL])
    names_file = work / "names.txt"
    names_file.write_text("\n".join(world.names) + "\n")
    small_names = work / "small-names.txt"
    small_names.write_text("\n".join(world.names[:SMALL]) + "\n")
    samples: dict[str, list[benchlib.Measured]] = {
        "probe": [],
        "floor": [],
        "probe_small": [],
        "floor_small": [],
    }
    with benchlib.world(world.spec):
        for _ in range(args.repeat):
            samples["floor_small"].append(run_floor(str(small_names), world.ca_pem, SMALL))
            samples["probe_small"].append(
                run_probe(small_list, world.ca_pem, work / "results", SMALL)
            )
            samples["floor"].append(run_floor(str(names_file), world.ca_pem, args.count))
            samples["probe"].append(run_probe(big_list, world.ca_pem, work / "results", args.count))
            for key in ("floor", "probe"):
                m = samples[key][-1]
                print(
                    f"  {key:5}: M={args.count} wall {m.wall:6.2f} s, CPU {m.cpu:6.2f} s "
                    f"(user {m.user:.2f}, sys {m.system:.2f}), peak RSS {m.max_rss_mib:.0f} MiB",
                    flush=True,
                )
        if args.profile:
            command = [
                "py-spy",
                "record",
                "-o",
                args.profile,
                "-f",
                "raw",
                "-r",
                "200",
                "--",
                *benchlib.probe_command(
                    big_list,
                    "--no-control",
                    "--resolver",
                    "127.0.0.1:53",
                    "--ca-file",
                    world.ca_pem,
                    "--out",
                    str(work / "results"),
                    "--json",
                ),
            ]
            benchlib.check_ok(benchlib.run_measured(command, timeout=900), "py-spy")
            print(f"profile written to {args.profile}")

    def med(key: str, attribute: str) -> float:
        return statistics.median(getattr(m, attribute) for m in samples[key])

    report: dict[str, Any] = {"count": args.count, "repeat": args.repeat}
    for client in ("probe", "floor"):
        cpu, wall = med(client, "cpu"), med(client, "wall")
        cpu0, wall0 = med(client + "_small", "cpu"), med(client + "_small", "wall")
        report[client] = {
            "cpu_s": cpu,
            "wall_s": wall,
            "fixed_cpu_s": cpu0,
            "fixed_wall_s": wall0,
            "cpu_ms_per": 1000 * cpu / args.count,
            "wall_ms_per": 1000 * wall / args.count,
            "marginal_cpu_ms_per": 1000 * (cpu - cpu0) / (args.count - SMALL),
            "marginal_wall_ms_per": 1000 * (wall - wall0) / (args.count - SMALL),
            "max_rss_mib": med(client, "max_rss_mib"),
        }
    report["probe"]["round_runtime_s"] = statistics.median(
        m.extra["runtime"] for m in samples["probe"]
    )
    # The machine's speed drifts between runs (a shared VM: 20-30 % from one minute to the
    # next), so also give the ratio of each probe run to the floor run just before it.
    pair_ratios = [p.cpu / f.cpu for p, f in zip(samples["probe"], samples["floor"], strict=True)]
    report["pair_cpu_ratios"] = [round(r, 3) for r in pair_ratios]
    report["median_pair_cpu_ratio"] = statistics.median(pair_ratios)
    ratio = report["probe"]["cpu_ms_per"] / report["floor"]["cpu_ms_per"]
    marginal = report["probe"]["marginal_cpu_ms_per"] / report["floor"]["marginal_cpu_ms_per"]
    report["cpu_ratio"], report["marginal_cpu_ratio"] = ratio, marginal
    print(
        f"{'client':6} {'CPU ms/meas':>11} {'marginal':>9} {'wall ms/meas':>12} "
        f"{'marginal':>9} {'fixed CPU s':>11} {'peak RSS MiB':>12}"
    )
    for client in ("probe", "floor"):
        r = report[client]
        print(
            f"{client:6} {r['cpu_ms_per']:11.2f} {r['marginal_cpu_ms_per']:9.2f} "
            f"{r['wall_ms_per']:12.2f} {r['marginal_wall_ms_per']:9.2f} "
            f"{r['fixed_cpu_s']:11.2f} {r['max_rss_mib']:12.0f}"
        )
    print(json.dumps(report))
    verdict = "met" if ratio <= 1.5 else ("within the must (2x)" if ratio <= 2 else "MISSED")
    benchlib.summary_line(
        "success_overhead",
        f"M={args.count}: probe {report['probe']['cpu_ms_per']:.2f} ms CPU/measurement vs floor "
        f"{report['floor']['cpu_ms_per']:.2f} = {ratio:.2f}x (marginal {marginal:.2f}x; "
        f"run by run {', '.join(f'{r:.2f}' for r in pair_ratios)}); "
        f"goal 1.5x {verdict}",
    )


if __name__ == "__main__":
    main()
