"""`probe run --every`: rounds one after another in one process, never overlapping."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from probe.round.runner import RoundOptions, RoundResult, run_round
from probe.round.schedule.period import jittered
from probe.targets import Target, TargetList


async def run_rounds(
    lists: Sequence[TargetList],
    targets: Sequence[Target],
    options: RoundOptions,
    *,
    every: float | None = None,
    count: int | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    on_round: Callable[[RoundResult], None] | None = None,
    on_wait: Callable[[float], None] | None = None,
) -> int:
    """One round, or rounds every `every` seconds (with jitter, never overlapping) until
    `count` rounds are done; forever when `every` is set and `count` is None. Each round's
    result goes to `on_round` and is then dropped (a year of hourly rounds must not pile up in
    memory); returns the number of rounds run."""
    rounds = 0
    rng = random.SystemRandom().random
    while True:
        started = time.monotonic()
        result = await run_round(lists, targets, options, on_record=on_record)
        rounds += 1
        if on_round is not None:
            on_round(result)
        del result
        if every is None or (count is not None and rounds >= count):
            return rounds
        # Rounds never overlap: the next one starts one period after this one started, or
        # right away when this one took longer than the period.
        delay = max(0.0, jittered(every, rng) - (time.monotonic() - started))
        if on_wait is not None:
            on_wait(delay)
        await asyncio.sleep(delay)
