"""`probe results [list]` and `probe results show ID` (probe/localdata/): the rounds measured on
this device, read back from the results directory, like `ooniprobe list/show`. Never the
volunteer's address: records do not hold it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from probe.cli.common import EXIT_OK, BadInput

if TYPE_CHECKING:
    from probe.localdata import RoundSummary


def results_dir(out_dir: str | None) -> Path:
    """The directory `probe run` writes to: `out_dir` when given, else the config's `out`,
    else the default in the data directory."""
    import os

    from probe.paths import default_results_dir

    ctx = click.get_current_context()
    if out_dir is None and isinstance(ctx.obj, dict):
        out_dir = ctx.obj.get("out_dir")  # given before the subcommand
    if out_dir is None:
        out_dir = ((ctx.find_root().default_map or {}).get("run") or {}).get("out_dir")
    return Path(os.path.abspath(out_dir)) if out_dir else default_results_dir()


_OUT = click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="The results directory (default: where `probe run` writes).",
)


_LAST = click.option(
    "--last", type=click.IntRange(min=1), metavar="N", help="Only the last N rounds."
)
_JSON_LIST = click.option("--json", "as_json", is_flag=True, help="One JSON object per round.")


@click.group("results", invoke_without_command=True)
@_OUT
@_LAST
@_JSON_LIST
@click.pass_context
def results_group(
    ctx: click.Context, out_dir: str | None, last: int | None, as_json: bool
) -> int | None:
    """Past rounds on this device: `probe results` lists them (as `probe results list`),
    `probe results show ID` shows one."""
    ctx.obj = {"out_dir": out_dir}  # `probe results --out DIR show ID` works too
    if ctx.invoked_subcommand is None:
        status: int = ctx.invoke(results_list, out_dir=out_dir, last=last, as_json=as_json)
        return status
    return None


@results_group.command("list")
@_OUT
@_LAST
@_JSON_LIST
def results_list(out_dir: str | None, last: int | None, as_json: bool) -> int:
    """One line per round, oldest first: when (UTC), report id, targets, how many were ok,
    blocked, down or inconclusive, and the network (ASN, country) it was measured from."""
    from probe.localdata import list_rounds

    directory = results_dir(out_dir)
    shown = skipped_lines = skipped_files = 0
    first_problem: str | None = None
    for summary in list_rounds(directory, last):
        if summary.skipped:
            skipped_lines += summary.skipped
            skipped_files += 1
            first_problem = first_problem or summary.problem
        if summary.skipped and not len(summary.records):
            continue  # nothing readable: counted, not listed
        if as_json:
            click.echo(json.dumps(_list_object(summary), ensure_ascii=False))
        else:
            if not shown:
                click.echo(_HEADER)
            click.echo(_list_line(summary))
        shown += 1
    if skipped_lines:
        click.echo(
            f"probe: skipped {skipped_lines} unreadable line{'s' if skipped_lines != 1 else ''} "
            f"in {skipped_files} file{'s' if skipped_files != 1 else ''} "
            f"(first: {first_problem})",
            err=True,
        )
    if not as_json:
        if shown:
            click.echo(f"{shown} round{'s' if shown != 1 else ''} in {directory}")
        else:
            click.echo(f"No rounds in {directory} yet: `probe run` measures one.")
    return EXIT_OK


_HEADER = (
    f"{'date (UTC)':19}  {'report id':16}  {'targets':>7}  {'ok':>4}  {'blocked':>7}  "
    f"{'down':>4}  {'inconcl.':>8}  network"
)


def _list_line(summary: RoundSummary) -> str:
    counts = summary.counts()
    notes = _notes(summary)
    return (
        f"{summary.file.start:%Y-%m-%d %H:%M:%S}  {summary.report_id:16}  "
        f"{len(summary.records):>7}  {counts['ok']:>4}  {counts['blocked']:>7}  "
        f"{counts['down']:>4}  {counts['inconclusive']:>8}  "
        f"{summary.probe_asn} {summary.probe_cc}" + (f"  ({', '.join(notes)})" if notes else "")
    )


def _notes(summary: RoundSummary) -> list[str]:
    notes = []
    if not len(summary.records):
        notes.append("no records yet")
    if summary.interrupted:
        notes.append(f"interrupted: {summary.interrupted} unfinished")
    if summary.network_type == "vpn":
        notes.append("through a VPN")
    if len(summary.records) and summary.offline:
        notes.append("offline")
    if summary.skipped:
        notes.append(f"{summary.skipped} unreadable lines")
    return notes


def _list_object(summary: RoundSummary) -> dict[str, Any]:
    return {
        "report_id": summary.report_id,
        "measurement_start_time": f"{summary.file.start:%Y-%m-%d %H:%M:%S}",
        "results_file": summary.path,
        "targets": len(summary.records),
        "counts": summary.counts(),
        "probe_asn": summary.probe_asn,
        "probe_cc": summary.probe_cc,
        "network_type": summary.network_type,
        "interrupted": summary.interrupted,
        "offline": bool(len(summary.records)) and summary.offline,
        "skipped_lines": summary.skipped,
    }


@results_group.command("show")
@click.argument("report_id", metavar="ID")
@_OUT
@click.option("--json", "as_json", is_flag=True, help="The summary as one JSON object.")
def results_show(report_id: str, out_dir: str | None, as_json: bool) -> int:
    """One round's summary, as `probe run` printed it at the end: a row per service and a
    sentence per target that was not ok. ID is the report id, or its first characters."""
    from probe.cli.summary import tally_rows
    from probe.localdata import RoundNotFound, find_round, read_round

    directory = results_dir(out_dir)
    try:
        summary = read_round(find_round(directory, report_id))
    except RoundNotFound as exc:
        raise BadInput(str(exc)) from None
    if summary.skipped:
        click.echo(
            f"probe: skipped {summary.skipped} unreadable line"
            f"{'s' if summary.skipped != 1 else ''} (first: {summary.problem})",
            err=True,
        )
    if not len(summary.records):
        raise BadInput(f"{summary.path}: no records of this probe in the file")
    if as_json:
        obj = _list_object(summary)
        obj.update(
            runtime=round(summary.runtime, 3),
            vantage=summary.x_vantage,
            control_failure=summary.control_failure,
            services=tally_rows(summary.records),
        )
        click.echo(json.dumps(obj, ensure_ascii=False))
        return EXIT_OK
    _print_round(summary)
    return EXIT_OK


def _print_round(summary: RoundSummary) -> None:
    from rich.console import Console

    from probe.cli.summary import print_rows, tally_rows

    console = Console(soft_wrap=True, file=sys.stdout)
    title = f"probe: round {summary.report_id}, {summary.file.start:%Y-%m-%d %H:%M} UTC"
    print_rows(tally_rows(summary.records), console, offline=summary.offline, title=title)
    notes = [n for n in _notes(summary) if n != "offline"]  # the table's note says it
    if summary.control_failure:
        notes.append(f"no control server answered: {summary.control_failure}")
    network = f"network {summary.probe_asn}, country {summary.probe_cc}"
    console.print(
        f"Round {summary.report_id}: {len(summary.records)} targets in "
        f"{summary.runtime:.1f} s, {network}" + (f" ({'; '.join(notes)})" if notes else "") + ". "
        f"Results: {summary.path}",
        highlight=False,
        markup=False,
    )
