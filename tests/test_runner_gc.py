"""The round raises the garbage collector's young threshold while it runs and freezes what
existed before it (out of the collector's sight), and restores both after."""

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


def test_what_exists_before_a_round_is_frozen_during_it_and_thawed_after(saved_threshold) -> None:
    gc.set_threshold(700, 10, 10)
    assert gc.get_freeze_count() == 0
    first = resources.raise_gc_threshold()
    frozen = gc.get_freeze_count()
    assert frozen > 0  # the modules, at least
    second = resources.raise_gc_threshold()  # an overlapping round: nothing more to freeze
    assert gc.get_freeze_count() == frozen
    first()
    assert gc.get_freeze_count() == frozen  # the other round still runs
    second()
    assert gc.get_freeze_count() == 0


def test_a_disabled_collector_freezes_nothing(saved_threshold) -> None:
    gc.set_threshold(0, 10, 10)
    restore = resources.raise_gc_threshold()
    assert gc.get_freeze_count() == 0
    restore()
