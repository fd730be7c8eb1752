"""Informed consent before the first measurement on a machine.

The first `probe run` at a terminal explains what is sent, to whom, what is stored and the
risks, asks two questions that show it was understood (a wrong answer is explained and asked
once more), and asks for an explicit yes. The yes is recorded in the config file as

    [consent]
    version = 1          # CONSENT_VERSION: a changed text asks again
    accepted = 2026-12-01

Unattended use (scripts, test harnesses, schedules) consents with `--yes` or the environment
variable PROBE_ACCEPT_RISKS=1; that consent is for the one command and is never recorded, so a
flag copied from a script cannot stand in for a person having read the text. Without a terminal
and without either, the run is refused (exit 2, one line) before anything is measured or written.

Every message a volunteer sees here is below, in one place, marked for the catalog and shown in
the volunteer's language (`--lang`, else the locale; docs/translating.md); the answers may be
English or Persian in either language.
"""

from __future__ import annotations

import datetime
import os
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import click

from probe.cli.answers import ask_yes_no
from probe.cli.common import BadInput
from probe.cli.config_edit import ConfigEditError, replace_table
from probe.i18n import N_, _

#: bump when the text below (or its translation in a catalog) changes in substance: everyone
#: is asked again
CONSENT_VERSION = 1
ENV_VAR = "PROBE_ACCEPT_RISKS"
_ENV_YES = ("1", "yes", "true")


@dataclass(frozen=True, slots=True)
class Question:
    text: str
    answer: bool
    why: str  # shown after a wrong answer


# --- what the volunteer reads (marked with N_, translated with _ where it is shown) ------------

#: the explanation, one message per paragraph (shown one after another, a blank line between)
EXPLANATION = (
    N_("Before the first measurement, please read this (it is also in the README)."),
    N_(
        "What probe sends: DNS lookups, connections and one page fetch to Telegram, WhatsApp, "
        "Signal,\nFacebook Messenger and a few well-known sites, and the first message a "
        "Telegram app sends -\nthe same traffic these apps make. To keep your IP address out "
        "of the results it asks a few\npublic services (Google, Cloudflare, ipify, Amazon) "
        "which address your traffic comes from."
    ),
    N_(
        "Who sees it: your internet provider, and anyone watching your connection, can see "
        "that you\ntried to reach these services, and on a schedule, that you do it regularly. "
        "The services, your\nDNS resolver and a control server (if you set one) see your IP "
        "address."
    ),
    N_(
        "What is stored: result files on this computer (the path is shown after each run) "
        "with what\neach check saw, your network (ASN) and your country - never your IP "
        "address. They leave this\ncomputer only if you share them."
    ),
    N_(
        "Risks: measuring censorship can be sensitive or illegal in some countries. Through "
        "a VPN,\nprobe measures the VPN's network, not yours. Run probe only if you understand "
        "and accept this."
    ),
)

QUESTIONS = (
    Question(
        N_("Can your internet provider see that you ran probe?"),
        True,
        N_(
            "Yes, it can: probe sends the same traffic as the apps, so anyone watching your "
            "connection sees which services you tried to reach."
        ),
    ),
    Question(
        N_("Is measuring censorship free of risk in every country?"),
        False,
        N_("No: in some countries it can be sensitive or illegal."),
    ),
)
FINAL_QUESTION = N_("Do you accept these risks and want to run probe now?")
RECORDED = N_("Thank you. Your answer is saved in {path}; probe will not ask again.")
NOT_RECORDED = N_(
    "probe: warning: your answer could not be saved ({reason}); probe will ask again."
)
DECLINED = N_("no consent given: nothing was measured")
NOT_UNDERSTOOD = N_("no consent given: nothing was measured; please read the text again first")
#: one line (scripts and logs read it whole)
NO_TERMINAL = N_(
    "no consent recorded and no terminal to ask: run `probe run` once in a terminal to read "
    "the risks and answer, or consent for unattended use with --yes or PROBE_ACCEPT_RISKS=1"
)
SCHEDULE_NO_CONSENT = N_(
    "no consent recorded: run `probe run` once in a terminal to read the risks and answer, "
    "or consent for the schedule with --yes or PROBE_ACCEPT_RISKS=1"
)


def explanation() -> str:
    """The explanation in the active language."""
    return "\n\n".join(_(paragraph) for paragraph in EXPLANATION) + "\n"


# --- the checks --------------------------------------------------------------------------------


def given_unattended(assume_yes: bool) -> bool:
    """`--yes` or PROBE_ACCEPT_RISKS=1 (or yes/true)."""
    return assume_yes or os.environ.get(ENV_VAR, "").strip().lower() in _ENV_YES


def recorded(config_path: Path) -> bool:
    """True when the config file holds a yes to this version of the text. A broken config
    reads as no consent here; the config loader reports it."""
    try:
        table = tomllib.loads(config_path.read_text(encoding="utf-8-sig")).get("consent")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    if not isinstance(table, dict):
        return False
    version = table.get("version")
    return (
        isinstance(version, int)
        and not isinstance(version, bool)
        and version == CONSENT_VERSION
        and isinstance(table.get("accepted"), datetime.date)
    )


def record(config_path: Path, today: datetime.date | None = None) -> None:
    """Save the yes to this version of the text (raises ConfigEditError)."""
    day = (today or datetime.date.today()).isoformat()
    body = (
        "# probe's first-run consent; delete this table to be asked again\n"
        f"version = {CONSENT_VERSION}\naccepted = {day}\n"
    )
    replace_table(config_path, "consent", body)


def require_for_run(assume_yes: bool, config_path: Path) -> None:
    """Return when the volunteer has consented; ask at a terminal; else raise BadInput."""
    if given_unattended(assume_yes) or recorded(config_path):
        return
    if not sys.stdin.isatty():
        raise BadInput(_(NO_TERMINAL))
    ask()
    try:
        record(config_path)
    except ConfigEditError as exc:
        click.echo(_(NOT_RECORDED).format(reason=exc), err=True)
        return
    click.echo(_(RECORDED).format(path=config_path), err=True)


def schedule_needs_yes(assume_yes: bool, config_path: Path) -> bool:
    """Whether the scheduled command must carry `--yes`: not when consent is recorded (the
    timer reads the same config, and a changed text then stops it with NO_TERMINAL in its
    log); yes when consent was given with `--yes` or the variable. No consent: BadInput."""
    if recorded(config_path):
        return False
    if given_unattended(assume_yes):
        return True
    raise BadInput(_(SCHEDULE_NO_CONSENT))


# --- the conversation --------------------------------------------------------------------------


def ask() -> None:
    """The explanation, the questions and the final yes, on stderr (stdout stays for the
    summary); raise BadInput unless every answer is right and the final one is yes. Answers
    are accepted in English and in Persian (probe/cli/answers.py)."""
    click.echo(explanation(), err=True)
    for question in QUESTIONS:
        for attempt in range(2):
            if ask_yes_no(_(question.text)) == question.answer:
                break
            click.echo(_(question.why), err=True)
            if attempt == 1:
                raise BadInput(_(NOT_UNDERSTOOD))
    if not ask_yes_no(_(FINAL_QUESTION)):
        raise BadInput(_(DECLINED))
