"""The probe id: a random, pseudonymous name for this installation, written in every record so
that researchers can follow one volunteer's series (`probe report` computes change events per
probe id, network and target) without learning who the volunteer is.

It is `p-` and 16 characters of base32 (a-z, 2-7: 80 random bits from `secrets`), made on first
use and kept in the per-user data directory (`probe_id`, mode 0600). It is never derived from
anything of the machine (address, host name, MAC, machine id): it says only "the same
installation as before". `probe id rotate` replaces it, after which researchers can no longer
link new records to earlier ones; `probe purge` removes it with the rest.

The file is written to a temporary name and linked into place (`os.link` fails when the name
exists), so two first runs at once agree on one id and a reader never sees half an id.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
from pathlib import Path

from probe.paths import user_data_dir

#: The file in the data directory that holds the id (one line).
FILE_NAME = "probe_id"
#: What a probe id looks like (also in docs/record.schema.json, `probe_id`).
PATTERN = r"^p-[a-z2-7]{16}$"
_VALID = re.compile(r"p-[a-z2-7]{16}")
#: 10 random bytes are exactly 16 base32 characters (no padding).
_RANDOM_BYTES = 10


class ProbeIdError(ValueError):
    """The id file holds something that is not a probe id, or cannot be used (one line naming
    the file)."""


class ProbeIdStoreError(ProbeIdError):
    """The id file cannot be read or written (a read-only or missing data directory)."""


def is_probe_id(value: object) -> bool:
    """Whether `value` is a well-formed probe id."""
    return isinstance(value, str) and _VALID.fullmatch(value) is not None


def new_probe_id() -> str:
    """A fresh random id: nothing of the machine goes into it."""
    text = base64.b32encode(secrets.token_bytes(_RANDOM_BYTES)).decode("ascii")
    return "p-" + text.lower()


def id_path(data_dir: Path | None = None) -> Path:
    """Where the id is kept: `probe_id` in the data directory ($PROBE_DATA_DIR or the
    platform's)."""
    return (data_dir if data_dir is not None else user_data_dir()) / FILE_NAME


def read_probe_id(path: Path) -> str | None:
    """The stored id, or None when there is none yet; ProbeIdError when the file holds
    something else or cannot be read."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ProbeIdStoreError(
            f"{path}: cannot read the probe id: {exc.strerror or exc}"
        ) from None
    text = raw.decode("ascii", errors="replace").strip()
    if not is_probe_id(text):
        shown = text[:40] + ("…" if len(text) > 40 else "")
        raise ProbeIdError(
            f"{path}:1: probe_id: {shown!r} is not a probe id (p- and 16 characters a-z, 2-7); "
            "run `probe id rotate` to make a new one"
        )
    return text


def _write_new(path: Path, value: str, replace: bool) -> None:
    """Write `value` to a temporary file (0600, fsynced) and move it to `path`: linked when
    `replace` is false (an existing id wins: FileExistsError), renamed over it otherwise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{FILE_NAME}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(value + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(temp, path)
        else:
            os.link(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def load_or_create(path: Path | None = None) -> str:
    """This installation's id, made and stored on first use."""
    path = path or id_path()
    found = read_probe_id(path)
    if found is not None:
        return found
    value = new_probe_id()
    try:
        _write_new(path, value, replace=False)
    except FileExistsError:  # another run made it first: use that one
        found = read_probe_id(path)
        if found is not None:
            return found
        raise ProbeIdStoreError(f"{path}: the probe id vanished while it was made") from None
    except OSError as exc:
        raise ProbeIdStoreError(
            f"{path}: cannot store the probe id: {exc.strerror or exc}"
        ) from None
    return value


def rotate(path: Path | None = None) -> str:
    """Replace the id with a new random one (also when the file was broken or missing)."""
    path = path or id_path()
    value = new_probe_id()
    try:
        _write_new(path, value, replace=True)
    except OSError as exc:
        raise ProbeIdStoreError(
            f"{path}: cannot store the probe id: {exc.strerror or exc}"
        ) from None
    return value
