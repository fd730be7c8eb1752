"""What a volunteer reads, in their language (English, the source language, or Persian), with
gettext catalogs; what a record stores, always in English.

For messages printed now (the summary, an error line, a help text):

    from probe.i18n import _, N_, ngettext

    print(_("Round {report_id}: {count} targets").format(report_id=rid, count=n))
    HELP = N_("Measure every target once.")   # marked at import time, translated at use: _(HELP)

`_` translates with the active language (`set_language`, from `--lang`; else the environment:
LANGUAGE, LC_ALL, LC_MESSAGES, LANG, as gettext reads them). Use `{name}` placeholders, never
f-strings or concatenation inside `_()`: the whole sentence is the msgid, so a translator can
order its words.

For text that is data first (a verdict's reason: English in the record, translated on screen),
build a message instead (probe/i18n/message.py): `M(template, **args)`, `P(singular, plural, n,
**args)`, `C(context, template, **args)`; `.english()` for the record, `.render(current())` for
the screen. docs/translating.md says how to add a message, update the catalog, add a language.
"""

from __future__ import annotations

from collections.abc import Sequence

from probe.i18n.catalog import (
    DOMAIN,
    LANGUAGES,
    Catalog,
    catalog,
    language_from_environment,
    normalise,
)
from probe.i18n.message import (
    ENGLISH,
    Arg,
    C,
    Clauses,
    M,
    Msg,
    Names,
    P,
    Raw,
    Said,
    Sentence,
    Text,
    Translator,
    sentence,
    text_of,
)

#: the keywords Babel extracts (pybabel extract -k ..., and the catalog test)
BABEL_KEYWORDS = {
    "_": None,
    "N_": None,
    "NP_": (1, 2),
    "ngettext": (1, 2),
    "pgettext": ((1, "c"), 2),
    "M": None,
    "P": (1, 2),
    "C": ((1, "c"), 2),
}

_active: Catalog | None = None


def set_language(language: str | None) -> Catalog:
    """Use `language` from now on (None: the environment's). Returns its catalog."""
    global _active
    _active = catalog(language if language else language_from_environment())
    return _active


def current() -> Catalog:
    """The active language's catalog (the environment's until `set_language` is called)."""
    return _active if _active is not None else set_language(None)


def language() -> str:
    return current().language


def _(message: str) -> str:
    """`message` in the active language."""
    return current().gettext(message)


def N_(message: str) -> str:
    """Marks `message` for the catalog without translating it (translate it later with `_`)."""
    return message


def NP_(singular: str, plural: str) -> tuple[str, str]:
    """Marks a message with a plural form for the catalog (translate it later with
    `ngettext`)."""
    return singular, plural


def ngettext(singular: str, plural: str, n: int) -> str:
    return current().ngettext(singular, plural, n)


def pgettext(context: str, message: str) -> str:
    return current().pgettext(context, message)


def joined(items: Sequence[str]) -> str:
    """Items named in a sentence, in the active language: "a", "a and b", "a, b and c"."""
    if len(items) < 2:
        return "".join(items)
    head = pgettext("list separator", ", ").join(items[:-1])
    return _("{items} and {last}").format(items=head, last=items[-1])


def one_of(items: Sequence[str]) -> str:
    """Alternatives named in a sentence, in the active language: "a, b or c"."""
    if len(items) < 2:
        return "".join(items)
    head = pgettext("list separator", ", ").join(items[:-1])
    return _("{items} or {last}").format(items=head, last=items[-1])


def render(text: Text) -> str:
    """`text` in the active language."""
    return text.render(current())


__all__ = [
    "BABEL_KEYWORDS",
    "DOMAIN",
    "ENGLISH",
    "LANGUAGES",
    "NP_",
    "N_",
    "Arg",
    "C",
    "Catalog",
    "Clauses",
    "M",
    "Msg",
    "Names",
    "P",
    "Raw",
    "Said",
    "Sentence",
    "Text",
    "Translator",
    "_",
    "catalog",
    "current",
    "joined",
    "language",
    "language_from_environment",
    "ngettext",
    "normalise",
    "one_of",
    "pgettext",
    "render",
    "sentence",
    "set_language",
    "text_of",
]
