#!/usr/bin/env python3
"""Build the IP → ASN / country databases shipped in `probe/data/geoip/`.

Reads only local files: the ip-location-db project's `asn` package (CSV ranges from RouteViews,
the NRO and DB-IP, CC BY 4.0) and its `dbip-country-mmdb` package (DB-IP country lite, CC BY
4.0), each unpacked into a directory. Never downloads anything.

    python tools/build_geoip.py ASN_PACKAGE_DIR COUNTRY_PACKAGE_DIR [--out probe/data/geoip]

Writes into OUT:
  asn.mmdb      the ASN ranges as a MaxMind DB whose records look like GeoLite2-ASN's
                ({"autonomous_system_number": 13335, "autonomous_system_organization": "..."}),
                IPv6 tree with IPv4 under ::/96, written with mmdb-writer
  country.mmdb  DB-IP's country file, copied unchanged ({"country_code": "AU"})
  SOURCES.md    what the files are, their versions, licences and the attribution text
  LICENSE-*     the licence notices that came with the data

The output is reproducible: the same inputs give byte-identical files (the MaxMind build time
is taken from the package version, not from the clock).

Conversion rules (also written to SOURCES.md):
  - ranges that share an ASN and organisation and touch are merged before conversion;
  - where two ranges overlap (one case in 2.3.2026061719), the later row wins the overlap;
  - private, reserved and documentation ASNs (0, 23456, 64496-131071, 4200000000 and up)
    are left out: they name no public network, and an unknown ASN is better than a wrong one.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import ipaddress
import json
import shutil
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mmdb_writer import MMDBWriter
from netaddr import IPSet

ASN_CSVS = ("asn-ipv4.csv", "asn-ipv6.csv")
COUNTRY_MMDB = "dbip-country.mmdb"
# Licence notices as named in the packages → the name they get next to the databases.
ASN_LICENCES = {
    "DBIP-LICENSE": "LICENSE-DBIP-ASN",
    "ROUTEVIEWS-LICENSE": "LICENSE-ROUTEVIEWS",
    "NRO_LICENSE": "LICENSE-NRO",
    "MODIFICATIONS": "MODIFICATIONS-ASN",
}
COUNTRY_LICENCES = {"DBIP-LICENSE": "LICENSE-DBIP-COUNTRY"}

Range = tuple[int, int, int, str]  # first, last (inclusive, as integers), asn, organisation


class BuildError(Exception):
    pass


def reserved_asn(asn: int) -> bool:
    """0, AS_TRANS, documentation, private use and reserved numbers (RFC 5398, 6793, 6996,
    7300, 7607): none of them names a public network."""
    return asn in (0, 23456) or 64496 <= asn <= 131071 or asn >= 4200000000


def version_time(version: str) -> datetime:
    """`2.3.2026061719` → 2026-06-17 19:00 UTC (the packages' versions end in YYYYMMDDHH)."""
    stamp = version.rsplit(".", 1)[-1]
    try:
        return datetime.strptime(stamp, "%Y%m%d%H").replace(tzinfo=UTC)
    except ValueError:
        raise BuildError(f"package version {version!r} does not end in YYYYMMDDHH") from None


def package_version(directory: Path) -> str:
    try:
        return str(json.loads((directory / "package.json").read_text("utf-8"))["version"])
    except (OSError, ValueError, KeyError) as exc:
        raise BuildError(f"{directory / 'package.json'}: no version ({exc})") from None


def read_ranges(path: Path, version: int) -> tuple[list[Range], int]:
    """The rows of one CSV as sorted integer ranges, and how many rows were left out."""
    rows: list[Range] = []
    dropped = 0
    with path.open(newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.reader(handle), 1):
            if len(row) != 4:
                raise BuildError(f"{path}:{line}: expected start,end,asn,org, got {row!r}")
            try:
                first, last = (ipaddress.ip_address(row[0]), ipaddress.ip_address(row[1]))
                asn = int(row[2])
            except ValueError as exc:
                raise BuildError(f"{path}:{line}: {exc}") from None
            if first.version != version or last.version != version or int(last) < int(first):
                raise BuildError(f"{path}:{line}: not an IPv{version} range: {row[0]}-{row[1]}")
            if reserved_asn(asn):
                dropped += 1
                continue
            rows.append((int(first), int(last), asn, row[3].strip()))
    rows.sort(key=lambda r: (r[0], r[1]))
    return rows, dropped


def normalise(rows: list[Range]) -> tuple[list[Range], int]:
    """Clip overlaps (the later row wins) and merge touching ranges with the same content."""
    out: list[Range] = []
    overlaps = 0
    for first, last, asn, org in rows:
        if out and first <= out[-1][1]:
            overlaps += 1
            p_first, p_last, p_asn, p_org = out.pop()
            if p_first < first:
                out.append((p_first, first - 1, p_asn, p_org))
            if p_last > last:  # the later row sits inside the earlier one: keep its tail
                out.append((first, last, asn, org))
                out.append((last + 1, p_last, p_asn, p_org))
                continue
        if out and out[-1][1] + 1 == first and out[-1][2:] == (asn, org):
            out[-1] = (out[-1][0], last, asn, org)
        else:
            out.append((first, last, asn, org))
    return out, overlaps


def cidrs(first: int, last: int, version: int) -> Iterator[str]:
    address = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    for network in ipaddress.summarize_address_range(address(first), address(last)):
        yield str(network)


class _Writer(MMDBWriter):
    """mmdb-writer stamps the wall clock as build time; a fixed time makes builds repeatable."""

    def __init__(self, build_epoch: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.build_epoch = build_epoch

    def _build_meta(self) -> dict[str, Any]:
        meta = super()._build_meta()
        meta["build_epoch"] = self.build_epoch
        return meta


def write_asn_mmdb(
    tables: Iterable[tuple[int, list[Range]]], out: Path, version: str, built: datetime
) -> int:
    writer = _Writer(
        int(built.timestamp()),
        ip_version=6,
        ipv4_compatible=True,
        database_type="ip-location-db-ASN",
        languages=["en"],
        description={
            "en": f"IP to ASN from RouteViews, NRO and DB-IP (CC BY 4.0), "
            f"ip-location-db asn {version}"
        },
        int_type="u32",
    )
    networks = 0
    for ip_version, rows in tables:
        for first, last, asn, org in rows:
            block = list(cidrs(first, last, ip_version))
            networks += len(block)
            writer.insert_network(
                IPSet(block),
                {"autonomous_system_number": asn, "autonomous_system_organization": org},
            )
    tmp = out.with_suffix(".tmp")
    writer.to_db_file(str(tmp))
    tmp.replace(out)
    return networks


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


SOURCES = """\
# IP → ASN and country data shipped with probe

IP geolocation by DB-IP (https://db-ip.com). IP to ASN data from RouteViews
(https://www.routeviews.org) and from the NRO (https://www.nro.net), with DB-IP.
Both databases are licensed under the Creative Commons Attribution 4.0 International
licence (CC BY 4.0, https://creativecommons.org/licenses/by/4.0/); the notices that came
with the data are in the LICENSE-* files next to this one.

Generated by `tools/build_geoip.py` on the inputs below; do not edit by hand.

## asn.mmdb

- What: IP address ranges (IPv4 and IPv6) → autonomous system number and organisation.
- From: the ip-location-db project (https://github.com/sapics/ip-location-db), `asn`
  package, version {asn_version} (data of {asn_date}): `asn-ipv4.csv` and `asn-ipv6.csv`.
  It merges RouteViews (IPv4 routing tables), the five RIRs' delegation statistics published
  by the NRO, and DB-IP's IP to ASN Lite database (most organisation names), in that order of
  priority (see MODIFICATIONS-ASN).
- Licence: CC BY 4.0 — RouteViews (LICENSE-ROUTEVIEWS), NRO (LICENSE-NRO), DB-IP
  (LICENSE-DBIP-ASN).
- Our modifications: converted from CSV ranges to a MaxMind DB (IPv6 tree, IPv4 under ::/96)
  whose records have the GeoLite2-ASN shape (`autonomous_system_number`,
  `autonomous_system_organization`); touching ranges with the same content merged; where
  two ranges overlap the later row wins ({overlaps} overlap(s)); {dropped} range(s) with a
  private, reserved or documentation ASN left out; {networks} networks. The build time in
  the metadata is the data's date, {asn_date}, so that builds are reproducible.
- sha256: {asn_sha}

## country.mmdb

- What: IP address ranges (IPv4 and IPv6) → country (`country_code`, ISO 3166-1 alpha-2).
- From: DB-IP's IP to Country Lite database (https://db-ip.com/db/download/ip-to-country-lite),
  as packaged by the ip-location-db project (`dbip-country-mmdb` package, version
  {country_version}, data of {country_date}), file `dbip-country.mmdb`, copied unchanged.
- Licence: CC BY 4.0 — DB-IP (LICENSE-DBIP-COUNTRY; the notice as shipped names the "IP to
  City Lite" database, the terms are the same for the country file).
- sha256: {country_sha}

## Updating

`probe geoip update` installs DB-IP's current monthly lite files in the user's data directory;
they take precedence over these files. To refresh the shipped copies, unpack newer packages
and run `python tools/build_geoip.py ASN_DIR COUNTRY_DIR`.
"""


def build(asn_dir: Path, country_dir: Path, out: Path) -> dict[str, Any]:
    for needed in [asn_dir / name for name in ASN_CSVS] + [country_dir / COUNTRY_MMDB]:
        if not needed.is_file():
            raise BuildError(f"{needed}: missing")
    asn_version = package_version(asn_dir)
    country_version = package_version(country_dir)
    asn_time = version_time(asn_version)
    country_time = version_time(country_version)
    out.mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    tables = []
    dropped = overlaps = 0
    for name, ip_version in zip(ASN_CSVS, (4, 6), strict=True):
        rows, skipped = read_ranges(asn_dir / name, ip_version)
        rows, clipped = normalise(rows)
        dropped += skipped
        overlaps += clipped
        tables.append((ip_version, rows))
    networks = write_asn_mmdb(tables, out / "asn.mmdb", asn_version, asn_time)
    asn_seconds = time.monotonic() - started

    shutil.copyfile(country_dir / COUNTRY_MMDB, out / "country.mmdb")
    for directory, names in ((asn_dir, ASN_LICENCES), (country_dir, COUNTRY_LICENCES)):
        for source, target in names.items():
            if not (directory / source).is_file():
                raise BuildError(f"{directory / source}: missing licence notice")
            text = (directory / source).read_text("utf-8").rstrip("\n") + "\n"
            (out / target).write_text(text, "utf-8")

    (out / "SOURCES.md").write_text(
        SOURCES.format(
            asn_version=asn_version,
            asn_date=asn_time.strftime("%Y-%m-%d %H:00 UTC"),
            country_version=country_version,
            country_date=country_time.strftime("%Y-%m-%d %H:00 UTC"),
            overlaps=overlaps,
            dropped=dropped,
            networks=networks,
            asn_sha=sha256(out / "asn.mmdb"),
            country_sha=sha256(out / "country.mmdb"),
        ),
        "utf-8",
    )
    return {
        "asn_seconds": round(asn_seconds, 1),
        "ranges": sum(len(rows) for _, rows in tables),
        "networks": networks,
        "dropped": dropped,
        "overlaps": overlaps,
        "asn_bytes": (out / "asn.mmdb").stat().st_size,
        "country_bytes": (out / "country.mmdb").stat().st_size,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("asn_dir", type=Path, help="the unpacked ip-location-db asn package")
    parser.add_argument("country_dir", type=Path, help="the unpacked dbip-country-mmdb package")
    default_out = Path(__file__).resolve().parent.parent / "probe" / "data" / "geoip"
    parser.add_argument("--out", type=Path, default=default_out, help="output directory")
    args = parser.parse_args(argv)
    try:
        stats = build(args.asn_dir, args.country_dir, args.out)
    except BuildError as exc:
        print(f"build_geoip: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
