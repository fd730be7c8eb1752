"""`probe run`: check every option (bad input is exit 2, before anything is measured), load
the target lists, ask for consent (probe/cli/consent.py), and hand the round to
probe/cli/console.py (progress, summary, signals).

`prepare_run` is the whole check without side effects: `probe schedule install` runs it on the
command line it is about to install, so the two cannot drift."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from probe.cli.common import (
    BadInput,
    check_ca_files,
    config_path_in_use,
    option_error,
    parse_resolver,
    refuse_special_files,
)
from probe.cli.geoip import geoip_databases
from probe.cli.localized import LocalizedCommand, lang_option
from probe.i18n import N_, _, ngettext, render, text_of

if TYPE_CHECKING:
    from collections.abc import Callable

    from probe.round.measure import MeasureConfig
    from probe.round.runner import RoundOptions, RoundResult
    from probe.targets import Target, TargetList
    from probe.upload import ClientSettings

#: stderr line before a `--random-delay` wait
WAITING = N_("waiting {seconds:.0f} s before measuring (--random-delay)")
#: the probe id could not be stored: the round still runs, its records carry no id
NO_PROBE_ID = N_("probe: warning: {problem}; these records carry no probe id")


@dataclass(frozen=True, slots=True)
class RunPlan:
    """A checked `probe run` command line: what to measure, how, and how often."""

    lists: list[TargetList]
    targets: list[Target]
    options: RoundOptions
    every: float | None
    count: int | None
    as_json: bool
    assume_yes: bool
    random_delay: float | None
    keep_days: int | None
    #: where each round's records are uploaded, or None
    upload: ClientSettings | None = None


# 29 options, one decorator each (the command-line contract).
@click.command(
    "run",
    cls=LocalizedCommand,
    help=N_("Measure every target once (or on a schedule) and write one record per target."),
)
@lang_option()
@click.argument("targets", nargs=-1, type=click.Path())
@click.option("--only", multiple=True, metavar="GLOB", help=N_("Keep targets whose id matches."))
@click.option("--resolver", metavar="IP[:PORT]", help=N_("The only DNS server used for the run."))
@click.option("--control", "controls", multiple=True, metavar="URL", help=N_("Control server(s)."))
@click.option("--control-token", envvar="PROBE_CONTROL_TOKEN", help=N_("Bearer token."))
@click.option("--no-control", is_flag=True, help=N_("Measure without a control server."))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(),
    help=N_("Results directory (default: results/ in your data directory, see `probe results`)."),
)
@click.option(
    "--keep-days",
    type=int,
    metavar="N",
    help=N_("After each round, delete result files of rounds older than N days."),
)
@click.option("--timeout", type=float, default=10.0, show_default=True, help=N_("Per step, s."))
@click.option("--concurrency", type=int, default=None, help=N_("Flows in flight (default 1024)."))
@click.option(
    "--ca-file", "ca_files", multiple=True, type=click.Path(), help=N_("Extra roots (PEM).")
)
@click.option("--geoip-db", "geoip_dbs", multiple=True, type=click.Path(), help=N_("MaxMind DB."))
@click.option("--fingerprints", "fingerprint_files", multiple=True, type=click.Path())
@click.option("--source-address", metavar="IP", help=N_("Local address to measure from."))
@click.option("--body-cap", type=int, default=64 * 1024, show_default=True, help=N_("Bytes kept."))
@click.option(
    "--every", metavar="DURATION", help=N_("Repeat every DURATION (30m, 6h) with jitter.")
)
@click.option("--count", type=int, help=N_("Stop after N rounds."))
@click.option(
    "--random-delay",
    metavar="DURATION",
    help=N_(
        "Wait a random time up to DURATION before measuring (for schedules, so that "
        "volunteers do not all measure in the same minute)."
    ),
)
@click.option("--json", "as_json", is_flag=True, help=N_("One summary object per round on stdout."))
@click.option(
    "--yes",
    "assume_yes",
    is_flag=True,
    help=N_(
        "I have read what probe sends and stores and the risks (README), and accept them: "
        "do not ask (for scripts; also PROBE_ACCEPT_RISKS=1). Nothing is recorded."
    ),
)
@click.option(
    "--country",
    metavar="CC",
    help=N_(
        "Where this probe is (a control seeing another "
        "country means the traffic goes through a VPN)."
    ),
)
@click.option(
    "--ip-discovery/--no-ip-discovery",
    default=True,
    show_default=True,
    help=N_(
        "Learn this machine's public address (STUN, HTTPS echo) so that it can be kept out "
        "of the results; with --no-ip-discovery every unknown address in pages is redacted."
    ),
)
@click.option(
    "--stun",
    "stun_servers",
    multiple=True,
    metavar="HOST:PORT",
    help=N_("STUN server for address discovery (repeatable; replaces the defaults)."),
)
@click.option(
    "--ip-echo",
    "echo_urls",
    multiple=True,
    metavar="URL",
    help=N_(
        "HTTPS 'what is my IP' page for address discovery (repeatable; replaces the defaults)."
    ),
)
@click.option(
    "--upload",
    metavar="URL",
    help=N_(
        "After each round, send its records to this collector (default: url in [upload] of "
        "the config); records not delivered wait in the spool (probe upload --status)."
    ),
)
@click.option("--no-upload", is_flag=True, help=N_("Do not upload this time."))
@click.option(
    "--upload-proxy",
    metavar="URL",
    help=N_("Upload through this proxy: http://, socks5:// or socks5h://HOST:PORT."),
)
@click.option(
    "--own-net",
    "own_nets",
    multiple=True,
    metavar="CIDR",
    help=N_(
        "Accept an address in CIDR as this machine's own public address (test beds whose "
        "addresses are private or reserved)."
    ),
)
def run_command(**params: Any) -> int:
    """Measure every target once (or on a schedule) and write one record per target."""
    from probe.cli import consent
    from probe.cli.console import run_and_report

    plan = prepare_run(**params)
    # After the options (a typo is named first), before any packet and any results directory.
    consent.require_for_run(plan.assume_yes, config_path_in_use())
    options = _with_probe_id(plan.options)
    if plan.random_delay:
        _wait_randomly(plan.random_delay)
    keep_days = plan.keep_days
    hooks = [_retention(plan.options.out_dir, keep_days)] if keep_days is not None else []
    upload = None
    if plan.upload is not None:
        from probe.cli.upload_run import BackgroundUpload

        upload = BackgroundUpload(plan.upload)
        hooks.insert(0, upload.after_round)  # queued before retention may delete the file
    status = run_and_report(
        plan.lists,
        plan.targets,
        options,
        every=plan.every,
        count=plan.count,
        as_json=plan.as_json,
        after_round=_each(hooks) if hooks else None,
    )
    if upload is not None and status not in (130, 143):
        upload.wait()
    return status


def _each(hooks: list[Callable[[RoundResult], None]]) -> Callable[[RoundResult], None]:
    def after_round(result: RoundResult) -> None:
        for hook in hooks:
            hook(result)

    return after_round


def _with_probe_id(options: RoundOptions) -> RoundOptions:
    """The options with this installation's probe id, made on first use (after consent: a
    refused run leaves nothing behind). A file that holds something else is bad input, named
    with its path; a data directory where it cannot be stored (read-only media) costs the
    records their id, with a warning, never the measurement."""
    import dataclasses

    from probe import identity

    try:
        probe_id = identity.load_or_create()
    except identity.ProbeIdStoreError as exc:
        click.echo(_(NO_PROBE_ID).format(problem=exc), err=True)
        return options
    except identity.ProbeIdError as exc:
        raise BadInput(str(exc)) from None
    return dataclasses.replace(options, probe_id=probe_id)


def prepare_run(
    targets: tuple[str, ...],
    only: tuple[str, ...],
    resolver: str | None,
    controls: tuple[str, ...],
    control_token: str | None,
    no_control: bool,
    out_dir: str | None,
    keep_days: int | None,
    timeout: float,
    concurrency: int | None,
    ca_files: tuple[str, ...],
    geoip_dbs: tuple[str, ...],
    fingerprint_files: tuple[str, ...],
    source_address: str | None,
    body_cap: int,
    every: str | None,
    count: int | None,
    random_delay: str | None,
    as_json: bool,
    assume_yes: bool,
    country: str | None,
    ip_discovery: bool,
    stun_servers: tuple[str, ...],
    echo_urls: tuple[str, ...],
    own_nets: tuple[str, ...],
    upload: str | None = None,
    no_upload: bool = False,
    upload_proxy: str | None = None,
) -> RunPlan:
    """Check every option and load the lists (BadInput on any problem); nothing is written,
    nothing is sent. Must run inside the `run` command's click context (for option names)."""
    from probe.round.runner import RoundOptions
    from probe.steps import dns

    # The checks run in this order, so that of several bad options the same one is named.
    period = _check_limits(timeout, concurrency, count, body_cap, every)
    delay = _parse_random_delay(random_delay)
    measure = _measure_config(timeout, concurrency, resolver, ca_files, body_cap, source_address)
    out_dir = _results_dir(out_dir, keep_days)
    if not no_control:
        _check_control_urls(controls)
    geoip_paths = geoip_databases(geoip_dbs).paths
    lists, selected = _load_targets(targets, only)
    if country is not None and not (len(country) == 2 and country.isalpha()):
        raise option_error("country", country, _("use a two-letter country code such as IR"))
    options = RoundOptions(
        **_discovery_options(ip_discovery, stun_servers, echo_urls, own_nets),
        measure=measure,
        out_dir=out_dir,
        control_urls=() if no_control else tuple(controls),
        control_token=control_token,
        geoip_dbs=tuple(geoip_paths),
        fingerprint_files=tuple(fingerprint_files),
        expected_cc=country.upper() if country else None,
        doh_urls=() if no_control else dns.PUBLIC_DOH_URLS,
    )
    from probe.cli.upload_settings import for_run

    uploads = for_run(upload, no_upload, upload_proxy, ca_files)
    return RunPlan(
        lists, selected, options, period, count, as_json, assume_yes, delay, keep_days, uploads
    )


def _parse_random_delay(text: str | None) -> float | None:
    from probe.round.schedule import parse_duration

    try:
        return parse_duration(text) if text else None
    except ValueError as exc:
        raise BadInput(f"--random-delay: {exc}") from None


def _wait_randomly(most: float) -> None:
    """Sleep up to `most` seconds; Ctrl-C or SIGTERM here simply ends the process (nothing has
    been measured or written yet)."""
    import random
    import time

    seconds = random.SystemRandom().uniform(0, most)
    click.echo(_(WAITING).format(seconds=seconds), err=True)
    time.sleep(seconds)


def _results_dir(out_dir: str | None, keep_days: int | None) -> str:
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


def _retention(out_dir: str, keep_days: int) -> Callable[[RoundResult], None]:
    """After each round: delete the round files older than `keep_days` (never this round's;
    in a directory that is not the probe's own, only files that hold this probe's records);
    what it did on stderr, in the volunteer's language."""
    import os

    from probe.localdata import expire_rounds
    from probe.paths import default_results_dir

    own = os.path.abspath(out_dir) == str(default_results_dir())

    def expire(result: RoundResult) -> None:
        done = expire_rounds(out_dir, keep_days, keep=[result.path], own_dir=own)
        if done.removed:
            count = len(done.removed)
            days = ngettext("{count} day", "{count} days", keep_days).format(count=keep_days)
            click.echo(
                ngettext(
                    "probe: deleted {count} result file older than {days} (keep_days)",
                    "probe: deleted {count} result files older than {days} (keep_days)",
                    count,
                ).format(count=count, days=days),
                err=True,
            )
        for error in done.errors:
            click.echo(
                _("probe: could not delete an old result file: {error}").format(error=error),
                err=True,
            )

    return expire


def _check_limits(
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


def _measure_config(
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
            raise option_error("controls", url, _("use an http:// or https:// base URL"))


def _load_targets(
    paths: tuple[str, ...], only: tuple[str, ...]
) -> tuple[list[TargetList], list[Target]]:
    """The lists and the selected targets; a problem in any list is bad input (exit 2)."""
    import fnmatch

    from probe.targets import bundled_list_paths, load_lists

    refuse_special_files(paths, N_("a target list"))
    loaded = load_lists(list(paths) or bundled_list_paths())
    if loaded.problems:
        first = render(text_of(loaded.problems[0]))
        if len(loaded.problems) > 1:
            first = _("{problem} (and {count} more problems)").format(
                problem=first, count=len(loaded.problems) - 1
            )
        raise BadInput(first)
    targets = list(loaded.targets)
    if only:
        selected = [t for t in targets if any(fnmatch.fnmatch(t.id, g) for g in only)]
        if not selected:
            raise BadInput(_("--only {globs}: no target id matches").format(globs=" ".join(only)))
        # The baselines of the lists always come along: they tell "offline" from "blocked".
        targets = [t for t in targets if t.is_baseline or t in selected]
    if not targets:
        raise BadInput(
            _("no targets to measure in {lists}").format(lists=", ".join(paths))
            if paths
            else _("no targets to measure in the bundled lists")
        )
    return list(loaded.lists), targets


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
