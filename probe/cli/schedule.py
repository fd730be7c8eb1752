"""`probe schedule install|remove` (probe/round/schedule/): a systemd user timer or a cron line."""

from __future__ import annotations

import click

from probe.cli.common import EXIT_OK, BadInput


@click.group("schedule")
def schedule_group() -> None:
    """Run the probe regularly (a systemd user timer, or a cron line)."""


@schedule_group.command("install", context_settings={"ignore_unknown_options": True})
@click.option("--every", required=True, metavar="DURATION", help="e.g. 30m, 1h, 6h.")
@click.argument("run_args", nargs=-1, type=click.UNPROCESSED)
def schedule_install(every: str, run_args: tuple[str, ...]) -> int:
    """Install a timer running `probe run RUN_ARGS...` every DURATION."""
    from pathlib import Path

    from probe.round import schedule

    try:
        seconds = schedule.parse_duration(every)
    except ValueError as exc:
        raise BadInput(f"--every: {exc}") from None
    if seconds < 300:
        raise BadInput(f"--every {every}: at least 5m between rounds, please")
    result = schedule.install(seconds, list(run_args), Path.cwd())
    click.echo(result.message)
    return EXIT_OK


@schedule_group.command("remove")
def schedule_remove() -> int:
    """Disable and delete the timer."""
    from probe.round import schedule

    click.echo(schedule.remove())
    return EXIT_OK
