"""`probe analyze` (probe/report/ooni/, probe/analysis/fingerprints/, probe/analysis/) and
`probe report`
(probe/report/): verdicts recomputed from stored records, and timelines over many runs."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from probe.cli.common import EXIT_OK, BadInput, refuse_special_files

if TYPE_CHECKING:
    from probe.report import ReportFilters
    from probe.report.ooni_archive import OoniArchive


@click.command("analyze")
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

    from probe.analysis.fingerprints import FingerprintDB, default_db
    from probe.report.ooni import AnalyzeNote, analyze_paths

    try:
        db = FingerprintDB.load(fingerprint_files) if fingerprint_files else default_db()
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    if fingerprint_files and db.skipped:
        click.echo(
            f"probe: {db.skipped} fingerprint rows skipped (first: {db.warnings[0]})", err=True
        )
    refuse_special_files(files, "a measurement file")
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


@click.command("report")
@click.argument("results", nargs=-1, type=click.Path(path_type=str))
@click.option("--html", "html_path", type=click.Path(dir_okay=False), help="Write an HTML page.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Write rows as CSV.")
@click.option(
    "--parquet", "parquet_path", type=click.Path(dir_okay=False), help="Write rows as Parquet."
)
@click.option(
    "--across-csv",
    "across_csv_path",
    type=click.Path(dir_okay=False),
    help="Write the view across volunteers (per target and network) as CSV.",
)
@click.option(
    "--across-parquet",
    "across_parquet_path",
    type=click.Path(dir_okay=False),
    help="Write the view across volunteers (per target and network) as Parquet.",
)
@click.option("--since", help="Keep runs at or after this UTC date/datetime (ISO).")
@click.option("--until", help="Keep runs before this UTC date/datetime (ISO).")
@click.option("--service", multiple=True, help="Keep this service (repeatable, or a,b).")
@click.option("--asn", multiple=True, help="Keep this network, AS1234 or 1234 (repeatable).")
@click.option("--cc", multiple=True, help="Keep this country code (repeatable).")
@click.option(
    "--ooni-archive",
    "ooni_archives",
    multiple=True,
    type=click.Path(path_type=str),
    metavar="DIR",
    help="Also read OONI's archive: a copy of its raw/ or jsonl/ tree, or a directory of "
    "OONI .jsonl(.gz) files (repeatable); --since, --until and --cc prune it by path.",
)
@click.option(
    "--test-name",
    "test_names",
    multiple=True,
    metavar="NAME",
    help="OONI tests to read from --ooni-archive (repeatable, or a,b; 'all' for every test; "
    "default: telegram, signal, whatsapp, facebook_messenger).",
)
@click.option(
    "--engine",
    type=click.Choice(["duckdb", "spark"]),
    default="duckdb",
    show_default=True,
    help="Compute the report with DuckDB (this machine) or Apache Spark.",
)
@click.option(
    "--spark-master",
    metavar="URL",
    help="Spark master for --engine spark (default local[2]), e.g. spark://host:7077.",
)
@click.option(
    "--spark-scratch",
    type=click.Path(file_okay=False, path_type=str),
    metavar="DIR",
    help="Where Spark writes the report's rows (on a cluster: storage all workers share).",
)
# Long only by its signature: one parameter per option of the command (click passes each by
# name); the body is 54 lines.
def report_command(
    results: tuple[str, ...],
    html_path: str | None,
    csv_path: str | None,
    parquet_path: str | None,
    across_csv_path: str | None,
    across_parquet_path: str | None,
    since: str | None,
    until: str | None,
    service: tuple[str, ...],
    asn: tuple[str, ...],
    cc: tuple[str, ...],
    ooni_archives: tuple[str, ...],
    test_names: tuple[str, ...],
    engine: str,
    spark_master: str | None,
    spark_scratch: str | None,
) -> int:
    """Timelines and changes over time from result files and directories (default: where
    `probe run` writes): ours and OONI measurements, .json, .jsonl and .gz."""
    import importlib.util

    if importlib.util.find_spec("duckdb") is None:  # the single-file build leaves it out
        raise click.ClickException(
            "probe report needs DuckDB, which this copy of probe does not include: "
            "install probe with pipx (or `pip install duckdb` next to it)"
        )
    from probe import report
    from probe.cli.results import results_dir

    refuse_special_files(results, "a results path")
    refuse_special_files(ooni_archives, "an OONI archive")
    try:
        filters = report.make_filters(since, until, service, asn, cc)
        archive = _ooni_archive(ooni_archives, test_names, filters)
        paths = list(results) or ([] if archive else [str(results_dir(None))])
        if engine == "spark":
            from probe.report.spark import build_report_spark

            built = build_report_spark(
                paths, filters, master=spark_master, scratch=spark_scratch, archive=archive
            )
        else:
            if spark_master or spark_scratch:
                raise report.ReportInputError(
                    "--spark-master and --spark-scratch need --engine spark"
                )
            built = report.build_report(paths, filters, archive=archive)
        unmatched = built.unmatched_summary()
        if unmatched:  # a typo must not replace yesterday's page with an empty one
            raise report.ReportInputError(unmatched)
        if archive is not None:  # a file name is untrusted text too
            click.echo(f"probe: {report.terminal_safe(archive.stats.summary())}", err=True)
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
        if across_csv_path:
            report.write_across_csv(built, across_csv_path)
        if across_parquet_path:
            report.write_across_parquet(built, across_parquet_path)
    except report.ReportInputError as exc:
        raise BadInput(str(exc)) from None
    return EXIT_OK


def _ooni_archive(
    roots: tuple[str, ...], test_names: tuple[str, ...], filters: ReportFilters
) -> OoniArchive | None:
    """The OONI archives to read (probe.report.ooni_archive), pruned by the filters."""
    if not roots:
        if test_names:
            raise BadInput("--test-name selects OONI tests of --ooni-archive, which is not given")
        return None
    from probe.report.ooni_archive import OoniArchive, make_selection

    selection = make_selection(filters.since, filters.until, filters.ccs, test_names)
    return OoniArchive.open(roots, selection)
