"""The options of `probe run`: their click declarations (the command-line contract) and the
checks that turn their text into settings (bad input names the option and is exit status 2).

`declare_options` applies every declaration to the command, in the order `--help` lists
them; a new option goes into OPTIONS here and into the parameters of `prepare_run` in
probe/cli/run.py, which calls the checks below in a fixed order so that of several bad options
the same one is named first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from probe.cli import swap_options
from probe.cli.common import BadInput, check_ca_files, option_error, parse_resolver
from probe.i18n import N_, _

if TYPE_CHECKING:
    from collections.abc import Callable

    from probe.round.followups import FollowUps
    from probe.round.measure import MeasureConfig

#: the TARGETS argument and the options of `probe run`, one declaration each, in `--help` order
OPTIONS: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
    click.argument("targets", nargs=-1, type=click.Path()),
    click.option(
        "--only", multiple=True, metavar="GLOB", help=N_("Keep targets whose id matches.")
    ),
    click.option(
        "--resolver", metavar="IP[:PORT]", help=N_("The only DNS server used for the run.")
    ),
    click.option(
        "--control", "controls", multiple=True, metavar="URL", help=N_("Control server(s).")
    ),
    click.option("--control-token", envvar="PROBE_CONTROL_TOKEN", help=N_("Bearer token.")),
    click.option("--no-control", is_flag=True, help=N_("Measure without a control server.")),
    click.option(
        "--out",
        "out_dir",
        type=click.Path(),
        help=N_(
            "Results directory (default: results/ in your data directory, see `probe results`)."
        ),
    ),
    click.option(
        "--keep-days",
        type=int,
        metavar="N",
        help=N_("After each round, delete result files of rounds older than N days."),
    ),
    click.option("--timeout", type=float, default=10.0, show_default=True, help=N_("Per step, s.")),
    click.option(
        "--concurrency", type=int, default=None, help=N_("Flows in flight (default 1024).")
    ),
    click.option(
        "--ca-file", "ca_files", multiple=True, type=click.Path(), help=N_("Extra roots (PEM).")
    ),
    click.option(
        "--geoip-db", "geoip_dbs", multiple=True, type=click.Path(), help=N_("MaxMind DB.")
    ),
    click.option("--fingerprints", "fingerprint_files", multiple=True, type=click.Path()),
    click.option("--source-address", metavar="IP", help=N_("Local address to measure from.")),
    click.option(
        "--body-cap", type=int, default=64 * 1024, show_default=True, help=N_("Bytes kept.")
    ),
    click.option(
        "--every", metavar="DURATION", help=N_("Repeat every DURATION (30m, 6h) with jitter.")
    ),
    click.option("--count", type=int, help=N_("Stop after N rounds.")),
    click.option(
        "--random-delay",
        metavar="DURATION",
        help=N_(
            "Wait a random time up to DURATION before measuring (for schedules, so that "
            "volunteers do not all measure in the same minute)."
        ),
    ),
    click.option(
        "--json", "as_json", is_flag=True, help=N_("One summary object per round on stdout.")
    ),
    click.option(
        "--yes",
        "assume_yes",
        is_flag=True,
        help=N_(
            "I have read what probe sends and stores and the risks (README), and accept them: "
            "do not ask (for scripts; also PROBE_ACCEPT_RISKS=1). Nothing is recorded."
        ),
    ),
    click.option(
        "--country",
        metavar="CC",
        help=N_(
            "Where this probe is (a control seeing another "
            "country means the traffic goes through a VPN)."
        ),
    ),
    click.option(
        "--domestic-baselines",
        type=click.Path(),
        metavar="FILE",
        help=N_(
            "Sites inside the country, measured next to the baselines: when only they answer, "
            "the round says international connectivity is down (a shutdown or an allowlist), "
            "not offline (default: the bundled list for --country, or for the country of "
            "your latest rounds, if there is one)."
        ),
    ),
    click.option(
        "--ip-discovery/--no-ip-discovery",
        default=True,
        show_default=True,
        help=N_(
            "Learn this machine's public address (STUN, HTTPS echo) so that it can be kept out "
            "of the results; with --no-ip-discovery every unknown address in pages is redacted."
        ),
    ),
    click.option(
        "--stun",
        "stun_servers",
        multiple=True,
        metavar="HOST:PORT",
        help=N_("STUN server for address discovery (repeatable; replaces the defaults)."),
    ),
    click.option(
        "--ip-echo",
        "echo_urls",
        multiple=True,
        metavar="URL",
        help=N_(
            "HTTPS 'what is my IP' page for address discovery (repeatable; replaces the defaults)."
        ),
    ),
    click.option(
        "--upload",
        metavar="URL",
        help=N_(
            "After each round, send its records to this collector (default: url in [upload] of "
            "the config); records not delivered wait in the spool (probe upload --status)."
        ),
    ),
    click.option("--no-upload", is_flag=True, help=N_("Do not upload this time.")),
    click.option(
        "--upload-proxy",
        metavar="URL",
        help=N_("Upload through this proxy: http://, socks5:// or socks5h://HOST:PORT."),
    ),
    click.option(
        "--own-net",
        "own_nets",
        multiple=True,
        metavar="CIDR",
        help=N_(
            "Accept an address in CIDR as this machine's own public address (test beds whose "
            "addresses are private or reserved)."
        ),
    ),
    click.option(
        "--throttle-check",
        metavar="IP:PORT",
        help=N_(
            "Also check for throttling: time downloads from this bulk endpoint (probe control "
            "bulk) with each TLS target's name and with a neutral name."
        ),
    ),
    click.option(
        "--locate-censor",
        is_flag=True,
        help=N_(
            "For each target that is not ok, resend what triggers the blocking with limited "
            "TTLs to find how many hops away the interference starts."
        ),
    ),
]


OPTIONS += swap_options.OPTIONS  # --neutral-sni, --neutral-server, --residual-window


def declare_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Declare every option of OPTIONS on `command` (as if each were its own decorator)."""
    for declare in reversed(OPTIONS):
        command = declare(command)
    return command


def parse_random_delay(text: str | None) -> float | None:
    from probe.round.schedule import parse_duration

    try:
        return parse_duration(text) if text else None
    except ValueError as exc:
        raise BadInput(f"--random-delay: {exc}") from None


def results_dir(out_dir: str | None, keep_days: int | None) -> str:
    """`--out` (or the config's `out`), else the default in the data directory; and a check
    of `--keep-days`."""
    from probe.localdata import MAX_KEEP_DAYS
    from probe.paths import default_results_dir

    if out_dir is not None and not out_dir.strip():
        raise option_error("out_dir", repr(out_dir), _("name a results directory"))
    if keep_days is not None and not 0 <= keep_days <= MAX_KEEP_DAYS:
        raise option_error(
            "keep_days", keep_days, _("must be between 0 and {most}").format(most=MAX_KEEP_DAYS)
        )
    return out_dir if out_dir is not None else str(default_results_dir())


def check_limits(
    timeout: float, concurrency: int | None, count: int | None, body_cap: int, every: str | None
) -> float | None:
    """The numeric options and the schedule; the period of `--every` in seconds (or None)."""
    from probe.round.schedule import parse_duration

    if not timeout > 0 or timeout > 600:
        raise option_error("timeout", timeout, _("must be more than 0 and at most 600 seconds"))
    if concurrency is not None and not 1 <= concurrency <= 100_000:
        raise option_error("concurrency", concurrency, _("must be between 1 and 100000"))
    if count is not None and count < 1:
        raise BadInput(_("--count {count}: must be at least 1").format(count=count))
    if body_cap < 1024:
        raise option_error("body_cap", body_cap, _("must be at least 1024 bytes"))
    try:
        period = parse_duration(every) if every else None
    except ValueError as exc:
        raise BadInput(f"--every: {exc}") from None
    if count is not None and period is None and count > 1:
        raise BadInput(_("--count N needs --every DURATION"))
    return period


def measure_config(
    timeout: float,
    concurrency: int | None,
    resolver: str | None,
    ca_files: tuple[str, ...],
    body_cap: int,
    source_address: str | None,
) -> MeasureConfig:
    """The flows' configuration, after checking `--resolver` and `--ca-file`."""
    from probe.round.measure import DEFAULT_CONCURRENCY, MeasureConfig

    server = parse_resolver(resolver)
    check_ca_files(ca_files)
    return MeasureConfig(
        timeout=timeout,
        resolver=server,
        ca_files=tuple(ca_files),
        body_cap=body_cap,
        source_address=source_address,
        concurrency=concurrency or DEFAULT_CONCURRENCY,
    )


def check_control_urls(urls: tuple[str, ...]) -> None:
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
            raise option_error("controls", url, _("use an http:// or https:// base URL"))


def discovery_options(
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
            raise option_error("stun_servers", text, _("use HOST:PORT, e.g. stun.example.org:3478"))
        stun.append((host, int(port_text)))
    for url in echo_urls:
        try:
            parts = urlsplit(url)
            ok = parts.scheme == "https" and bool(parts.hostname)
        except ValueError:
            ok = False
        if not ok:
            raise option_error("echo_urls", url, _("use an https:// URL"))
    for text in own_nets:
        try:
            ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise option_error("own_nets", text, _("not a CIDR network")) from None
    return {
        "ip_discovery": enabled,
        # None: the defaults (publicip), chosen by the round
        "stun_servers": tuple(stun) if stun or echo_urls else None,
        "echo_urls": tuple(echo_urls) if stun or echo_urls else None,
        "own_nets": tuple(own_nets),
    }


def followups(throttle_check: str | None, locate_censor: bool) -> FollowUps:
    """`--throttle-check IP:PORT` (an IP literal: the bulk endpoint is not looked up) and
    `--locate-censor`."""
    import ipaddress

    from probe.round.followups import FollowUps

    server = None
    if throttle_check is not None:
        host, sep, port_text = throttle_check.strip().rpartition(":")
        host = host.strip("[]")
        try:
            ipaddress.ip_address(host)
            ok = bool(sep) and port_text.isdigit() and 1 <= int(port_text) <= 65535
        except ValueError:
            ok = False
        if not ok:
            raise option_error(
                "throttle_check", throttle_check, _("use IP:PORT, e.g. 192.0.2.7:8443")
            )
        server = (host, int(port_text))
    return FollowUps(throttle_server=server, locate_censor=locate_censor)
