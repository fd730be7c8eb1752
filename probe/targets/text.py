"""Text for problems: values quoted on one line, TOML type names, OS error messages."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

#: values quoted in problems are cut to this many characters
MAX_QUOTED = 200


def quote(text: str) -> str:
    """`text` in double quotes for a one-line message: quotes, backslashes and anything not
    printable (newlines, control and line-separator characters) escaped; long text shortened."""
    if len(text) > MAX_QUOTED:
        text = text[:MAX_QUOTED] + "…"
    return '"' + "".join("\\" + c if c in '"\\' else _printable(c) for c in text) + '"'


def _printable(char: str) -> str:
    if char.isprintable():
        return char
    code = ord(char)
    return (
        f"\\x{code:02x}"
        if code <= 0xFF
        else f"\\u{code:04x}"
        if code <= 0xFFFF
        else f"\\U{code:08x}"
    )


def one_line(message: str) -> str:
    """Defence in depth: a problem is always one line, whatever text it quotes."""
    return "".join(_printable(c) for c in message)


def type_name(value: Any) -> str:
    """The TOML name of a loaded value's type, with an article (JSON's null is "null")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, datetime):
        return "a date-time"
    if isinstance(value, date):
        return "a date"
    if isinstance(value, time):
        return "a time"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def jsonable(value: Any) -> Any:
    """The loaded TOML value with dates and times as ISO strings (for JSON records)."""
    if isinstance(value, dict):
        # a string (most values of a target's table) is its own answer: no call for it
        return {str(k): v if type(v) is str else jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, date | time):
        return value.isoformat()
    return value


def os_message(exc: BaseException) -> str:
    """An OS error as people read it: its strerror, else its text, else its type."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
