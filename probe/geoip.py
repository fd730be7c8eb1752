"""IP → ASN / country from MaxMind-format databases.

Which databases a run uses (`resolve_databases`), most important first:

1. files given with `--geoip-db` (or `geoip_db` in the config file): exactly those;
2. files installed by `probe geoip update` in the per-user data directory
   (`$PROBE_DATA_DIR/geoip`, else e.g. `~/.local/share/probe/geoip`), one per role;
3. the files shipped in the package (`probe/data/geoip`: DB-IP country lite and an ASN
   database built from RouteViews, NRO and DB-IP data; see SOURCES.md there).

Roles 2 and 3 combine per file: an updated ASN file with the shipped country file is fine.
Several files may be in use (an ASN file and a country file); each lookup merges what they
know, the first file that knows a field wins. Used for the ASN of every DNS answer (consistency
with the control and `expect_asn`), the resolver's network, and by the control server to tell
a probe which network it measures from.

`update_databases` downloads, validates and atomically installs new files (`probe geoip
update`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import tempfile
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import maxminddb

from probe.addresses import parse_unmapped
from probe.observations import DNSQuery

#: The files the package ships, and `probe geoip update` installs, in lookup order.
ROLES = ("asn", "country")
FILE_NAMES = {"asn": "asn.mmdb", "country": "country.mmdb"}
SHIPPED_DIR = Path(__file__).resolve().parent / "data" / "geoip"
#: Points the per-user data directory elsewhere (tests, or a probe run from a USB stick).
DATA_DIR_ENV = "PROBE_DATA_DIR"

#: DB-IP's free monthly lite files (CC BY 4.0; attribution "IP geolocation by DB-IP").
DBIP_URL = "https://download.db-ip.com/free/dbip-{kind}-lite-{month}.mmdb.gz"
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_UPDATE_TIMEOUT = 300.0
#: Well-known public addresses a complete database must know something about (local lookups
#: to validate a downloaded file; nothing is sent to them).
SAMPLE_ADDRESSES = ("1.1.1.1", "8.8.8.8", "9.9.9.9", "2606:4700:4700::1111", "2001:4860::8888")


@dataclass(frozen=True, slots=True)
class NetworkInfo:
    asn: int | None = None
    as_org_name: str | None = None
    cc: str | None = None


class GeoIPError(ValueError):
    """A database file that cannot be opened or is not a MaxMind DB."""


class UpdateError(Exception):
    """A download that failed or gave no usable database; nothing was installed."""


def _first(record: dict[str, Any], *paths: tuple[str, ...]) -> Any:
    for path in paths:
        value: Any = record
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value not in (None, ""):
            return value
    return None


def _fields(record: Any) -> tuple[Any, Any, Any]:
    """(asn, organisation, country) from a record of any of the common shapes: GeoLite2 /
    DB-IP ASN, GeoLite2 / DB-IP country and city, ip-location-db (`country_code`), IPinfo."""
    if not isinstance(record, dict):
        return None, None, None
    asn = _first(record, ("autonomous_system_number",), ("asn",))
    org = _first(record, ("autonomous_system_organization",), ("as_org",), ("organization",))
    cc = _first(
        record, ("country", "iso_code"), ("country_code",), ("registered_country", "iso_code")
    )
    return asn, org, cc


class GeoIP:
    """Lookups over zero or more databases; with none, every answer is unknown."""

    def __init__(self, paths: Sequence[str] = ()) -> None:
        self.paths = tuple(paths)
        self._readers: list[Any] = []
        for path in self.paths:
            try:
                self._readers.append(maxminddb.open_database(path))
            except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
                self.close()
                raise GeoIPError(f"{path}: not a readable MaxMind database ({exc})") from None
        self.lookup = lru_cache(maxsize=65536)(self._lookup)  # type: ignore[method-assign]

    def close(self) -> None:
        for reader in self._readers:
            reader.close()
        self._readers = []

    def __bool__(self) -> bool:
        return bool(self._readers)

    @cached_property
    def description(self) -> str:
        """Where the data comes from, for a record's annotations (`describe`)."""
        return describe(self.paths)

    def _lookup(self, ip: str) -> NetworkInfo:
        address = parse_unmapped(ip)  # ::ffff:a.b.c.d is looked up as a.b.c.d
        if address is None or not self._readers:
            return NetworkInfo()
        asn = org = cc = None
        for reader in self._readers:
            try:
                record = reader.get(str(address))
            except ValueError:  # e.g. an IPv6 address in an IPv4-only database
                continue
            except maxminddb.InvalidDatabaseError:  # a damaged file: it knows nothing
                continue
            r_asn, r_org, r_cc = _fields(record)
            asn, org, cc = asn or r_asn, org or r_org, cc or r_cc
        return NetworkInfo(
            asn=int(asn) if isinstance(asn, int | str) and str(asn).isdigit() else None,
            as_org_name=str(org) if org else None,
            cc=str(cc).upper() if cc else None,
        )

    def lookup(self, ip: str) -> NetworkInfo:  # replaced by a cached bound method in __init__
        return self._lookup(ip)

    def annotate(self, queries: list[DNSQuery]) -> None:
        """Fill in `asn`/`as_org_name` of every A/AAAA answer the databases know."""
        if not self._readers:
            return
        for query in queries:
            for answer in query.answers:
                if answer.ip and answer.asn is None:
                    info = self.lookup(answer.ip)
                    answer.asn = info.asn
                    answer.as_org_name = info.as_org_name


# --- which databases: explicit > updated > shipped -------------------------------------------


def user_data_dir() -> Path:
    """The per-user data directory: $PROBE_DATA_DIR, else the platform's (XDG_DATA_HOME)."""
    configured = os.environ.get(DATA_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return platformdirs.user_data_path("probe", appauthor=False)


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
        built = _epoch_date(meta.build_epoch)
        database_type = str(meta.database_type)
    finally:
        reader.close()
    origin = _origin(target)
    installed = datetime.fromtimestamp(stat.st_mtime, UTC).date() if origin == "updated" else None
    return DatabaseInfo(path, origin, database_type, built, installed, stat.st_size)


def _epoch_date(epoch: Any) -> date | None:
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


# --- probe geoip update ----------------------------------------------------------------------


def default_candidates(today: date | None = None) -> dict[str, list[str]]:
    """DB-IP's lite files for this month, then last month's (a new month's files appear a day
    or two into the month)."""
    today = today or datetime.now(UTC).date()
    this_month = today.replace(day=1)
    last_month = (this_month - timedelta(days=1)).replace(day=1)
    months = [this_month.strftime("%Y-%m"), last_month.strftime("%Y-%m")]
    return {role: [DBIP_URL.format(kind=role, month=month) for month in months] for role in ROLES}


def check_url(url: str) -> str | None:
    """None for an http(s) URL with a host, else what is wrong with it."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError as exc:
        return str(exc)
    if parts.scheme not in ("http", "https"):
        return "not an http:// or https:// URL"
    if not parts.hostname:
        return "no host in the URL"
    return None


class DirectoryError(UpdateError):
    """The install directory cannot be created or written (bad input, not a bad download)."""


class _HTTPStatus(UpdateError):
    def __init__(self, url: str, status: int) -> None:
        super().__init__(f"{url}: HTTP {status}")
        self.status = status


@dataclass(slots=True)
class Installed:
    role: str
    path: str
    url: str
    database_type: str
    built: date | None
    size: int


class _Sink:
    """Writes a download to a file, gunzipping it when it starts with gzip's magic bytes, and
    stops once more than `max_bytes` would be written (a small file may inflate to gigabytes)."""

    def __init__(self, out: Any, url: str, max_bytes: int) -> None:
        self.out, self.url, self.max_bytes = out, url, max_bytes
        self.head = b""
        self.gzip: bool | None = None
        self.inflater: Any = None
        self.in_member = False
        self.members = 0
        self.written = 0

    def _write(self, data: bytes) -> None:
        self.written += len(data)
        if self.written > self.max_bytes:
            raise UpdateError(f"{self.url}: more than {self.max_bytes} bytes (--max-mb)")
        self.out.write(data)

    def feed(self, data: bytes) -> None:
        if self.gzip is None:
            self.head += data
            if len(self.head) < 2:
                return
            data, self.head = self.head, b""
            self.gzip = data[:2] == b"\x1f\x8b"
            self.inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        if not self.gzip:
            self._write(data)
            return
        while data:
            self.in_member = True
            self._write(self.inflater.decompress(data, self.max_bytes - self.written + 1))
            if self.inflater.eof:  # a gzip member ended; another may follow
                self.members += 1
                self.in_member = False
                data = self.inflater.unused_data
                self.inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            else:
                data = self.inflater.unconsumed_tail

    def finish(self) -> None:
        if self.gzip is None:
            self._write(self.head)
        elif self.gzip and (self.in_member or not self.members):
            raise UpdateError(f"{self.url}: the gzip data is truncated")


def _fetch(
    client: Any, url: str, directory: Path, *, max_bytes: int, deadline: float
) -> tuple[Path, int]:
    """Stream `url` into a new temporary file in `directory` (gunzipped when gzipped): at
    most `max_bytes` on the wire and after decompression, and done by `deadline`."""
    import httpx

    try:
        fd, name = tempfile.mkstemp(dir=directory, prefix=".download-", suffix=".part")
    except OSError as exc:
        raise DirectoryError(f"{directory}: cannot write: {exc.strerror or exc}") from None
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            sink = _Sink(out, url, max_bytes)
            received = 0
            with client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise _HTTPStatus(url, response.status_code)
                for chunk in response.iter_raw():
                    received += len(chunk)
                    if received > max_bytes:
                        raise UpdateError(f"{url}: more than {max_bytes} bytes (--max-mb)")
                    if time.monotonic() > deadline:
                        raise UpdateError(f"{url}: not finished in time (--timeout)")
                    sink.feed(chunk)
            sink.finish()
            out.flush()
            os.fsync(out.fileno())
        return tmp, sink.written
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, zlib.error):
            raise UpdateError(f"{url}: not a valid gzip file ({exc})") from None
        if isinstance(exc, httpx.TimeoutException):
            raise UpdateError(f"{url}: timed out ({type(exc).__name__})") from None
        if isinstance(exc, httpx.HTTPError):
            raise UpdateError(f"{url}: {type(exc).__name__}: {exc}".rstrip(": ")) from None
        if isinstance(exc, OSError):
            raise UpdateError(
                f"{url}: cannot write in {directory}: {exc.strerror or exc}"
            ) from None
        raise


def validate_database(path: Path, url: str = "") -> tuple[str, str, date | None]:
    """(role, database_type, build date) of a downloaded file, or UpdateError: it must open
    as a MaxMind DB with sane metadata and know the ASN or country of well-known addresses
    (local lookups only)."""
    where = url or str(path)
    try:
        reader = maxminddb.open_database(str(path))
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
        raise UpdateError(f"{where}: not a MaxMind database ({exc})") from None
    try:
        meta = reader.metadata()
        now = time.time()
        if (
            meta.binary_format_major_version != 2
            or meta.ip_version not in (4, 6)
            or meta.record_size not in (24, 28, 32)
            or not meta.node_count > 0
        ):
            raise UpdateError(f"{where}: unexpected MaxMind metadata")
        if not 946684800 <= int(meta.build_epoch) <= now + 2 * 86400:  # 2000-01-01 .. now
            raise UpdateError(f"{where}: implausible build time {meta.build_epoch}")
        asn_known = cc_known = False
        for ip in SAMPLE_ADDRESSES:
            if meta.ip_version == 4 and ipaddress.ip_address(ip).version == 6:
                continue
            asn, _, cc = _fields(reader.get(ip))
            asn_known = asn_known or (isinstance(asn, int | str) and str(asn).isdigit())
            cc_known = cc_known or (isinstance(cc, str) and len(cc) == 2)
    except (ValueError, TypeError, maxminddb.InvalidDatabaseError) as exc:
        raise UpdateError(f"{where}: a damaged MaxMind database ({exc})") from None
    finally:
        reader.close()
    if not (asn_known or cc_known):
        raise UpdateError(
            f"{where}: knows neither the ASN nor the country of {SAMPLE_ADDRESSES[0]}"
        )
    role = "asn" if asn_known else "country"
    return role, str(meta.database_type), _epoch_date(meta.build_epoch)


def update_databases(
    requests: Sequence[tuple[str | None, Sequence[str]]],
    directory: Path | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout: float = DEFAULT_UPDATE_TIMEOUT,
) -> list[Installed]:
    """Download one database per request — (expected role or None, URLs tried in order, the
    next only after an HTTP 404) — validate them all, then install them all into `directory`
    (default: the user's) by atomic rename. Any failure raises UpdateError with nothing
    installed and the old files kept."""
    import httpx

    from probe import __version__

    directory = user_geoip_dir() if directory is None else directory
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DirectoryError(f"{directory}: cannot create: {exc.strerror or exc}") from None
    deadline = time.monotonic() + timeout
    fetched: dict[str, tuple[Path, Installed]] = {}
    client = httpx.Client(
        timeout=httpx.Timeout(min(timeout, 60.0), connect=min(timeout, 15.0)),
        follow_redirects=True,
        max_redirects=5,
        headers={"Accept-Encoding": "identity", "User-Agent": f"probe/{__version__}"},
    )
    try:
        for expected, urls in requests:
            tmp: Path | None = None
            for url in urls:
                try:
                    tmp, size = _fetch(
                        client, url, directory, max_bytes=max_bytes, deadline=deadline
                    )
                    break
                except _HTTPStatus as exc:
                    if exc.status != 404 or url == urls[-1]:
                        raise
            assert tmp is not None
            try:
                role, database_type, built = validate_database(tmp, url)
                if expected is not None and role != expected:
                    raise UpdateError(f"{url}: expected a {expected} database, got {role}")
                if role in fetched:
                    raise UpdateError(f"{url}: a second {role} database ({fetched[role][1].url})")
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            target = directory / FILE_NAMES[role]
            fetched[role] = (tmp, Installed(role, str(target), url, database_type, built, size))
        installed = []
        for tmp, item in fetched.values():
            tmp.chmod(0o644)
            os.replace(tmp, item.path)
            installed.append(item)
        _fsync_directory(directory)
        return installed
    except OSError as exc:
        raise UpdateError(f"{directory}: cannot install: {exc.strerror or exc}") from None
    finally:
        client.close()
        for tmp, _ in fetched.values():
            tmp.unlink(missing_ok=True)


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
