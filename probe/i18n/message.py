"""Messages that stay data until someone reads them: an English template (the gettext msgid)
and its arguments, rendered in English for the record and in the reader's language for display.

A verdict's reason is built from these, never from concatenated strings: each template is a
whole clause or phrase whose word order a translator decides (Persian puts the verb last), and
an argument is either a technical token (an address, a domain, a failure string such as
`connection_reset`, a number: shown as it is in every language) or another message (a nested
phrase such as "the TLS handshake for web.telegram.org", translated on its own).

`M("{what} to {label} failed ({failure})", what=..., label=..., failure=...)` is a message;
`P(singular, plural, n, ...)` one whose template depends on a count; `C(context, template)`
one whose msgid needs a context to be translated right. `Names` is a list of items ("a, b, c
and 2 more"), `Clauses` clauses joined by a semicolon, `Sentence` the reason as a sentence
(clauses joined, the first letter capitalised, a full stop). `english()` gives the English
text, byte for byte what the record holds; `render(translator)` the reader's language.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, TypeAlias


class Translator(Protocol):
    """What rendering needs of a language (a `gettext.NullTranslations` plus two facts)."""

    language: str
    #: the script has letter case: a sentence's first letter is capitalised
    capitalize: bool

    def gettext(self, message: str, /) -> str: ...
    def ngettext(self, singular: str, plural: str, n: int, /) -> str: ...
    def pgettext(self, context: str, message: str, /) -> str: ...


class Text(Protocol):
    """Anything that renders: a message, a list of names, clauses, a sentence."""

    def english(self) -> str: ...
    def render(self, tr: Translator, /) -> str: ...


#: an argument: a technical token (str), a number, or nested text
Arg: TypeAlias = "str | int | Text"


class _English:
    """The source language: every msgid is its own translation."""

    language = "en"
    capitalize = True

    def gettext(self, message: str, /) -> str:
        return message

    def ngettext(self, singular: str, plural: str, n: int, /) -> str:
        return singular if n == 1 else plural

    def pgettext(self, context: str, message: str, /) -> str:
        return message


ENGLISH: Translator = _English()


class _NotAString:
    """Text is not a str: formatting it into an f-string would put its repr in a reason."""

    __slots__ = ()

    def __str__(self) -> str:
        raise TypeError(f"{type(self).__name__} is text: use .english() or .render(translator)")

    def __format__(self, spec: str) -> str:
        return self.__str__()


def _english(value: int | Text) -> str:
    return str(value) if isinstance(value, int) else value.english()


def _arg(value: Arg, tr: Translator) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    return value.render(tr)


class Msg(_NotAString):
    """One translatable template and its arguments (a clause or a phrase). Immutable by
    convention (a plain class with slots: the analysis makes many, a frozen dataclass costs
    twice the time)."""

    __slots__ = ("args", "context", "count", "plural", "template")

    def __init__(
        self,
        template: str,
        args: tuple[tuple[str, Arg], ...] = (),
        plural: str | None = None,
        count: int = 0,
        context: str | None = None,
    ) -> None:
        self.template = template
        self.args = args
        #: with `count`: the plural template (ngettext); `count` chooses
        self.plural = plural
        self.count = count
        #: the msgctxt, when the same English needs different translations
        self.context = context

    def _key(self) -> tuple[object, ...]:
        return (self.template, self.args, self.plural, self.count, self.context)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Msg) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"Msg({self.template!r}, {self.args!r})"

    def english(self) -> str:
        # the record's text, once per verdict of every record: the short way (no catalog)
        values = {
            key: value if isinstance(value, str) else _english(value) for key, value in self.args
        }
        template = self.plural if self.plural is not None and self.count != 1 else self.template
        return template.format_map(values)

    def render(self, tr: Translator, /) -> str:
        if self.plural is not None:
            template = tr.ngettext(self.template, self.plural, self.count)
            source = self.template if self.count == 1 else self.plural
        elif self.context is not None:
            template, source = tr.pgettext(self.context, self.template), self.template
        else:
            template, source = tr.gettext(self.template), self.template
        values = {key: _arg(value, tr) for key, value in self.args}
        try:
            return template.format_map(values)
        except (KeyError, IndexError, ValueError, AttributeError):
            # a broken translation (a placeholder misspelt) never breaks the output
            return source.format_map(values)


def M(template: str, /, **args: Arg) -> Msg:
    """A message: `template` is the English text and the msgid; `{name}` placeholders."""
    return Msg(template, tuple(args.items()))


def P(singular: str, plural: str, count: int, /, **args: Arg) -> Msg:
    """A message whose template depends on `count` (also available as `{count}`)."""
    return Msg(singular, (("count", count), *args.items()), plural, count)


def C(context: str, template: str, /, **args: Arg) -> Msg:
    """A message with a msgctxt: the same English needing different translations."""
    return Msg(template, tuple(args.items()), context=context)


@dataclass(frozen=True, slots=True)
class Raw(_NotAString):
    """Text that has no template (an English reason read back from a record): shown as it is."""

    text: str

    def english(self) -> str:
        return self.text

    def render(self, tr: Translator, /) -> str:
        return self.text


class Said(str):
    """English text that keeps its message: a plain str wherever English is wanted (a log, a
    test, a record), rendered in the reader's language where it is shown (`text_of`)."""

    message: Text

    def __new__(cls, message: Text) -> Said:
        said = super().__new__(cls, message.english())
        said.message = message
        return said


def text_of(value: str) -> Text:
    """The message behind `value` (a `Said`), else `value` as untranslatable text."""
    return value.message if isinstance(value, Said) else Raw(value)


def _list_separator(tr: Translator) -> str:
    return tr.pgettext("list separator", ", ")


def _clause_separator(tr: Translator) -> str:
    return tr.pgettext("clause separator", "; ")


@dataclass(frozen=True, slots=True)
class Names(_NotAString):
    """Items named in a list: "a, b, c and 2 more" (at most `limit`; all when None),
    "nothing" when empty. Repeated items are named once."""

    items: tuple[Arg, ...]
    limit: int | None = None

    @classmethod
    def of(cls, items: Iterable[Arg], limit: int | None = None) -> Names:
        return cls(tuple(dict.fromkeys(items)), limit)

    def english(self) -> str:
        return self.render(ENGLISH)

    def render(self, tr: Translator, /) -> str:
        if not self.items:
            return M("nothing").render(tr)
        limit = len(self.items) if self.limit is None else self.limit
        shown = _list_separator(tr).join(_arg(item, tr) for item in self.items[:limit])
        if len(self.items) <= limit:
            return shown
        more = M("{names} and {count} more", names=shown, count=len(self.items) - limit)
        return more.render(tr)


@dataclass(frozen=True, slots=True)
class Clauses(_NotAString):
    """Clauses joined by a semicolon, inside a larger text (no capital, no full stop)."""

    parts: tuple[Text, ...]

    def english(self) -> str:
        return "; ".join(part.english() for part in self.parts)

    def render(self, tr: Translator, /) -> str:
        return _clause_separator(tr).join(part.render(tr) for part in self.parts)


@dataclass(frozen=True, slots=True)
class Sentence(_NotAString):
    """The clauses of a reason as one sentence: each clause's whitespace collapsed and its
    trailing full stops dropped, joined by semicolons, the first letter capitalised (when the
    first word is a lower-case word and the language has letter case), a full stop at the
    end. Empty clauses are left out; no clause at all is the empty string."""

    parts: tuple[Text, ...]

    def english(self) -> str:
        return self._join([part.english() for part in self.parts], "; ", True)

    def render(self, tr: Translator, /) -> str:
        rendered = [part.render(tr) for part in self.parts]
        return self._join(rendered, _clause_separator(tr), tr.capitalize)

    @staticmethod
    def _join(rendered: list[str], separator: str, capitalize: bool) -> str:
        text = separator.join(" ".join(p.split()).rstrip(".") for p in rendered if p and p.strip())
        if not text:
            return ""
        first_word = text.split(" ", 1)[0]
        if capitalize and first_word.isalpha() and first_word.islower():
            text = text[0].upper() + text[1:]
        return text + "."


def sentence(*parts: Text | None) -> Sentence:
    """The reason made of `parts` (None and empty parts are left out when rendering)."""
    return Sentence(tuple(p for p in parts if p is not None))
