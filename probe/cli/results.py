"""`probe results [list]` and `probe results show ID` (probe/localdata/): the rounds measured on
this device, read back from the results directory, like `ooniprobe list/show`. Never the
volunteer's address: records do not hold it.

What a volunteer reads is in their language (`probe --lang fa results`, or the locale); `--json`
stays English (it is for scripts), and so do dates, report ids, ASNs and paths."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from probe.cli.common import EXIT_OK, BadInput
from probe.cli.localized import LocalizedCommand, LocalizedSubgroup, lang_option
from probe.i18n import N_, _, ngettext, pgettext

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
    help=N_("The results directory (default: where `probe run` writes)."),
)


_LAST = click.option(
    "--last", type=click.IntRange(min=1), metavar="N", help=N_("Only the last N rounds.")
)
_JSON_LIST = click.option(
    "--json", "as_json", is_flag=True, help=N_("One JSON object per round (in English).")
)


@click.group(
    "results",
    cls=LocalizedSubgroup,
    invoke_without_command=True,
    help=N_(
        "Past rounds on this device: `probe results` lists them (as `probe results list`), "
        "`probe results show ID` shows one."
    ),
)
@lang_option()
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


@results_group.command(
    "list",
    cls=LocalizedCommand,
    help=N_(
        "One line per round, oldest first: when (UTC), report id, targets, how many were ok, "
        "blocked, down or inconclusive, and the network (ASN, country) it was measured from."
    ),
)
@lang_option()
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
    columns = _columns()
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
                click.echo(_header(columns))
            click.echo(_list_line(summary, columns))
        shown += 1
    if skipped_lines:
        files = ngettext("{count} file", "{count} files", skipped_files).format(count=skipped_files)
        click.echo(
            ngettext(
                "probe: skipped {count} unreadable line in {files} (first: {problem})",
                "probe: skipped {count} unreadable lines in {files} (first: {problem})",
                skipped_lines,
            ).format(count=skipped_lines, files=files, problem=first_problem),
            err=True,
        )
    if not as_json:
        if shown:
            click.echo(
                ngettext(
                    "{count} round in {directory}", "{count} rounds in {directory}", shown
                ).format(count=shown, directory=directory)
            )
        else:
            click.echo(
                _("No rounds in {directory} yet: `probe run` measures one.").format(
                    directory=directory
                )
            )
    return EXIT_OK


#: the list's columns: their header in the volunteer's language, the width of their values,
#: and whether the values are right-aligned (counts); the last one, the network, is as wide as
#: it needs
_COLUMN_WIDTHS = ((19, False), (16, False), (7, True), (4, True), (7, True), (4, True), (8, True))


def _columns() -> list[tuple[str, int, bool]]:
    """The columns, each as wide as its value or its translated header, whichever is wider."""
    from rich.cells import cell_len

    headers = (
        pgettext("results column", "date (UTC)"),
        pgettext("results column", "report id"),
        pgettext("results column", "targets"),
        pgettext("results column", "ok"),
        pgettext("results column", "blocked"),
        pgettext("results column", "down"),
        pgettext("results column", "inconcl."),
    )
    return [
        (header, max(width, cell_len(header)), right)
        for header, (width, right) in zip(headers, _COLUMN_WIDTHS, strict=True)
    ]


def _cell(text: str, width: int, right: bool) -> str:
    """`text` padded to `width` terminal cells (a Persian word's ZWNJ takes none)."""
    from rich.cells import cell_len

    padding = " " * max(0, width - cell_len(text))
    return padding + text if right else text + padding


def _header(columns: list[tuple[str, int, bool]]) -> str:
    network = pgettext("results column", "network")
    return "  ".join([*(_cell(h, w, r) for h, w, r in columns), network])


def _list_line(summary: RoundSummary, columns: list[tuple[str, int, bool]]) -> str:
    counts = summary.counts()
    values = (
        f"{summary.file.start:%Y-%m-%d %H:%M:%S}",
        summary.report_id,
        str(len(summary.records)),
        str(counts["ok"]),
        str(counts["blocked"]),
        str(counts["down"]),
        str(counts["inconclusive"]),
    )
    cells = [_cell(v, w, r) for v, (_h, w, r) in zip(values, columns, strict=True)]
    line = "  ".join([*cells, f"{summary.probe_asn} {summary.probe_cc}"])
    notes = _notes(summary)
    return line + (f"  ({pgettext('list separator', ', ').join(notes)})" if notes else "")


def _notes(summary: RoundSummary, *, offline: bool = True) -> list[str]:
    """What a round's line adds in brackets (`offline` False: not the offline note, which the
    table of `results show` says itself)."""
    notes = []
    if not len(summary.records):
        notes.append(_("no records yet"))
    if summary.interrupted:
        notes.append(_("interrupted: {count} unfinished").format(count=summary.interrupted))
    if summary.network_type == "vpn":
        notes.append(_("through a VPN"))
    if offline and len(summary.records) and summary.offline:
        notes.append(_("offline"))
    if offline and len(summary.records) and summary.shutdown:
        notes.append(_("international connectivity down: shutdown or allowlist"))
    if summary.skipped:
        notes.append(
            ngettext("{count} unreadable line", "{count} unreadable lines", summary.skipped).format(
                count=summary.skipped
            )
        )
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
        "shutdown": bool(len(summary.records)) and summary.shutdown,
        "skipped_lines": summary.skipped,
    }


@results_group.command(
    "show",
    cls=LocalizedCommand,
    help=N_(
        "One round's summary, as `probe run` printed it at the end: a row per service and a "
        "sentence per target that was not ok. ID is the report id, or its first characters."
    ),
)
@lang_option()
@click.argument("report_id", metavar="ID")
@_OUT
@click.option(
    "--json", "as_json", is_flag=True, help=N_("The summary as one JSON object (in English).")
)
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
            ngettext(
                "probe: skipped {count} unreadable line (first: {problem})",
                "probe: skipped {count} unreadable lines (first: {problem})",
                summary.skipped,
            ).format(count=summary.skipped, problem=summary.problem),
            err=True,
        )
    if not len(summary.records):
        raise BadInput(_("{path}: no records of this probe in the file").format(path=summary.path))
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
    title = _("probe: round {report_id}, {start} UTC").format(
        report_id=summary.report_id, start=f"{summary.file.start:%Y-%m-%d %H:%M}"
    )
    print_rows(
        tally_rows(summary.records),
        console,
        offline=summary.offline,
        title=title,
        shutdown=summary.shutdown,
    )
    notes = _notes(summary, offline=False)  # the table's note says it
    if summary.control_failure:
        notes.append(
            _("no control server answered: {failure}").format(failure=summary.control_failure)
        )
    facts = {
        "report_id": summary.report_id,
        "targets": len(summary.records),
        "seconds": f"{summary.runtime:.1f}",
        "asn": summary.probe_asn,
        "cc": summary.probe_cc,
        "path": summary.path,
    }
    if notes:
        line = _(
            "Round {report_id}: {targets} targets in {seconds} s, network {asn}, country {cc} "
            "({notes}). Results: {path}"
        ).format(notes=pgettext("clause separator", "; ").join(notes), **facts)
    else:
        line = _(
            "Round {report_id}: {targets} targets in {seconds} s, network {asn}, country {cc}. "
            "Results: {path}"
        ).format(**facts)
    console.print(line, highlight=False, markup=False)
