"""`probe schedule install|remove` (probe/round/schedule/): a systemd user timer or a cron line.

Before anything is written, `install` checks the period, the whole `probe run` command line it
will schedule (with `run`'s own parser and checks, through the config in use) and consent; bad
input is exit 2 with one line, and nothing is installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from probe.cli.common import EXIT_ERROR, EXIT_OK, BadInput, config_path_in_use, fail

if TYPE_CHECKING:
    from probe.cli.run import RunPlan

#: the run options that belong to the schedule, not to each run
COUNT_IN_RUN = "--count: a scheduled run is one round; leave --count out"


@click.group("schedule")
def schedule_group() -> None:
    """Run the probe regularly (a systemd user timer, or a cron line)."""


@schedule_group.command("install", context_settings={"ignore_unknown_options": True})
@click.option("--every", required=True, metavar="DURATION", help="e.g. 30m, 1h, 6h.")
@click.option(
    "--yes",
    "assume_yes",
    is_flag=True,
    help="Consent for the scheduled runs (also PROBE_ACCEPT_RISKS=1); not needed once "
    "`probe run` at a terminal has recorded your consent.",
)
@click.argument("run_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def schedule_install(
    ctx: click.Context, every: str, assume_yes: bool, run_args: tuple[str, ...]
) -> int:
    """Install a timer running `probe run RUN_ARGS...` every DURATION."""
    import os
    from pathlib import Path

    from probe.cli import consent
    from probe.round import schedule

    try:
        seconds = schedule.check_period(every)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    plan = _checked_run(ctx, run_args)
    config = config_path_in_use()
    carry_yes = consent.schedule_needs_yes(assume_yes, config)
    where = schedule.backend()
    try:
        cadence = schedule.cadence_for(seconds, every, where)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    extra = ["--yes"] if carry_yes else []
    if where != "systemd" and plan.random_delay is None:
        extra += ["--random-delay", f"{max(1, seconds // 10)}s"]  # systemd has its own
    # The runs read the config that was checked here, wherever the timer's environment points.
    top = ["--config", str(config)] if config.exists() else []
    job = schedule.Job(
        every=seconds,
        command=(*_probe(), *top, "run", *run_args, *extra),
        workdir=Path.cwd(),
        results=Path(os.path.abspath(plan.options.out_dir)),
    )
    try:
        click.echo(schedule.install(job, where, cadence))
    except schedule.ScheduleError as exc:
        fail(str(exc))
        return EXIT_ERROR
    return EXIT_OK


def _probe() -> tuple[str, ...]:
    """This installation's probe (also from the single-file build): the scheduled runs use the
    installation that checked them."""
    from probe.round import schedule

    return schedule.probe_program()


def _checked_run(ctx: click.Context, run_args: tuple[str, ...]) -> RunPlan:
    """`probe run RUN_ARGS` parsed and checked exactly as `probe run` would (its options,
    the config's defaults, the target lists), without running it: the RunPlan."""
    from probe.cli.run import prepare_run, run_command

    root = ctx.find_root()  # so that the config's [run] table applies, as for `probe run`
    with run_command.make_context("run", list(run_args), parent=root) as run_ctx:
        plan = prepare_run(**run_ctx.params)
    if plan.count is not None:
        raise BadInput(COUNT_IN_RUN)
    return plan


@schedule_group.command("remove")
def schedule_remove() -> int:
    """Disable and delete the timer (or the crontab line)."""
    from probe.round import schedule

    try:
        click.echo(schedule.remove())
    except schedule.ScheduleError as exc:
        fail(str(exc))
        return EXIT_ERROR
    return EXIT_OK
