"""Result files: the append-only JSON Lines writer and a tolerant reader for ours and OONI's."""

from __future__ import annotations

import gzip
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULT_SUFFIXES = (".json", ".jsonl", ".json.gz", ".jsonl.gz")


@dataclass(slots=True)
class SourcedObject:
    """One JSON object read from a file, or the reason a line could not be read."""

    source: str
    line: int
    obj: dict[str, Any] | None
    error: str | None = None


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")  # noqa: SIM115


def iter_json_objects(path: str | os.PathLike[str]) -> Iterator[SourcedObject]:
    """Objects in a .json/.jsonl file (plain or .gz): one JSON document, or JSON Lines.

    Never raises for bad content: a line that is not a JSON object comes back with `error`."""
    p = Path(path)
    source = str(p)
    try:
        with _open_text(p) as handle:
            first = handle.read(1)
            while first and first.isspace():
                first = handle.read(1)
            rest = handle.read() if first else ""
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        yield SourcedObject(source, 0, None, f"cannot read: {exc}")
        return
    text = first + rest
    stripped = text.strip()
    if not stripped:
        yield SourcedObject(source, 0, None, "empty file")
        return
    # A whole-file JSON document (OONI's single-measurement files, pretty-printed).
    if "\n" in stripped and stripped.startswith(("{", "[")):
        try:
            doc = json.loads(stripped)
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            yield SourcedObject(source, 1, doc)
            return
        if isinstance(doc, list):
            for index, item in enumerate(doc, 1):
                if isinstance(item, dict):
                    yield SourcedObject(source, index, item)
                else:
                    yield SourcedObject(source, index, None, "not a JSON object")
            return
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            yield SourcedObject(source, number, None, f"not JSON: {exc.msg}")
            continue
        if isinstance(obj, dict):
            yield SourcedObject(source, number, obj)
        else:
            yield SourcedObject(source, number, None, "not a JSON object")


def iter_result_files(paths: list[str]) -> Iterator[Path]:
    """Files given, and result files found recursively under directories given, sorted."""
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = [f for f in p.rglob("*") if f.is_file() and f.name.endswith(RESULT_SUFFIXES)]
            yield from sorted(found)
        else:
            yield p
