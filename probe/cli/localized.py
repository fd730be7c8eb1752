"""The command line in the volunteer's language: `--lang`, help texts translated when they are
shown, and click's own words (Usage, Options, its error messages) from our catalog.

`--lang fa` (or `--lang en`) is a global option (`probe --lang fa run ...`) and an option of
`probe run`, `probe results`, `probe purge` and `probe schedule` (`probe run --lang fa`; after
`schedule install` it is part of the scheduled run's arguments); without it the locale
decides (LANGUAGE, LC_ALL, LC_MESSAGES, LANG; probe/i18n). The root group reads `--lang` from
the whole command line before click parses anything, so that `probe run --help --lang fa` is
Persian too.

Help texts are marked with `N_()` where they are declared (at import time the language is not
known yet) and translated with `_()` when help is formatted: a command made with
`cls=LocalizedCommand` (`LocalizedSubgroup` for a group below the root, `LocalizedGroup` for the
root) does that for its own help, its options' help, its short help in its group's list and its
example (the epilog, probe/cli/examples.py).

Click translates its own words with the standard library's `gettext` in the global domain; its
modules' `_` and `ngettext` are pointed at our catalog (`use_our_catalog_for_click`), which
holds the few of click's messages a volunteer meets (probe/cli/click_text.py). In English they
are click's words, unchanged.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import click
from click.decorators import FC

from probe.i18n import LANGUAGES, N_, _, ngettext, set_language

LANG_HELP = N_(
    "Language of the messages: en (English) or fa (Persian). Default: the locale "
    "(LANGUAGE, LC_ALL, LC_MESSAGES, LANG). Result files are always in English."
)


def lang_from_args(args: Sequence[str]) -> str | None:
    """The value of the last `--lang X` / `--lang=X` before `--` (None: not given)."""
    found: str | None = None
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg == "--lang" and i + 1 < len(args):
            found = args[i + 1]
        elif arg.startswith("--lang="):
            found = arg.split("=", 1)[1]
    return found if found in LANGUAGES else None


def _set_lang(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        set_language(value)


def lang_option() -> Callable[[FC], FC]:
    """The `--lang` option (eager: it applies before the others are checked)."""
    return click.option(
        "--lang",
        type=click.Choice(LANGUAGES),
        metavar="LANG",
        callback=_set_lang,
        is_eager=True,
        expose_value=False,
        help=LANG_HELP,
    )


@contextmanager
def _translated(items: Sequence[click.Command | click.Parameter]) -> Iterator[None]:
    """Each item's `help` in the active language while help is formatted."""
    saved = [(item, getattr(item, "help", None)) for item in items]
    try:
        for item, text in saved:
            if text:
                item.help = _(text)
        yield
    finally:
        for item, text in saved:
            item.help = text


def _translated_epilog(epilog: str) -> str:
    """An epilog (probe/cli/examples.py) in the active language; a leading ``\b`` line (click
    prints the rest as written) is not part of the message."""
    marker = "\b\n" if epilog.startswith("\b\n") else ""
    text = epilog[len(marker) :]
    return marker + _(text) if text else epilog


class _Localized(click.Command):
    """Help (the command's own, its options', its short help and its epilog) translated when it
    is shown."""

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with _translated([self]):
            super().format_help_text(ctx, formatter)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with _translated(self.get_params(ctx)):
            super().format_options(ctx, formatter)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        saved = self.epilog
        if saved:
            self.epilog = _translated_epilog(saved)
        try:
            super().format_epilog(ctx, formatter)
        finally:
            self.epilog = saved

    def get_short_help_str(self, limit: int = 45) -> str:
        with _translated([self]):
            return super().get_short_help_str(limit)


class LocalizedCommand(_Localized):
    """A command whose help (its own and its options') is translated when shown."""


class LocalizedSubgroup(_Localized, click.Group):
    """A group below the root (`probe results`, `probe schedule`): its help translated when
    shown. The language is the root's (`LocalizedGroup` read `--lang` from the whole command
    line); a subgroup never chooses it again."""


class LocalizedGroup(_Localized, click.Group):
    """The root group: reads `--lang` (else the locale) before parsing, translates its help."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        set_language(lang_from_args(args))
        return super().parse_args(ctx, args)


#: click's modules that translate their words with `from gettext import gettext as _`
_CLICK_MODULES = (
    "click.core",
    "click.decorators",
    "click.exceptions",
    "click.formatting",
    "click.parser",
    "click._parser",
    "click.termui",
    "click.types",
)


#: click's own `_` of each of its modules, kept for `click_declarations`
_CLICK_OWN: dict[str, Callable[[str], str]] = {}


def use_our_catalog_for_click() -> None:
    """Point click's `_` and `ngettext` at the active language's catalog (idempotent)."""
    for name in _CLICK_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if callable(getattr(module, "_", None)):
            if module._ is not _:
                _CLICK_OWN[name] = module._
            module._ = _  # type: ignore[attr-defined]
        if callable(getattr(module, "ngettext", None)):
            module.ngettext = ngettext  # type: ignore[attr-defined]


@contextmanager
def click_declarations() -> Iterator[None]:
    """Commands declared with click's own words: a type's name (the PATH of `--out PATH`) is
    taken when the option is declared, and a command module imported on first use
    (probe/cli/__init__.py) is imported after the language is chosen; its metavars stay the
    ones click gives in English, as when every command was declared at start."""
    modules = {name: importlib.import_module(name) for name in _CLICK_OWN}
    for name, module in modules.items():
        module._ = _CLICK_OWN[name]  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for module in modules.values():
            module._ = _  # type: ignore[attr-defined]
