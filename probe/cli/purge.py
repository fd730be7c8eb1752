"""`probe purge` (probe/localdata/purge.py): remove what the probe keeps on this device —
result files, the config file, the schedule, downloaded network data — for a volunteer whose
device could be seized. Asks first on a terminal; `--yes` for scripts; without a terminal and
without `--yes` it refuses (exit 2)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from probe.cli.common import CONFIG_FILE, EXIT_ERROR, EXIT_OK, BadInput


@click.command("purge")
@click.option("--yes", "-y", is_flag=True, help="Do not ask (for scripts).")
@click.option(
    "--out",
    "out_dirs",
    multiple=True,
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="Also remove this probe's result files from DIR (repeatable).",
)
@click.pass_context
def purge_command(ctx: click.Context, yes: bool, out_dirs: tuple[str, ...]) -> int:
    """Remove the probe's results, its config file, its schedule and the network data it
    downloaded from this device. Nothing else is touched: in a results directory that is not
    the probe's own, only files that hold this probe's records are removed."""
    from probe.localdata import ResultsDir, execute, plan_purge
    from probe.paths import default_results_dir, user_data_dir
    from probe.round import schedule

    own = default_results_dir()
    configured = ((ctx.find_root().default_map or {}).get("run") or {}).get("out_dir")
    dirs = [ResultsDir(own, True)]
    for extra in ([configured] if configured else []) + list(out_dirs):
        path = Path(os.path.abspath(extra))
        dirs.append(ResultsDir(path, path == own))
    config_file = ctx.find_root().meta.get(CONFIG_FILE)
    plan = plan_purge(dirs, config_file, user_data_dir())
    if not yes:
        if not sys.stdin.isatty():
            raise BadInput(
                "purge deletes results, config and the schedule: run it on a terminal to "
                "confirm, or pass --yes"
            )
        click.echo("probe purge will remove:")
        for line in [*plan.describe(), "the schedule (timer or cron line), if one is installed"]:
            click.echo(f"  - {line}")
        if not click.confirm("Remove all of this?", default=False):
            click.echo("Nothing removed.")
            return EXIT_ERROR
    # the schedule first: no new round may start writing while the files go
    click.echo(schedule.remove())
    done = execute(plan)
    removed = set(done.removed)
    for directory, files in plan.results.items():
        count = sum(f in removed for f in files)
        click.echo(f"Removed {count} result file{'s' if count != 1 else ''} from {directory}.")
    others = {*plan.geoip, *plan.dirs, *([plan.config] if plan.config else [])}
    for path in done.removed:
        if path in others:
            click.echo(f"Removed {path}")
    for directory, count in plan.foreign.items():
        click.echo(
            f"Left {count} file{'s' if count != 1 else ''} in {directory} that "
            f"{'are' if count != 1 else 'is'} named like result files but "
            f"{'do' if count != 1 else 'does'} not hold this probe's records."
        )
    custom = [d.path for d in dirs if not d.own]
    if custom:
        shown = ", ".join(str(p) for p in dict.fromkeys(custom))
        click.echo(f"In {shown} only this probe's result files were removed; nothing else there.")
    for error in done.errors:
        click.echo(f"probe: error: could not remove {error}", err=True)
    click.echo(_program_note())
    return EXIT_ERROR if done.errors else EXIT_OK


def _program_note() -> str:
    """Where the program itself is (purge leaves it: it is running)."""
    single_file = os.environ.get("PEX")
    if single_file:
        root = os.environ.get("PEX_ROOT") or "~/.cache/pex"
        return (
            f"The program itself is still here: delete {single_file} and its unpacked copy "
            f"in {root} to remove it too."
        )
    return "The program itself is still installed: `pipx uninstall probe` removes it."
