"""`probe targets validate|list|import-citizenlab` (probe/targets/, probe/targets/citizenlab.py)."""

from __future__ import annotations

import click

from probe.cli.common import EXIT_OK, BadInput, refuse_special_files, report_problems


@click.group("targets")
def targets_group() -> None:
    """Check, show and import target lists."""


@targets_group.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
def targets_validate(paths: tuple[str, ...]) -> int:
    """Check list files (or directories of *.toml); print every problem as file:line: message."""
    from probe.targets import load_lists

    loaded = load_lists(paths)
    if loaded.problems:
        report_problems(loaded.problems, "the target lists")
    lists, targets = len(loaded.lists), len(loaded.targets)
    click.echo(f"{lists} list{'s' if lists != 1 else ''}, {targets} targets: ok")
    return EXIT_OK


@targets_group.command("list")
@click.argument("paths", nargs=-1, type=click.Path())
def targets_list(paths: tuple[str, ...]) -> int:
    """Show the targets (default: the bundled lists), one per line: id, check, endpoints."""
    from probe.targets import bundled_list_paths, describe_targets, load_lists

    refuse_special_files(paths, "a target list")
    loaded = load_lists(list(paths) or bundled_list_paths())
    if loaded.problems:
        report_problems(loaded.problems, "the target lists")
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

    from probe.targets.citizenlab import import_citizenlab
    from probe.targets.toml_out import write_atomically

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
        report_problems(result.problems, f"{csv_path}; nothing written")
    if output is None:
        click.echo(result.text, nl=False)
    else:
        try:
            write_atomically(output, result.text)
        except OSError as exc:
            raise BadInput(f"{output}: cannot write: {exc.strerror or exc}") from None
        click.echo(f"{output}: {len(result.rows)} targets", err=True)
    return EXIT_OK
