"""Informed consent (probe/cli/consent.py): the first `probe run` at a real terminal explains
and asks; a wrong answer is explained, a no refuses; a yes is remembered in the config until the
text's version changes. Without a terminal the run is refused (exit 2, one line) unless `--yes`
or PROBE_ACCEPT_RISKS=1 consents; nothing is sent and nothing is written before consent."""

from __future__ import annotations

import datetime
import os
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from probe.cli import consent
from probe.cli.config_edit import ConfigEditError, replace_table
from tests.loopback_world import REPO, probe_env
from tests.terminal import TerminalSession


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """The one target's address: a listening socket, to see whether probe connected."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    yield server
    server.close()


@pytest.fixture
def volunteer(tmp_path: Path, listener: socket.socket) -> dict[str, Path]:
    """A fresh machine: an empty config directory and one loopback target."""
    port = listener.getsockname()[1]
    target_list = tmp_path / "t.toml"
    target_list.write_text(
        '[list]\nname = "t"\nupdated = 2026-01-01\n\n[[targets]]\nid = "t/a"\n'
        f'service = "t"\ncheck = "tcp"\nhost = "127.0.0.1"\nports = [{port}]\n'
    )
    return {
        "list": target_list,
        "config_home": tmp_path / "config",
        "config": tmp_path / "config" / "probe" / "config.toml",
        "out": tmp_path / "results",
    }


def _env(paths: dict[str, Path], **extra: str) -> dict[str, str]:
    env = probe_env()
    env.pop(consent.ENV_VAR, None)
    env["XDG_CONFIG_HOME"] = str(paths["config_home"])
    env.update(extra)
    return env


def _run_args(paths: dict[str, Path], *extra: str) -> list[str]:
    return [
        "run", str(paths["list"]), "--no-control", "--no-ip-discovery",
        "--resolver", "127.0.0.1:9", "--timeout", "2", "--out", str(paths["out"]), *extra,
    ]  # fmt: skip


def _run_without_terminal(
    paths: dict[str, Path], *extra: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "probe", *_run_args(paths, *extra)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=_env(paths, **env),
        cwd=REPO,
        timeout=60,
    )


def _connected(listener: socket.socket) -> bool:
    try:
        listener.accept()[0].close()
    except BlockingIOError:
        return False
    return True


def _answer_the_quiz(session: TerminalSession, *answers: str) -> None:
    session.expect("Before the first measurement")
    session.expect("What is stored")
    session.expect("Can your internet provider see that you ran probe? (yes/no)")
    session.answer(answers[0])
    session.expect("free of risk in every country? (yes/no)")
    session.answer(answers[1])
    session.expect("Do you accept these risks and want to run probe now? (yes/no)")
    session.answer(answers[2])


def _recorded(config: Path) -> dict[str, object]:
    table = tomllib.loads(config.read_text()).get("consent")
    assert isinstance(table, dict)
    return table


def test_first_run_asks_records_and_the_second_run_does_not_ask(volunteer, listener):
    session = TerminalSession(_run_args(volunteer), _env(volunteer), REPO)
    try:
        _answer_the_quiz(session, "yes", "no", "yes")
        status, stdout = session.finish()
    finally:
        session.kill()
    assert status == 0, session.seen
    assert "results of this round" in stdout
    assert _connected(listener), "the round measured the target after the yes"
    assert _recorded(volunteer["config"]) == {
        "version": consent.CONSENT_VERSION,
        "accepted": datetime.date.today(),
    }
    assert f"saved in {volunteer['config']}" in session.seen
    assert volunteer["config"].stat().st_mode & 0o777 == 0o600
    # Remembered: the next run needs no terminal and asks nothing.
    again = _run_without_terminal(volunteer)
    assert again.returncode == 0, again.stderr
    assert "Before the first measurement" not in again.stderr + again.stdout


def test_a_wrong_answer_is_explained_and_asked_again_and_no_refuses(volunteer, listener):
    session = TerminalSession(_run_args(volunteer), _env(volunteer), REPO)
    try:
        session.expect("Can your internet provider see that you ran probe? (yes/no)")
        session.answer("maybe")
        session.expect("please answer yes or no")
        session.answer("no")
        session.expect("Yes, it can: probe sends the same traffic as the apps")
        session.expect("Can your internet provider see that you ran probe? (yes/no)")
        session.answer("y")
        session.expect("free of risk in every country? (yes/no)")
        session.answer("n")
        session.expect("want to run probe now? (yes/no)")
        session.answer("no")
        status, stdout = session.finish()
    finally:
        session.kill()
    assert status == 2, session.seen
    assert "probe: error: no consent given: nothing was measured" in session.seen
    assert stdout == ""
    assert not volunteer["config_home"].exists() and not volunteer["out"].exists()
    assert not _connected(listener)


def test_two_wrong_answers_refuse_without_measuring(volunteer, listener):
    session = TerminalSession(_run_args(volunteer), _env(volunteer), REPO)
    try:
        session.expect("Can your internet provider see that you ran probe? (yes/no)")
        session.answer("yes")
        session.expect("free of risk in every country? (yes/no)")
        session.answer("yes")
        session.expect("No: in some countries it can be sensitive or illegal.")
        session.answer("yes")
        status, _ = session.finish()
    finally:
        session.kill()
    assert status == 2, session.seen
    assert "please read the text again first" in session.seen
    assert "want to run probe now" not in session.seen
    assert not volunteer["config_home"].exists() and not volunteer["out"].exists()
    assert not _connected(listener)


def test_a_changed_consent_text_asks_again_and_keeps_the_rest_of_the_config(volunteer):
    config = volunteer["config"]
    config.parent.mkdir(parents=True)
    old = (
        "# my settings\n[run]\ntimeout = 3  # slow network\n\n"
        f"[consent]\nversion = {consent.CONSENT_VERSION - 1}\naccepted = 2020-01-01\n\n"
        "[control]\nport = 8080\n"
    )
    config.write_text(old)
    session = TerminalSession(_run_args(volunteer), _env(volunteer), REPO)
    try:
        _answer_the_quiz(session, "yes", "no", "yes")
        status, _ = session.finish()
    finally:
        session.kill()
    assert status == 0, session.seen
    text = config.read_text()
    assert text.startswith("# my settings\n[run]\ntimeout = 3  # slow network\n")
    assert "[control]\nport = 8080\n" in text
    assert _recorded(config)["version"] == consent.CONSENT_VERSION


@pytest.mark.parametrize("value", [None, "", "0", "no"])
def test_without_a_terminal_the_run_is_refused_with_one_line(volunteer, listener, value):
    env = {} if value is None else {consent.ENV_VAR: value}
    result = _run_without_terminal(volunteer, **env)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("probe: error: no consent recorded")
    assert "--yes" in lines[0] and "PROBE_ACCEPT_RISKS=1" in lines[0]
    assert result.stdout == ""
    assert not volunteer["out"].exists() and not volunteer["config_home"].exists()
    assert not _connected(listener), "nothing is sent before consent"


def test_bad_options_are_named_before_consent_is_asked(volunteer):
    result = _run_without_terminal(volunteer, "--timeout", "-1")
    assert result.returncode == 2
    assert "--timeout -1.0" in result.stderr and "consent" not in result.stderr


@pytest.mark.parametrize(("flag", "env"), [("--yes", {}), (None, {consent.ENV_VAR: "1"})])
def test_yes_and_the_environment_variable_consent_for_unattended_runs(volunteer, flag, env):
    result = _run_without_terminal(volunteer, *([flag] if flag else []), **env)
    assert result.returncode == 0, result.stderr
    assert "results of this round" in result.stdout
    assert not volunteer["config_home"].exists(), "unattended consent is never recorded"


def test_yes_at_a_terminal_skips_the_questions_and_records_nothing(volunteer):
    session = TerminalSession(_run_args(volunteer, "--yes"), _env(volunteer), REPO)
    try:
        status, stdout = session.finish()
    finally:
        session.kill()
    assert status == 0, session.seen
    assert "Before the first measurement" not in session.seen
    assert "results of this round" in stdout
    assert not volunteer["config_home"].exists()


# --- the record in the config file ----------------------------------------------------------


def test_recorded_consent_needs_this_version_and_a_date(tmp_path: Path):
    path = tmp_path / "config.toml"
    assert not consent.recorded(path)
    for text, expected in [
        (f"[consent]\nversion = {consent.CONSENT_VERSION}\naccepted = 2026-01-02\n", True),
        (f"[consent]\nversion = {consent.CONSENT_VERSION + 1}\naccepted = 2026-01-02\n", False),
        (f"[consent]\nversion = {consent.CONSENT_VERSION}\n", False),
        ("[consent]\nversion = true\naccepted = 2026-01-02\n", False),
        ("consent = 1\n", False),
        ("[consent\n", False),
    ]:
        path.write_text(text)
        assert consent.recorded(path) is expected, text


def test_recording_keeps_comments_links_and_other_tables(tmp_path: Path):
    real = tmp_path / "dotfiles" / "probe.toml"
    real.parent.mkdir()
    real.write_text('# mine\n[run]\ncontrol_token = "s3cret"   # keep\n')
    real.chmod(0o640)
    link = tmp_path / "config.toml"
    link.symlink_to(real)
    consent.record(link, datetime.date(2026, 12, 1))
    consent.record(link, datetime.date(2026, 12, 2))  # replaced, not appended twice
    assert link.is_symlink()
    text = real.read_text()
    assert text.startswith('# mine\n[run]\ncontrol_token = "s3cret"   # keep\n')
    assert text.count("[consent]") == 1 and "accepted = 2026-12-02" in text
    assert real.stat().st_mode & 0o777 == 0o640
    assert consent.recorded(link)


def test_a_table_that_cannot_be_replaced_safely_leaves_the_file_alone(tmp_path: Path):
    path = tmp_path / "config.toml"
    # A multi-line string holding a line that looks like the header: cutting there would
    # change [run], so nothing is written.
    original = '[run]\ncontrol_token = """\n[consent]\nx"""\n'
    path.write_text(original)
    with pytest.raises(ConfigEditError, match="without changing the rest"):
        replace_table(path, "consent", "version = 1\n")
    assert path.read_text() == original


def test_an_unwritable_config_warns_and_the_run_goes_on(volunteer):
    if os.geteuid() == 0:
        # root writes anywhere: a config path below a regular file cannot be created at all
        blocker = volunteer["config_home"]
        blocker.write_text("not a directory")
    else:
        volunteer["config_home"].mkdir(mode=0o500)
    session = TerminalSession(_run_args(volunteer), _env(volunteer), REPO)
    try:
        _answer_the_quiz(session, "yes", "no", "yes")
        status, _ = session.finish()
    finally:
        session.kill()
    assert status == 0, session.seen
    assert "probe: warning: your answer could not be saved" in session.seen
