"""The collector's limits and defaults (docs/collector.md, "Limits"): what one request may
bring, how long a client may take, how much disk is kept free, and when pending records are
compacted into Parquet."""

from __future__ import annotations

#: Bytes of a request body as sent (gzip or not); a larger Content-Length is refused unread.
MAX_BODY_BYTES = 16 * 1024 * 1024
#: Bytes of a request body once decompressed: a gzip bomb is cut here, never inflated further.
MAX_DECODED_BYTES = 16 * 1024 * 1024
#: Lines (records) in one request; an uploader sends more in several requests.
MAX_RECORDS_PER_REQUEST = 1000
#: Bytes of one record (one line). A record holds at most ~1 MiB of HTTP heads and bodies
#: (`x_http_trimmed`) plus its certificates and the control's observations.
MAX_RECORD_BYTES = 4 * 1024 * 1024
#: Nesting of objects and arrays in one record; ours reach about 10.
MAX_DEPTH = 32
#: Requests read, checked and stored at once; more get 503 with Retry-After.
MAX_CONCURRENT_REQUESTS = 4
RETRY_AFTER_SECONDS = 30
#: Seconds a client has to send its request head, then its whole body (16 MiB take two
#: minutes at 1 Mbit/s; an uploader on a slow link sends smaller requests).
HEADER_TIMEOUT = 10.0
BODY_TIMEOUT = 120.0
#: Seconds to check and store a request's records once its body is in, and to send the reply:
#: with the head and body deadlines, the lifetime of a connection, whatever it does.
PROCESS_SECONDS = 120.0
REPLY_WRITE_SECONDS = 30.0
#: Free space kept on the collector's file system: uploads past it get 507, and compaction
#: (which writes Parquet before it frees the pending records) still has room.
RESERVE_BYTES = 256 * 1024 * 1024
#: Pending records are compacted into Parquet when they reach this many bytes, or when the
#: oldest has waited COMPACT_INTERVAL seconds, and when the collector stops.
COMPACT_BYTES = 64 * 1024 * 1024
COMPACT_INTERVAL = 600.0
#: A partition holding this many Parquet files smaller than MERGE_TARGET_BYTES has them
#: merged into one.
MERGE_MIN_FILES = 16
MERGE_TARGET_BYTES = 128 * 1024 * 1024
#: The ledger's (SQLite) page cache: the memory the hash index may take, whatever its size.
LEDGER_CACHE_BYTES = 16 * 1024 * 1024
#: Lines of the per-line reply naming a rejected record's reason; the reason is cut to this.
MAX_REASON_CHARS = 300
