"""CPU per record of the work the round does after a target is measured: building the record
from the observations, the analysis, scrubbing the volunteer's address, and the one JSON
encode — for this tree and for another (`--base DIR`, e.g. a `git worktree` of an older
commit), side by side in one run.

    python bench/record_cpu.py [--base DIR] [--rounds 7] [--repeat 20]

The records are real: `probe run` (this tree) over the test suite's loopback world (DNS, TLS,
HTTP and raw TCP servers, a fake Telegram data centre and a control server, all on loopback,
misbehaving for the probe the way a censor would), with and without the control. Each tree
then reads them back into its own observation types *outside* the timed part (the round holds
those objects in memory) and times, per record:

- the old runner's path, on a tree without `probe.analysis.judge`: `Observations.to_dict()`
  into the record, `analyze(record)` (which parses the observations back), scrubbing, encode;
- this tree's path: `Observations.to_dict()` into the record, `judge(case)` over the objects
  in hand, scrubbing, encode.

Each tree runs in its own interpreter (`PYTHONPATH`), alternately, `--rounds` times; the figure
is the median over rounds of the mean µs per record. Prints the figures, a JSON line and a
`SUMMARY` line. Needs no root: loopback only.

`--instructions` counts instructions instead of CPU time (valgrind's callgrind; the same on a
loaded machine as on a quiet one): each tree's worker runs under callgrind with `--repeat` and
with no repetition (set-up and warm-up only), and the difference is divided by the records
timed. One round is enough: the count does not drift.
"""

from __future__ import annotations

import argparse
import asyncio
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

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

#: Runs inside each tree's interpreter: reads the records, times the per-record work.
WORKER = r"""
import json, sys, time
from probe import analysis
from probe.observations import Observations, DNSQuery
import importlib
for module in ("probe.vantage.scrub", "probe" + ".scrub"):  # this layout, or an older tree's
    try:
        Scrubber = importlib.import_module(module).Scrubber
        break
    except ImportError:
        continue

records = [json.loads(line) for line in open(sys.argv[1])]
repeat = int(sys.argv[2])
typed = hasattr(analysis, "judge")
prepared = []
for record in records:
    tk = record["test_keys"]
    obs = Observations.from_dict(tk)
    control = tk.get("control")
    control = Observations.from_dict(control) if isinstance(control, dict) else None
    skip = set(obs.to_dict()) | {"verdict", "x_endpoints"}
    rest = {k: v for k, v in tk.items() if k not in skip}
    envelope = {k: v for k, v in record.items() if k != "test_keys"}
    prepared.append((envelope, rest, obs, control, tk))
scrubber = Scrubber()
scrubber.add("203.0.113.9")  # a learned public address (TEST-NET-3): the usual mode
fingerprints = None

def one(envelope, rest, obs, control, tk):
    record = dict(envelope)
    test_keys = {"target": rest.get("target"), **obs.to_dict()}
    test_keys.update((k, v) for k, v in rest.items() if k != "target")
    test_keys["control"] = control.to_dict() if control is not None else None
    record["test_keys"] = test_keys
    if typed:
        case = analysis.Case(
            target=analysis.TargetFacts.from_wire(test_keys["target"] or {}),
            probe=obs,
            control=control,
            control_failure=tk.get("control_failure"),
            doh=tuple(DNSQuery.from_dict(q) for q in tk.get("x_doh") or ()),
            vantage=analysis.VantageFacts.from_wire(tk.get("x_vantage") or {}),
            probe_cc=record.get("probe_cc"),
        )
        result = analysis.judge(case, fingerprints)
    else:
        result = analysis.analyze(record, fingerprints)
    test_keys["x_endpoints"] = [e.to_dict() for e in result.endpoints]
    test_keys["verdict"] = result.verdict.to_dict()
    scrubbed, _ = scrubber.scrub_record(record)
    return json.dumps(scrubbed, ensure_ascii=False, separators=(",", ":"))

for item in prepared:  # warm-up: imports, fingerprint database, caches
    one(*item)
if repeat == 0:  # only the set-up (the instruction count's baseline, see --instructions)
    print(json.dumps({"typed": typed, "records": len(prepared), "us_per_record": 0.0}))
    raise SystemExit(0)
start = time.process_time()
for _ in range(repeat):
    for item in prepared:
        one(*item)
elapsed = time.process_time() - start
per_record = elapsed / (repeat * len(prepared)) * 1e6
print(json.dumps({"typed": typed, "records": len(prepared), "us_per_record": per_record}))
"""


async def make_corpus(directory: Path) -> Path:
    """Records of two real rounds over the loopback world, with and without the control."""
    from tests.loopback_world import PROBE, loopback_world, read_records, run_probe

    corpus = directory / "records.jsonl"
    records: list[dict[str, Any]] = []
    async with loopback_world(directory) as world:
        for extra in (["--control", world.control_url], ["--no-control"]):
            out = directory / f"out{len(records)}"
            args = [
                "run",
                str(world.list_path),
                "--resolver",
                world.resolver,
                "--source-address",
                PROBE,
                "--ca-file",
                world.ca_file,
                "--timeout",
                "1.5",
                "--out",
                str(out),
                *extra,
            ]
            result = await run_probe(args)
            if result.returncode not in (0, 1):
                raise SystemExit(f"probe run failed: {result.stderr}")
            records.extend(read_records(out))
    corpus.write_text("".join(json.dumps(r) + "\n" for r in records))
    return corpus


def run_worker(
    tree: Path, corpus: Path, repeat: int, callgrind: str = "", cache_dir: Path | None = None
) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(tree), PROBE_DATA_DIR="/nonexistent-probe-bench-data")
    if cache_dir is not None:
        env["PROBE_CACHE_DIR"] = str(cache_dir)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # else every run compiles the package again
    prefix = []
    if callgrind:
        prefix = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={callgrind}"]
    out = subprocess.run(
        [*prefix, sys.executable, "-c", WORKER, str(corpus), str(repeat)],
        env=env,
        cwd=str(tree),
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    if callgrind:
        text = Path(callgrind).read_text(errors="replace")
        result["instructions"] = int(re.search(r"^(?:summary|totals):\s+(\d+)", text, re.M)[1])
    return result


def instructions(tree: Path, corpus: Path, repeat: int, work: Path) -> dict[str, Any]:
    """Instructions per record: a run with `repeat` repetitions minus one with none (the
    package compiled to bytecode first: a run that compiles it costs more)."""
    compileall.compile_dir(str(tree / "probe"), quiet=1)
    # The tree's own fingerprint cache, filled before the counted runs: a run that parses the
    # files and writes the cache (~200 M instructions) against one that reads it would put the
    # difference into the per-record figure (another tree, or `probe run` making the corpus,
    # may have left a cache of other code in the shared directory).
    cache_dir = work / ("fingerprint-cache" + str(tree).replace("/", "_"))
    run_worker(tree, corpus, 0, cache_dir=cache_dir)
    timed = run_worker(tree, corpus, repeat, str(work / "callgrind.timed"), cache_dir)
    setup = run_worker(tree, corpus, 0, str(work / "callgrind.setup"), cache_dir)
    per_record = (timed["instructions"] - setup["instructions"]) / (repeat * timed["records"])
    return {"typed": timed["typed"], "records": timed["records"], "us_per_record": per_record}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", help="another tree to compare with (e.g. a git worktree)")
    parser.add_argument("--tree", help="the tree measured as 'this tree' (default: this one)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument(
        "--instructions", action="store_true", help="count instructions (callgrind), not time"
    )
    args = parser.parse_args()
    unit = "instr" if args.instructions else "µs"
    if args.instructions:
        args.rounds = 1
    with tempfile.TemporaryDirectory(prefix="record-cpu-") as tmp:
        corpus = asyncio.run(make_corpus(Path(tmp)))
        trees = {"this tree": Path(args.tree).resolve() if args.tree else REPO}
        if args.base:
            trees["base"] = Path(args.base).resolve()
        samples: dict[str, list[float]] = {name: [] for name in trees}
        info: dict[str, Any] = {}
        for _ in range(args.rounds):
            for name, tree in trees.items():  # alternately: drift hits both alike
                if args.instructions:
                    result = instructions(tree, corpus, args.repeat, Path(tmp))
                else:
                    result = run_worker(tree, corpus, args.repeat)
                samples[name].append(result["us_per_record"])
                info[name] = {"typed": result["typed"], "records": result["records"]}
    medians = {name: statistics.median(values) for name, values in samples.items()}
    for name, values in samples.items():
        spread = ", ".join(f"{v:.0f}" for v in values)
        path = "typed judge" if info[name]["typed"] else "analyze(record)"
        print(
            f"{name:10s} {medians[name]:8.1f} {unit}/record  ({path}; "
            f"{info[name]['records']} records; rounds: {spread})"
        )
    summary: dict[str, Any] = {"unit": unit, "median_per_record": medians, "samples": samples}
    text = f"this tree {medians['this tree']:.0f} {unit}/record"
    if "base" in medians:
        ratio = medians["this tree"] / medians["base"]
        summary["ratio_this_over_base"] = ratio
        text += f", base {medians['base']:.0f} {unit}/record, ratio {ratio:.2f}"
    print(json.dumps(summary))
    print("SUMMARY record_cpu: " + text)


if __name__ == "__main__":
    main()
