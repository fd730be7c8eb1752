"""What a round asks of the process: enough open files for its flows, and a garbage collector
that does not rescan the round's live state every 700 allocations."""

from __future__ import annotations

import contextlib
import gc
import resource
from collections.abc import Callable


def raise_open_file_limit(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards `wanted` (bounded by the hard limit); return the
    soft limit now in force (`wanted` when unlimited or unknown)."""
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if soft != resource.RLIM_INFINITY and soft < target:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    with contextlib.suppress(ValueError, OSError):
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        return wanted if soft == resource.RLIM_INFINITY else soft
    return wanted


#: While a round runs, the cyclic garbage collector's youngest generation is collected after this
#: many new container objects instead of Python's 700. A round allocates fast and keeps the state
#: of ~1,000 targets alive, which every young collection then rescanned (and promoted, and
#: rescanned again in the older generations): garbage collection took 0.50-0.61 s of a
#: 2,000-target round's ~7.5 s CPU, 0.16-0.17 s with this (bench/success_overhead.py world,
#: timed with gc.callbacks), for ~5 MiB more peak memory. Results are the same.
GC_YOUNG_THRESHOLD = 10_000
# (gc.freeze() of what exists before the round was tried too: collection time unchanged, and
# no CPU difference in paired runs on a quiet machine; docs/benchmarks.md, 2026-12-06.)
_rounds_in_progress = 0
_threshold_before_rounds = gc.get_threshold()


def raise_gc_threshold() -> Callable[[], None]:
    """Raise the young-generation threshold while any round runs (rounds may overlap in one
    process); the returned function undoes it. A threshold of 0 (collection off) is kept."""
    global _rounds_in_progress, _threshold_before_rounds
    if _rounds_in_progress == 0:
        _threshold_before_rounds = gc.get_threshold()
        young, *older = _threshold_before_rounds
        if young != 0:
            gc.set_threshold(max(young, GC_YOUNG_THRESHOLD), *older)
    _rounds_in_progress += 1
    done = False

    def restore() -> None:
        global _rounds_in_progress
        nonlocal done
        if done:
            return
        done = True
        _rounds_in_progress -= 1
        if _rounds_in_progress == 0:
            gc.set_threshold(*_threshold_before_rounds)

    return restore
