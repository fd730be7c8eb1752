"""`probe id show` and `probe id rotate` (probe/identity.py): the random, pseudonymous id this
installation writes in every record. What a volunteer reads is in their language (`probe --lang
fa id show`, or the locale); the id itself is printed alone on stdout, for scripts."""

from __future__ import annotations

import click

from probe.cli.common import EXIT_OK, BadInput
from probe.cli.localized import LocalizedCommand, LocalizedSubgroup, lang_option
from probe.i18n import N_, _

GROUP_HELP = N_(
    "This installation's probe id: a random name written in every record so that researchers "
    "can follow one volunteer's results over time. It says nothing about you or this computer."
)
SHOW_HELP = N_("Print the probe id (it is made on first use).")
ROTATE_HELP = N_(
    "Replace the probe id with a new random one. Researchers can then no longer link your "
    "future records to your past ones."
)
#: on stderr after `show`: where the id is kept
STORED_IN = N_("(kept in {path}; `probe id rotate` replaces it)")
#: on stderr after `rotate`
ROTATED = N_(
    "New probe id {new} (was {old}). Future records can no longer be linked to past ones by "
    "researchers; records already written or shared keep the old id."
)
ROTATED_FIRST = N_("New probe id {new}.")


@click.group("id", cls=LocalizedSubgroup, help=GROUP_HELP)
@lang_option()
def id_group() -> None:
    """This installation's probe id."""


@id_group.command("show", cls=LocalizedCommand, help=SHOW_HELP)
@lang_option()
def id_show() -> int:
    """Print the probe id."""
    from probe import identity

    path = identity.id_path()
    try:
        value = identity.load_or_create(path)
    except identity.ProbeIdError as exc:
        raise BadInput(str(exc)) from None
    click.echo(value)
    click.echo(_(STORED_IN).format(path=path), err=True)
    return EXIT_OK


@id_group.command("rotate", cls=LocalizedCommand, help=ROTATE_HELP)
@lang_option()
def id_rotate() -> int:
    """Make a new probe id."""
    from probe import identity

    path = identity.id_path()
    try:
        old = identity.read_probe_id(path)
    except identity.ProbeIdError:
        old = None  # a broken file is what rotate repairs
    try:
        new = identity.rotate(path)
    except identity.ProbeIdError as exc:
        raise BadInput(str(exc)) from None
    click.echo(new)
    message = _(ROTATED).format(new=new, old=old) if old else _(ROTATED_FIRST).format(new=new)
    click.echo(message, err=True)
    return EXIT_OK
