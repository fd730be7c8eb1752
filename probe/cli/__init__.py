"""The command line: parse arguments, call the library, map errors to exit codes. Nothing
else. `cli` is the click group (`--config` feeds click's defaults from `config`, the config
file), `main` the console-script entry point; each command group has its module (`run`,
`targets`, `reports` for analyze and report, `results`, `purge`, `identity` (`probe id`),
`control`, `geoip`, `proxy`, `schedule`, `upload`, `collector`), `examples` the example at the
end of every `--help`, and `common` holds what they share: the exit statuses, `BadInput`, option
errors named where the value was given, and the refusal of FIFOs, sockets and devices as input
files.

Exit status: 0 round completed (blocking found is data), 2 bad input (one line on stderr naming
file and line), 130 after SIGINT, 143 after SIGTERM, 1 anything else.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from probe.cli.collector import collector_group
from probe.cli.common import (
    CONFIG_FILE,
    CONFIG_PATH,
    CONFIG_SOURCES,
    EXIT_BAD_INPUT,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    BadInput,
    fail,
    option_error,
)
from probe.cli.control import control_group
from probe.cli.examples import add_examples
from probe.cli.geoip import geoip_group
from probe.cli.identity import id_group
from probe.cli.localized import LocalizedGroup, lang_option, use_our_catalog_for_click
from probe.cli.proxy import proxy_group
from probe.cli.purge import purge_command
from probe.cli.reports import analyze_command, report_command
from probe.cli.results import results_group
from probe.cli.run import run_command
from probe.cli.schedule import schedule_group
from probe.cli.targets import targets_group
from probe.cli.upload import upload_command
from probe.i18n import N_, _

use_our_catalog_for_click()

__all__ = [
    "CONFIG_SOURCES",
    "EXIT_BAD_INPUT",
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_SIGINT",
    "EXIT_SIGTERM",
    "BadInput",
    "cli",
    "fail",
    "main",
    "option_error",
]


@click.group(
    cls=LocalizedGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    help=N_(
        "Is Telegram (and WhatsApp, Signal, Messenger) reachable from here? If not, how is it "
        "blocked? `probe run` measures; the result files are for researchers."
    ),
)
@click.version_option(package_name="probe", prog_name="probe")
@lang_option()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="PROBE_CONFIG",
    help=N_("Config file with defaults (default: ~/.config/probe/config.toml)."),
)
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """The `probe` command (its help is the group's `help`, translated when shown)."""
    from pathlib import Path

    from probe.cli import config

    sources: dict[str, dict[str, str]] = {}
    path = Path(config_path) if config_path else config.default_path()
    ctx.meta[CONFIG_FILE] = path if not config_path else None
    try:
        ctx.default_map = config.load(
            Path(config_path) if config_path else None,
            explicit=config_path is not None,
            sources=sources,
        )
    except config.ConfigError as exc:
        if ctx.invoked_subcommand != "purge":  # a broken config must not keep purge from work
            raise BadInput(str(exc)) from None
    else:
        ctx.meta[CONFIG_FILE] = path
    ctx.meta[CONFIG_SOURCES] = sources
    ctx.meta[CONFIG_PATH] = (Path(config_path) if config_path else config.default_path()).absolute()


for _command in (
    analyze_command,
    collector_group,
    control_group,
    geoip_group,
    id_group,
    proxy_group,
    purge_command,
    report_command,
    results_group,
    run_command,
    schedule_group,
    targets_group,
    upload_command,
):
    cli.add_command(_command)
add_examples(cli)


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point: click's multi-line usage errors become one line and exit status 2."""
    try:
        result = cli.main(args=argv, prog_name="probe", standalone_mode=False)
    except click.exceptions.Abort:
        fail(_("interrupted"))
        sys.exit(EXIT_SIGINT)
    except click.UsageError as exc:
        where = f" ({exc.ctx.command_path})" if exc.ctx is not None else ""
        fail(f"{exc.format_message()}{where}".replace("\n", " "))
        sys.exit(EXIT_BAD_INPUT)
    except click.ClickException as exc:
        fail(exc.format_message().replace("\n", " "))
        sys.exit(exc.exit_code)
    if isinstance(result, int):
        sys.exit(result)
    sys.exit(EXIT_OK)
