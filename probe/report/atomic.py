"""Outputs are written atomically: to a fresh temporary file in the same directory, then renamed
over the final path, so a failed or refused report never leaves a half-written file."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from probe.report.model import ReportInputError


def atomic_target(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """The final path, checked, and a fresh temporary name beside it (created by the writer, so
    the usual umask applies; renamed over the final path when complete)."""
    final = Path(path)
    if final.is_dir():
        raise ReportInputError(f"{final}: is a directory")
    if not final.parent.is_dir():
        raise ReportInputError(f"{final}: directory {final.parent} does not exist")
    return final, final.parent / f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"


def write_text_file(path: str | os.PathLike[str], text: str) -> None:
    """Write text atomically: a temporary file in the same directory, then rename."""
    final, temp = atomic_target(path)
    try:
        with open(temp, "x", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temp, final)
    except OSError as exc:
        raise ReportInputError(f"{final}: cannot write: {exc.strerror or exc}") from None
    finally:
        temp.unlink(missing_ok=True)
