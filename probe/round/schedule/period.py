"""How often: durations as the command line writes them, and the jitter between rounds."""

from __future__ import annotations

from collections.abc import Callable

from probe.i18n import _


def parse_duration(text: str) -> float:
    """Seconds in a duration such as "90s", "30m", "6h", "1d" (a bare number is seconds)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    raw = text.strip().lower()
    unit = raw[-1:] if raw[-1:] in units else "s"
    number = raw[:-1] if raw[-1:] in units else raw
    try:
        value = float(number)
    except ValueError:
        raise ValueError(
            _("bad duration {text!r}: use e.g. 90s, 30m, 6h or 1d").format(text=text)
        ) from None
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError(_("bad duration {text!r}: must be positive").format(text=text))
    return value * units[unit]


def jittered(every: float, rng: Callable[[], float]) -> float:
    """`every` ± 10%: volunteers on one schedule must not all measure in the same second
    (a burst is easy for a censor to spot and skews a shared control server)."""
    return every * (0.9 + 0.2 * rng())
