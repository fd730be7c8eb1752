"""The collector (docs/collector.md): a server that takes volunteers' result records over
HTTP and keeps them for researchers as Parquet partitioned by date, country and network.
`app` holds the aiohttp application (health, upload, tokens, slots, every error as JSON),
`body` reads a request body within its bounds (gzip without bombs), `records` checks one line
(JSON, depth, the schema compiled by `schema`, times) and makes it a record to store,
`tokens` the bearer tokens per volunteer group, `storage` the durable path (the SQLite
`ledger`: hash index and acknowledged records; `parquet`: partition files written
atomically, compacted and merged), `serving` the ``probe collector serve`` loop, `config`
and `limits` its settings. Import from here: the names below are the package's interface.
"""

from probe.collector.app import STORAGE, Collector, create_app
from probe.collector.body import BodyError
from probe.collector.config import CollectorConfig
from probe.collector.records import Accepted, LineChecker
from probe.collector.schema import SchemaError, bundled_schema, compile_schema, record_check
from probe.collector.serving import make_runner, serve, start_server
from probe.collector.storage import DirectoryInUse, DiskFull, Storage, StorageError
from probe.collector.tokens import TokenFileError, Tokens, load_tokens

__all__ = [
    "STORAGE",
    "Accepted",
    "BodyError",
    "Collector",
    "CollectorConfig",
    "DirectoryInUse",
    "DiskFull",
    "LineChecker",
    "SchemaError",
    "Storage",
    "StorageError",
    "TokenFileError",
    "Tokens",
    "bundled_schema",
    "compile_schema",
    "create_app",
    "load_tokens",
    "make_runner",
    "record_check",
    "serve",
    "start_server",
]
