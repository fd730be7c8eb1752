"""The command line: parse arguments, call the library, map errors to exit codes. Nothing else.

Exit status: 0 round completed (blocking found is data), 2 bad input (one line on stderr naming
file and line), 130 after SIGINT, 143 after SIGTERM, 1 anything else.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any

import click

from probe import __version__

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_BAD_INPUT = 2
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class BadInput(click.ClickException):
    """Bad target list, option or path: one line on stderr and exit status 2."""

    exit_code = EXIT_BAD_INPUT


def fail(message: str) -> None:
    click.echo(f"probe: error: {message}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="probe")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="PROBE_CONFIG",
    help="Config file with defaults (default: ~/.config/probe/config.toml).",
)
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """Is Telegram (and WhatsApp, Signal, Messenger) reachable from here? If not, how is it
    blocked? `probe run` measures; the result files are for researchers."""
    from pathlib import Path

    from probe import config

    sources: dict[str, dict[str, str]] = {}
    try:
        ctx.default_map = config.load(
            Path(config_path) if config_path else None,
            explicit=config_path is not None,
            sources=sources,
        )
    except config.ConfigError as exc:
        raise BadInput(str(exc)) from None
    ctx.meta[CONFIG_SOURCES] = sources


CONFIG_SOURCES = "probe.config_sources"


def option_error(param: str, value: object, message: str) -> BadInput:
    """A bad option value, named where it was given: on the command line (`--timeout -5:
    ...`), or in the config file (`config.toml:3: timeout = -5: ...`)."""
    ctx = click.get_current_context()
    option = "--" + next(
        (p.opts[0].lstrip("-") for p in ctx.command.params if p.name == param), param
    )
    if ctx.get_parameter_source(param) is click.core.ParameterSource.DEFAULT_MAP:
        section = "control" if ctx.command_path.endswith("control serve") else "run"
        where = ctx.find_root().meta.get(CONFIG_SOURCES, {}).get(section, {}).get(param)
        if where:
            return BadInput(f"{where} = {value!r}: {message}")
    return BadInput(f"{option} {value}: {message}")


# --- command modules register below (keep one block per command group) ---------------------


# --- probe analyze (probe/analysis.py, probe/ooni.py, probe/fingerprints.py) ----------------


@cli.command("analyze")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per record on stdout.")
@click.option(
    "--fingerprints",
    "fingerprint_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=str),
    metavar="FILE",
    help="Extra blocking fingerprints in the community CSV format (repeatable).",
)
def analyze_command(
    files: tuple[str, ...], as_json: bool, fingerprint_files: tuple[str, ...]
) -> int:
    """Recompute verdicts from stored records: ours, or OONI measurements (JSON, JSON Lines,
    plain or .gz). Files that hold no measurement are noted on stderr and skipped."""
    import json

    from probe.fingerprints import FingerprintDB, default_db
    from probe.ooni import AnalyzeNote, analyze_paths

    try:
        db = FingerprintDB.load(fingerprint_files) if fingerprint_files else default_db()
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    if fingerprint_files and db.skipped:
        click.echo(
            f"probe: {db.skipped} fingerprint rows skipped (first: {db.warnings[0]})", err=True
        )
    _refuse_special_files(files, "a measurement file")
    analysed = 0
    for item in analyze_paths(files, db):
        if isinstance(item, AnalyzeNote):
            click.echo(f"probe: {item.message}", err=True)
            continue
        analysed += 1
        click.echo(json.dumps(item.to_dict(), ensure_ascii=False) if as_json else item.text_line())
    if not analysed:
        raise BadInput(f"no measurements found in {len(files)} file(s)")
    return EXIT_OK


# --- probe report (probe/report.py) ---------------------------------------------------------


@cli.command("report")
@click.argument("results", nargs=-1, type=click.Path(path_type=str))
@click.option("--html", "html_path", type=click.Path(dir_okay=False), help="Write an HTML page.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Write rows as CSV.")
@click.option(
    "--parquet", "parquet_path", type=click.Path(dir_okay=False), help="Write rows as Parquet."
)
@click.option("--since", help="Keep runs at or after this UTC date/datetime (ISO).")
@click.option("--until", help="Keep runs before this UTC date/datetime (ISO).")
@click.option("--service", multiple=True, help="Keep this service (repeatable, or a,b).")
@click.option("--asn", multiple=True, help="Keep this network, AS1234 or 1234 (repeatable).")
@click.option("--cc", multiple=True, help="Keep this country code (repeatable).")
def report_command(
    results: tuple[str, ...],
    html_path: str | None,
    csv_path: str | None,
    parquet_path: str | None,
    since: str | None,
    until: str | None,
    service: tuple[str, ...],
    asn: tuple[str, ...],
    cc: tuple[str, ...],
) -> int:
    """Timelines and changes over time from result files and directories (default ./results):
    ours and OONI measurements, .json, .jsonl and .gz."""
    from probe import report

    _refuse_special_files(results, "a results path")
    try:
        filters = report.make_filters(since, until, service, asn, cc)
        built = report.build_report(list(results) or ["results"], filters)
        unmatched = built.unmatched_summary()
        if unmatched:  # a typo must not replace yesterday's page with an empty one
            raise report.ReportInputError(unmatched)
        if sys.stdout.isatty():
            from rich.console import Console

            report.print_rich(built, Console())
        else:
            click.echo(report.render_text(built), nl=False)
        if html_path:
            report.write_html(built, html_path)
        if csv_path:
            report.write_csv(built, csv_path)
        if parquet_path:
            report.write_parquet(built, parquet_path)
    except report.ReportInputError as exc:
        raise BadInput(str(exc)) from None
    return EXIT_OK


# --- probe targets (probe/targets.py, probe/citizenlab.py) ---------------------------------


def _report_problems(problems: list[str], what: str) -> None:
    """Every problem on stderr as `file:line: message`, then the one-line error (exit 2)."""
    for problem in problems:
        click.echo(problem, err=True)
    count = len(problems)
    raise BadInput(f"{count} problem{'s' if count != 1 else ''} in {what}")


@cli.group("targets")
def targets_group() -> None:
    """Check, show and import target lists."""


@targets_group.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
def targets_validate(paths: tuple[str, ...]) -> int:
    """Check list files (or directories of *.toml); print every problem as file:line: message."""
    from probe.targets import load_lists

    loaded = load_lists(paths)
    if loaded.problems:
        _report_problems(loaded.problems, "the target lists")
    lists, targets = len(loaded.lists), len(loaded.targets)
    click.echo(f"{lists} list{'s' if lists != 1 else ''}, {targets} targets: ok")
    return EXIT_OK


@targets_group.command("list")
@click.argument("paths", nargs=-1, type=click.Path())
def targets_list(paths: tuple[str, ...]) -> int:
    """Show the targets (default: the bundled lists), one per line: id, check, endpoints."""
    from probe.targets import bundled_list_paths, describe_targets, load_lists

    _refuse_special_files(paths, "a target list")
    loaded = load_lists(list(paths) or bundled_list_paths())
    if loaded.problems:
        _report_problems(loaded.problems, "the target lists")
    for line in describe_targets(loaded.targets):
        click.echo(line)
    return EXIT_OK


@targets_group.command("import-citizenlab")
@click.argument("csv_path", metavar="CSV", type=click.Path())
@click.option("-o", "--output", type=click.Path(), help="Write the list here (default: stdout).")
@click.option("--category", "categories", multiple=True, metavar="CODE", help="Keep this category.")
@click.option("--service", default="web", show_default=True, help="Service (and id prefix).")
@click.option("--name", "list_name", help="List name (default: citizenlab-<CSV file stem>).")
@click.option("--updated", metavar="YYYY-MM-DD", help="The list's `updated` date (default: today).")
def targets_import_citizenlab(
    csv_path: str,
    output: str | None,
    categories: tuple[str, ...],
    service: str,
    list_name: str | None,
    updated: str | None,
) -> int:
    """Convert a Citizen Lab test-list CSV into a target list (nothing is written on a problem)."""
    import datetime

    from probe.citizenlab import import_citizenlab, write_atomically

    try:
        updated_date = datetime.date.fromisoformat(updated) if updated else None
    except ValueError:
        raise BadInput(f"--updated {updated}: not a date (YYYY-MM-DD)") from None
    result = import_citizenlab(
        csv_path,
        categories=categories,
        service=service,
        list_name=list_name,
        updated=updated_date,
    )
    if result.problems:
        _report_problems(result.problems, f"{csv_path}; nothing written")
    if output is None:
        click.echo(result.text, nl=False)
    else:
        try:
            write_atomically(output, result.text)
        except OSError as exc:
            raise BadInput(f"{output}: cannot write: {exc.strerror or exc}") from None
        click.echo(f"{output}: {len(result.rows)} targets", err=True)
    return EXIT_OK


# --- probe run ----------------------------------------------------------------------------


def _parse_resolver(text: str | None) -> tuple[str, int] | None:
    if text is None:
        return None
    from probe.dns import parse_resolver

    try:
        return parse_resolver(text)
    except ValueError as exc:
        raise option_error("resolver", text, str(exc)) from None


def _refuse_special_files(paths: Iterable[str], what: str = "input") -> None:
    """A FIFO, socket or device given as a file is refused before anything opens it: reading
    one blocks or never ends (bad input, exit 2)."""
    import stat

    for path in paths:
        try:
            mode = os.stat(path).st_mode
        except OSError:
            continue  # missing files are reported by whoever reads them, with their reason
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise BadInput(f"{path}: not a regular file ({what} must be a file or a directory)")


def _check_control_urls(urls: tuple[str, ...]) -> None:
    """Every control URL is http(s)://host[:port][/path]: a typo must not silently become a
    round without a control."""
    from urllib.parse import urlsplit

    for url in urls:
        try:
            parts = urlsplit(url)
            port = parts.port  # raises ValueError for a bad port
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
            ok = ok and (port is None or 1 <= port <= 65535)
            ok = ok and not parts.query and not parts.fragment and " " not in url
        except ValueError:
            ok = False
        if not ok:
            raise option_error("controls", url, "use an http:// or https:// base URL")


def _check_ca_files(paths: tuple[str, ...]) -> None:
    from probe.tls import client_context

    _refuse_special_files(paths, "a CA file")
    try:
        client_context(paths)
    except (ValueError, OSError) as exc:
        raise option_error("ca_files", ", ".join(paths), str(exc)) from None


def _load_targets(paths: tuple[str, ...], only: tuple[str, ...]) -> tuple[list[Any], list[Any]]:
    """The lists and the selected targets; a problem in any list is bad input (exit 2)."""
    import fnmatch

    from probe.targets import bundled_list_paths, load_lists

    _refuse_special_files(paths, "a target list")
    loaded = load_lists(list(paths) or bundled_list_paths())
    if loaded.problems:
        more = (
            f" (and {len(loaded.problems) - 1} more problems)" if len(loaded.problems) > 1 else ""
        )
        raise BadInput(loaded.problems[0] + more)
    targets = list(loaded.targets)
    if only:
        selected = [t for t in targets if any(fnmatch.fnmatch(t.id, g) for g in only)]
        if not selected:
            raise BadInput(f"--only {' '.join(only)}: no target id matches")
        # The baselines of the lists always come along: they tell "offline" from "blocked".
        targets = [t for t in targets if t.is_baseline or t in selected]
    if not targets:
        raise BadInput("no targets to measure in " + (", ".join(paths) or "the bundled lists"))
    return list(loaded.lists), targets


@cli.command("run")
@click.argument("targets", nargs=-1, type=click.Path())
@click.option("--only", multiple=True, metavar="GLOB", help="Keep targets whose id matches.")
@click.option("--resolver", metavar="IP[:PORT]", help="The only DNS server used for the run.")
@click.option("--control", "controls", multiple=True, metavar="URL", help="Control server(s).")
@click.option("--control-token", envvar="PROBE_CONTROL_TOKEN", help="Bearer token.")
@click.option("--no-control", is_flag=True, help="Measure without a control server.")
@click.option("--out", "out_dir", default="results", show_default=True, type=click.Path())
@click.option("--timeout", type=float, default=10.0, show_default=True, help="Per step, s.")
@click.option("--concurrency", type=int, default=None, help="Flows in flight (default 1024).")
@click.option("--ca-file", "ca_files", multiple=True, type=click.Path(), help="Extra roots (PEM).")
@click.option("--geoip-db", "geoip_dbs", multiple=True, type=click.Path(), help="MaxMind DB.")
@click.option("--fingerprints", "fingerprint_files", multiple=True, type=click.Path())
@click.option("--source-address", metavar="IP", help="Local address to measure from.")
@click.option("--body-cap", type=int, default=64 * 1024, show_default=True, help="Bytes kept.")
@click.option("--every", metavar="DURATION", help="Repeat every DURATION (30m, 6h) with jitter.")
@click.option("--count", type=int, help="Stop after N rounds.")
@click.option("--json", "as_json", is_flag=True, help="One summary object per round on stdout.")
@click.option(
    "--country",
    metavar="CC",
    help="Where this probe is (a control seeing another "
    "country means the traffic goes through a VPN).",
)
@click.option(
    "--ip-discovery/--no-ip-discovery",
    default=True,
    show_default=True,
    help="Learn this machine's public address (STUN, HTTPS echo) so that it can be kept out "
    "of the results; with --no-ip-discovery every unknown address in pages is redacted.",
)
@click.option(
    "--stun",
    "stun_servers",
    multiple=True,
    metavar="HOST:PORT",
    help="STUN server for address discovery (repeatable; replaces the defaults).",
)
@click.option(
    "--ip-echo",
    "echo_urls",
    multiple=True,
    metavar="URL",
    help="HTTPS 'what is my IP' page for address discovery (repeatable; replaces the defaults).",
)
@click.option(
    "--own-net",
    "own_nets",
    multiple=True,
    metavar="CIDR",
    help="Accept an address in CIDR as this machine's own public address (test beds whose "
    "addresses are private or reserved).",
)
def run_command(
    targets: tuple[str, ...],
    only: tuple[str, ...],
    resolver: str | None,
    controls: tuple[str, ...],
    control_token: str | None,
    no_control: bool,
    out_dir: str,
    timeout: float,
    concurrency: int | None,
    ca_files: tuple[str, ...],
    geoip_dbs: tuple[str, ...],
    fingerprint_files: tuple[str, ...],
    source_address: str | None,
    body_cap: int,
    every: str | None,
    count: int | None,
    as_json: bool,
    country: str | None,
    ip_discovery: bool,
    stun_servers: tuple[str, ...],
    echo_urls: tuple[str, ...],
    own_nets: tuple[str, ...],
) -> int:
    """Measure every target once (or on a schedule) and write one record per target."""
    from probe import dns
    from probe.measure import DEFAULT_CONCURRENCY, MeasureConfig
    from probe.runner import RoundOptions, parse_duration

    if not timeout > 0 or timeout > 600:
        raise option_error("timeout", timeout, "must be more than 0 and at most 600 seconds")
    if concurrency is not None and not 1 <= concurrency <= 100_000:
        raise option_error("concurrency", concurrency, "must be between 1 and 100000")
    if count is not None and count < 1:
        raise BadInput(f"--count {count}: must be at least 1")
    if body_cap < 1024:
        raise option_error("body_cap", body_cap, "must be at least 1024 bytes")
    try:
        period = parse_duration(every) if every else None
    except ValueError as exc:
        raise BadInput(f"--every: {exc}") from None
    if count is not None and period is None and count > 1:
        raise BadInput("--count N needs --every DURATION")
    server = _parse_resolver(resolver)
    _check_ca_files(ca_files)
    if not out_dir.strip():
        raise option_error("out_dir", repr(out_dir), "name a results directory")
    if not no_control:
        _check_control_urls(controls)
    geoip_dbs = _geoip_databases(geoip_dbs).paths
    lists, selected = _load_targets(targets, only)
    if no_control:
        controls = ()
    if country is not None and not (len(country) == 2 and country.isalpha()):
        raise option_error("country", country, "use a two-letter country code such as IR")
    discovery = _discovery_options(ip_discovery, stun_servers, echo_urls, own_nets)
    options = RoundOptions(
        **discovery,
        measure=MeasureConfig(
            timeout=timeout,
            resolver=server,
            ca_files=tuple(ca_files),
            body_cap=body_cap,
            source_address=source_address,
            concurrency=concurrency or DEFAULT_CONCURRENCY,
        ),
        out_dir=out_dir,
        control_urls=() if no_control else tuple(controls),
        control_token=control_token,
        geoip_dbs=tuple(geoip_dbs),
        fingerprint_files=tuple(fingerprint_files),
        expected_cc=country.upper() if country else None,
        doh_urls=() if no_control else dns.PUBLIC_DOH_URLS,
    )
    from probe.console import run_and_report

    return run_and_report(lists, selected, options, every=period, count=count, as_json=as_json)


def _discovery_options(
    enabled: bool,
    stun_servers: tuple[str, ...],
    echo_urls: tuple[str, ...],
    own_nets: tuple[str, ...],
) -> dict[str, Any]:
    """Check the address-discovery options; the RoundOptions fields they set."""
    import ipaddress
    from urllib.parse import urlsplit

    stun: list[tuple[str, int]] = []
    for text in stun_servers:
        host, sep, port_text = text.strip().rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise option_error("stun_servers", text, "use HOST:PORT, e.g. stun.example.org:3478")
        stun.append((host, int(port_text)))
    for url in echo_urls:
        try:
            parts = urlsplit(url)
            ok = parts.scheme == "https" and bool(parts.hostname)
        except ValueError:
            ok = False
        if not ok:
            raise option_error("echo_urls", url, "use an https:// URL")
    for text in own_nets:
        try:
            ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise option_error("own_nets", text, "not a CIDR network") from None
    return {
        "ip_discovery": enabled,
        # None: the defaults (publicip), chosen by the round
        "stun_servers": tuple(stun) if stun or echo_urls else None,
        "echo_urls": tuple(echo_urls) if stun or echo_urls else None,
        "own_nets": tuple(own_nets),
    }


# --- probe control ------------------------------------------------------------------------


@cli.group("control")
def control_group() -> None:
    """The control server: measures the same targets from an uncensored network."""


@control_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8080, show_default=True)
@click.option(
    "--allow-net",
    "allow_nets",
    multiple=True,
    metavar="CIDR",
    help="Let it measure this private/reserved range (refused by default).",
)
@click.option("--token", envvar="PROBE_CONTROL_TOKEN", help="Require this bearer token.")
@click.option("--resolver", metavar="IP[:PORT]", help="The only DNS server the control uses.")
@click.option("--ca-file", "ca_files", multiple=True, type=click.Path(), help="Extra roots.")
@click.option("--geoip-db", "geoip_dbs", multiple=True, type=click.Path(), help="MaxMind DB.")
@click.option("--timeout", type=float, default=10.0, show_default=True, help="Per step, s.")
@click.option(
    "--max-concurrent",
    type=int,
    default=4,
    show_default=True,
    help="Requests measured at once; more get 503.",
)
@click.option("--log-client-addresses", is_flag=True, help="Put client IPs in the access log.")
def control_serve(
    host: str,
    port: int,
    allow_nets: tuple[str, ...],
    token: str | None,
    resolver: str | None,
    ca_files: tuple[str, ...],
    geoip_dbs: tuple[str, ...],
    timeout: float,
    max_concurrent: int,
    log_client_addresses: bool,
) -> int:
    """Serve POST /v1/measure and GET /v1/health."""
    import ipaddress

    from probe import control
    from probe.measure import MeasureConfig

    networks = []
    for text in allow_nets:
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise option_error("allow_nets", text, "not a CIDR network") from None
    if not 1 <= port <= 65535:
        raise option_error("port", port, "must be in 1..65535")
    if not timeout > 0 or timeout > 600:
        raise option_error("timeout", timeout, "must be more than 0 and at most 600 seconds")
    if max_concurrent < 1:
        raise BadInput(f"--max-concurrent {max_concurrent}: must be at least 1")
    _check_ca_files(ca_files)
    geoip_dbs = _geoip_databases(geoip_dbs).paths
    config = control.ControlServerConfig(
        measure=MeasureConfig(
            timeout=timeout, resolver=_parse_resolver(resolver), ca_files=tuple(ca_files)
        ),
        allow_nets=tuple(networks),
        token=token,
        geoip_dbs=tuple(geoip_dbs),
        max_concurrent_requests=max_concurrent,
    )
    try:
        control.serve(config, host, port, log_addresses=log_client_addresses)
    except OSError as exc:
        raise BadInput(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return EXIT_OK


# --- probe geoip (probe/geoip.py) ----------------------------------------------------------


def _geoip_databases(explicit: tuple[str, ...]) -> Any:
    """The databases `probe run` / `control serve` use (explicit > updated > shipped); an
    explicit file that does not open is bad input, an unusable updated one a warning."""
    from probe.geoip import GeoIP, GeoIPError, resolve_databases

    _refuse_special_files(explicit, "a GeoIP database")
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


@cli.group("geoip")
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
    from probe.geoip import GeoIPError, database_info, user_geoip_dir

    if not geoip_dbs:  # what `probe run` would get from the config file
        geoip_dbs = tuple((ctx.find_root().default_map or {}).get("run", {}).get("geoip_dbs", ()))
    databases = _geoip_databases(geoip_dbs)
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

    from probe import geoip

    for url in urls:
        problem = geoip.check_url(url)
        if problem:
            raise BadInput(f"--url {url}: {problem}")
    if not 0 < timeout <= 3600:
        raise BadInput(f"--timeout {timeout}: must be more than 0 and at most 3600 seconds")
    if not 1 <= max_mb <= 4096:
        raise BadInput(f"--max-mb {max_mb}: must be between 1 and 4096")
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


# --- probe schedule -----------------------------------------------------------------------


@cli.group("schedule")
def schedule_group() -> None:
    """Run the probe regularly (a systemd user timer, or a cron line)."""


@schedule_group.command("install", context_settings={"ignore_unknown_options": True})
@click.option("--every", required=True, metavar="DURATION", help="e.g. 30m, 1h, 6h.")
@click.argument("run_args", nargs=-1, type=click.UNPROCESSED)
def schedule_install(every: str, run_args: tuple[str, ...]) -> int:
    """Install a timer running `probe run RUN_ARGS...` every DURATION."""
    from pathlib import Path

    from probe import schedule
    from probe.runner import parse_duration

    try:
        seconds = parse_duration(every)
    except ValueError as exc:
        raise BadInput(f"--every: {exc}") from None
    if seconds < 300:
        raise BadInput(f"--every {every}: at least 5m between rounds, please")
    result = schedule.install(seconds, list(run_args), Path.cwd())
    click.echo(result.message)
    return EXIT_OK


@schedule_group.command("remove")
def schedule_remove() -> int:
    """Disable and delete the timer."""
    from probe import schedule

    click.echo(schedule.remove())
    return EXIT_OK


def main(argv: list[str] | None = None) -> Any:
    """Entry point: click's multi-line usage errors become one line and exit status 2."""
    try:
        result = cli.main(args=argv, prog_name="probe", standalone_mode=False)
    except click.exceptions.Abort:
        fail("interrupted")
        sys.exit(EXIT_SIGINT)
    except click.UsageError as exc:
        where = f" ({exc.ctx.command_path})" if exc.ctx is not None else ""
        fail(f"{exc.format_message()}{where}".replace("\n", " "))
        sys.exit(EXIT_BAD_INPUT)
    except click.ClickException as exc:
        fail(exc.format_message().replace("\n", " "))
        sys.exit(exc.exit_code)
    if isinstance(result, int):
        sys.exit(result)
    sys.exit(EXIT_OK)
