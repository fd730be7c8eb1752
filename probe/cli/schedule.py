"""`probe schedule install|remove` (probe/round/schedule/): a systemd user timer or a cron line.

Before anything is written, `install` checks the period, the whole `probe run` command line it
will schedule (with `run`'s own parser and checks, through the config in use) and consent; bad
input is exit 2 with one line, and nothing is installed.

The messages are in the volunteer's language (`probe --lang fa schedule install ...`, or the
locale). A `--lang` after `install` belongs to the scheduled `probe run` (its log is then in
that language too) and sets the language of install's own messages as well; a `--lang` given
before `install` is carried into the scheduled command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from click.core import ParameterSource

from probe.cli.common import EXIT_ERROR, EXIT_OK, BadInput, config_path_in_use, fail
from probe.cli.localized import LocalizedCommand, LocalizedSubgroup, lang_option
from probe.i18n import N_, _

if TYPE_CHECKING:
    from probe.cli.run import RunPlan

#: the run options that belong to the schedule, not to each run
COUNT_IN_RUN = N_("--count: a scheduled run is one round; leave --count out")


@click.group(
    "schedule",
    cls=LocalizedSubgroup,
    help=N_("Run the probe regularly (a systemd user timer, or a cron line)."),
)
@lang_option()
def schedule_group() -> None:
    """Run the probe regularly (a systemd user timer, or a cron line)."""


@schedule_group.command(
    "install",
    cls=LocalizedCommand,
    context_settings={"ignore_unknown_options": True},
    help=N_(
        "Install a timer running `probe run RUN_ARGS...` every DURATION. The whole command "
        "line is checked first, as `probe run` would check it, and consent must be given."
    ),
)
@click.option("--every", required=True, metavar="DURATION", help=N_("e.g. 30m, 1h, 6h."))
@click.option(
    "--yes",
    "assume_yes",
    is_flag=True,
    help=N_(
        "Consent for the scheduled runs (also PROBE_ACCEPT_RISKS=1); not needed once "
        "`probe run` at a terminal has recorded your consent."
    ),
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
    from probe.i18n import language
    from probe.round import schedule

    # a --lang before `install` is carried into the scheduled runs (one after it is in run_args)
    given = [c for c in (ctx.find_root(), ctx.parent) if c is not None]
    lang = (
        ["--lang", language()]
        if any(c.get_parameter_source("lang") is ParameterSource.COMMANDLINE for c in given)
        else []
    )
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
    top = (["--config", str(config)] if config.exists() else []) + lang
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
        raise BadInput(_(COUNT_IN_RUN))
    return plan


@schedule_group.command(
    "remove", cls=LocalizedCommand, help=N_("Disable and delete the timer (or the crontab line).")
)
@lang_option()
def schedule_remove() -> int:
    """Disable and delete the timer (or the crontab line)."""
    from probe.round import schedule

    try:
        click.echo(schedule.remove())
    except schedule.ScheduleError as exc:
        fail(str(exc))
        return EXIT_ERROR
    return EXIT_OK
