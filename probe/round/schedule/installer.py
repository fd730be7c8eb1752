"""Installing and removing the schedule: a systemd user timer where a user service manager
answers (timer.py), else a line in the user's crontab (cron.py), else the line to add by hand.

The caller checks the command line first (`probe schedule install` runs `probe run`'s own
checks on it); `check_period` and `cadence_for` refuse periods before anything is written.
"""

from __future__ import annotations

import shlex
from typing import Literal

from probe.i18n import N_, _, joined, one_of
from probe.round.schedule import cron, timer
from probe.round.schedule.cadence import EXACT_PERIODS, Cadence, exact_cadence
from probe.round.schedule.job import MIN_PERIOD, Job
from probe.round.schedule.period import parse_duration

Backend = Literal["systemd", "cron", "manual"]

# --- what the volunteer reads (translated where it is shown) -------------------------------------
TOO_SHORT = N_("--every {every}: at least 5m between rounds, please")
NOT_WHOLE = N_("--every {every}: use a whole number of seconds")
CRON_INEXACT = N_("--every {every}: cron cannot run exactly every {every}; use {periods}")
COMMAND_HINT = N_("command:  {command}")
RESULTS_HINT = N_("results:  {results}")
REMOVED = N_("Removed {what}.")
REMOVED_CRON = N_("the line in your crontab")
NOTHING_REMOVED = N_("No probe schedule was installed.")


def check_period(text: str) -> int:
    """Seconds between rounds (ValueError with the message naming --every)."""
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise ValueError(f"--every: {exc}") from None
    if seconds != int(seconds):
        raise ValueError(_(NOT_WHOLE).format(every=text))
    if seconds < MIN_PERIOD:
        raise ValueError(_(TOO_SHORT).format(every=text))
    return int(seconds)


def backend() -> Backend:
    if timer.systemd_available():
        return "systemd"
    return "cron" if cron.cron_available() else "manual"


def cadence_for(seconds: int, text: str, where: Backend) -> Cadence | None:
    """The wall-clock slots (None: a systemd monotonic timer); ValueError when cron cannot
    run every `seconds` exactly."""
    cadence = exact_cadence(seconds)
    if cadence is None and where != "systemd":
        raise ValueError(_(CRON_INEXACT).format(every=text, periods=one_of(EXACT_PERIODS)))
    return cadence


def install(job: Job, where: Backend, cadence: Cadence | None) -> str:
    """Install (ScheduleError when the scheduler refuses); the message for the volunteer."""
    if where == "systemd":
        said = timer.install(job, cadence)
    else:
        assert cadence is not None  # cadence_for refused the rest
        said = cron.install(job, cadence) if where == "cron" else cron.manual(job, cadence)
    command = " ".join(shlex.quote(part) for part in job.command)
    return "\n".join(
        [
            said,
            _(COMMAND_HINT).format(command=command),
            _(RESULTS_HINT).format(results=job.results),
        ]
    )


def remove() -> str:
    """Remove the timer and our crontab line, whichever exist; say what was done."""
    removed = timer.remove()
    if cron.remove():
        removed.append(_(REMOVED_CRON))
    if not removed:
        return _(NOTHING_REMOVED)
    return _(REMOVED).format(what=joined(removed))
