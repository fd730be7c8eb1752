"""The bundled fingerprint files, parsed and indexed once per version of them: every start of
the probe would otherwise parse their 1,959 CSV rows and compute the body index again (about
255 M instructions, a sixth of the start-up cost of `probe run`); read back from the per-user
cache directory (probe/paths.py: `$PROBE_CACHE_DIR`, else e.g. `~/.cache/probe`) they cost
about 55 M (callgrind, 2026-12-06).

The cache is only ever a shortcut, never a source: its file is keyed by a digest of the bundled
files' bytes, of the code that parses and indexes them (rows.py, body.py, this module: a
change there must not meet rows cached by the old code), the cache `FORMAT` and the Python
version (marshal's format may change with it), and holds a checksum of its payload. Anything
else — no file, another key, a truncated or corrupt file, an unreadable or read-only directory,
any error while reading — means "parse the files", and the file is written again (best effort,
atomically: a temporary file, then os.replace, so that a reader never sees half a file and two
writers leave one whole file).

The payload is marshal of plain data only (tuples, frozensets, str, int): each row's fields and
each body pattern's `body_layout`. Regular expressions are compiled again from their pattern;
they passed the nested-quantifier check when the rows were parsed. The user's own files
(``--fingerprints``) are parsed on every load, as before.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import re
import stat
import sys
import zlib
from collections.abc import Sequence
from importlib import resources
from operator import attrgetter
from pathlib import Path
from typing import Any, NamedTuple

import probe.analysis.fingerprints.body as _body
import probe.analysis.fingerprints.rows as _rows
from probe.analysis.fingerprints.body import BodyLayout, body_layout
from probe.analysis.fingerprints.rows import (
    BUNDLED_FILES,
    FIELDS,
    Fingerprint,
    fingerprints_from_columns,
    parse_csv,
)
from probe.paths import user_cache_dir

#: Changes whenever what the payload holds, or what a parsed row is, changes.
FORMAT = 1
FILE_NAME = f"fingerprints-{FORMAT}-{sys.implementation.cache_tag}.bin"
_DIGEST = 32  # bytes of the key (BLAKE2b: the bundled files' identity)
_HEADER = _DIGEST + 4  # then a CRC-32 of the payload (a truncated or damaged file)
_MAX_BYTES = 64 << 20  # far above the real size (~0.2 MB): a larger file is not ours


class Bundled(NamedTuple):
    """The bundled files' fingerprints and warnings, and their body patterns' layouts."""

    fingerprints: list[Fingerprint]
    warnings: list[str]
    layouts: list[BodyLayout]
    from_cache: bool = False


def load_bundled(cache_dir: Path | None = None) -> Bundled:
    """The bundled files, from the cache in `cache_dir` (default: the user's) when it holds
    them, else parsed (and then cached)."""
    package = resources.files("probe.data")
    return load_files([package.joinpath(name).read_bytes() for name in BUNDLED_FILES], cache_dir)


def load_files(datas: Sequence[bytes], cache_dir: Path | None = None) -> Bundled:
    """`load_bundled` for these bytes of the bundled files (in BUNDLED_FILES' order)."""
    key = cache_key(datas)
    path = cache_file(cache_dir) if key is not None else None
    cached = _read(path, key) if path is not None and key is not None else None
    if cached is not None:
        return cached
    bundled = parse_bundled(datas)
    if path is not None and key is not None:
        _write(path, key, bundled)
    return bundled


def parse_bundled(datas: Sequence[bytes]) -> Bundled:
    """The bundled files parsed from their bytes (in BUNDLED_FILES' order)."""
    fingerprints: list[Fingerprint] = []
    warnings: list[str] = []
    for name, data in zip(BUNDLED_FILES, datas, strict=True):
        # What read_text(encoding="utf-8-sig") gives: universal newlines (the files use CRLF,
        # which matters inside a quoted field).
        text = data.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")
        rows, row_warnings = parse_csv(text, name)
        fingerprints.extend(rows)
        warnings.extend(row_warnings)
    layouts = [body_layout(fp) for fp in fingerprints if fp.location == "body"]
    return Bundled(fingerprints, warnings, layouts)


def cache_key(datas: Sequence[bytes]) -> bytes | None:
    """What a cache file must start with to hold these files' rows (None: no cache, the code
    that makes them cannot be read)."""
    digest = hashlib.blake2b(digest_size=_DIGEST)
    digest.update(f"probe fingerprints {FORMAT} {sys.version} {marshal.version}\n".encode())
    try:
        code = [Path(path).read_bytes() for path in code_files()]
    except (OSError, TypeError):
        return None
    # Code files by their names only: the same code installed elsewhere (another venv, a copy
    # of the package) shares the cache instead of rewriting it on every switch.
    names = (*BUNDLED_FILES, *(Path(path).name for path in code_files()))
    for name, data in zip(names, (*datas, *code), strict=True):
        digest.update(f"{name} {len(data)}\n".encode())
        digest.update(data)
    return digest.digest()


def code_files() -> tuple[str, ...]:
    """The modules whose code makes what is cached: the rows, the body layouts, the payload."""
    return (_rows.__file__, _body.__file__, __file__)


def cache_file(cache_dir: Path | None = None) -> Path | None:
    """The cache file in `cache_dir` (default: the user's; None when there is none)."""
    try:
        return (cache_dir if cache_dir is not None else user_cache_dir()) / FILE_NAME
    except Exception:  # e.g. no home directory: no cache, the files are parsed
        return None


def _read(path: Path, key: bytes) -> Bundled | None:
    try:
        # Non-blocking, and only a regular file is read: a FIFO or a device put in its place
        # must not hang the start of the probe.
        with open(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return None
            data = handle.read(_MAX_BYTES + 1)
    except OSError:
        return None
    if len(data) > _MAX_BYTES or data[:_DIGEST] != key:
        return None
    payload = memoryview(data)[_HEADER:]
    if zlib.crc32(payload).to_bytes(4, "big") != data[_DIGEST:_HEADER]:
        return None
    try:
        return _unpack(marshal.loads(payload))
    except Exception:  # whatever the file holds, a bad one only means "parse the files"
        return None


def _write(path: Path, key: bytes, bundled: Bundled) -> None:
    try:
        import tempfile

        payload = marshal.dumps(_pack(bundled))
        data = key + zlib.crc32(payload).to_bytes(4, "big") + payload
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(temporary, path)
        except BaseException:
            _unlink(temporary)
            raise
    except (OSError, ValueError):  # ValueError: marshal refused a value (none is expected)
        pass  # e.g. a read-only or full cache directory: the next start parses the files again


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _pack(bundled: Bundled) -> tuple[Any, ...]:
    fps = bundled.fingerprints
    # Equal values become one object (a scope, a location, a country set, a word of the body
    # index), which marshal then writes once and reads back as one object.
    same: dict[Any, Any] = {}
    columns = tuple(
        tuple(same.setdefault(value, value) for value in map(attrgetter(name), fps))
        for name in FIELDS[:-1]  # all but `regex`, compiled again from `pattern`
    )
    regexps = tuple(position for position, fp in enumerate(fps) if fp.regex is not None)
    layouts = tuple(
        (where, same.setdefault(key, key), same.setdefault(whole, whole), marks)
        for where, key, whole, marks in bundled.layouts
    )
    return (columns, regexps, tuple(bundled.warnings), layouts)


def _unpack(plain: Any) -> Bundled:
    columns, regexps, warnings, layouts = plain
    patterns = columns[FIELDS.index("pattern")]
    regexes: list[re.Pattern[str] | None] = [None] * len(patterns)
    for position in regexps:
        regexes[position] = re.compile(patterns[position])
    fingerprints = fingerprints_from_columns((*columns, regexes))
    if len(layouts) != columns[FIELDS.index("location")].count("body"):
        raise ValueError("body layouts do not match the rows")
    return Bundled(fingerprints, list(warnings), list(layouts), from_cache=True)
