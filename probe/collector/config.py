"""The collector's configuration (`probe collector serve` fills it from its options)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from probe.collector import limits


@dataclass(frozen=True, slots=True)
class CollectorConfig:
    directory: Path
    #: file of `GROUP TOKEN` lines (`probe.collector.tokens`); None: no token required
    tokens_file: Path | None = None
    max_body_bytes: int = limits.MAX_BODY_BYTES
    max_decoded_bytes: int = limits.MAX_DECODED_BYTES
    max_records: int = limits.MAX_RECORDS_PER_REQUEST
    max_record_bytes: int = limits.MAX_RECORD_BYTES
    max_depth: int = limits.MAX_DEPTH
    max_concurrent_requests: int = limits.MAX_CONCURRENT_REQUESTS
    header_timeout: float = limits.HEADER_TIMEOUT
    body_timeout: float = limits.BODY_TIMEOUT
    process_seconds: float = limits.PROCESS_SECONDS
    reserve_bytes: int = limits.RESERVE_BYTES
    compact_bytes: int = limits.COMPACT_BYTES
    compact_interval: float = limits.COMPACT_INTERVAL
    merge_min_files: int = limits.MERGE_MIN_FILES
    merge_target_bytes: int = limits.MERGE_TARGET_BYTES
    log_client_addresses: bool = False
    #: forget the hash index and build it again from the Parquet files (and pending records)
    rebuild_index: bool = False

    @property
    def connection_lifetime(self) -> float:
        """No connection lives longer than this (head, body, checking and storing, reply)."""
        return (
            self.header_timeout
            + self.body_timeout
            + self.process_seconds
            + limits.REPLY_WRITE_SECONDS
        )
