"""IP → ASN / country from MaxMind-format databases (`--geoip-db`, e.g. DB-IP's free lite files).

Several files may be given (an ASN file and a country file); each lookup merges what they know.
Used for the ASN of every DNS answer (consistency with the control and `expect_asn`), and by the
control server to tell a probe which network it measures from.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import maxminddb

from probe.addresses import parse_ip
from probe.observations import DNSQuery


@dataclass(frozen=True, slots=True)
class NetworkInfo:
    asn: int | None = None
    as_org_name: str | None = None
    cc: str | None = None


class GeoIPError(ValueError):
    """A database file that cannot be opened or is not a MaxMind DB."""


def _first(record: dict[str, Any], *paths: tuple[str, ...]) -> Any:
    for path in paths:
        value: Any = record
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value not in (None, ""):
            return value
    return None


class GeoIP:
    """Lookups over zero or more databases; with none, every answer is unknown."""

    def __init__(self, paths: tuple[str, ...] = ()) -> None:
        self.paths = paths
        self._readers: list[Any] = []
        for path in paths:
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

    def _lookup(self, ip: str) -> NetworkInfo:
        address = parse_ip(ip)
        if address is None or not self._readers:
            return NetworkInfo()
        asn = org = cc = None
        for reader in self._readers:
            try:
                record = reader.get(str(address))
            except ValueError:  # e.g. an IPv6 address in an IPv4-only database
                continue
            if not isinstance(record, dict):
                continue
            asn = asn or _first(record, ("autonomous_system_number",), ("asn",))
            org = org or _first(
                record, ("autonomous_system_organization",), ("as_org",), ("organization",)
            )
            cc = cc or _first(
                record,
                ("country", "iso_code"),
                ("country_code",),
                ("registered_country", "iso_code"),
            )
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
