"""`probe run --every` runs for months: memory must not grow from round to round. Measured as
resident memory after each of a few hundred real rounds (one loopback target each), never as
time."""

from __future__ import annotations

import datetime
import gc
import os
from pathlib import Path

from probe.round.measure import MeasureConfig
from probe.round.runner import RoundOptions, RoundResult
from probe.round.schedule.rounds import run_rounds
from probe.targets import Target, TargetList

ROUNDS = 300
TARGETS = 20
#: what may be added after warm-up (allocator noise), far below a leak of even 10 KB a round
ALLOWED_GROWTH = 2 * 1024 * 1024


def resident_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def test_memory_stays_flat_across_hundreds_of_rounds(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PROBE_DATA_DIR", str(tmp_path / "no-data"))
    targets = [
        Target(
            id=f"t/a{n}", service="t", check="tcp", host="127.0.0.1", ports=(9,), list_name="l",
            definition={"id": f"t/a{n}", "service": "t", "check": "tcp", "host": "127.0.0.1",
                        "ports": [9], "note": "x" * 200},
        )
        for n in range(TARGETS)
    ]  # fmt: skip
    lst = TargetList(
        name="l", updated=datetime.date(2026, 1, 1), path="l.toml", sha256="0" * 64,
        targets=tuple(targets),
    )  # fmt: skip
    options = RoundOptions(
        measure=MeasureConfig(timeout=0.5, resolver=("127.0.0.1", 9)),
        out_dir=str(tmp_path / "results"),
        ip_discovery=False,
        doh_urls=(),
    )
    samples: list[int] = []

    def on_round(result: RoundResult) -> None:
        assert result.records and not result.interrupted
        gc.collect()
        samples.append(resident_bytes())

    rounds = await run_rounds([lst], targets, options, every=0.001, count=ROUNDS, on_round=on_round)
    warm = samples[49]
    growth = max(samples[50:]) - warm
    assert growth < ALLOWED_GROWTH, (
        f"resident memory grew {growth / 2**20:.1f} MiB over rounds 50..{ROUNDS} "
        f"({warm / 2**20:.1f} -> {samples[-1] / 2**20:.1f} MiB)"
    )
    # the rounds are counted, not kept: a year of hourly rounds must not pile up in memory
    assert rounds == ROUNDS == len(samples)
