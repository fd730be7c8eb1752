"""The round raises the garbage collector's young threshold while it runs, and restores it."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from probe.round import resources


@pytest.fixture
def saved_threshold() -> Iterator[tuple[int, ...]]:
    before = gc.get_threshold()
    try:
        yield before
    finally:
        gc.set_threshold(*before)


def test_threshold_is_raised_during_rounds_and_restored_after(saved_threshold) -> None:
    gc.set_threshold(700, 10, 10)
    first = resources.raise_gc_threshold()
    assert gc.get_threshold() == (resources.GC_YOUNG_THRESHOLD, 10, 10)
    second = resources.raise_gc_threshold()  # an overlapping round
    first()
    assert gc.get_threshold() == (resources.GC_YOUNG_THRESHOLD, 10, 10)  # the other still runs
    first()  # undoing twice changes nothing
    second()
    assert gc.get_threshold() == (700, 10, 10)


def test_a_disabled_collector_stays_disabled(saved_threshold) -> None:
    gc.set_threshold(0, 10, 10)
    restore = resources.raise_gc_threshold()
    assert gc.get_threshold() == (0, 10, 10)
    restore()
    assert gc.get_threshold() == (0, 10, 10)


def test_a_higher_threshold_is_kept(saved_threshold) -> None:
    gc.set_threshold(50_000, 10, 10)
    restore = resources.raise_gc_threshold()
    assert gc.get_threshold() == (50_000, 10, 10)
    restore()
    assert gc.get_threshold() == (50_000, 10, 10)
