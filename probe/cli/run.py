"""`probe run`: check every option (bad input is exit 2, before anything is measured), load
the target lists, ask for consent (probe/cli/consent.py), and hand the round to
probe/cli/console.py (progress, summary, signals).

`prepare_run` is the whole check without side effects: `probe schedule install` runs it on the
command line it is about to install, so the two cannot drift."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from probe.cli import domestic_options, run_options, swap_options
from probe.cli.common import (
    BadInput,
    config_path_in_use,
    option_error,
    refuse_special_files,
)
from probe.cli.geoip import geoip_databases
from probe.cli.localized import LocalizedCommand, lang_option
from probe.i18n import N_, _, ngettext, render, text_of

if TYPE_CHECKING:
    from collections.abc import Callable

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


@click.command(
    "run",
    cls=LocalizedCommand,
    help=N_("Measure every target once (or on a schedule) and write one record per target."),
)
@lang_option()
@run_options.declare_options
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


# Long only by its signature: one parameter per option of the command (click passes each by
# name); the body is 40 lines.
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
    domestic_baselines: str | None = None,
    upload: str | None = None,
    no_upload: bool = False,
    upload_proxy: str | None = None,
    throttle_check: str | None = None,
    locate_censor: bool = False,
    neutral_sni: str | None = "www.example.com",
    neutral_server: str | None = None,
    residual_window: float = 0.0,
) -> RunPlan:
    """Check every option and load the lists (BadInput on any problem); nothing is written,
    nothing is sent. Must run inside the `run` command's click context (for option names)."""
    from probe.round.runner import RoundOptions
    from probe.steps import dns

    # The checks run in this order, so that of several bad options the same one is named.
    period = run_options.check_limits(timeout, concurrency, count, body_cap, every)
    delay = run_options.parse_random_delay(random_delay)
    measure = run_options.measure_config(
        timeout, concurrency, resolver, ca_files, body_cap, source_address
    )
    measure = swap_options.sni_swap_config(measure, neutral_sni, neutral_server, residual_window)
    out_dir = run_options.results_dir(out_dir, keep_days)
    if not no_control:
        run_options.check_control_urls(controls)
    geoip_paths = geoip_databases(geoip_dbs).paths
    if country is not None and not (len(country) == 2 and country.isalpha()):
        raise option_error("country", country, _("use a two-letter country code such as IR"))
    domestic = domestic_options.domestic_list(domestic_baselines, country, out_dir)
    lists, selected = _load_targets(targets, only, domestic)
    if domestic_baselines is None and domestic is not None:
        lists, selected = domestic_options.domestic_if_useful(lists, selected, domestic)
    options = RoundOptions(
        **run_options.discovery_options(ip_discovery, stun_servers, echo_urls, own_nets),
        measure=measure,
        out_dir=out_dir,
        control_urls=() if no_control else tuple(controls),
        control_token=control_token,
        geoip_dbs=tuple(geoip_paths),
        fingerprint_files=tuple(fingerprint_files),
        expected_cc=country.upper() if country else None,
        doh_urls=() if no_control else dns.PUBLIC_DOH_URLS,
        followups=run_options.followups(throttle_check, locate_censor),
    )
    from probe.cli.upload_settings import for_run

    uploads = for_run(upload, no_upload, upload_proxy, ca_files)
    return RunPlan(
        lists, selected, options, period, count, as_json, assume_yes, delay, keep_days, uploads
    )


def _wait_randomly(most: float) -> None:
    """Sleep up to `most` seconds; Ctrl-C or SIGTERM here simply ends the process (nothing has
    been measured or written yet)."""
    import random
    import time

    seconds = random.SystemRandom().uniform(0, most)
    click.echo(_(WAITING).format(seconds=seconds), err=True)
    time.sleep(seconds)


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


def _load_targets(
    paths: tuple[str, ...], only: tuple[str, ...], domestic: str | None = None
) -> tuple[list[TargetList], list[Target]]:
    """The lists and the selected targets, with the domestic baselines (`domestic`, a list
    file) among them; a problem in any list is bad input (exit 2)."""
    import fnmatch

    from probe.targets import bundled_list_paths, load_lists

    refuse_special_files(paths, N_("a target list"))
    loaded = load_lists([*(list(paths) or bundled_list_paths()), *([domestic] if domestic else [])])
    if loaded.problems:
        first = render(text_of(loaded.problems[0]))
        if len(loaded.problems) > 1:
            first = _("{problem} (and {count} more problems)").format(
                problem=first, count=len(loaded.problems) - 1
            )
        raise BadInput(first)
    targets = domestic_options.mark_domestic(loaded.lists, domestic)
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
