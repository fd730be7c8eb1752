"""Scrubbing CPU: microseconds per `Scrubber.scrub_record(record)`, this tree against an older
version of the scrubber, side by side in one process.

The records are real: one default round (`probe run --no-control`) over the bundled lists
against loopback stand-ins, built exactly as bench/data_usage.py builds them (HTTPS pages of
`--page-kb`, cut at the default body cap; Telegram's data centres as the fake data centre; DNS
answers, raw DNS replies, certificate chains, headers, MTProto bytes), inside a private network
namespace. With `--records FILE` (JSON Lines, e.g. saved earlier with `--save`) no round is run
and no root is needed.

The older scrubber is `probe/scrub.py` as of a git revision (`--old`, default HEAD, or the last
revision that had the single-file module), written to a temporary file and imported beside this
tree's `probe.vantage.scrub`. Both scrub every record in two modes, alternately, `--repeat` times
after
a warm-up pass:

* address known: an own IPv4 address, an own IPv6 address and its /64 learned (nothing of them
  is in the records, the common case);
* redaction: no IPv4 address learned (`redact_unknown`), the own IPv6 address and /64 known.

The loopback stand-ins' addresses (127.x) are passed as `allow_nets`, which makes them
identifying like the public addresses a real round measures, so redaction has to keep them as
measured addresses rather than skip them as private.

Figures are CPU time (`time.process_time`), the median of the passes, per record and per kind of
target. Each pass uses new scrubbers, as a round does (a scrubber remembers strings it found
unchanged: only what the records of one round share may help). A first pass checks that both
versions return equal records and reports.

    sudo .venv/bin/python bench/scrub_cpu.py [--page-kb 400] [--repeat 7]
    python bench/scrub_cpu.py --records records.jsonl
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import benchlib

OWN4 = "203.0.113.7"
OWN6 = "2001:db8:5:7::5"


def make_records(page_kb: int, base: str | None) -> list[dict[str, Any]]:
    """One default round over the bundled lists against loopback stand-ins (inside the private
    namespace); its records."""
    import data_usage

    work = Path(tempfile.mkdtemp(prefix="pbench-scrub-"))
    spec, lists, ca, _ = data_usage.build(work, page_kb * 1000, False)
    out = work / "results"
    command = benchlib.probe_command(
        *lists, "--no-control", "--resolver", "127.0.0.1:53", "--ca-file", ca, "--out", str(out)
    )
    env = dict(os.environ, PYTHONSAFEPATH="1")
    if base is not None:
        env["PYTHONPATH"] = base
    with benchlib.world(spec):
        measured = benchlib.run_measured(command, timeout=300, env=env)
    if measured.returncode not in (0, 1):  # 1: something is blocked or down, records written
        benchlib.check_ok(measured, "probe run")
    records = [
        json.loads(line)
        for path in sorted(out.rglob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    if not records:
        raise SystemExit("probe run wrote no records")
    return records


def old_module(ref: str | None) -> tuple[ModuleType, str]:
    """probe/scrub.py as of `ref` (default: HEAD, else the last revision that had it)."""

    def show(rev: str) -> str | None:
        done = subprocess.run(
            ["git", "show", f"{rev}:probe/scrub.py"],
            cwd=benchlib.REPO,
            capture_output=True,
            text=True,
        )
        return done.stdout if done.returncode == 0 else None

    rev = ref or "HEAD"
    source = show(rev)
    if source is None and ref is None:
        last = subprocess.run(
            ["git", "rev-list", "-1", "HEAD", "--", "probe/scrub.py"],
            cwd=benchlib.REPO,
            capture_output=True,
            text=True,
        ).stdout.strip()
        rev = f"{last}^" if last else rev
        source = show(rev) if last else None
    if source is None:
        raise SystemExit(f"no probe/scrub.py at {rev}")
    described = subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=benchlib.REPO, capture_output=True, text=True
    ).stdout.strip()
    path = Path(tempfile.mkdtemp(prefix="pbench-scrub-old-")) / "scrub_old.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("scrub_old", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["scrub_old"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module, described or rev


def scrubbers(module: Any) -> dict[str, Any]:
    # The stand-ins' 127.x addresses are made identifying, as the public addresses a real round
    # measures are: redaction must then keep them (they are the record's measured addresses).
    nets = (*module.DOCUMENTATION_NETS, "127.0.0.0/8")
    known = module.Scrubber(allow_nets=nets)
    redact = module.Scrubber(allow_nets=nets)
    for scrubber in (known, redact):
        assert scrubber.add(OWN6) and scrubber.add_prefix(OWN6)
    assert known.add(OWN4)
    redact.redact_unknown = True
    return {"known": known, "redaction": redact}


def one_pass(scrub: Callable[..., Any], records: Sequence[dict[str, Any]]) -> list[float]:
    """CPU seconds of each record's scrub."""
    times: list[float] = []
    clock = time.process_time
    for record in records:
        started = clock()
        scrub(record)
        times.append(clock() - started)
    return times


def kind_of(record: dict[str, Any]) -> str:
    target = record.get("test_keys", {}).get("target") or {}
    return str(target.get("check", "?"))


def measure(
    modules: dict[str, Any],
    mode: str,
    records: Sequence[dict[str, Any]],
    kinds: dict[str, int],
    repeat: int,
) -> dict[str, Any]:
    """Both versions in one mode: whether they agree, and the medians of `repeat` passes (us
    per record, overall and by kind of target)."""
    funcs = {name: scrubbers(module)[mode].scrub_record for name, module in modules.items()}
    same = all(funcs["old"](r)[0] == funcs["new"](r)[0] and _reports(funcs, r) for r in records)
    totals: dict[str, list[float]] = {"old": [], "new": []}
    per_record: dict[str, list[list[float]]] = {"old": [], "new": []}
    gc.collect()
    for index in range(repeat):
        order = ("old", "new") if index % 2 == 0 else ("new", "old")
        for name in order:
            # A new scrubber for each pass: in a round every record is new to it, so what it
            # remembers from earlier records must not be these records.
            times = one_pass(scrubbers(modules[name])[mode].scrub_record, records)
            totals[name].append(sum(times) / len(records))
            per_record[name].append(times)
    row: dict[str, Any] = {"identical": same}
    for name in ("old", "new"):
        row[name] = statistics.median(totals[name]) * 1e6
        by_kind: dict[str, float] = {}
        for kind in kinds:
            chosen = [i for i, r in enumerate(records) if kind_of(r) == kind]
            by_kind[kind] = statistics.median(
                sum(p[i] for i in chosen) / len(chosen) for p in per_record[name]
            ) * 1e6  # fmt: skip
        row[f"{name}_by_kind"] = by_kind
    row["ratio"] = row["new"] / row["old"] if row["old"] else float("nan")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", help="JSON Lines of records to use instead of a round")
    parser.add_argument("--save", help="write the round's records here (JSON Lines)")
    parser.add_argument("--page-kb", type=int, default=400, help="size of every stand-in page")
    parser.add_argument("--base", help="make the records with the `probe` package in this dir")
    parser.add_argument("--old", help="git revision of the older probe/scrub.py")
    parser.add_argument("--repeat", type=int, default=7, help="timed passes per version")
    args = parser.parse_args()
    if args.records:
        text = Path(args.records).read_text(encoding="utf-8")
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
    else:
        benchlib.isolate()
        records = make_records(args.page_kb, args.base)
        if args.save:
            with open(args.save, "w", encoding="utf-8") as out:
                out.writelines(json.dumps(r) + "\n" for r in records)
    print(benchlib.describe_machine())

    from probe.vantage import scrub as new

    old, old_rev = old_module(args.old)
    kinds: dict[str, int] = {}
    for record in records:
        kinds[kind_of(record)] = kinds.get(kind_of(record), 0) + 1
    size = statistics.median(len(json.dumps(r)) for r in records)
    print(f"records: {len(records)} {json.dumps(kinds)}; median {size / 1000:.1f} kB as JSON")
    modules = {"old": old, "new": new}
    figures: dict[str, Any] = {"records": len(records), "kinds": kinds, "old_rev": old_rev}
    for mode in ("known", "redaction"):
        row = measure(modules, mode, records, kinds, args.repeat)
        figures[mode] = row
        kinds_text = ", ".join(
            f"{k} {row['old_by_kind'][k]:.0f} -> {row['new_by_kind'][k]:.0f}" for k in kinds
        )
        print(
            f"{mode:>9}: old {row['old']:.0f} us/record, new {row['new']:.0f} us/record "
            f"(x{row['ratio']:.2f}); by kind: {kinds_text}; identical output: {row['identical']}"
        )
    print(json.dumps(figures))
    benchlib.summary_line(
        "scrub_cpu",
        f"{len(records)} records of one default round, old {old_rev} -> this tree: "
        f"address known {figures['known']['old']:.0f} -> {figures['known']['new']:.0f} us, "
        f"redaction {figures['redaction']['old']:.0f} -> {figures['redaction']['new']:.0f} us "
        f"per record; identical output: "
        f"{figures['known']['identical'] and figures['redaction']['identical']}",
    )


def _reports(funcs: dict[str, Callable[..., Any]], record: dict[str, Any]) -> bool:
    old, new = (funcs[name](record)[1] for name in ("old", "new"))
    return (old.mode, old.replaced, old.redacted, old.fields, old.hashes_cleared) == (
        new.mode,
        new.replaced,
        new.redacted,
        new.fields,
        new.hashes_cleared,
    )


if __name__ == "__main__":
    main()
