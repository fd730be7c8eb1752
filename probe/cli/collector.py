"""`probe collector serve` (probe/collector/): the server that takes volunteers' records and
keeps them as Parquet for researchers (docs/collector.md)."""

from __future__ import annotations

from pathlib import Path

import click

from probe.cli.common import EXIT_OK, BadInput, refuse_special_files


@click.group("collector")
def collector_group() -> None:
    """The collector: takes volunteers' result records, keeps them as Parquet."""


@collector_group.command("serve")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8090, show_default=True)
@click.option(
    "--tokens",
    "tokens_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File of `GROUP TOKEN` lines; uploads then need one of the tokens.",
)
@click.option(
    "--max-concurrent",
    type=int,
    default=4,
    show_default=True,
    help="Uploads handled at once; more get 503.",
)
@click.option(
    "--reserve-mb",
    type=int,
    default=256,
    show_default=True,
    help="Free disk space kept; uploads past it get 507.",
)
@click.option(
    "--compact-interval",
    type=float,
    default=600.0,
    show_default=True,
    help="Seconds acknowledged records wait at most before they are written as Parquet.",
)
@click.option(
    "--compact-mb",
    type=int,
    default=64,
    show_default=True,
    help="Pending records written as Parquet as soon as they reach this size.",
)
@click.option(
    "--merge-files",
    type=int,
    default=16,
    show_default=True,
    help="A partition's small Parquet files are merged into one when there are this many.",
)
@click.option(
    "--rebuild-index",
    is_flag=True,
    help="Build the hash index again from the Parquet files (after a restore or a deletion).",
)
@click.option("--log-client-addresses", is_flag=True, help="Put client IPs in the access log.")
def collector_serve(
    directory: Path,
    host: str,
    port: int,
    tokens_file: Path | None,
    max_concurrent: int,
    reserve_mb: int,
    compact_interval: float,
    compact_mb: int,
    merge_files: int,
    rebuild_index: bool,
    log_client_addresses: bool,
) -> int:
    """Serve POST /v1/records and GET /v1/health; store records under DIRECTORY."""
    from probe import collector

    if not 1 <= port <= 65535:
        raise BadInput(f"--port {port}: must be in 1..65535")
    if max_concurrent < 1:
        raise BadInput(f"--max-concurrent {max_concurrent}: must be at least 1")
    if reserve_mb < 0 or compact_mb < 1 or merge_files < 2:
        raise BadInput(
            "--reserve-mb must be at least 0, --compact-mb at least 1, --merge-files at least 2"
        )
    if not 0 < compact_interval <= 86400:
        raise BadInput(f"--compact-interval {compact_interval}: must be in (0, 86400] seconds")
    if tokens_file is not None:
        refuse_special_files([str(tokens_file)], "a tokens file")
    config = collector.CollectorConfig(
        directory=directory,
        tokens_file=tokens_file,
        max_concurrent_requests=max_concurrent,
        reserve_bytes=reserve_mb * 1024 * 1024,
        compact_interval=compact_interval,
        compact_bytes=compact_mb * 1024 * 1024,
        merge_min_files=merge_files,
        rebuild_index=rebuild_index,
        log_client_addresses=log_client_addresses,
    )
    try:
        collector.serve(config, host, port)
    except (collector.TokenFileError, collector.DirectoryInUse) as exc:
        raise BadInput(str(exc)) from None
    except OSError as exc:
        where = exc.filename or f"{host}:{port}"
        raise BadInput(f"{where}: {exc.strerror or exc}") from None
    return EXIT_OK
