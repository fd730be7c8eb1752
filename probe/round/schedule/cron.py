"""The cron line, where there is no systemd user manager.

The line runs at a random minute (cadence.py) and `probe run --random-delay` adds up to 10% of
the period at random. Cron discards nothing it is not told to: the line sends the last run's
output to a log file in the user's state directory (replaced at each run, so it cannot grow on
a device that could be seized). Cron does not make up runs missed while the computer was off.
The line ends with a marker, so that `probe schedule remove` finds it again.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

from probe.i18n import N_, _
from probe.round.schedule.cadence import Cadence, cron_fields, describe
from probe.round.schedule.job import Job, ScheduleError, duration_text

MARKER = "# probe schedule"

# --- what the volunteer reads (translated where it is shown) -------------------------------------
INSTALLED = N_(
    "Added to your crontab: `probe run` every {every} {when}, plus up to {jitter} at random."
)
NOT_CAUGHT_UP = N_("Cron does not make up runs missed while the computer was off or asleep.")
LOG_HINT = N_("log of the last run: {log}")
NO_SCHEDULER = N_(
    "No scheduler found (no systemd user manager, no crontab command). To run probe every "
    "{every}, add this line to your crontab with `crontab -e`:\n{line}"
)
CRONTAB_FAILED = N_("crontab {step} failed: {reason}; nothing was changed")


def log_path() -> Path:
    """The scheduled runs' output: the user's log directory (~/.local/state/probe/log)."""
    import platformdirs

    return platformdirs.user_log_path("probe") / "schedule.log"


def cron_available() -> bool:
    return shutil.which("crontab") is not None


def cron_line(job: Job, cadence: Cadence) -> str:
    """One crontab line: cd to where the command was checked, run it, keep its output."""
    command = " ".join(shlex.quote(part) for part in job.command)
    shell = f"cd {shlex.quote(str(job.workdir))} && {command} >{shlex.quote(str(log_path()))} 2>&1"
    # cron turns an unescaped % into a newline
    return f"{cron_fields(cadence)} {shell.replace('%', chr(92) + '%')} {MARKER}"


def _crontab(*args: str, text: str | None = None) -> str:
    try:
        done = subprocess.run(
            ["crontab", *args], input=text, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ScheduleError(_(CRONTAB_FAILED).format(step=" ".join(args), reason=exc)) from None
    if done.returncode != 0:
        if args == ("-l",) and "no crontab" in done.stderr.lower():
            return ""
        reason = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        raise ScheduleError(_(CRONTAB_FAILED).format(step=" ".join(args), reason=reason))
    return done.stdout


def _without_ours(table: str) -> list[str]:
    return [line for line in table.splitlines() if not line.rstrip().endswith(MARKER)]


def install(job: Job, cadence: Cadence) -> str:
    """Replace our line in the user's crontab; the message for the volunteer."""
    line = cron_line(job, cadence)
    log_path().parent.mkdir(parents=True, exist_ok=True)
    kept = _without_ours(_crontab("-l"))
    _crontab("-", text="\n".join([*kept, line]) + "\n")
    return "\n".join(
        [
            _(INSTALLED).format(
                every=duration_text(job.every),
                when=describe(cadence),
                jitter=duration_text(job.jitter),
            ),
            _(NOT_CAUGHT_UP),
            _(LOG_HINT).format(log=log_path()),
        ]
    )


def manual(job: Job, cadence: Cadence) -> str:
    """No scheduler to install into: the line to add by hand."""
    log_path().parent.mkdir(parents=True, exist_ok=True)
    line = cron_line(job, cadence)
    return "\n".join(
        [
            _(NO_SCHEDULER).format(every=duration_text(job.every), line=line),
            _(LOG_HINT).format(log=log_path()),
        ]
    )


def remove() -> bool:
    """Delete our line from the user's crontab; whether there was one."""
    if not cron_available():
        return False
    table = _crontab("-l")
    kept = _without_ours(table)
    if len(kept) == len(table.splitlines()):
        return False
    _crontab("-", text="\n".join(kept) + "\n" if kept else "")
    return True
