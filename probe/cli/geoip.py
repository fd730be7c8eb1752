"""`probe geoip show|update` (probe/vantage/geoip/), and the GeoIP databases `probe run` and
`probe control serve` use."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from probe.cli.common import EXIT_OK, BadInput, option_error, refuse_special_files

if TYPE_CHECKING:
    from probe.vantage.geoip import Databases


def geoip_databases(explicit: tuple[str, ...]) -> Databases:
    """The databases `probe run` / `control serve` use (explicit > updated > shipped); an
    explicit file that does not open is bad input, an unusable updated one a warning."""
    from probe.vantage.geoip import GeoIP, GeoIPError, resolve_databases

    refuse_special_files(explicit, "a GeoIP database")
    for path in explicit:
        try:
            GeoIP((path,)).close()
        except GeoIPError as exc:
            reason = str(exc).removeprefix(f"{path}: ")
            raise option_error("geoip_dbs", path, reason) from None
    databases = resolve_databases(explicit)
    for note in databases.notes:
        click.echo(f"probe: warning: {note}; using the shipped database instead", err=True)
    return databases


@click.group("geoip")
def geoip_group() -> None:
    """The IP → network (ASN) and country databases: which are in use, and updating them.

    `probe run` uses, in this order: files given with --geoip-db (or geoip_db in the config
    file); else files installed by `probe geoip update`; else the data shipped with probe.
    IP geolocation by DB-IP (https://db-ip.com); IP to ASN data from RouteViews and the NRO
    (CC BY 4.0).

    \b
    Examples:
      probe geoip show                  # the databases in use and their dates
      probe geoip update                # DB-IP's lite files of this month
      probe geoip update --dir /srv/geoip
      probe control serve --geoip-db /srv/geoip/asn.mmdb --geoip-db /srv/geoip/country.mmdb
      probe geoip update --url https://mirror.example.org/asn.mmdb.gz \\
                         --url https://mirror.example.org/country.mmdb.gz
    """


@geoip_group.command("show")
@click.option(
    "--geoip-db",
    "geoip_dbs",
    multiple=True,
    type=click.Path(),
    metavar="FILE",
    help="Show these files, as `probe run --geoip-db FILE` would use them.",
)
@click.pass_context
def geoip_show(ctx: click.Context, geoip_dbs: tuple[str, ...]) -> int:
    """Print the databases `probe run` uses, their data dates and where updates go."""
    from probe.vantage.geoip import GeoIPError, database_info, user_geoip_dir

    if not geoip_dbs:  # what `probe run` would get from the config file
        geoip_dbs = tuple((ctx.find_root().default_map or {}).get("run", {}).get("geoip_dbs", ()))
    databases = geoip_databases(geoip_dbs)
    click.echo(f"in use: {databases.description}")
    for path in databases.paths:
        try:
            info = database_info(path)
        except GeoIPError as exc:
            raise BadInput(str(exc)) from None
        installed = f", installed {info.installed}" if info.installed else ""
        click.echo(
            f"  {info.origin:<8} {path}\n"
            f"           {info.database_type}, data of {info.built or 'unknown date'}, "
            f"{info.size / 1e6:.1f} MB{installed}"
        )
    click.echo(f"updates (probe geoip update) go to {user_geoip_dir()}")
    return EXIT_OK


@geoip_group.command("update")
@click.option(
    "--url",
    "urls",
    multiple=True,
    metavar="URL",
    help="Download this .mmdb or .mmdb.gz instead of DB-IP's monthly lite files "
    "(repeatable: an ASN and a country database).",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="Install here instead of the per-user data directory.",
)
@click.option("--timeout", type=float, default=300.0, show_default=True, help="In all, s.")
@click.option(
    "--max-mb",
    type=int,
    default=256,
    show_default=True,
    help="Refuse a database larger than this (MB, downloaded or uncompressed).",
)
def geoip_update(urls: tuple[str, ...], directory: str | None, timeout: float, max_mb: int) -> int:
    """Download, check and install new IP → ASN and country databases.

    By default DB-IP's free lite files of this month (or last month's, early in a month).
    A file is installed only when it opens as a MaxMind database and knows the network of
    well-known addresses; a failed download keeps the old databases (exit 1).

    \b
    Examples:
      probe geoip update                      # into the per-user data directory
      probe geoip update --dir /srv/geoip     # for `control serve --geoip-db`
      probe geoip update --url https://mirror.example.org/asn.mmdb.gz \\
                         --url https://mirror.example.org/country.mmdb.gz
    """
    from pathlib import Path

    from probe.vantage import geoip

    _check_update_options(urls, timeout, max_mb)
    requests: list[tuple[str | None, list[str]]]
    if urls:
        requests = [(None, [url]) for url in urls]
    else:
        requests = list(geoip.default_candidates().items())
    target = Path(directory) if directory else geoip.user_geoip_dir()
    try:
        installed = geoip.update_databases(
            requests, target, max_bytes=max_mb * 1024 * 1024, timeout=timeout
        )
    except geoip.DirectoryError as exc:
        raise BadInput(str(exc)) from None
    except geoip.UpdateError as exc:
        raise click.ClickException(
            f"{exc}; nothing installed, the databases in use are unchanged"
        ) from None
    for item in installed:
        click.echo(
            f"installed {item.role} database {item.path} ({item.database_type}, data of "
            f"{item.built or 'unknown date'}, {item.size / 1e6:.1f} MB) from {item.url}"
        )
    if not urls:
        click.echo("IP geolocation by DB-IP (https://db-ip.com), CC BY 4.0")
    if directory and Path(directory).resolve() != geoip.user_geoip_dir().resolve():
        click.echo(f"not the default directory: use them with --geoip-db {target}/...")
    return EXIT_OK


def _check_update_options(urls: tuple[str, ...], timeout: float, max_mb: int) -> None:
    """`probe geoip update`'s options, checked before anything is downloaded."""
    from probe.vantage import geoip

    for url in urls:
        problem = geoip.check_url(url)
        if problem:
            raise BadInput(f"--url {url}: {problem}")
    if not 0 < timeout <= 3600:
        raise BadInput(f"--timeout {timeout}: must be more than 0 and at most 3600 seconds")
    if not 1 <= max_mb <= 4096:
        raise BadInput(f"--max-mb {max_mb}: must be between 1 and 4096")
