"""Record text made harmless for a terminal (`terminal_safe`) and clipped for one line (`clip`).

The HTML outputs escape with `html.escape` where they write; the CSV neutralises formulas in SQL
(`probe.report.tabular`)."""

from __future__ import annotations

import re

#: Whole terminal control sequences: CSI (ESC [ or C1 CSI), the string controls OSC, DCS, SOS,
#: PM and APC with their terminator (BEL, ST or C1 ST; OSC 52 writes the clipboard, OSC 0 the
#: window title, OSC 8 makes links), and other ESC sequences.
_ESCAPE_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)"
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]"
)
_LINE_BREAKS = re.compile(r"[\t\n\v\f\r\x85]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def terminal_safe(text: str) -> str:
    """One field or line of record text made harmless for a terminal: escape sequences removed
    whole, tab and line breaks turned into spaces, every other C0/C1 control character and DEL
    removed (whatever is left of a broken sequence is then plain text)."""
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub("", _LINE_BREAKS.sub(" ", _ESCAPE_SEQUENCE.sub("", text)))


def clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
