"""`probe schedule install|remove`: the whole `probe run` command line and consent are checked
before anything is installed (exit 2, one line, nothing written); periods a wall clock cannot
repeat exactly are refused for cron, never rounded; runs are spread with a random minute and
jitter; missed runs are caught up where the scheduler can; the installed command runs unattended.

Every test runs `probe` in a sandbox: HOME and the XDG directories in tmp, and a PATH that holds
only stand-in `systemctl`/`crontab` scripts recording their arguments, so the real user's
systemd and crontab are never touched."""

from __future__ import annotations

import itertools
import random
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from probe.cli import consent
from probe.round.schedule import Cadence, cron_fields, exact_cadence, on_calendar
from tests.loopback_world import probe_env

LIST = (
    '[list]\nname = "t"\nupdated = 2026-01-01\n\n[[targets]]\nid = "t/a"\nservice = "t"\n'
    'check = "tcp"\nhost = "127.0.0.1"\nports = [9]\n'
)
RUN_ARGS = ["t.toml", "--no-control", "--no-ip-discovery", "--resolver", "127.0.0.1:9"]
SYSTEMCTL = '#!/bin/sh\necho "systemctl $*" >> "{log}"\n{extra}exit 0\n'
UNAVAILABLE = 'if [ "$2" = show-environment ]; then exit 1; fi\n'
CRONTAB = (
    '#!/bin/sh\necho "crontab $*" >> "{log}"\n'
    'if [ "$1" = -l ]; then [ -f "{table}" ] && exec /bin/cat "{table}"; '
    'echo "no crontab for you" >&2; exit 1; fi\n'
    'if [ "$1" = - ]; then exec /bin/cat > "{table}"; fi\n'
)


class Sandbox:
    def __init__(self, root: Path, schedulers: tuple[str, ...]) -> None:
        self.root = root
        self.home = root / "home"
        self.bin = root / "bin"
        self.calls = root / "calls.log"
        self.crontab = root / "crontab.txt"
        self.config = self.home / ".config" / "probe" / "config.toml"
        for directory in (self.home, self.bin):
            directory.mkdir()
        (root / "t.toml").write_text(LIST)
        scripts = {
            "systemd": ("systemctl", SYSTEMCTL.format(log=self.calls, extra="")),
            "systemctl-only": ("systemctl", SYSTEMCTL.format(log=self.calls, extra=UNAVAILABLE)),
            "cron": ("crontab", CRONTAB.format(log=self.calls, table=self.crontab)),
        }
        for name in schedulers:
            binary, text = scripts[name]
            (self.bin / binary).write_text(text)
            (self.bin / binary).chmod(0o755)

    def env(self, **extra: str) -> dict[str, str]:
        env = probe_env()
        for name in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "PROBE_CONFIG", consent.ENV_VAR):
            env.pop(name, None)
        env.update(HOME=str(self.home), PATH=str(self.bin), PROBE_DATA_DIR=str(self.root / "data"))
        env.update(extra)
        return env

    def probe(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "probe", *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            cwd=self.root,
            env=self.env(**env),
            timeout=60,
        )

    def consent(self, config_text: str = "") -> None:
        self.config.parent.mkdir(parents=True, exist_ok=True)
        self.config.write_text(config_text)
        consent.record(self.config)

    def files(self) -> set[Path]:
        return {p for p in self.root.rglob("*") if p.is_file() and p != self.calls}

    def written_by_schedulers(self) -> list[str]:
        """The stand-ins' calls that change something (not `crontab -l`, not the check
        whether a user service manager answers)."""
        calls = self.calls.read_text().splitlines() if self.calls.exists() else []
        reads = ("crontab -l", "systemctl --user show-environment")
        return [call for call in calls if call not in reads]

    def unit(self, name: str) -> str:
        return (self.home / ".config" / "systemd" / "user" / name).read_text()


@pytest.fixture
def sandbox(tmp_path: Path, request: pytest.FixtureRequest) -> Sandbox:
    marker = request.node.get_closest_marker("schedulers")
    return Sandbox(tmp_path, marker.args if marker else ("systemd",))


# --- which periods are exact ------------------------------------------------------------------


EXACT = ["5m", "6m", "10m", "12m", "15m", "20m", "30m", "1h", "2h", "3h", "4h", "6h", "8h", "12h"]


@pytest.mark.parametrize("every", [*EXACT, "1d", "7d"])
def test_exact_periods_repeat_exactly_at_a_random_offset(every: str):
    from probe.round.schedule import parse_duration

    seconds = int(parse_duration(every))
    offsets = set()
    for seed in range(20):
        cadence = exact_cadence(seconds, random.Random(seed))
        assert cadence is not None
        # every slot of one week, in minutes; the gaps between them are all the period
        slots = sorted(
            day * 1440 + hour * 60 + minute
            for day in (range(7) if cadence.weekday is None else [cadence.weekday])
            for hour in (range(24) if cadence.hours is None else cadence.hours)
            for minute in cadence.minutes
        )
        gaps = {b - a for a, b in zip(slots, [*slots[1:], slots[0] + 7 * 1440], strict=True)}
        assert gaps == {seconds // 60}, (every, cadence)
        offsets.add(slots[0])
    assert len(offsets) > 3, "the offset is random, not always :17"


@pytest.mark.parametrize("every", [7 * 3600, 45 * 60, 90 * 60, 2 * 86400, 5 * 3600, 330, 7 * 60])
def test_periods_a_wall_clock_cannot_repeat_are_none(every: int):
    assert exact_cadence(every) is None


def test_cron_and_calendar_expressions():
    hourly = Cadence(3600, (37,), None, None)
    assert cron_fields(hourly) == "37 * * * *"
    assert on_calendar(hourly) == "*-*-* *:37:00 UTC"
    quarter = Cadence(900, (7, 22, 37, 52), None, None)
    assert cron_fields(quarter) == "7,22,37,52 * * * *"
    six_hours = Cadence(6 * 3600, (5,), (2, 8, 14, 20), None)
    assert cron_fields(six_hours) == "5 2,8,14,20 * * *"
    assert on_calendar(six_hours) == "*-*-* 02,08,14,20:05:00 UTC"
    weekly = Cadence(7 * 86400, (0,), (3,), 6)  # Sunday: 0 for cron
    assert cron_fields(weekly) == "0 3 * * 0"
    assert on_calendar(weekly) == "Sun *-*-* 03:00:00 UTC"


# --- refused before anything is written -------------------------------------------------------


@pytest.mark.schedulers("systemd", "cron")
@pytest.mark.parametrize(
    ("args", "consented", "fragment"),
    [
        (["--every", "1h", *RUN_ARGS], False, "no consent recorded"),
        (["--every", "1h", "missing.toml", "--no-control"], True, "missing.toml"),
        (["--every", "1h", *RUN_ARGS, "--timeout", "-1"], True, "--timeout -1.0: must be"),
        (["--every", "1h", *RUN_ARGS, "--frobnicate"], True, "--frobnicate"),
        (["--every", "1h", *RUN_ARGS, "--count", "1"], True, "--count"),
        (["--every", "1h", *RUN_ARGS, "--random-delay", "soon"], True, "--random-delay"),
        (["--every", "2m", *RUN_ARGS], True, "--every 2m: at least 5m"),
        (["--every", "300.5s", *RUN_ARGS], True, "--every 300.5s: use a whole number"),
        (["--every", "often", *RUN_ARGS], True, "--every: bad duration 'often'"),
        (["--every", "1h", *RUN_ARGS], "[run]\ntimeout = 700\n", "config.toml:2: timeout = 700"),
    ],
)
def test_bad_input_is_exit_2_one_line_and_nothing_installed(sandbox, args, consented, fragment):
    if consented:
        sandbox.consent(consented if isinstance(consented, str) else "")
    before = sandbox.files()
    result = sandbox.probe("schedule", "install", *args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("probe: error: "), result.stderr
    assert fragment in lines[0], lines[0]
    assert result.stdout == ""
    assert sandbox.files() == before, "nothing written"
    assert sandbox.written_by_schedulers() == []


@pytest.mark.schedulers("cron")
@pytest.mark.parametrize("every", ["45m", "7h", "90m", "2d"])
def test_cron_refuses_periods_it_cannot_run_exactly(sandbox, every):
    sandbox.consent()
    before = sandbox.files()
    result = sandbox.probe("schedule", "install", "--every", every, *RUN_ARGS)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"probe: error: --every {every}: cron cannot run exactly every {every}; use 5m, 6m, "
        "10m, 12m, 15m, 20m, 30m, 1h, 2h, 3h, 4h, 6h, 8h, 12h, 1d or 7d"
    ]
    assert sandbox.files() == before and sandbox.written_by_schedulers() == []


# --- installed ----------------------------------------------------------------------------------


def test_systemd_calendar_timer_catches_up_and_its_command_runs_unattended(sandbox):
    sandbox.consent('[run]\nout = "~/probe-results"\n')
    result = sandbox.probe("schedule", "install", "--every", "1h", *RUN_ARGS)
    assert result.returncode == 0, result.stderr
    timer, service = sandbox.unit("probe.timer"), sandbox.unit("probe.service")
    assert re.search(r"^OnCalendar=\*-\*-\* \*:\d\d:00 UTC$", timer, re.M), timer
    assert "Persistent=true" in timer and "RandomizedDelaySec=360s" in timer
    assert "OnUnitActiveSec" not in timer
    assert f"WorkingDirectory={sandbox.root}\n" in service
    calls = sandbox.calls.read_text()
    for step in ("daemon-reload", "enable probe.timer", "restart probe.timer"):
        assert f"systemctl --user {step}\n" in calls
    out = sandbox.home / "probe-results"
    for said in (f"results:  {out}", "journalctl --user -u probe.service", "enable-linger"):
        assert said in result.stdout, result.stdout
    command = shlex.split(service.split("ExecStart=", 1)[1].splitlines()[0])
    assert command[:5] == [sys.executable, "-m", "probe", "--config", str(sandbox.config)]
    assert "--yes" not in command, "recorded consent is enough: the runs read the same config"
    # The timer's run: no terminal, no PROBE_ACCEPT_RISKS, the recorded consent.
    ran = subprocess.run(
        command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
        cwd=sandbox.root, env=sandbox.env(),
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert list(out.rglob("*.jsonl")), "the run wrote where the install message said"
    removed = sandbox.probe("schedule", "remove")
    assert removed.returncode == 0 and "Removed" in removed.stdout
    assert "systemctl --user disable --now probe.timer" in sandbox.calls.read_text()
    assert not (sandbox.home / ".config" / "systemd" / "user" / "probe.timer").exists()


def test_systemd_monotonic_timer_for_other_periods_and_yes_is_carried(sandbox):
    result = sandbox.probe("schedule", "install", "--every", "90m", "--yes", *RUN_ARGS)
    assert result.returncode == 0, result.stderr
    timer, service = sandbox.unit("probe.timer"), sandbox.unit("probe.service")
    assert "OnBootSec=5min" in timer and "OnUnitActiveSec=5400s" in timer
    assert "Persistent" not in timer, "Persistent= does nothing without OnCalendar="
    assert "OnCalendar" not in timer and "RandomizedDelaySec=540s" in timer
    command = shlex.split(service.split("ExecStart=", 1)[1].splitlines()[0])
    assert command[3:] == ["run", *RUN_ARGS, "--yes"], "no config file: no --config"
    ran = subprocess.run(
        command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
        cwd=sandbox.root, env=sandbox.env(),
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr


@pytest.mark.schedulers("systemctl-only", "cron")
def test_cron_line_spreads_runs_and_keeps_a_log(sandbox):
    """A systemctl binary without a user manager (containers, WSL) means cron."""
    sandbox.crontab.write_text("MAILTO=me\n0 5 * * * backup\n")
    sandbox.consent()
    env = {"XDG_STATE_HOME": str(sandbox.root / "state")}
    first = sandbox.probe("schedule", "install", "--every", "6h", *RUN_ARGS, **env)
    assert first.returncode == 0, first.stderr
    again = sandbox.probe("schedule", "install", "--every", "6h", *RUN_ARGS, **env)
    assert again.returncode == 0, again.stderr
    lines = sandbox.crontab.read_text().splitlines()
    assert lines[:2] == ["MAILTO=me", "0 5 * * * backup"] and len(lines) == 3, "replaced"
    fields, shell = lines[2].split(" ", 5)[:5], lines[2].split(" ", 5)[5]
    minute, hours = int(fields[0]), [int(h) for h in fields[1].split(",")]
    assert 0 <= minute < 60 and fields[2:] == ["*", "*", "*"]
    assert len(hours) == 4 and {b - a for a, b in itertools.pairwise(hours)} == {6}
    log = sandbox.root / "state" / "probe" / "log" / "schedule.log"
    assert shell.startswith(f"cd {sandbox.root} && {sys.executable} -m probe --config ")
    assert f"run {' '.join(RUN_ARGS)} --random-delay 2160s >{log} 2>&1 # probe schedule" in shell
    assert log.parent.is_dir()
    assert f"log of the last run: {log}" in again.stdout
    # no --out: the results directory in the data directory
    assert f"results:  {sandbox.root / 'data' / 'results'}" in again.stdout
    assert not (sandbox.home / ".config" / "systemd").exists()
    assert sandbox.probe("schedule", "remove").returncode == 0
    assert sandbox.crontab.read_text().splitlines() == ["MAILTO=me", "0 5 * * * backup"]


@pytest.mark.schedulers()
def test_without_any_scheduler_the_line_to_add_is_printed(sandbox):
    result = sandbox.probe("schedule", "install", "--every", "30m", "--yes", *RUN_ARGS)
    assert result.returncode == 0, result.stderr
    assert "crontab -e" in result.stdout and "-m probe run t.toml --no-control" in result.stdout
    assert "--yes --random-delay 180s" in result.stdout
    assert not (sandbox.home / ".config" / "systemd").exists()


def test_a_failing_systemctl_is_exit_1_with_one_line(sandbox):
    (sandbox.bin / "systemctl").write_text(
        SYSTEMCTL.format(log=sandbox.calls, extra='[ "$2" = enable ] && echo nope >&2 && exit 1\n')
    )
    result = sandbox.probe("schedule", "install", "--every", "1h", "--yes", *RUN_ARGS)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "`systemctl --user enable probe.timer` failed (nope)" in lines[0]


def test_random_delay_waits_before_measuring(sandbox):
    result = sandbox.probe("run", *RUN_ARGS, "--random-delay", "1s", "--yes")
    assert result.returncode == 0, result.stderr
    assert re.search(r"^waiting \d s before measuring \(--random-delay\)$", result.stderr, re.M)


# --- in Persian ---------------------------------------------------------------------------------

PERSIAN = re.compile(r"[\u0600-\u06ff]")


@pytest.mark.schedulers("cron")
def test_cron_schedule_in_persian_refusals_install_and_remove(sandbox):
    """`probe --lang fa schedule ...`: refusals are one Persian line (exit 2, nothing written),
    the install message is Persian with its technical tokens as they are, and the --lang
    given before `install` is carried into the scheduled command."""
    refused = sandbox.probe("--lang", "fa", "schedule", "install", "--every", "1h", *RUN_ARGS)
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        "probe: خطا: رضایتی ثبت نشده است: یک بار `probe run` را در ترمینال اجرا کنید تا خطرها را "
        "بخوانید و پاسخ دهید، یا برای اجرای زمان‌بندی‌شده با --yes یا PROBE_ACCEPT_RISKS=1 "
        "رضایت دهید"
    ]
    sandbox.consent()
    before = sandbox.files()
    inexact = sandbox.probe("--lang", "fa", "schedule", "install", "--every", "45m", *RUN_ARGS)
    assert inexact.returncode == 2
    assert inexact.stderr.splitlines() == [
        "probe: خطا: --every 45m: cron نمی‌تواند دقیقاً هر 45m یک بار اجرا کند؛ یکی از این‌ها را "
        "بنویسید: 5m، 6m، 10m، 12m، 15m، 20m، 30m، 1h، 2h، 3h، 4h، 6h، 8h، 12h، 1d یا 7d"
    ]
    short = sandbox.probe("schedule", "install", "--every", "2m", "--lang", "fa", *RUN_ARGS)
    assert short.returncode == 2
    assert short.stderr == "probe: خطا: --every 2m: لطفاً دست‌کم 5m بین دورها فاصله بگذارید\n"
    assert sandbox.files() == before and sandbox.written_by_schedulers() == []

    env = {"XDG_STATE_HOME": str(sandbox.root / "state")}
    args = ("--lang", "fa", "schedule", "install", "--every", "6h", *RUN_ARGS)
    installed = sandbox.probe(*args, **env)
    assert installed.returncode == 0, installed.stderr
    said = installed.stdout
    assert re.search(
        r"^به crontab شما افزوده شد: `probe run` هر 6h، در ساعت \d\d:\d\d، \d\d:\d\d، \d\d:\d\d و "
        r"\d\d:\d\d، به‌علاوهٔ تأخیری تصادفی تا 36m\.$",
        said,
        re.M,
    ), said
    assert "با cron جبران نمی‌شوند" in said
    assert f"گزارش آخرین اجرا: {sandbox.root / 'state' / 'probe' / 'log' / 'schedule.log'}" in said
    assert f"نتایج:      {sandbox.root / 'data' / 'results'}" in said
    assert "Added" not in said and "results:" not in said
    [line] = sandbox.crontab.read_text().splitlines()
    assert f"--config {sandbox.config} --lang fa run {' '.join(RUN_ARGS)}" in line

    removed = sandbox.probe("schedule", "remove", "--lang", "fa")
    assert removed.stdout == "حذف شد: خط probe در crontab شما.\n"
    again = sandbox.probe("--lang", "fa", "schedule", "remove")
    assert again.stdout == "هیچ زمان‌بندی‌ای از probe نصب نشده بود.\n"


def test_systemd_schedule_in_persian_and_its_runs_speak_persian(sandbox):
    sandbox.consent()
    args = ("schedule", "install", "--every", "1h", "--lang", "fa", *RUN_ARGS)
    result = sandbox.probe(*args)
    assert result.returncode == 0, result.stderr
    assert re.search(
        r"^یک زمان‌سنج کاربری systemd نصب شد: `probe run` هر 1h، در دقیقهٔ :\d\d هر ساعت به وقت "
        r"UTC، به‌علاوهٔ تأخیری تصادفی تا 6m\. اجرایی که هنگام خاموش بودن",
        result.stdout,
        re.M,
    ), result.stdout
    for said in ("گزارش:      journalctl --user -u probe.service", "loginctl enable-linger"):
        assert said in result.stdout, result.stdout
    service = sandbox.unit("probe.service")
    command = shlex.split(service.split("ExecStart=", 1)[1].splitlines()[0])
    # --lang after `install` belongs to the run: the timer's runs (and their log) are Persian
    assert command[5:] == ["run", "--lang", "fa", *RUN_ARGS]
    ran = subprocess.run(
        command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
        cwd=sandbox.root, env=sandbox.env(),
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert "probe: نتایج این دور" in ran.stdout and PERSIAN.search(ran.stderr)
