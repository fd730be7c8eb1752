"""`probe.observations.events.round6` and `Trace.now` round exactly as `round(t, 6)`: a record's
times must not change by a bit."""

from __future__ import annotations

import math
import random
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from probe.observations import events
from probe.observations.events import Trace, round6


def _bits(x: float) -> bytes:
    return struct.pack("<d", x)


def _same(x: float) -> None:
    expected = round(x, 6)
    got = round6(x)
    assert _bits(got) == _bits(expected) or (math.isnan(got) and math.isnan(expected)), x


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_any_float(x: float) -> None:
    _same(x)


@given(st.floats(min_value=0.0, max_value=9000.0))
def test_times_of_a_flow(x: float) -> None:
    _same(x)


def test_halves_and_their_neighbours() -> None:
    rnd = random.Random(6)
    for _ in range(200_000):
        micro = rnd.randrange(0, 9 * 10**9)
        half = (micro + 0.5) / 1e6
        for x in (half, math.nextafter(half, 0.0), math.nextafter(half, math.inf), micro / 1e6):
            _same(x)
    for x in (0.0, -0.0, 1e-6, 5e-7, 4.9999999e-7, -1e-9, 7999.9999995, 8000.0, 1e300, -5.5e-6):
        _same(x)


def test_the_flow_clock_rounds_as_round(monkeypatch: pytest.MonkeyPatch) -> None:
    rnd = random.Random(7)
    trace = Trace(zero=1000.0, transaction_id=1)
    clock = [0.0]
    monkeypatch.setattr(events, "_monotonic", lambda: clock[0])
    for _ in range(50_000):
        clock[0] = 1000.0 + rnd.choice([rnd.uniform(0, 2), rnd.uniform(0, 9000), rnd.random()])
        assert _bits(trace.now()) == _bits(round(clock[0] - 1000.0, 6))


def test_events_to_dicts_is_to_dict_of_each() -> None:
    one = events.NetworkEvent("connect", "1.2.3.4:443", None, None, 0.1, 0.2, 3)
    two = events.NetworkEvent("read", None, 17, "eof_error", 0.3, 0.4, 3)
    got = events.NetworkEvent.to_dicts([one, two])
    assert got == [one.to_dict(), two.to_dict()]
    assert [list(d) for d in got] == [list(one.to_dict()), list(two.to_dict())]  # key order
