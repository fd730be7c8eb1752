"""The command line: parse arguments, call the library, map errors to exit codes. Nothing else.

Exit status: 0 round completed (blocking found is data), 2 bad input (one line on stderr naming
file and line), 130 after SIGINT, 143 after SIGTERM, 1 anything else.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from probe import __version__

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_BAD_INPUT = 2
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class BadInput(click.ClickException):
    """Bad target list, option or path: one line on stderr and exit status 2."""

    exit_code = EXIT_BAD_INPUT


def fail(message: str) -> None:
    click.echo(f"probe: error: {message}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="probe")
def cli() -> None:
    """Is Telegram (and WhatsApp, Signal, Messenger) reachable from here? If not, how is it
    blocked? `probe run` measures; the result files are for researchers."""


# --- command modules register below (keep one block per command group) ---------------------


def main(argv: list[str] | None = None) -> Any:
    """Entry point: click's multi-line usage errors become one line and exit status 2."""
    try:
        result = cli.main(args=argv, prog_name="probe", standalone_mode=False)
    except click.exceptions.Abort:
        fail("interrupted")
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
