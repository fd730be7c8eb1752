"""A yes-or-no question at the terminal (consent, `probe purge`), answered in English or in
Persian whatever the language of the messages: a volunteer may type `yes` with a Persian
interface, or `بله` with an English one.

A new language adds its words for yes and no to YES and NO (lower case, as typed).
"""

from __future__ import annotations

import unicodedata

import click

from probe.i18n import N_, _

YES = frozenset({"y", "yes", "بله", "بلی", "آره", "آری"})
NO = frozenset({"n", "no", "نه", "خیر", "نخیر"})

#: after a consent question; a volunteer may type either language's words
YES_NO_SUFFIX = N_(" (yes/no) ")
#: after `probe purge`'s question: Enter alone is no
YES_NO_DEFAULT_NO_SUFFIX = N_(" [y/N]: ")
NOT_YES_NO = N_("please answer yes or no")

#: what a volunteer's keyboard may add to a word and that changes nothing: a trailing full stop
#: or exclamation mark, ZWNJ, and the Arabic tatweel (a stretched letter)
_IGNORED = str.maketrans("", "", "\u200c\u200d\u0640")
_TRAILING = ".!。؟?"


def answer_of(text: str) -> bool | None:
    """True for a yes, False for a no, None for anything else."""
    word = unicodedata.normalize("NFC", text).translate(_IGNORED).strip().rstrip(_TRAILING)
    word = word.strip().lower()
    if word in YES:
        return True
    if word in NO:
        return False
    return None


def ask_yes_no(question: str, *, default_no: bool = False, err: bool = True) -> bool:
    """Ask until the answer is a yes or a no (with `default_no`, Enter alone is a no); Ctrl-C
    or the end of input raise click.Abort. `question` is already translated."""

    def parse(text: str) -> bool:
        if default_no and not text.strip():
            return False
        found = answer_of(text)
        if found is None:
            raise click.BadParameter(_(NOT_YES_NO))
        return found

    suffix = _(YES_NO_DEFAULT_NO_SUFFIX if default_no else YES_NO_SUFFIX)
    result: bool = click.prompt(
        question,
        prompt_suffix=suffix,
        value_proc=parse,
        default="" if default_no else None,
        show_default=False,
        err=err,
    )
    return result
