"""IP → ASN / country from MaxMind-format databases: `GeoIP(paths).lookup(ip)` and
`annotate(queries)` (`lookup`), which files a run uses, `--geoip-db` before those installed by
`probe geoip update` before the ones shipped in `probe/data/geoip` (`databases`:
`resolve_databases`, `describe`), and the bounded, validated, atomic download behind `probe
geoip update` (`update`: `update_databases`).
"""

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
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

#: `update`'s names, imported on first use: a run never updates, and the module costs ~4 M
#: instructions to import at every start-up
_UPDATE_NAMES = frozenset(
    {
        "DBIP_URL",
        "DEFAULT_MAX_BYTES",
        "DEFAULT_UPDATE_TIMEOUT",
        "SAMPLE_ADDRESSES",
        "DirectoryError",
        "Installed",
        "UpdateError",
        "check_url",
        "default_candidates",
        "update_databases",
        "validate_database",
    }
)


def __getattr__(name: str) -> Any:
    if name in _UPDATE_NAMES:
        from probe.vantage.geoip import update

        return getattr(update, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
