"""Tiny MaxMind-format databases for tests, written with mmdb-writer (the format MaxMind's own
reader, `maxminddb`, reads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmdb_writer import MMDBWriter
from netaddr import IPSet


def write_asn_country_db(path: Path, networks: dict[str, tuple[int, str, str]]) -> str:
    """networks: CIDR → (asn, organisation, country code), in one IPv6 database that also
    answers IPv4 (as DB-IP's and MaxMind's files do)."""
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="probe-test-asn-country")
    for cidr, (asn, org, cc) in networks.items():
        writer.insert_network(
            IPSet([cidr]),
            {
                "autonomous_system_number": asn,
                "autonomous_system_organization": org,
                "country": {"iso_code": cc},
            },
        )
    writer.to_db_file(str(path))
    return str(path)


def write_db(
    path: Path, networks: dict[str, dict[str, Any]], database_type: str = "probe-test"
) -> Path:
    """networks: CIDR → record, any shape (an ASN database, a country database, ...)."""
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type=database_type)
    for cidr, record in networks.items():
        writer.insert_network(IPSet([cidr]), record)
    writer.to_db_file(str(path))
    return path


def asn_record(asn: int, org: str) -> dict[str, Any]:
    """A record shaped like GeoLite2-ASN's and DB-IP's ASN lite."""
    return {"autonomous_system_number": asn, "autonomous_system_organization": org}


def country_record(cc: str) -> dict[str, Any]:
    """A record shaped like GeoLite2-Country's and DB-IP's country lite."""
    return {"country": {"iso_code": cc, "names": {"en": cc}}, "continent": {"code": "EU"}}
