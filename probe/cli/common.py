"""What every command shares: the exit statuses, bad input as one line and exit status 2,
option errors named where the value was given, and the input checks more than one command
makes (special files, the resolver, CA files)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import click

from probe.i18n import N_, _

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_BAD_INPUT = 2
EXIT_SIGINT = 130
EXIT_SIGTERM = 143

#: ctx.meta key of the root context: config section → click parameter → "file:line: key"
CONFIG_SOURCES = "probe.config_sources"
#: ctx.meta key of the root context: the config file in use (it may not exist yet)
CONFIG_PATH = "probe.config_path"
#: ctx.meta key of the root context: the config file `probe purge` may remove (the default
#: path, or a `--config` file that loaded as a probe config), or None
CONFIG_FILE = "probe.config_file"


class BadInput(click.ClickException):
    """Bad target list, option or path: one line on stderr and exit status 2."""

    exit_code = EXIT_BAD_INPUT


def fail(message: str) -> None:
    click.echo(_("probe: error: {message}").format(message=message), err=True)


def option_error(param: str, value: object, message: str) -> BadInput:
    """A bad option value, named where it was given: on the command line (`--timeout -5:
    ...`), or in the config file (`config.toml:3: timeout = -5: ...`)."""
    ctx = click.get_current_context()
    option = "--" + next(
        (p.opts[0].lstrip("-") for p in ctx.command.params if p.name == param), param
    )
    if ctx.get_parameter_source(param) is click.core.ParameterSource.DEFAULT_MAP:
        section = "control" if ctx.command_path.endswith("control serve") else "run"
        section = "upload" if ctx.command_path.endswith(" upload") else section
        where = ctx.find_root().meta.get(CONFIG_SOURCES, {}).get(section, {}).get(param)
        if where:
            return BadInput(f"{where} = {value!r}: {message}")
    return BadInput(f"{option} {value}: {message}")


def config_path_in_use() -> Path:
    """The config file of this invocation (`--config`, PROBE_CONFIG or the default): where
    consent is recorded and what a schedule's runs read."""
    from probe.cli import config

    ctx = click.get_current_context(silent=True)
    path = ctx.find_root().meta.get(CONFIG_PATH) if ctx is not None else None
    return path if isinstance(path, Path) else config.default_path()


def refuse_special_files(paths: Iterable[str], what: str = N_("input")) -> None:
    """A FIFO, socket or device given as a file is refused before anything opens it: reading
    one blocks or never ends (bad input, exit 2)."""
    import stat

    for path in paths:
        try:
            mode = os.stat(path).st_mode
        except OSError:
            continue  # missing files are reported by whoever reads them, with their reason
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise BadInput(
                _("{path}: not a regular file ({what} must be a file or a directory)").format(
                    path=path, what=_(what)
                )
            )


def report_problems(problems: list[str], what: str) -> None:
    """Every problem on stderr as `file:line: message`, then the one-line error (exit 2)."""
    for problem in problems:
        click.echo(problem, err=True)
    count = len(problems)
    raise BadInput(f"{count} problem{'s' if count != 1 else ''} in {what}")


def parse_resolver(text: str | None) -> tuple[str, int] | None:
    """`--resolver IP[:PORT]` (of `probe run` or `control serve`) as (ip, port)."""
    if text is None:
        return None
    from probe.steps.dns import parse_resolver as parse

    try:
        return parse(text)
    except ValueError as exc:
        raise option_error("resolver", text, str(exc)) from None


def check_ca_files(paths: tuple[str, ...]) -> None:
    """`--ca-file`: every file is a regular file that loads as PEM roots."""
    from probe.steps.tls_context import client_context

    refuse_special_files(paths, N_("a CA file"))
    try:
        client_context(paths)
    except (ValueError, OSError) as exc:
        raise option_error("ca_files", ", ".join(paths), str(exc)) from None
