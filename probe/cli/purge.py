"""`probe purge` (probe/localdata/purge.py): remove what the probe keeps on this device —
result files, the config file, the schedule, downloaded network data — for a volunteer whose
device could be seized. Asks first on a terminal; `--yes` for scripts; without a terminal and
without `--yes` it refuses (exit 2, one line). What it says is in the volunteer's language
(`probe --lang fa purge`, or the locale); the question takes yes or no in English or Persian."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from probe.cli.answers import ask_yes_no
from probe.cli.common import CONFIG_FILE, EXIT_ERROR, EXIT_OK, BadInput, fail
from probe.cli.localized import LocalizedCommand, lang_option
from probe.i18n import N_, _, joined, ngettext

if TYPE_CHECKING:
    from probe.localdata.purge import PurgeDone, PurgePlan, ResultsDir

#: without a terminal and without --yes: one line, exit 2
NO_TERMINAL = N_(
    "purge deletes results, config and the schedule: run it on a terminal to confirm, or pass --yes"
)


@click.command(
    "purge",
    cls=LocalizedCommand,
    help=N_(
        "Remove the probe's results, its config file, its schedule and the network data it "
        "downloaded from this device. Nothing else is touched: in a results directory that is "
        "not the probe's own, only files that hold this probe's records are removed."
    ),
)
@lang_option()
@click.option("--yes", "-y", is_flag=True, help=N_("Do not ask (for scripts)."))
@click.option(
    "--out",
    "out_dirs",
    multiple=True,
    type=click.Path(file_okay=False),
    metavar="DIR",
    help=N_("Also remove this probe's result files from DIR (repeatable)."),
)
@click.pass_context
def purge_command(ctx: click.Context, yes: bool, out_dirs: tuple[str, ...]) -> int:
    """Remove the probe's results, its config file, its schedule and the network data it
    downloaded from this device. Nothing else is touched: in a results directory that is not
    the probe's own, only files that hold this probe's records are removed."""
    from probe.localdata import ResultsDir, execute, plan_purge
    from probe.paths import default_results_dir, user_cache_dir, user_data_dir
    from probe.round import schedule

    own = default_results_dir()
    configured = ((ctx.find_root().default_map or {}).get("run") or {}).get("out_dir")
    dirs = [ResultsDir(own, True)]
    for extra in ([configured] if configured else []) + list(out_dirs):
        path = Path(os.path.abspath(extra))
        dirs.append(ResultsDir(path, path == own))
    config_file = ctx.find_root().meta.get(CONFIG_FILE)
    plan = plan_purge(dirs, config_file, user_data_dir(), user_cache_dir())
    if not yes and not _confirmed(plan):
        click.echo(_("Nothing removed."))
        return EXIT_ERROR
    # the schedule first: no new round may start writing while the files go
    click.echo(schedule.remove())
    done = execute(plan)
    _say_what_went(plan, done, dirs)
    for error in done.errors:
        fail(_("could not remove {error}").format(error=error))
    click.echo(_program_note())
    return EXIT_ERROR if done.errors else EXIT_OK


def _confirmed(plan: PurgePlan) -> bool:
    """Show what will go and ask (a terminal is needed: without one, `--yes` must be given)."""
    if not sys.stdin.isatty():
        raise BadInput(_(NO_TERMINAL))
    click.echo(_("probe purge will remove:"))
    schedule_line = _("the schedule (timer or cron line), if one is installed")
    for line in [*plan.describe(), schedule_line]:
        click.echo(f"  - {line}")
    return ask_yes_no(_("Remove all of this?"), default_no=True, err=False)


def _say_what_went(plan: PurgePlan, done: PurgeDone, dirs: list[ResultsDir]) -> None:
    removed = set(done.removed)
    for directory, files in plan.results.items():
        count = sum(f in removed for f in files)
        click.echo(
            ngettext(
                "Removed {count} result file from {directory}.",
                "Removed {count} result files from {directory}.",
                count,
            ).format(count=count, directory=directory)
        )
    others = {*plan.geoip, *plan.spool, *plan.cache, *plan.dirs}
    if plan.config:
        others.add(plan.config)
    if plan.probe_id is not None:
        others.add(plan.probe_id)
    for path in done.removed:
        if path in others:
            click.echo(_("Removed {path}").format(path=path))
    for directory, count in plan.foreign.items():
        click.echo(
            ngettext(
                "Left {count} file in {directory} that is named like result files but does "
                "not hold this probe's records.",
                "Left {count} files in {directory} that are named like result files but do "
                "not hold this probe's records.",
                count,
            ).format(count=count, directory=directory)
        )
    custom = [str(d.path) for d in dirs if not d.own]
    if custom:
        click.echo(
            _(
                "In {directories} only this probe's result files were removed; nothing else there."
            ).format(directories=joined(list(dict.fromkeys(custom))))
        )


def _program_note() -> str:
    """Where the program itself is (purge leaves it: it is running)."""
    single_file = os.environ.get("PEX")
    if single_file:
        root = os.environ.get("PEX_ROOT") or "~/.cache/pex"
        return _(
            "The program itself is still here: delete {file} and its unpacked copy in {cache} "
            "to remove it too."
        ).format(file=single_file, cache=root)
    return _("The program itself is still installed: `pipx uninstall probe` removes it.")
