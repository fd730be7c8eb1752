"""A/B of the success path: this tree's `probe run` against another copy of the package, in one
world and alternately, with the floor between them (the machine's speed drifts from minute to
minute, so only runs close in time compare well). For measuring a change before keeping it.

    git archive HEAD probe | tar -x -C /tmp/base      # the version to compare with
    sudo .venv/bin/python bench/ab_success.py --base /tmp/base [--count 2000] [--repeat 4]

`--base` is a directory holding a `probe` package; it is put first on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

import benchlib
from success_overhead import run_floor


def run_probe(list_path: str, ca: str, out: Path, base: str | None) -> benchlib.Measured:
    command = benchlib.probe_command(
        list_path, "--no-control", "--resolver", "127.0.0.1:53", "--ca-file", ca,
        "--out", str(out), "--json",
    )  # fmt: skip
    # PYTHONSAFEPATH: `python -m` would put the working directory (this tree) first on the
    # path, before PYTHONPATH. Without `base`, the package comes from the editable install.
    env = dict(os.environ, PYTHONSAFEPATH="1")
    if base is not None:
        env["PYTHONPATH"] = base
    measured = benchlib.run_measured(command, timeout=600, env=env)
    benchlib.check_ok(measured, "probe run")
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="directory holding the other `probe`")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=4)
    parser.add_argument(
        "--no-floor", action="store_true", help="only the two probes (shorter, finer alternation)"
    )
    args = parser.parse_args()
    benchlib.isolate()
    print(benchlib.describe_machine())
    work = Path(tempfile.mkdtemp(prefix="pbench-ab-"))
    world = benchlib.https_world(args.count, work)
    big_list = benchlib.https_list(work / "big.toml", world.names)
    names_file = work / "names.txt"
    names_file.write_text("\n".join(world.names) + "\n")
    rows: list[tuple[float, float, float]] = []
    with benchlib.world(world.spec):
        for index in range(args.repeat):
            # Alternate which probe runs first: the one after the floor (or after the other
            # probe) must not always be the same.
            measured: dict[str, float] = {}
            order = ("base", "floor", "new") if index % 2 == 0 else ("new", "floor", "base")
            for which in order:
                if which == "floor" and args.no_floor:
                    measured[which] = float("nan")
                    continue
                if which == "floor":
                    measured[which] = run_floor(str(names_file), world.ca_pem, args.count).cpu
                else:
                    tree = args.base if which == "base" else None
                    measured[which] = run_probe(big_list, world.ca_pem, work / "results", tree).cpu
            base, floor, new = measured["base"], measured["floor"], measured["new"]
            rows.append((base, floor, new))
            print(
                f"  base {base:6.2f} s  floor {floor:6.2f} s  this tree {new:6.2f} s  "
                f"this/base {new / base:.3f}  base/floor {base / floor:.2f}  "
                f"this/floor {new / floor:.2f}",
                flush=True,
            )
    change = statistics.median(new / base for base, _, new in rows)
    benchlib.summary_line(
        "ab_success",
        f"M={args.count}: this tree / base CPU, median of {len(rows)}: {change:.3f} "
        f"(base/floor {statistics.median(b / f for b, f, _ in rows):.2f}, "
        f"this/floor {statistics.median(n / f for _, f, n in rows):.2f})",
    )


if __name__ == "__main__":
    main()
