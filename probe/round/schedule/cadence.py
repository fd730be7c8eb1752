"""Which periods a wall-clock schedule (a cron line, a systemd OnCalendar=) repeats exactly.

A time series needs rounds an equal time apart. A wall clock repeats exactly only for periods
that divide an hour, a day or a week: every N minutes where N divides 60, every N hours where N
divides 24, daily and weekly. `*/7` hours runs at 0, 7, 14 and 21 h and then 3 h later at
midnight; `*/2` days runs on the 31st and again on the 1st; those are refused, never rounded.

Each schedule gets a random offset (the minute, the first hour, the weekday), so that volunteers
with the same period do not all measure at :00 (or at :17).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from probe.i18n import N_, _, joined

WEEK = 7 * 86400
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
#: "on Mondays at 03:37" (translated where it is shown)
_DAY_NAMES = (
    N_("Mondays"),
    N_("Tuesdays"),
    N_("Wednesdays"),
    N_("Thursdays"),
    N_("Fridays"),
    N_("Saturdays"),
    N_("Sundays"),
)

#: the periods a wall clock repeats exactly, for the message that refuses the others
EXACT_PERIODS = (
    *("5m", "6m", "10m", "12m", "15m", "20m", "30m"),
    *("1h", "2h", "3h", "4h", "6h", "8h", "12h", "1d", "7d"),
)


@dataclass(frozen=True, slots=True)
class Cadence:
    """Wall-clock slots: `minutes` of `hours` (None: every hour) on `weekday` (0 = Monday;
    None: every day)."""

    seconds: int
    minutes: tuple[int, ...]
    hours: tuple[int, ...] | None
    weekday: int | None


def exact_cadence(seconds: float, rng: random.Random | None = None) -> Cadence | None:
    """Slots exactly `seconds` apart at a random offset, or None when a wall clock cannot
    repeat that period exactly."""
    rng = rng or random.SystemRandom()
    if seconds != int(seconds) or int(seconds) % 60:
        return None
    period = int(seconds)
    minutes = period // 60
    if minutes < 60:
        if 60 % minutes:
            return None
        return Cadence(period, tuple(range(rng.randrange(minutes), 60, minutes)), None, None)
    minute = (rng.randrange(60),)
    if period == WEEK:
        return Cadence(period, minute, (rng.randrange(24),), rng.randrange(7))
    if minutes % 60 or 24 % (minutes // 60):
        return None
    hours = minutes // 60
    every_hour = None if hours == 1 else tuple(range(rng.randrange(hours), 24, hours))
    return Cadence(period, minute, every_hour, None)


def cron_fields(cadence: Cadence) -> str:
    """The five time fields of a crontab line (local time)."""
    minutes = ",".join(str(m) for m in cadence.minutes)
    hours = "*" if cadence.hours is None else ",".join(str(h) for h in cadence.hours)
    weekday = "*" if cadence.weekday is None else str((cadence.weekday + 1) % 7)  # 0 = Sunday
    return f"{minutes} {hours} * * {weekday}"


def on_calendar(cadence: Cadence) -> str:
    """A systemd OnCalendar= expression, in UTC (no run lost or doubled at a DST change)."""
    minutes = ",".join(f"{m:02d}" for m in cadence.minutes)
    hours = "*" if cadence.hours is None else ",".join(f"{h:02d}" for h in cadence.hours)
    day = "" if cadence.weekday is None else _DAYS[cadence.weekday] + " "
    return f"{day}*-*-* {hours}:{minutes}:00 UTC"


def describe(cadence: Cadence, utc: bool = False) -> str:
    """When it runs, in words, in the volunteer's language: "at :07, :22, :37 and :52 past each
    hour", "at 02:37 and 14:37 UTC", "on Mondays at 03:37"; cron's times are local (`utc`
    False: no zone named). Iran is UTC+3:30: even the minute depends on the zone."""
    if cadence.hours is None:
        times = joined([f":{m:02d}" for m in cadence.minutes])
        # TRANSLATORS: {times} are minutes such as ":07, :22 and :37"
        hourly = _("at {times} past each hour UTC") if utc else _("at {times} past each hour")
        return hourly.format(times=times)
    times = joined([f"{h:02d}:{m:02d}" for h in cadence.hours for m in cadence.minutes])
    if cadence.weekday is None:
        # TRANSLATORS: {times} are times of day such as "02:37 and 14:37"
        daily = _("at {times} UTC") if utc else _("at {times}")
        return daily.format(times=times)
    day = _(_DAY_NAMES[cadence.weekday])
    # TRANSLATORS: {day} is a day of the week in the plural ("Mondays"), {times} a time of day
    weekly = _("on {day} at {times} UTC") if utc else _("on {day} at {times}")
    return weekly.format(day=day, times=times)
