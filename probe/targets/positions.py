"""Where each table, key and array element of a TOML text starts, and where tomllib's syntax
errors are: `tomllib` keeps no positions, so the list loader asks this scanner of the source text
for the line of a problem."""

from __future__ import annotations

import re
from bisect import bisect_right
from typing import TYPE_CHECKING

from probe.targets.schema import Position

if TYPE_CHECKING:
    import tomllib

_TOML_ERROR_POSITION = re.compile(
    r"\s*\((?:at line (?P<line>\d+), column (?P<column>\d+)|at end of document)\)\s*\Z"
)

# The position scanner's tokens, matched with regular expressions rather than a character at
# a time in Python: loading 2,000 targets took 145 ms, 60 of them in the scanner.
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_BLANK = re.compile(r"[ \t]*")
_BLANK_LINES = re.compile(r"(?:[ \t\r\n]|#[^\n]*)*")  # whitespace, newlines and comments
_SCALAR = re.compile(r"[^,\]}\n#]*")  # a number, date, boolean... up to what ends a value
_NEWLINE = re.compile(r"\n")


def toml_error(exc: tomllib.TOMLDecodeError, text: str) -> tuple[int, str]:
    """tomllib's own position (line, column) of a syntax error, and its message without it."""
    message = str(exc)
    match = _TOML_ERROR_POSITION.search(message)
    if match is None:
        return 1, message
    bare = message[: match.start()]
    if match.group("line"):
        return int(match.group("line")), f"{bare} (column {match.group('column')})"
    last_line = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
    return last_line, f"{bare} (at end of file)"


def scan_positions(text: str) -> dict[Position, int]:
    """Map structural paths to 1-based line numbers in valid TOML `text`.

    A path is a tuple of keys and array indices, e.g. ``("targets", 2, "ports", 1)`` for the
    second port of the third ``[[targets]]``. Best effort: whatever was mapped before an
    unexpected construct is kept, and callers fall back to the enclosing table's line.
    """
    scanner = _PositionScanner(text)
    try:
        scanner.document()
    except (_ScanError, IndexError, ValueError, RecursionError):
        pass
    return scanner.lines


class _ScanError(Exception):
    pass


class _PositionScanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.lines: dict[Position, int] = {}
        self.newlines = [m.start() for m in _NEWLINE.finditer(text)]
        self.array_tables: dict[Position, int] = {}  # [[x]] path -> how many seen so far

    def line(self) -> int:
        return bisect_right(self.newlines, self.i - 1) + 1

    def peek(self, n: int = 1) -> str:
        return self.text[self.i : self.i + n]

    def skip_blank(self) -> None:
        self.i = _BLANK.match(self.text, self.i).end()  # type: ignore[union-attr]  # always

    def skip_blank_lines(self) -> None:
        """Whitespace, newlines and comments (as between statements or array items)."""
        self.i = _BLANK_LINES.match(self.text, self.i).end()  # type: ignore[union-attr]

    def document(self) -> None:
        current: Position = ()
        while True:
            self.skip_blank_lines()
            if self.i >= len(self.text):
                return
            line = self.line()
            if self.peek(2) == "[[":
                self.i += 2
                keys = self.key()
                self.expect("]]")
                parent = self.resolve(keys[:-1])
                array_path = (*parent, keys[-1])
                count = self.array_tables.get(array_path, 0)
                self.array_tables[array_path] = count + 1
                self.lines.setdefault(array_path, line)
                current = (*array_path, count)
                self.lines[current] = line
            elif self.peek() == "[":
                self.i += 1
                keys = self.key()
                self.expect("]")
                current = self.resolve(keys)
                self.lines.setdefault(current, line)
            else:
                self.key_value(current)

    def resolve(self, keys: list[str]) -> Position:
        """A table header's path, descending into the latest element of arrays of tables."""
        path: Position = ()
        for key in keys:
            path = (*path, key)
            if path in self.array_tables:
                path = (*path, self.array_tables[path] - 1)
        return path

    def expect(self, token: str) -> None:
        self.skip_blank()
        if self.peek(len(token)) != token:
            raise _ScanError(token)
        self.i += len(token)

    def key_value(self, table: Position) -> None:
        line = self.line()
        keys = self.key()
        path = table
        for key in keys:
            path = (*path, key)
            self.lines.setdefault(path, line)
        self.expect("=")
        self.value(path)

    def key(self) -> list[str]:
        keys: list[str] = []
        while True:
            self.skip_blank()
            c = self.peek()
            if c == '"':
                raw = self.string()
                # Imported here: only a quoted key needs it, and only when a list has a problem.
                import tomllib

                keys.append(tomllib.loads(f"k = {raw}")["k"])
            elif c == "'":
                keys.append(self.string()[1:-1])
            else:
                bare = _BARE_KEY.match(self.text, self.i)
                if bare is None:
                    raise _ScanError("key")
                self.i = bare.end()
                keys.append(bare.group())
            self.skip_blank()
            if self.peek() != ".":
                return keys
            self.i += 1

    def string(self) -> str:
        """Skip one string (basic, literal, or either multi-line); return its source text."""
        start = self.i
        quote = self.peek()
        if self.peek(3) == quote * 3:
            end = self.text.find(quote * 3, self.i + 3)
            while quote == '"' and end >= 0 and _escaped(self.text, end):
                end = self.text.find(quote * 3, end + 1)
            if end < 0:
                raise _ScanError("string")
            end += 3
            while self.text[end : end + 1] == quote:  # up to two quotes may end the content
                end += 1
            self.i = end
        else:
            end = self.text.find(quote, self.i + 1)
            while quote == '"' and end >= 0 and _escaped(self.text, end):
                end = self.text.find(quote, end + 1)
            if end < 0:
                raise _ScanError("string")
            self.i = end + 1
        return self.text[start : self.i]

    def value(self, path: Position) -> None:
        self.skip_blank()
        c = self.peek()
        if c in ('"', "'"):
            self.string()
        elif c == "[":
            self.i += 1
            index = 0
            while True:
                self.skip_blank_lines()
                if self.peek() == "]":
                    self.i += 1
                    return
                self.lines[(*path, index)] = self.line()
                self.value((*path, index))
                self.skip_blank_lines()
                if self.peek() == ",":
                    self.i += 1
                    index += 1
                elif self.peek() != "]":
                    raise _ScanError("array")
        elif c == "{":
            self.i += 1
            self.skip_blank()
            if self.peek() == "}":
                self.i += 1
                return
            while True:
                self.key_value(path)
                self.skip_blank()
                if self.peek() == ",":
                    self.i += 1
                elif self.peek() == "}":
                    self.i += 1
                    return
                else:
                    raise _ScanError("inline table")
        else:
            start = self.i
            self.i = _SCALAR.match(self.text, self.i).end()  # type: ignore[union-attr]
            if self.i == start:
                raise _ScanError("value")


def _escaped(text: str, index: int) -> bool:
    """True if the character at `index` is preceded by an odd number of backslashes."""
    backslashes = 0
    while index - backslashes - 1 >= 0 and text[index - backslashes - 1] == "\\":
        backslashes += 1
    return backslashes % 2 == 1
