"""The command line: parse arguments, call the library, map errors to exit codes. Nothing else.

Exit status: 0 round completed (blocking found is data), 2 bad input (one line on stderr naming
file and line), 130 after SIGINT, 143 after SIGTERM, 1 anything else.
"""

from __future__ import annotations

import sys
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
def cli() -> None:
    """Is Telegram (and WhatsApp, Signal, Messenger) reachable from here? If not, how is it
    blocked? `probe run` measures; the result files are for researchers."""


# --- command modules register below (keep one block per command group) ---------------------


# --- probe run ----------------------------------------------------------------------------


def _parse_resolver(text: str | None) -> tuple[str, int] | None:
    if text is None:
        return None
    from probe.dns import parse_resolver

    try:
        return parse_resolver(text)
    except ValueError as exc:
        raise BadInput(f"--resolver: {exc}") from None


def _check_ca_files(paths: tuple[str, ...]) -> None:
    from probe.tls import client_context

    try:
        client_context(paths)
    except (ValueError, OSError) as exc:
        raise BadInput(f"--ca-file: {exc}") from None


def _load_targets(paths: tuple[str, ...], only: tuple[str, ...]) -> tuple[list[Any], list[Any]]:
    """The lists and the selected targets; a problem in any list is bad input (exit 2)."""
    import fnmatch

    from probe.targets import bundled_list_paths, load_lists

    loaded = load_lists(list(paths) or bundled_list_paths())
    if loaded.problems:
        more = (
            f" (and {len(loaded.problems) - 1} more problems)" if len(loaded.problems) > 1 else ""
        )
        raise BadInput(loaded.problems[0] + more)
    targets = list(loaded.targets)
    if only:
        targets = [
            t for t in targets if t.is_baseline or any(fnmatch.fnmatch(t.id, g) for g in only)
        ]
        if not any(not t.is_baseline for t in targets):
            raise BadInput(f"--only {' '.join(only)}: no target id matches")
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
@click.option("--concurrency", type=int, default=None, help="Flows in flight (default 512).")
@click.option("--ca-file", "ca_files", multiple=True, type=click.Path(), help="Extra roots (PEM).")
@click.option("--geoip-db", "geoip_dbs", multiple=True, type=click.Path(), help="MaxMind DB.")
@click.option("--fingerprints", "fingerprint_files", multiple=True, type=click.Path())
@click.option("--source-address", metavar="IP", help="Local address to measure from.")
@click.option("--body-cap", type=int, default=64 * 1024, show_default=True, help="Bytes kept.")
@click.option("--every", metavar="DURATION", help="Repeat every DURATION (30m, 6h) with jitter.")
@click.option("--count", type=int, help="Stop after N rounds.")
@click.option("--json", "as_json", is_flag=True, help="One summary object per round on stdout.")
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
) -> int:
    """Measure every target once (or on a schedule) and write one record per target."""
    from probe.measure import DEFAULT_CONCURRENCY, MeasureConfig
    from probe.runner import RoundOptions, parse_duration

    if not timeout > 0 or timeout > 600:
        raise BadInput(f"--timeout {timeout}: must be between 0 and 600 seconds")
    if concurrency is not None and not 1 <= concurrency <= 100_000:
        raise BadInput(f"--concurrency {concurrency}: must be between 1 and 100000")
    if count is not None and count < 1:
        raise BadInput(f"--count {count}: must be at least 1")
    if body_cap < 1024:
        raise BadInput(f"--body-cap {body_cap}: must be at least 1024 bytes")
    try:
        period = parse_duration(every) if every else None
    except ValueError as exc:
        raise BadInput(f"--every: {exc}") from None
    if count is not None and period is None and count > 1:
        raise BadInput("--count N needs --every DURATION")
    server = _parse_resolver(resolver)
    _check_ca_files(ca_files)
    lists, selected = _load_targets(targets, only)
    if no_control and controls:
        raise BadInput("--no-control and --control exclude each other")
    options = RoundOptions(
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
    )
    from probe.console import run_and_report

    return run_and_report(lists, selected, options, every=period, count=count, as_json=as_json)


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
    from probe.geoip import GeoIP, GeoIPError
    from probe.measure import MeasureConfig

    networks = []
    for text in allow_nets:
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise BadInput(f"--allow-net {text}: not a CIDR network") from None
    if not 1 <= port <= 65535:
        raise BadInput(f"--port {port}: must be in 1..65535")
    if not timeout > 0 or timeout > 600:
        raise BadInput(f"--timeout {timeout}: must be between 0 and 600 seconds")
    if max_concurrent < 1:
        raise BadInput(f"--max-concurrent {max_concurrent}: must be at least 1")
    _check_ca_files(ca_files)
    try:
        GeoIP(tuple(geoip_dbs)).close()
    except GeoIPError as exc:
        raise BadInput(f"--geoip-db {exc}") from None
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
