"""Run the probe on a schedule: from outside (a systemd user timer or a cron line: `installer`
chooses, `timer.py` and `cron.py` write them, `cadence.py` says which periods a wall clock
repeats exactly), or from inside one process (`probe run --every`: repeated rounds with jitter,
`rounds.py`; durations and the jitter in `period.py`).

`rounds.run_rounds` is not re-exported here: it runs `probe.round.runner`'s rounds, and the runner
imports `period` from this package (`from probe.round.schedule.rounds import run_rounds`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

#: where each name comes from: `probe run` imports `period` through this package, and should
#: not pay at start-up for the installer, the timer and cron writers it never uses
_HOME = {
    "Cadence": "cadence",
    "cron_fields": "cadence",
    "exact_cadence": "cadence",
    "on_calendar": "cadence",
    "cron_line": "cron",
    "backend": "installer",
    "cadence_for": "installer",
    "check_period": "installer",
    "install": "installer",
    "remove": "installer",
    "MIN_PERIOD": "job",
    "Job": "job",
    "ScheduleError": "job",
    "jittered": "period",
    "parse_duration": "period",
    "UNIT_NAME": "timer",
    "probe_command": "timer",
    "probe_program": "timer",
    "systemd_user_dir": "timer",
    "units": "timer",
}


def __getattr__(name: str) -> Any:
    """A re-exported name, its module imported on first use (PEP 562)."""
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


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
