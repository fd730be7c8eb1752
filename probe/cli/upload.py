"""`probe upload [FILES/DIRS]`: queue result files' records in the spool and send every
pending record to the collector; `--status` says what is waiting (docs/upload.md). The
spool and the sending are probe/upload/; the settings probe/cli/upload_settings.py; the
words of `--status` probe/cli/upload_status.py."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import click

from probe.cli.common import EXIT_ERROR, EXIT_OK, BadInput, refuse_special_files
from probe.cli.localized import LocalizedCommand, lang_option
from probe.cli.upload_settings import DEFAULT_TIMEOUT, TOKEN_ENV, client_settings, proxy_of
from probe.i18n import N_, _

SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}


@click.command(
    "upload",
    cls=LocalizedCommand,
    help=N_(
        "Send your results to the researchers' collector: the records of the files or "
        "directories given (none: your results directory) and everything still waiting."
    ),
)
@lang_option()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--to", "url", metavar="URL", help=N_("The collector (or url in [upload])."))
@click.option("--token", envvar=TOKEN_ENV, help=N_("Bearer token from the researchers."))
@click.option(
    "--proxy",
    metavar="URL",
    help=N_("Upload through this proxy: http://, socks5:// or socks5h://HOST:PORT."),
)
@click.option(
    "--ca-file", "ca_files", multiple=True, type=click.Path(), help=N_("Extra roots (PEM).")
)
@click.option(
    "--timeout", type=float, default=DEFAULT_TIMEOUT, show_default=True, help=N_("Per request, s.")
)
@click.option(
    "--status", "show_status", is_flag=True, help=N_("Show what is waiting; send nothing.")
)
@click.option("--json", "as_json", is_flag=True, help=N_("Print the status or outcome as JSON."))
def upload_command(
    paths: tuple[str, ...],
    url: str | None,
    token: str | None,
    proxy: str | None,
    ca_files: tuple[str, ...],
    timeout: float,
    show_status: bool,
    as_json: bool,
) -> int:
    from probe.cli import upload_status
    from probe.paths import default_results_dir, spool_path

    if show_status:
        if paths:
            raise BadInput(_("--status sends nothing: give no files with it"))
        spool = _open_spool()
        try:
            upload_status.show(spool, url, as_json)
        finally:
            spool.close()
        return EXIT_OK
    if not url:
        raise BadInput(
            _("no collector: give --to URL, or url in the [upload] table of the config file")
        )
    settings = client_settings(
        url,
        url_param="url",
        token=token,
        proxy=proxy_of(proxy, "proxy"),
        proxy_param="proxy",
        ca_files=ca_files,
        timeout=timeout,
    )
    refuse_special_files(paths, N_("a result file"))
    missing = [p for p in paths if not _exists(p)]
    if missing:
        raise BadInput(_("{path}: no such file or directory").format(path=missing[0]))
    if not paths and default_results_dir().is_dir():
        paths = (str(default_results_dir()),)  # your own results, as `probe report` reads them
    spool = _open_spool()
    try:
        if paths:
            upload_status.queued(_queue(spool, paths), as_json)
        return _send(spool, settings, spool_path(), as_json)
    finally:
        spool.close()


def _exists(path: str) -> bool:
    import os

    return os.path.exists(path)


def _open_spool() -> Any:
    import sqlite3

    from probe.paths import spool_path
    from probe.upload import Spool

    path = spool_path()
    try:
        return Spool.open(path)
    except (OSError, sqlite3.Error) as exc:
        raise BadInput(
            _("{path}: cannot open the upload spool ({error})").format(path=path, error=exc)
        ) from None


def _queue(spool: Any, paths: tuple[str, ...]) -> Any:
    from probe.upload import queue_files

    return queue_files(spool, paths)


def _send(spool: Any, settings: Any, path: Any, as_json: bool) -> int:
    """Send every pending record now (a person asked: the backoff is not waited for)."""
    from probe.cli import upload_status
    from probe.upload import UploadBusy, exclusive, upload_spool

    try:
        with exclusive(path):
            status, outcome = asyncio.run(
                _until_signal(upload_spool(spool, settings, due_only=False))
            )
    except UploadBusy:
        upload_status.busy(as_json)
        return EXIT_ERROR
    if outcome is None:
        upload_status.stopped(spool.status().pending, as_json)
        return status
    upload_status.outcome(outcome, as_json)
    return EXIT_OK if outcome.error is None else EXIT_ERROR


async def _until_signal(work: Any) -> tuple[int, Any]:
    """Run `work`; SIGINT or SIGTERM cancels it (every record not yet acknowledged stays
    pending) and gives that signal's exit status."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(work)
    received: list[signal.Signals] = []

    def stop(sig: signal.Signals) -> None:
        received.append(sig)
        task.cancel()

    for sig in SIGNAL_EXIT:
        loop.add_signal_handler(sig, stop, sig)
    try:
        return EXIT_OK, await task
    except asyncio.CancelledError:
        if received:
            return SIGNAL_EXIT[received[0]], None
        raise
    finally:
        for sig in SIGNAL_EXIT:
            loop.remove_signal_handler(sig)
