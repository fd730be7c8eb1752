"""Success-path cost in instructions: `probe run` against the floor, both under callgrind.

Wall and CPU time on a shared, loaded machine drift by 20-50 % from minute to minute; the number
of instructions a process executes does not (valgrind's callgrind counts them, whatever the
load). The world is the one of bench/success_overhead.py (M HTTPS sites on loopback, in a
private namespace, served from another process); each client runs under callgrind over M
targets and over a small M0, so that the fixed cost (interpreter, imports, lists, trust store)
and the marginal cost per measurement are told apart. Clients alternate, `--repeat` times.

    sudo .venv/bin/python bench/instructions_success.py [--count 300] [--repeat 2]
        [--base DIR]   # also a `probe` package from DIR (git archive HEAD probe | tar -x -C DIR)
        [--tree DIR]   # this tree's `probe` from DIR instead of the installed one
        [--keep DIR]   # keep the callgrind files (callgrind_annotate FILE) there

Counted: instructions in user space (Ir), of the client process only (not the servers, not the
kernel: system calls count as the instructions that issue them, so a client making more system
calls costs more kernel time than this shows; see `--syscalls`). Ratios are per measurement:
marginal (M - M0 targets) and "at 2,000" (fixed cost spread over 2,000 targets, as in
bench/success_overhead.py). The cost of compiling Python sources is kept out: the package is
compiled to bytecode before the first measured run and PYTHONDONTWRITEBYTECODE is unset. Each
client has its own cache directory (`PROBE_CACHE_DIR`), which the warm-up run fills: a measured
start loads the fingerprint database from its cache, as every start but a volunteer's first does.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import benchlib

from probe.round.measure import DEFAULT_CONCURRENCY

SMALL = 20
AT = 2000
#: seconds per step: under callgrind a client runs ~50x slower, and a measurement that times
#: out does other work than one that succeeds (every run is checked: all must succeed)
TIMEOUT = "600"
_TOTALS = re.compile(r"^(?:summary|totals):\s+(\d+)", re.MULTILINE)


def env_for(base: str | None, cache_dir: Path) -> dict[str, str]:
    """Each client gets its own cache directory (the fingerprint cache, probe/analysis/
    fingerprints/cache.py), filled by the warm-up run: two trees sharing one would overwrite
    each other's cache, and a measured run would pay the uncached load."""
    env = dict(os.environ, PYTHONSAFEPATH="1", PROBE_CACHE_DIR=str(cache_dir))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if base is not None:
        env["PYTHONPATH"] = base
    return env


def callgrind(command: list[str], out_file: Path, env: dict[str, str], expect: int) -> int:
    """Run `command` under callgrind; return the instructions it executed. Every one of the
    `expect` measurements must have succeeded."""
    argv = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out_file}",
        "--dump-instr=no",
        *command,
    ]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise SystemExit(f"{command[:4]} under callgrind failed ({result.returncode}):\n{tail}")
    ok = succeeded(result.stdout)
    if ok != expect:
        raise SystemExit(f"{command[:4]}: {ok} of {expect} measurements succeeded")
    match = _TOTALS.search(out_file.read_text(errors="replace"))
    if match is None:
        raise SystemExit(f"no totals in {out_file}")
    return int(match.group(1))


def succeeded(stdout: str) -> int:
    """Successful measurements, from the floor's JSON or `probe run --json`'s summary."""
    last = json.loads([line for line in stdout.splitlines() if line.startswith("{")][-1])
    if "services" in last:
        return sum(row["counts"]["ok"] for row in last["services"])
    return int(last["ok"])


def syscalls(command: list[str], env: dict[str, str]) -> dict[str, int]:
    """System calls by name (strace -c -f), for the kernel side callgrind does not see."""
    with tempfile.NamedTemporaryFile("r", suffix=".strace") as out:
        subprocess.run(
            ["strace", "-f", "-c", "-o", out.name, *command],
            env=env,
            capture_output=True,
            check=True,
            timeout=3600,
        )
        counts: dict[str, int] = {}
        for line in Path(out.name).read_text().splitlines():
            parts = line.split()
            if len(parts) >= 5 and parts[-1].isidentifier() and parts[3].isdigit():
                counts[parts[-1]] = int(parts[3])
        return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=300, help="M, the number of targets")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each client")
    parser.add_argument("--base", help="directory holding another `probe` package to compare")
    parser.add_argument(
        "--tree", help="directory holding the `probe` measured as this tree (default: installed)"
    )
    parser.add_argument("--keep", help="directory to keep the callgrind files in")
    parser.add_argument("--syscalls", action="store_true", help="also count system calls")
    parser.add_argument("--no-floor", action="store_true", help="only the probe(s)")
    parser.add_argument(
        "--cprofile", metavar="FILE", help="only run `probe run` once under cProfile, into FILE"
    )
    args = parser.parse_args()
    benchlib.isolate()
    print(benchlib.describe_machine(), flush=True)
    work = Path(tempfile.mkdtemp(prefix="pbench-instr-"))
    keep = Path(args.keep) if args.keep else work
    keep.mkdir(parents=True, exist_ok=True)
    world = benchlib.https_world(args.count, work)
    for page in world.spec["pages"]:
        page["timeout"] = float(TIMEOUT)  # the server waits as long as the clients do
    lists = {
        "big": benchlib.https_list(work / "big.toml", world.names),
        "small": benchlib.https_list(work / "small.toml", world.names[:SMALL]),
    }
    names = {"big": work / "names.txt", "small": work / "small-names.txt"}
    names["big"].write_text("\n".join(world.names) + "\n")
    names["small"].write_text("\n".join(world.names[:SMALL]) + "\n")
    counts = {"big": args.count, "small": SMALL}
    trees = [Path(args.tree or benchlib.REPO) / "probe"]
    for tree in trees + ([Path(args.base) / "probe"] if args.base else []):
        compileall.compile_dir(str(tree), quiet=1)

    def command(client: str, size: str) -> list[str]:
        if client == "floor":
            return [
                sys.executable, str(benchlib.BENCH / "floor_https.py"),
                "--names-file", str(names[size]), "--resolver", "127.0.0.1:53",
                "--ca-file", world.ca_pem, "--concurrency", str(DEFAULT_CONCURRENCY),
                "--timeout", TIMEOUT,
            ]  # fmt: skip
        return benchlib.probe_command(
            lists[size], "--no-control", "--resolver", "127.0.0.1:53",
            "--ca-file", world.ca_pem, "--out", str(work / f"results-{client}"), "--json",
            "--timeout", TIMEOUT,
        )  # fmt: skip

    clients = ["probe"] + (["base"] if args.base else []) + ([] if args.no_floor else ["floor"])
    envs = {
        "probe": env_for(args.tree, work / "cache-probe"),
        "base": env_for(args.base, work / "cache-base"),
        "floor": env_for(None, work / "cache-floor"),
    }
    samples: dict[str, dict[str, list[int]]] = {c: {"big": [], "small": []} for c in clients}
    with benchlib.world(world.spec):
        if args.cprofile:
            probe = command("probe", "big")
            argv = [probe[0], "-m", "cProfile", "-o", args.cprofile, *probe[1:]]
            subprocess.run(argv, env=envs["probe"], check=True, capture_output=True)
            return
        for client in clients:  # warm-up: the servers' caches, the page cache, bytecode
            subprocess.run(command(client, "small"), env=envs[client], capture_output=True)
        for index in range(args.repeat):
            for client in clients if index % 2 == 0 else clients[::-1]:
                for size in ("small", "big"):
                    out_file = keep / f"callgrind.{client}.{size}.{index}"
                    total = callgrind(command(client, size), out_file, envs[client], counts[size])
                    samples[client][size].append(total)
                    print(
                        f"  {client:5} M={counts[size]:5}: {total / 1e6:10.1f} M instr", flush=True
                    )
        calls = {c: syscalls(command(c, "big"), envs[c]) for c in clients} if args.syscalls else {}
    report: dict[str, Any] = {"count": args.count, "small": SMALL, "repeat": args.repeat}
    marginal_runs: dict[str, list[float]] = {}
    for client in clients:
        big, small = samples[client]["big"], samples[client]["small"]
        marginal_runs[client] = [
            (b - s) / (args.count - SMALL) for b, s in zip(big, small, strict=True)
        ]
        fixed = statistics.median(small) - SMALL * statistics.median(marginal_runs[client])
        marginal = statistics.median(marginal_runs[client])
        report[client] = {
            "big": big,
            "small": small,
            "marginal_instr": marginal,
            "fixed_instr": fixed,
            "per_measurement_at_2000": marginal + fixed / AT,
        }
        print(
            f"{client:5}: marginal {marginal / 1e6:6.2f} M instr/measurement, fixed "
            f"{fixed / 1e6:7.1f} M, at {AT}: "
            f"{report[client]['per_measurement_at_2000'] / 1e6:6.2f} M"
        )
    text = []
    for client in [c for c in clients if c != "floor"]:
        if "floor" in clients:
            pairs = [
                p / f for p, f in zip(marginal_runs[client], marginal_runs["floor"], strict=True)
            ]
            at = (
                report[client]["per_measurement_at_2000"]
                / report["floor"]["per_measurement_at_2000"]
            )
            report[client]["marginal_ratio_runs"] = pairs
            report[client]["ratio_at_2000"] = at
            text.append(
                f"{client}/floor marginal {statistics.median(pairs):.2f}x "
                f"(runs {', '.join(f'{r:.2f}' for r in pairs)}), at {AT} {at:.2f}x"
            )
    if "base" in clients:
        change = report["probe"]["marginal_instr"] / report["base"]["marginal_instr"]
        report["probe_over_base_marginal"] = change
        text.append(f"this tree/base marginal {change:.3f}")
    for client, by_name in calls.items():
        total = sum(by_name.values())
        top = sorted(by_name.items(), key=lambda kv: -kv[1])[:6]
        print(f"{client} system calls (M={args.count}): {total}: {top}")
        report[client]["syscalls"] = by_name
    print(json.dumps(report))
    benchlib.summary_line("instructions_success", f"M={args.count}: " + "; ".join(text))


if __name__ == "__main__":
    main()
