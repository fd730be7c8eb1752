"""A reader for the plain shape of a target list, line by line, for a fifth of `tomllib`'s cost.

`tomllib` is a pure-Python parser: ~0.2 M instructions a target, half of loading a list and,
for a list of thousands, a visible share of what `probe run` spends per measurement. Lists
are written in a small part of TOML: `[list]`, `[[targets]]`, and one `key = value` a line,
the values basic strings without escapes, decimal integers, booleans, dates and one-line
arrays of those. `parse_plain` reads exactly that part and gives what `tomllib.loads` gives
for it; anything else (escapes, inline comments, dotted keys, floats, a key defined twice,
any other table, ...) gives None and the caller asks `tomllib`, so that every problem is
still found and worded by it. tests/test_plain_toml.py compares the two on the bundled lists
and on thousands of damaged variants.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

#: characters a basic string holds as it is: not the quote, the backslash (an escape) or a
#: control character other than tab (tomllib refuses those)
_CHARS = r'[^"\\\x00-\x08\x0a-\x1f\x7f]*'
_INTEGER = r"[+-]?(?:0|[1-9][0-9]*)"
_STRING = re.compile(f'"({_CHARS})"')
_INTEGER_RE = re.compile(_INTEGER)
_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_ITEM = re.compile(f'[ \\t]*(?:"({_CHARS})"|({_INTEGER}))[ \\t]*(,?)')
#: any line of the plain shape, in one match (a list has thousands): blank or a comment; a
#: key with a basic string (group 2) or another value (group 3, read by `_value`); a
#: `[[targets]]` header (group 4); a `[list]` header (group 5)
_ANY_LINE = re.compile(
    r"[ \t]*(?:#[^\x00-\x08\x0a-\x1f\x7f]*"
    f'|([A-Za-z0-9_-]+)[ \\t]*=[ \\t]*(?:"({_CHARS})"|(.*?))'
    r"|(\[\[targets\]\])|(\[list\]))?[ \t]*"
)


class _NotPlain(Exception):
    """The text is not of the plain shape: tomllib reads it."""


def parse_plain(text: str) -> dict[str, Any] | None:
    """What `tomllib.loads(text)` returns, when `text` is of the plain shape; else None."""
    try:
        return _parse(text)
    except _NotPlain:
        return None


def _parse(text: str) -> dict[str, Any]:
    document: dict[str, Any] = {}
    table: dict[str, Any] | None = None
    if text.endswith("\r"):
        raise _NotPlain  # a carriage return ends a line only before a line feed
    for line in text.split("\n"):
        if line.endswith("\r"):
            line = line[:-1]
        match = _ANY_LINE.fullmatch(line)
        if match is None:
            raise _NotPlain
        key, string, other, targets_header, list_header = match.groups()
        if key is not None:
            if table is None or key in table:
                raise _NotPlain  # a top-level key, or a key defined twice
            table[key] = string if string is not None else _value(other)
        elif targets_header is not None:
            table = {}
            document.setdefault("targets", []).append(table)
        elif list_header is not None:
            if "list" in document:
                raise _NotPlain
            table = document["list"] = {}
    if not document:
        raise _NotPlain
    return document


def _value(text: str) -> Any:
    match = _STRING.fullmatch(text)
    if match is not None:
        return match.group(1)
    if _INTEGER_RE.fullmatch(text):
        return int(text)
    if text == "true" or text == "false":
        return text == "true"
    if text.startswith("["):
        return _array(text)
    match = _DATE.fullmatch(text)
    if match is not None:
        try:
            return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
        except ValueError:
            raise _NotPlain from None
    raise _NotPlain


def _array(text: str) -> list[Any]:
    """A one-line array of basic strings and integers (a trailing comma allowed)."""
    items: list[Any] = []
    position, end = 1, len(text) - 1
    if not text.endswith("]"):
        raise _NotPlain
    while True:
        while position < end and text[position] in " \t":
            position += 1
        if position == end:
            return items
        match = _ITEM.match(text, position, end)
        if match is None:
            raise _NotPlain
        string, integer, comma = match.groups()
        items.append(string if integer is None else int(integer))
        position = match.end()
        if not comma and position != end:
            raise _NotPlain
