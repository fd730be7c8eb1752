"""Run the probe on a schedule: from outside (a systemd user timer or a cron line, `timer.py`),
or from inside one process (`probe run --every`: repeated rounds with jitter, `rounds.py`;
durations and the jitter in `period.py`).

`rounds.run_rounds` is not re-exported here: it runs `probe.round.runner`'s rounds, and the runner
imports `period` from this package (`from probe.round.schedule.rounds import run_rounds`).
"""

from __future__ import annotations

from probe.round.schedule.period import jittered, parse_duration
from probe.round.schedule.timer import (
    UNIT_NAME,
    InstallResult,
    cron_line,
    install,
    probe_command,
    remove,
    systemd_user_dir,
)

__all__ = [
    "UNIT_NAME",
    "InstallResult",
    "cron_line",
    "install",
    "jittered",
    "parse_duration",
    "probe_command",
    "remove",
    "systemd_user_dir",
]
