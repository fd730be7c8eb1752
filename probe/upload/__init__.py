"""Uploading records to a collector (`probe upload`, `probe run --upload`; docs/upload.md).

`spool` keeps the records not yet delivered in a local SQLite database (crash-safe, bounded,
with each record's state and next attempt), `backoff` says when a failed record is tried
again, `queue` puts a round's or a result file's records into the spool, `client` posts one
gzipped batch to the collector (directly or through an HTTP or SOCKS5 proxy, `proxy`) and
reads the per-line reply, and `uploader` drains the spool batch by batch. Import from here:
the names below are the package's interface."""

from probe.upload.backoff import Backoff
from probe.upload.client import (
    BatchResult,
    ClientSettings,
    CollectorClient,
    UploadError,
    read_reply,
)
from probe.upload.proxy import PROXY_ENV, Proxy, parse_collector_url, parse_proxy, records_url
from probe.upload.queue import QueueReport, is_probe_record, queue_files, record_line
from probe.upload.spool import DELIVERED, PENDING, REJECTED, Enqueued, Queued, Spool, Status
from probe.upload.uploader import Outcome, UploadBusy, exclusive, upload_spool

__all__ = [
    "DELIVERED",
    "PENDING",
    "PROXY_ENV",
    "REJECTED",
    "Backoff",
    "BatchResult",
    "ClientSettings",
    "CollectorClient",
    "Enqueued",
    "Outcome",
    "Proxy",
    "QueueReport",
    "Queued",
    "Spool",
    "Status",
    "UploadBusy",
    "UploadError",
    "exclusive",
    "is_probe_record",
    "parse_collector_url",
    "parse_proxy",
    "queue_files",
    "read_reply",
    "record_line",
    "records_url",
    "upload_spool",
]
