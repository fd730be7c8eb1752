"""Which databases a run uses, and what they are.

`resolve_databases`, most important first:

1. files given with `--geoip-db` (or `geoip_db` in the config file): exactly those;
2. files installed by `probe geoip update` in the per-user data directory
   (`$PROBE_DATA_DIR/geoip`, else e.g. `~/.local/share/probe/geoip`), one per role;
3. the files shipped in the package (`probe/data/geoip`: DB-IP country lite and an ASN
   database built from RouteViews, NRO and DB-IP data; see SOURCES.md there).

Roles 2 and 3 combine per file: an updated ASN file with the shipped country file is fine.
`database_info` and `describe` say what a file is, for `probe geoip show` and for records.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import maxminddb

# re-exported: the data directory is the probe's, not only GeoIP's
from probe.paths import DATA_DIR_ENV as DATA_DIR_ENV
from probe.paths import user_data_dir as user_data_dir

#: The files the package ships, and `probe geoip update` installs, in lookup order.
ROLES = ("asn", "country")
FILE_NAMES = {"asn": "asn.mmdb", "country": "country.mmdb"}
SHIPPED_DIR = Path(__file__).resolve().parents[2] / "data" / "geoip"


class GeoIPError(ValueError):
    """A database file that cannot be opened or is not a MaxMind DB."""


def user_geoip_dir() -> Path:
    """Where `probe geoip update` installs databases."""
    return user_data_dir() / "geoip"


def shipped_paths() -> tuple[str, ...]:
    return tuple(
        str(SHIPPED_DIR / FILE_NAMES[role])
        for role in ROLES
        if (SHIPPED_DIR / FILE_NAMES[role]).is_file()
    )


@dataclass(frozen=True, slots=True)
class Databases:
    """The databases a run uses: `paths` in lookup order, `description` for records, and
    `notes` (installed files that could not be used) for the volunteer."""

    paths: tuple[str, ...]
    origin: str  # "explicit", "updated", "shipped", "mixed" or "none"
    description: str
    notes: tuple[str, ...] = ()


def _readable(path: Path) -> str | None:
    """None when `path` opens as a MaxMind DB, else why not."""
    try:
        maxminddb.open_database(str(path)).close()
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
        return str(exc) or type(exc).__name__
    return None


def resolve_databases(explicit: Sequence[str] = (), user_dir: Path | None = None) -> Databases:
    """The databases to use. Explicit files are used as given (`GeoIP` reports a bad one);
    otherwise each role takes the updated file when it opens, else the shipped one."""
    if explicit:
        paths = tuple(str(p) for p in explicit)
        return Databases(paths, "explicit", describe(paths))
    directory = user_geoip_dir() if user_dir is None else user_dir
    chosen: list[str] = []
    origins: set[str] = set()
    notes: list[str] = []
    for role in ROLES:
        installed = directory / FILE_NAMES[role]
        if installed.is_file():
            problem = _readable(installed)
            if problem is None:
                chosen.append(str(installed))
                origins.add("updated")
                continue
            notes.append(f"{installed}: not used, not a readable MaxMind database ({problem})")
        shipped = SHIPPED_DIR / FILE_NAMES[role]
        if shipped.is_file():
            chosen.append(str(shipped))
            origins.add("shipped")
    paths = tuple(chosen)
    origin = origins.pop() if len(origins) == 1 else ("mixed" if origins else "none")
    return Databases(paths, origin, describe(paths), tuple(notes))


@dataclass(frozen=True, slots=True)
class DatabaseInfo:
    path: str
    origin: str  # "shipped", "updated" or "explicit"
    database_type: str
    built: date | None
    installed: date | None
    size: int


def _origin(path: Path) -> str:
    resolved = path.resolve()
    if resolved.parent == SHIPPED_DIR:
        return "shipped"
    with contextlib.suppress(OSError):
        if resolved.parent == user_geoip_dir().resolve():
            return "updated"
    return "explicit"


def database_info(path: str) -> DatabaseInfo:
    """What `probe geoip show` prints about one file (raises GeoIPError if unreadable)."""
    target = Path(path)
    try:
        stat = target.stat()
        reader = maxminddb.open_database(path)
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
        raise GeoIPError(f"{path}: not a readable MaxMind database ({exc})") from None
    try:
        meta = reader.metadata()
        built = epoch_date(meta.build_epoch)
        database_type = str(meta.database_type)
    finally:
        reader.close()
    origin = _origin(target)
    installed = datetime.fromtimestamp(stat.st_mtime, UTC).date() if origin == "updated" else None
    return DatabaseInfo(path, origin, database_type, built, installed, stat.st_size)


def epoch_date(epoch: Any) -> date | None:
    try:
        return datetime.fromtimestamp(int(epoch), UTC).date()
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def describe(paths: Sequence[str]) -> str:
    """A short description of the data behind `paths`, e.g. "shipped DB-IP/RouteViews/NRO data
    of 2026-06", "updated 2026-12-03 (data of 2026-12-01)" or "--geoip-db asn.mmdb". File names
    only, never directories (a home directory names its owner)."""
    if not paths:
        return "none"
    infos: list[DatabaseInfo | None] = []
    for path in paths:
        try:
            infos.append(database_info(path))
        except GeoIPError:
            infos.append(None)
    if any(i is None or i.origin == "explicit" for i in infos):
        return "--geoip-db " + ", ".join(Path(p).name for p in paths)
    known = [i for i in infos if i is not None]
    shipped = [i for i in known if i.origin == "shipped"]
    updated = [i for i in known if i.origin == "updated"]
    parts = []
    if updated:
        installed = min((i.installed for i in updated if i.installed), default=None)
        built = min((i.built for i in updated if i.built), default=None)
        text = f"updated {installed or 'unknown'} (data of {built or 'unknown date'})"
        if shipped:
            text += " for " + ", ".join(Path(i.path).stem for i in updated)
        parts.append(text)
    if shipped:
        built = min((i.built for i in shipped if i.built), default=None)
        month = built.strftime("%Y-%m") if built else "unknown date"
        text = f"shipped DB-IP/RouteViews/NRO data of {month}"
        if updated:
            text += " for " + ", ".join(Path(i.path).stem for i in shipped)
        parts.append(text)
    return "; ".join(parts)
