"""The systemd user timer: ``probe.service`` (one round) and ``probe.timer`` (when).

A period a wall clock repeats exactly (cadence.py) becomes ``OnCalendar=`` in UTC with
``Persistent=true``: systemd stores the last run, so a run missed while the computer was off
runs once at the next boot, and one missed while it was asleep runs once on resume. Any other
period (90m, 7h, 2d) can only be a monotonic timer (``OnUnitActiveSec=``, counted from the last
run), where ``Persistent=`` has no effect: ``OnBootSec=`` runs one round a few minutes after each
boot instead, and time asleep does not count. ``RandomizedDelaySec=`` adds up to 10% at random.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from probe.i18n import N_, _
from probe.round.schedule.cadence import Cadence, describe, on_calendar
from probe.round.schedule.job import Job, ScheduleError, duration_text

UNIT_NAME = "probe"

# --- what the volunteer reads (translated where it is shown) -------------------------------------
#: a period a wall clock repeats: {when} is cadence.describe's "at :07 past each hour UTC"
INSTALLED_CALENDAR = N_(
    "Installed a systemd user timer: `probe run` every {every} {when}, plus up to {jitter} at "
    "random."
)
INSTALLED_MONOTONIC = N_(
    "Installed a systemd user timer: `probe run` every {every}, plus up to {jitter} at random."
)
CALENDAR_CATCH_UP = N_(
    "A run missed while the computer was off or asleep runs once when it is back."
)
MONOTONIC_CATCH_UP = N_(
    "The first run is now, and one {boot} after each boot; time asleep is not counted."
)
LOG_HINT = N_("log:      journalctl --user -u {unit}.service")
NEXT_HINT = N_("next run: systemctl --user list-timers {unit}.timer")
LINGER_HINT = N_(
    "User timers run only while you are logged in; to keep them running when you are not: "
    "loginctl enable-linger $USER"
)
NOT_ENABLED = N_(
    "wrote {service} and {timer} but `systemctl --user {step}` failed ({reason}); "
    "enable it with: systemctl --user daemon-reload && systemctl --user enable --now {unit}.timer"
)
BOOT_DELAY = "5min"  # systemd.time(7) syntax; also shown as is


def systemd_user_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user"


def systemd_available() -> bool:
    """A user service manager answers (not just a systemctl binary: containers, WSL and
    sessions without one have that too)."""
    return shutil.which("systemctl") is not None and _systemctl("show-environment")[0]


def probe_program() -> tuple[str, ...]:
    """How the schedule starts this installation's probe: this interpreter's package, or, from
    the single-file build (pex sets $PEX to its path), the file again with the interpreter that
    started it, not its unpacked copy in the pex cache, which may be cleaned."""
    single_file = os.environ.get("PEX")
    if single_file:
        python = getattr(sys, "_base_executable", None) or sys.executable
        return (python, os.path.abspath(single_file))
    return (sys.executable, "-m", "probe")


def probe_command(run_args: list[str]) -> list[str]:
    """The command a schedule runs: `probe run RUN_ARGS` of this installation."""
    return [*probe_program(), "run", *run_args]


def _quote(arg: str) -> str:
    """One ExecStart= word: systemd's own quoting, `%` (specifiers) and `$` (variables)
    doubled so that a path holding them is taken as written."""
    text = arg.replace("%", "%%").replace("$", "$$")
    if re.fullmatch(r"[A-Za-z0-9_@+=:,./%$-]+", text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def units(job: Job, cadence: Cadence | None) -> tuple[str, str]:
    """The text of probe.service and probe.timer."""
    service = (
        "[Unit]\n"
        "Description=probe: measure whether messengers are reachable from this network\n"
        "Wants=network-online.target\n"
        "After=network-online.target\n\n"
        "[Service]\n"
        "Type=oneshot\n"
        f"WorkingDirectory={str(job.workdir).replace('%', '%%')}\n"
        f"ExecStart={' '.join(_quote(part) for part in job.command)}\n"
        "Nice=10\n"
    )
    if cadence is not None:
        when = f"OnCalendar={on_calendar(cadence)}\nPersistent=true\n"
    else:
        when = f"OnBootSec={BOOT_DELAY}\nOnUnitActiveSec={job.every}s\n"
    timer = (
        "[Unit]\n"
        "Description=Run probe periodically\n\n"
        "[Timer]\n"
        f"{when}"
        f"RandomizedDelaySec={job.jitter}s\n\n"
        "[Install]\n"
        "WantedBy=timers.target\n"
    )
    return service, timer


def _systemctl(*args: str) -> tuple[bool, str]:
    try:
        completed = subprocess.run(
            ["systemctl", "--user", *args], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    reason = (completed.stderr.strip().splitlines() or [f"exit {completed.returncode}"])[-1]
    return completed.returncode == 0, reason


def install(job: Job, cadence: Cadence | None) -> str:
    """Write both units, (re)start the timer; the message for the volunteer."""
    unit_dir = systemd_user_dir()
    unit_dir.mkdir(parents=True, exist_ok=True)
    service_text, timer_text = units(job, cadence)
    service_path = unit_dir / f"{UNIT_NAME}.service"
    timer_path = unit_dir / f"{UNIT_NAME}.timer"
    for path, text in ((service_path, service_text), (timer_path, timer_text)):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    # restart, not just `enable --now`: a timer already running keeps its old schedule
    for step in ("daemon-reload", f"enable {UNIT_NAME}.timer", f"restart {UNIT_NAME}.timer"):
        ok, reason = _systemctl(*step.split())
        if not ok:
            raise ScheduleError(
                _(NOT_ENABLED).format(
                    service=service_path, timer=timer_path, step=step, reason=reason, unit=UNIT_NAME
                )
            )
    every, jitter = duration_text(job.every), duration_text(job.jitter)
    if cadence is not None:
        installed = _(INSTALLED_CALENDAR).format(
            every=every, when=describe(cadence, utc=True), jitter=jitter
        )
        catch_up = _(CALENDAR_CATCH_UP)
    else:
        installed = _(INSTALLED_MONOTONIC).format(every=every, jitter=jitter)
        catch_up = _(MONOTONIC_CATCH_UP).format(boot=BOOT_DELAY)
    return "\n".join(
        [
            installed + " " + catch_up,
            _(LOG_HINT).format(unit=UNIT_NAME),
            _(NEXT_HINT).format(unit=UNIT_NAME),
            _(LINGER_HINT),
        ]
    )


def remove() -> list[str]:
    """Stop and disable the timer and delete both units; the paths deleted."""
    unit_dir = systemd_user_dir()
    removed = []
    have_systemctl = shutil.which("systemctl") is not None
    if have_systemctl:
        _systemctl("disable", "--now", f"{UNIT_NAME}.timer")
    for name in (f"{UNIT_NAME}.timer", f"{UNIT_NAME}.service"):
        path = unit_dir / name
        if path.exists():
            path.unlink()
            removed.append(str(path))
    if have_systemctl and removed:
        _systemctl("daemon-reload")
    return removed
