"""`probe run --upload URL` (or a configured `[upload] url`): after each round is written,
its records go into the spool and an upload starts in a thread of its own, with its own
event loop, connections and deadlines — nothing it does can slow or stop a measurement,
and its failure never changes the run's exit status: one plain line on stderr
("3 records kept for the next upload: collector unreachable"). A run stopped by a signal
leaves whatever was not acknowledged pending in the spool. Records whose backoff has not
expired wait for a later run (or `probe upload`, which sends everything at once)."""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

from probe.cli.upload_status import err, kept_line
from probe.i18n import _, ngettext

if TYPE_CHECKING:
    from probe.round.runner import RoundResult
    from probe.upload import ClientSettings


class BackgroundUpload:
    """Queues each round's records and uploads them in a background thread."""

    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self.thread: threading.Thread | None = None
        self.again = threading.Event()

    def after_round(self, result: RoundResult) -> None:
        """Queue the round's file (one transaction) and make sure an upload runs."""
        from probe.paths import spool_path
        from probe.upload import Spool, queue_files

        try:
            spool = Spool.open(spool_path())
            try:
                queue_files(spool, [result.path])
            finally:
                spool.close()
        except Exception as exc:  # the measurement is on disk; the upload is extra
            err(_("probe: could not queue the records for upload: {error}").format(error=exc))
            return
        if self.thread is not None and self.thread.is_alive():
            self.again.set()  # the running session picks this round up before it ends
            return
        self.thread = threading.Thread(target=self._run, name="probe-upload", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            self.again.clear()
            self._session()
            if not self.again.is_set():
                return

    def _session(self) -> None:
        from probe.paths import spool_path
        from probe.upload import Spool, UploadBusy, exclusive, upload_spool

        try:
            spool = Spool.open(spool_path())
            try:
                with exclusive(spool.path):
                    done = asyncio.run(upload_spool(spool, self.settings, due_only=True))
            finally:
                spool.close()
        except UploadBusy:
            return  # another probe is uploading: it sends these records too
        except Exception as exc:
            err(_("probe: upload failed, the records stay queued: {error}").format(error=exc))
            return
        if done.error:
            err("probe: " + kept_line(done.kept, done.error))
        elif done.delivered:
            err(
                ngettext(
                    "probe: sent {count} record to the collector",
                    "probe: sent {count} records to the collector",
                    done.delivered,
                ).format(count=done.delivered)
            )

    def wait(self) -> None:
        """Wait for the upload to end (after the last round). A signal during the wait ends
        the process; what was not acknowledged stays pending."""
        import signal
        import sys

        if self.thread is None:
            return

        def terminated(signum: int, frame: object) -> None:
            sys.exit(143)

        if threading.current_thread() is not threading.main_thread():
            self.thread.join()
            return
        previous = signal.signal(signal.SIGTERM, terminated)
        try:
            self.thread.join()
        finally:
            signal.signal(signal.SIGTERM, previous)
