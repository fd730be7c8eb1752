"""Run the probe on a schedule: from outside (a systemd user timer or a cron line: `installer`
chooses, `timer.py` and `cron.py` write them, `cadence.py` says which periods a wall clock
repeats exactly), or from inside one process (`probe run --every`: repeated rounds with jitter,
`rounds.py`; durations and the jitter in `period.py`).

`rounds.run_rounds` is not re-exported here: it runs `probe.round.runner`'s rounds, and the runner
imports `period` from this package (`from probe.round.schedule.rounds import run_rounds`).
"""

from __future__ import annotations

from probe.round.schedule.cadence import Cadence, cron_fields, exact_cadence, on_calendar
from probe.round.schedule.cron import cron_line
from probe.round.schedule.installer import backend, cadence_for, check_period, install, remove
from probe.round.schedule.job import MIN_PERIOD, Job, ScheduleError
from probe.round.schedule.period import jittered, parse_duration
from probe.round.schedule.timer import (
    UNIT_NAME,
    probe_command,
    probe_program,
    systemd_user_dir,
    units,
)

__all__ = [
    "MIN_PERIOD",
    "UNIT_NAME",
    "Cadence",
    "Job",
    "ScheduleError",
    "backend",
    "cadence_for",
    "check_period",
    "cron_fields",
    "cron_line",
    "exact_cadence",
    "install",
    "jittered",
    "on_calendar",
    "parse_duration",
    "probe_command",
    "probe_program",
    "remove",
    "systemd_user_dir",
    "units",
]
