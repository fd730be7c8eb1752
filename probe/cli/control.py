"""`probe control serve` (probe/control/): the control server, which measures the same
targets from an uncensored network."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from probe.cli.common import EXIT_OK, BadInput, check_ca_files, option_error, parse_resolver
from probe.cli.geoip import geoip_databases

if TYPE_CHECKING:
    import ipaddress


@click.group("control")
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
@click.option(
    "--neutral-quic-port",
    type=click.IntRange(1, 65535),
    metavar="PORT",
    help="Also run a neutral QUIC endpoint on this UDP port (443 for real use): probes judge "
    "'UDP 443 blocked as a whole' against it.",
)
@click.option(
    "--neutral-tls-port",
    type=int,
    metavar="PORT",
    help="Also run a TLS server on this port that accepts any name (probe run --neutral-server).",
)
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
    neutral_quic_port: int | None,
    neutral_tls_port: int | None = None,
) -> int:
    """Serve POST /v1/measure and GET /v1/health."""
    from probe import control
    from probe.round.measure import MeasureConfig

    networks = _allowed_networks(allow_nets)
    if not 1 <= port <= 65535:
        raise option_error("port", port, "must be in 1..65535")
    if neutral_tls_port is not None and not 1 <= neutral_tls_port <= 65535:
        raise option_error("neutral_tls_port", neutral_tls_port, "must be in 1..65535")
    if not timeout > 0 or timeout > 600:
        raise option_error("timeout", timeout, "must be more than 0 and at most 600 seconds")
    if max_concurrent < 1:
        raise BadInput(f"--max-concurrent {max_concurrent}: must be at least 1")
    check_ca_files(ca_files)
    geoip_paths = geoip_databases(geoip_dbs).paths
    config = control.ControlServerConfig(
        measure=MeasureConfig(
            timeout=timeout, resolver=parse_resolver(resolver), ca_files=tuple(ca_files)
        ),
        allow_nets=networks,
        token=token,
        geoip_dbs=tuple(geoip_paths),
        max_concurrent_requests=max_concurrent,
        neutral_quic_port=neutral_quic_port,
    )
    try:
        control.serve(
            config,
            host,
            port,
            log_addresses=log_client_addresses,
            neutral_tls_port=neutral_tls_port,
        )
    except OSError as exc:
        raise BadInput(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return EXIT_OK


@control_group.command("bulk")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8443, show_default=True)
def control_bulk(host: str, port: int) -> int:
    """Serve a bounded object over TLS for any SNI (GET /bulk?bytes=N, at most 4 MiB): the
    server side of `probe run --throttle-check`."""
    from probe.control import bulk

    if not 1 <= port <= 65535:
        raise option_error("port", port, "must be in 1..65535")

    def ready(bound: int) -> None:
        click.echo(f"probe: bulk endpoint on {host}:{bound}", err=True)

    try:
        bulk.serve(host, port, on_ready=ready)
    except OSError as exc:
        raise BadInput(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return EXIT_OK


def _allowed_networks(
    allow_nets: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """`--allow-net CIDR`: the private/reserved ranges the control may measure."""
    import ipaddress

    networks = []
    for text in allow_nets:
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise option_error("allow_nets", text, "not a CIDR network") from None
    return tuple(networks)
