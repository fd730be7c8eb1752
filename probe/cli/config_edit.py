"""Writing one table of the config file without touching the rest of it.

The config file is the volunteer's: it may hold comments, a control token and their own layout,
so it is never re-serialised. The table is replaced (or appended) as text, and the result is
parsed again: unless every other table reads back exactly as before, nothing is written.
"""

from __future__ import annotations

import os
import re
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from probe.i18n import _


class ConfigEditError(ValueError):
    """The table could not be written safely; the file is unchanged."""


def _header(name: str) -> re.Pattern[str]:
    return re.compile(rf"^\s*\[\s*{re.escape(name)}\s*\]\s*(#.*)?$")


_ANY_HEADER = re.compile(r"^\s*\[")


def _without_table(text: str, name: str) -> str:
    """`text` without the `[name]` table: its header line up to the next header line."""
    lines = text.splitlines(keepends=True)
    kept: list[str] = []
    inside = False
    for line in lines:
        if _header(name).match(line):
            inside = True
            continue
        if inside and _ANY_HEADER.match(line):
            inside = False
        if not inside:
            kept.append(line)
    return "".join(kept)


def replace_table(path: Path, name: str, body: str) -> None:
    """Make `[name]` in the TOML file at `path` hold exactly `body` (``key = value`` lines,
    comments allowed); create the file (mode 0600: it may later hold a token) when missing."""
    path = path.resolve() if path.is_symlink() else path  # a dotfiles link stays a link
    try:
        old_text = path.read_text(encoding="utf-8-sig") if path.exists() else ""
        old = tomllib.loads(old_text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigEditError(
            _("{path}: cannot read config file ({error})").format(path=path, error=exc)
        ) from None
    kept = _without_table(old_text, name).rstrip("\n")
    new_text = (kept + "\n\n" if kept else "") + f"[{name}]\n{body.rstrip()}\n"
    try:
        new = tomllib.loads(new_text)
    except tomllib.TOMLDecodeError:
        new = None
    expected: dict[str, Any] = {k: v for k, v in old.items() if k != name}
    if new is None or {k: v for k, v in new.items() if k != name} != expected:
        raise ConfigEditError(
            _("{path}: cannot add [{name}] without changing the rest of the file").format(
                path=path, name=name
            )
        )
    _write_atomically(path, new_text)


def _write_atomically(path: Path, text: str) -> None:
    """A reader (a scheduled run) sees the old file or the new one, never half of it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
        handle, tmp_name = tempfile.mkstemp(prefix=".config-", dir=path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as tmp:
                tmp.write(text)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.chmod(tmp_name, mode)
            os.replace(tmp_name, path)
        except BaseException:
            os.unlink(tmp_name)
            raise
    except OSError as exc:
        raise ConfigEditError(
            _("{path}: cannot write config file ({error})").format(path=path, error=exc.strerror)
        ) from None
