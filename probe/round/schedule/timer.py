"""The systemd user timer, or a cron line where there is no systemd.

`probe schedule install --every 1h` writes ``probe.service`` and ``probe.timer`` into the
user's systemd directory and enables the timer; systemd adds up to 10% random delay so that
volunteers on the same schedule do not all measure in the same second. `probe schedule remove`
disables and deletes both.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

UNIT_NAME = "probe"


@dataclass(frozen=True, slots=True)
class InstallResult:
    service_path: Path | None
    timer_path: Path | None
    enabled: bool
    cron_line: str | None
    message: str


def systemd_user_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user"


def probe_command(run_args: list[str]) -> list[str]:
    """The command the schedule runs: this interpreter's probe, with the given options. The
    single-file build (pex sets $PEX to its path) runs the file again with the interpreter
    that started it, not its unpacked copy in the pex cache, which may be cleaned."""
    single_file = os.environ.get("PEX")
    if single_file:
        python = getattr(sys, "_base_executable", None) or sys.executable
        return [python, os.path.abspath(single_file), "run", *run_args]
    return [sys.executable, "-m", "probe", "run", *run_args]


def cron_line(every_seconds: float, command: list[str]) -> str:
    """A crontab line running `command` about every `every_seconds` (cron's granularity)."""
    minutes = max(1, round(every_seconds / 60))
    joined = " ".join(shlex.quote(part) for part in command)
    if minutes < 60:
        when = f"*/{minutes} * * * *" if minutes > 1 else "* * * * *"
    elif minutes % 1440 == 0:
        when = f"17 3 */{minutes // 1440} * *" if minutes > 1440 else "17 3 * * *"
    else:
        hours = max(1, round(minutes / 60))
        when = f"17 */{hours} * * *" if hours > 1 else "17 * * * *"
    return f"{when} {joined} >/dev/null 2>&1"


def _units(every_seconds: float, command: list[str], workdir: Path) -> tuple[str, str]:
    seconds = int(every_seconds)
    service = (
        "[Unit]\n"
        "Description=probe: measure whether messengers are reachable from this network\n"
        "Wants=network-online.target\n"
        "After=network-online.target\n\n"
        "[Service]\n"
        "Type=oneshot\n"
        f"WorkingDirectory={workdir}\n"
        f"ExecStart={' '.join(shlex.quote(part) for part in command)}\n"
        "Nice=10\n"
    )
    timer = (
        "[Unit]\n"
        "Description=Run probe periodically\n\n"
        "[Timer]\n"
        "OnBootSec=5min\n"
        f"OnUnitActiveSec={seconds}s\n"
        f"RandomizedDelaySec={max(1, seconds // 10)}s\n"
        "Persistent=true\n\n"
        "[Install]\n"
        "WantedBy=timers.target\n"
    )
    return service, timer


def _systemctl(*args: str) -> bool:
    try:
        completed = subprocess.run(
            ["systemctl", "--user", *args], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return completed.returncode == 0


def install(every_seconds: float, run_args: list[str], workdir: Path) -> InstallResult:
    """Write and enable the timer; without systemd, return the cron line to add instead."""
    command = probe_command(run_args)
    if shutil.which("systemctl") is None:
        line = cron_line(every_seconds, command)
        return InstallResult(
            None,
            None,
            False,
            line,
            "No systemd here. Add this line with `crontab -e`:\n" + line,
        )
    unit_dir = systemd_user_dir()
    unit_dir.mkdir(parents=True, exist_ok=True)
    service_text, timer_text = _units(every_seconds, command, workdir)
    service_path = unit_dir / f"{UNIT_NAME}.service"
    timer_path = unit_dir / f"{UNIT_NAME}.timer"
    for path, text in ((service_path, service_text), (timer_path, timer_text)):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    enabled = _systemctl("daemon-reload") and _systemctl("enable", "--now", f"{UNIT_NAME}.timer")
    message = f"Wrote {service_path} and {timer_path}. " + (
        "The timer is enabled: `systemctl --user list-timers` shows the next run."
        if enabled
        else "Enable it with: systemctl --user daemon-reload && "
        f"systemctl --user enable --now {UNIT_NAME}.timer"
    )
    return InstallResult(service_path, timer_path, enabled, None, message)


def remove() -> str:
    """Disable the timer and delete both units; say what was done."""
    unit_dir = systemd_user_dir()
    removed = []
    if shutil.which("systemctl") is not None:
        _systemctl("disable", "--now", f"{UNIT_NAME}.timer")
    for name in (f"{UNIT_NAME}.timer", f"{UNIT_NAME}.service"):
        path = unit_dir / name
        if path.exists():
            path.unlink()
            removed.append(str(path))
    if shutil.which("systemctl") is not None:
        _systemctl("daemon-reload")
    if not removed:
        return (
            "No probe timer was installed. If you added a cron line, remove it with `crontab -e`."
        )
    return "Removed " + " and ".join(removed) + "."
