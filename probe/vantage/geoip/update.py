"""`probe geoip update`: download, validate and atomically install new database files.

Every download is bounded (bytes on the wire and after decompression, one deadline), validated
as a MaxMind database that knows well-known addresses (local lookups only), and installed only
when every requested file is good; otherwise nothing changes.
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
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import maxminddb

from probe.vantage.geoip.databases import FILE_NAMES, ROLES, epoch_date, user_geoip_dir
from probe.vantage.geoip.lookup import fields

#: DB-IP's free monthly lite files (CC BY 4.0; attribution "IP geolocation by DB-IP").
DBIP_URL = "https://download.db-ip.com/free/dbip-{kind}-lite-{month}.mmdb.gz"
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_UPDATE_TIMEOUT = 300.0
#: Well-known public addresses a complete database must know something about (local lookups
#: to validate a downloaded file; nothing is sent to them).
SAMPLE_ADDRESSES = ("1.1.1.1", "8.8.8.8", "9.9.9.9", "2606:4700:4700::1111", "2001:4860::8888")


class UpdateError(Exception):
    """A download that failed or gave no usable database; nothing was installed."""


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
            asn, _, cc = fields(reader.get(ip))
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
    return role, str(meta.database_type), epoch_date(meta.build_epoch)


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
            tmp, item = _download(client, expected, urls, directory, fetched, max_bytes, deadline)
            fetched[item.role] = (tmp, item)
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


def _download(
    client: Any,
    expected: str | None,
    urls: Sequence[str],
    directory: Path,
    fetched: dict[str, tuple[Path, Installed]],
    max_bytes: int,
    deadline: float,
) -> tuple[Path, Installed]:
    """One request of `update_databases`: the first of `urls` that is not a 404, downloaded
    into a temporary file in `directory` and validated (of the `expected` role, and of a role
    not `fetched` yet)."""
    tmp: Path | None = None
    for url in urls:
        try:
            tmp, size = _fetch(client, url, directory, max_bytes=max_bytes, deadline=deadline)
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
    return tmp, Installed(role, str(target), url, database_type, built, size)


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
