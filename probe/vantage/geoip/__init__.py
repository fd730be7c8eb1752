"""IP → ASN / country from MaxMind-format databases: `GeoIP(paths).lookup(ip)` and
`annotate(queries)` (`lookup`), which files a run uses, `--geoip-db` before those installed by
`probe geoip update` before the ones shipped in `probe/data/geoip` (`databases`:
`resolve_databases`, `describe`), and the bounded, validated, atomic download behind `probe
geoip update` (`update`: `update_databases`).
"""

from probe.vantage.geoip.databases import (
    DATA_DIR_ENV,
    FILE_NAMES,
    ROLES,
    SHIPPED_DIR,
    DatabaseInfo,
    Databases,
    GeoIPError,
    database_info,
    describe,
    resolve_databases,
    shipped_paths,
    user_data_dir,
    user_geoip_dir,
)
from probe.vantage.geoip.lookup import GeoIP, NetworkInfo
from probe.vantage.geoip.update import (
    DBIP_URL,
    DEFAULT_MAX_BYTES,
    DEFAULT_UPDATE_TIMEOUT,
    SAMPLE_ADDRESSES,
    DirectoryError,
    Installed,
    UpdateError,
    check_url,
    default_candidates,
    update_databases,
    validate_database,
)

__all__ = [
    "DATA_DIR_ENV",
    "DBIP_URL",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_UPDATE_TIMEOUT",
    "FILE_NAMES",
    "ROLES",
    "SAMPLE_ADDRESSES",
    "SHIPPED_DIR",
    "DatabaseInfo",
    "Databases",
    "DirectoryError",
    "GeoIP",
    "GeoIPError",
    "Installed",
    "NetworkInfo",
    "UpdateError",
    "check_url",
    "database_info",
    "default_candidates",
    "describe",
    "resolve_databases",
    "shipped_paths",
    "update_databases",
    "user_data_dir",
    "user_geoip_dir",
    "validate_database",
]
