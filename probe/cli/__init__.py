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

import importlib
import sys
from typing import NoReturn

import click

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
from probe.cli.examples import add_examples
from probe.cli.localized import (
    LocalizedGroup,
    click_declarations,
    lang_option,
    use_our_catalog_for_click,
)
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


#: every subcommand, as (module, attribute): a command's module is imported when the command is
#: used (or when help or completion lists the commands), so that `probe run` does not load the
#: report, control, collector, upload and proxy code at every start (~0.3 G instructions)
COMMANDS: dict[str, tuple[str, str]] = {
    "analyze": ("probe.cli.reports", "analyze_command"),
    "collector": ("probe.cli.collector", "collector_group"),
    "control": ("probe.cli.control", "control_group"),
    "geoip": ("probe.cli.geoip", "geoip_group"),
    "id": ("probe.cli.identity", "id_group"),
    "proxy": ("probe.cli.proxy", "proxy_group"),
    "purge": ("probe.cli.purge", "purge_command"),
    "report": ("probe.cli.reports", "report_command"),
    "results": ("probe.cli.results", "results_group"),
    "run": ("probe.cli.run", "run_command"),
    "schedule": ("probe.cli.schedule", "schedule_group"),
    "targets": ("probe.cli.targets", "targets_group"),
    "upload": ("probe.cli.upload", "upload_command"),
}


class _LazyGroup(LocalizedGroup):
    """The root group, its subcommands imported on first use (`COMMANDS`); help, completion and
    errors see the same sorted list of commands as if all had been added up front."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, attribute = COMMANDS[cmd_name]
            with click_declarations():
                command = getattr(importlib.import_module(module), attribute)
            add_examples(command, f"probe {cmd_name}")
            self.add_command(command, cmd_name)
        return self.commands.get(cmd_name)


@click.group(
    cls=_LazyGroup,
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
