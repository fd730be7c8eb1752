"""IP → ASN / country lookups over MaxMind-format databases (`GeoIP`).

Several files may be in use (an ASN file and a country file); each lookup merges what they know,
the first file that knows a field wins. Used for the ASN of every DNS answer (consistency with
the control and `expect_asn`), the resolver's network, and by the control server to tell a
probe which network it measures from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

import maxminddb

from probe.addresses import parse_unmapped
from probe.observations import DNSQuery
from probe.vantage.geoip.databases import GeoIPError, describe


@dataclass(frozen=True, slots=True)
class NetworkInfo:
    asn: int | None = None
    as_org_name: str | None = None
    cc: str | None = None


def _first(record: dict[str, Any], *paths: tuple[str, ...]) -> Any:
    for path in paths:
        value: Any = record
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value not in (None, ""):
            return value
    return None


def fields(record: Any) -> tuple[Any, Any, Any]:
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
        text = str(address)  # once, not per database
        for reader in self._readers:
            try:
                record = reader.get(text)
            except ValueError:  # e.g. an IPv6 address in an IPv4-only database
                continue
            except maxminddb.InvalidDatabaseError:  # a damaged file: it knows nothing
                continue
            r_asn, r_org, r_cc = fields(record)
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
